/**
 * What a finished request adds to the usage report (GET /admin/usage, `hapax usage`): one row under its
 * day, key, route, labels, provider and model. Tokens and dollars only when it called upstream itself: a
 * shared or cached answer spent them on the request that did.
 */
import type { UsageRecord } from '../state/store.ts';
import { spentBy, type RequestState } from './context.ts';
import { spentNanoUsd } from './quota-admission.ts';

export function recordUsage(state: RequestState, now = Date.now()): void {
  const route = state.route;
  if (!state.admitted || !route) return;
  const meter = state.runtime.usageMeter;
  const row: UsageRecord = { day: meter.day(now), key: state.client, route: route.path, label: meter.labelOf(route), provider: '', model: '', requests: 1 };
  const { usage, target } = state;
  if (target) {
    const rate = meter.rate(target);
    row.provider = target.provider;
    row.model = rate.model;
    if (usage && !state.shared) {
      row.input_tokens = usage.inputTokens;
      row.output_tokens = usage.outputTokens;
      row.cache_read_tokens = usage.cacheReadTokens;
      row.cache_write_tokens = usage.cacheWriteTokens;
      row.reasoning_tokens = usage.reasoningTokens;
      // Priced attempt by attempt, as the budgets are (a resumed stream's attempts each at their own price);
      // an attempt without a price flags the row.
      const parts = spentBy(state);
      const priced = parts.filter((part) => meter.rate(part.target).price).length;
      if (priced > 0) row.cost_nano_usd = spentNanoUsd(state);
      if (priced < parts.length) row.unpriced_requests = 1;
    }
  }
  void state.runtime.store.usage.record(row).catch(() => undefined);
}
