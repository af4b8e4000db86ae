/**
 * What a finished request adds to the usage report (GET /admin/usage, `hapax usage`): one row under its
 * day, key, route, labels, provider and model. Tokens and dollars only when it called upstream itself: a
 * shared or cached answer spent them on the request that did.
 */
import { costUsd } from '../observability/usage.ts';
import { NANO_PER_USD } from '../gateway/quotas.ts';
import type { UsageRecord } from '../state/store.ts';
import type { RequestState } from './context.ts';

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
      if (rate.price) row.cost_nano_usd = Math.round(costUsd(rate.price, usage) * NANO_PER_USD);
      else row.unpriced_requests = 1;
    }
  }
  void state.runtime.store.usage.record(row).catch(() => undefined);
}
