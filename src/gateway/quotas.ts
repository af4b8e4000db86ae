/**
 * Which reserve-then-settle counters a request is charged against: tokens per minute (the caller's key
 * limit and the route's), and budgets (the key's own or `budgets.per_key`, each route metrics label's
 * value, the route's). Built once per config (routes) or once per key record, never per request; the
 * per-request work is one array of lines.
 */
import type { BudgetLimit, HapaxConfig } from '../config/schema.ts';
import type { ApiKeyRecord, RateLimitSettings } from '../state/keys.ts';
import { windowClock, type WindowClock } from './quota-window.ts';

export type QuotaScope = 'key' | 'label' | 'route';

export interface QuotaLine {
  kind: 'tpm' | 'budget';
  scope: QuotaScope;
  /** Who the cap is for, as shown to operators: `marketing`, `department=marketing`, `/v1/chat/completions`. */
  name: string;
  /** Counted in tokens, or in nano-dollars (whole numbers keep sums exact in Redis and here). */
  unit: 'tokens' | 'nano_usd';
  limit: number;
  clock: WindowClock;
  /** The window as configured: minute, daily, weekly, monthly, rolling. */
  window: string;
  /** The counter's name, for counters whose name does not depend on the caller. */
  counter: string;
  /** Tokens-per-minute lines: the counter is per caller; its name is `counter` + the client. */
  perClient?: boolean;
  /** Budgets: the amount at which the warning fires, and the refusal status. */
  softAt?: number;
  status: 429 | 402;
}

export const NANO_PER_USD = 1_000_000_000;

export class QuotaPlan {
  readonly timeZone: string;
  readonly reserveOutputTokens: number;
  private readonly minute = windowClock('minute');
  private readonly clocks = new Map<string, WindowClock>();
  private readonly perKey?: BudgetLimit[];
  private readonly labelBudgets: HapaxConfig['budgets']['labels'];
  private readonly routeBudgets = new Map<string, BudgetLimit[]>();
  private readonly defaultLimit?: RateLimitSettings;
  private readonly byRecord = new WeakMap<ApiKeyRecord, QuotaLine[]>();
  private readonly byRoute = new Map<string, QuotaLine[]>();
  /** Whether any budget is configured anywhere (keys' own budgets count from the records). */
  readonly anyConfigured: boolean;

  constructor(config: Pick<HapaxConfig, 'budgets' | 'routes' | 'rate_limit' | 'auth'>) {
    this.timeZone = config.budgets.time_zone;
    this.reserveOutputTokens = config.budgets.reserve_output_tokens;
    this.perKey = config.budgets.per_key?.length ? config.budgets.per_key : undefined;
    this.labelBudgets = config.budgets.labels;
    this.defaultLimit = config.rate_limit;
    for (const route of config.routes ?? []) if (route.budgets?.length) this.routeBudgets.set(route.path.replace(/\/+$/, '') || '/', route.budgets);
    this.anyConfigured =
      this.perKey !== undefined ||
      this.routeBudgets.size > 0 ||
      Object.keys(this.labelBudgets ?? {}).length > 0 ||
      config.rate_limit?.tokens_per_minute !== undefined ||
      (config.routes ?? []).some((r) => r.rate_limit?.tokens_per_minute) ||
      config.auth.keys.some((k) => k.budgets?.length || k.rate_limit?.tokens_per_minute);
  }

  private clock(budget: BudgetLimit): WindowClock {
    const id = `${budget.window}|${budget.period ?? ''}`;
    let clock = this.clocks.get(id);
    if (!clock) this.clocks.set(id, (clock = windowClock(budget.window, { timeZone: this.timeZone, periodMs: budget.period })));
    return clock;
  }

  /** A budget's lines: one per unit it caps. Counter names leave out the cap, so a reload that changes it keeps the spend. */
  private budgetLines(scope: QuotaScope, name: string, budgets: readonly BudgetLimit[]): QuotaLine[] {
    const lines: QuotaLine[] = [];
    for (const budget of budgets) {
      const clock = this.clock(budget);
      const base = { kind: 'budget' as const, scope, name, clock, window: budget.window, status: budget.status };
      const counter = `budget:${scope}:${name}:${clock.id}`;
      if (budget.usd !== undefined) {
        const limit = Math.round(budget.usd * NANO_PER_USD);
        lines.push({ ...base, unit: 'nano_usd', limit, counter: `${counter}:usd`, softAt: Math.floor(limit * budget.soft) });
      }
      if (budget.tokens !== undefined) lines.push({ ...base, unit: 'tokens', limit: budget.tokens, counter: `${counter}:tokens`, softAt: Math.floor(budget.tokens * budget.soft) });
    }
    return lines;
  }

  private tpmLine(scope: QuotaScope, name: string, perMinute: number): QuotaLine {
    return { kind: 'tpm', scope, name, unit: 'tokens', limit: perMinute, clock: this.minute, window: 'minute', counter: `tpm:${scope}:${name}|`, perClient: true, status: 429 };
  }

  /** The caller's lines: its key's TPM limit (else the default) and its key's budgets (else `per_key`). */
  forKey(key: ApiKeyRecord | undefined): readonly QuotaLine[] {
    if (!key) return this.anonymous;
    let lines = this.byRecord.get(key);
    if (!lines) {
      lines = [];
      const limit = key.rate_limit ?? this.defaultLimit;
      if (limit?.tokens_per_minute) lines.push(this.tpmLine('key', 'key', limit.tokens_per_minute));
      const budgets = key.budgets?.length ? key.budgets : this.perKey;
      if (budgets) lines.push(...this.budgetLines('key', key.name, budgets));
      this.byRecord.set(key, lines);
    }
    return lines;
  }

  /** Auth off: the default TPM limit per client address; key budgets need a key. */
  private get anonymous(): readonly QuotaLine[] {
    return (this.anonymousLines ??= this.defaultLimit?.tokens_per_minute ? [this.tpmLine('key', 'key', this.defaultLimit.tokens_per_minute)] : []);
  }
  private anonymousLines?: QuotaLine[];

  /** The route's lines: its TPM limit, its budgets, and the budgets of its metrics labels' values. */
  forRoute(route: { path: string; metricsLabels: Readonly<Record<string, string>>; rateLimit?: RateLimitSettings }): readonly QuotaLine[] {
    let lines = this.byRoute.get(route.path);
    if (!lines) {
      lines = [];
      if (route.rateLimit?.tokens_per_minute) lines.push(this.tpmLine('route', route.path, route.rateLimit.tokens_per_minute));
      for (const [label, value] of Object.entries(route.metricsLabels)) {
        const budgets = this.labelBudgets?.[label]?.[value];
        if (budgets) lines.push(...this.budgetLines('label', `${label}=${value}`, budgets));
      }
      const own = this.routeBudgets.get(route.path);
      if (own) lines.push(...this.budgetLines('route', route.path, own));
      this.byRoute.set(route.path, lines);
    }
    return lines;
  }

  /** Every budget line the config names (for /admin/usage), with the keys' given. */
  configuredBudgets(keys: readonly ApiKeyRecord[], routes: Iterable<{ path: string; metricsLabels: Readonly<Record<string, string>>; rateLimit?: RateLimitSettings }>): QuotaLine[] {
    const seen = new Map<string, QuotaLine>();
    for (const key of keys) for (const line of this.forKey(key)) if (line.kind === 'budget') seen.set(line.counter, line);
    for (const route of routes) for (const line of this.forRoute(route)) if (line.kind === 'budget') seen.set(line.counter, line);
    return [...seen.values()];
  }
}
