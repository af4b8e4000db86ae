/**
 * Every configured budget with what has been spent in its current window (this process in memory, the
 * fleet with Redis): for /admin/usage and the console.
 */
import type { Runtime } from '../gateway/runtime.ts';
import { NANO_PER_USD } from '../gateway/quotas.ts';

export interface BudgetRow {
  scope: 'key' | 'label' | 'route';
  budget: string;
  window: string;
  unit: 'usd' | 'tokens';
  limit: number;
  spent: number;
  remaining: number;
  /** Share of the limit spent (reservations of requests in flight included). */
  spent_ratio: number;
  /** `warning` past the soft threshold, `exhausted` at the cap. */
  state: 'ok' | 'warning' | 'exhausted';
  /** When the window gives back what it holds (rolling: its oldest slice). */
  reset: string;
}

export async function budgetReport(runtime: Runtime, now = Date.now()): Promise<BudgetRow[]> {
  const lines = runtime.quotas.configuredBudgets(runtime.keys.records(), runtime.routes.values());
  const spent = await Promise.all(lines.map((line) => runtime.store.quota.used(line.counter, line.clock.at(now).from)));
  return lines
    .map((line, i): BudgetRow => {
      const usd = line.unit === 'nano_usd';
      const scale = usd ? NANO_PER_USD : 1;
      return {
        scope: line.scope,
        budget: line.name,
        window: line.window,
        unit: usd ? 'usd' : 'tokens',
        limit: line.limit / scale,
        spent: spent[i] / scale,
        remaining: Math.max(0, line.limit - spent[i]) / scale,
        spent_ratio: line.limit > 0 ? Math.round((spent[i] / line.limit) * 10_000) / 10_000 : 1,
        state: spent[i] >= line.limit ? 'exhausted' : line.softAt !== undefined && spent[i] >= line.softAt ? 'warning' : 'ok',
        reset: new Date(line.clock.at(now).resetAt).toISOString(),
      };
    })
    .sort((a, b) => a.scope.localeCompare(b.scope) || a.budget.localeCompare(b.budget) || a.window.localeCompare(b.window));
}
