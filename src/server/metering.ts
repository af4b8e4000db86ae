/**
 * Which usage a request is accounted with. The provider's own figures when it sent them; otherwise (a
 * stream that ended, or was cut, without a usage event) an estimate: the input counted with the tokenizer,
 * the output from the characters streamed at about four a token. Each record says which it is
 * (`usage_source`); an answer with neither is counted in hapax_unmetered_requests_total.
 */
import type { FastifyRequest } from 'fastify';
import { loadedTokenizer } from '../gateway/token-count.ts';
import { estimateRequest } from '../gateway/usage-estimate.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { RequestState } from './context.ts';

const CHARS_PER_TOKEN = 4;

export function meterUsage(request: FastifyRequest, state: RequestState, metrics: Metrics): void {
  if (state.usage) {
    state.usageSource ??= 'provider';
    return;
  }
  // Nothing came from a provider, the answer was another request's (its tokens are counted there), or the
  // route does not generate (count_tokens asks a provider, but for a count, not an answer).
  if (!state.target || state.shared || !state.route?.usesProviders) return;
  const chars = state.streamedChars ?? 0;
  let input = state.reservation?.estimate.inputTokens;
  if (input === undefined) {
    const count = loadedTokenizer();
    if (count) input = estimateRequest(request.body, count, 0).inputTokens;
  }
  if (input === undefined && chars === 0) {
    metrics.unmetered.inc({ provider: state.target.provider });
    return;
  }
  state.usage = { inputTokens: input ?? 0, outputTokens: Math.ceil(chars / CHARS_PER_TOKEN) };
  state.usageSource = 'estimated';
}
