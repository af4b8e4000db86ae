/**
 * The rule "settle every attempt exactly once": an attempt's breaker permit, health counters, concurrency slot
 * and provider metrics are settled by the first of success, failure or release, and never again. A stream's
 * attempt is settled when the stream ends: completed, failed mid-way, or abandoned by its reader.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent } from '../core/lossless.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { Release } from './fair-queue.ts';
import type { ProviderState } from './provider-state.ts';

/** Settles one attempt's bookkeeping (breaker permit, health, concurrency slot) exactly once. */
export interface Settlement {
  success(latencyMs: number): void;
  failure(error: UpstreamError): void;
  /** Neither: the attempt was given up (a reader left, a client error); the permit and slot are handed back. */
  release(): void;
}

export function settlementOf(provider: string, state: ProviderState, permit: BreakerPermit, release: Release, metrics: Metrics): Settlement {
  let settled = false;
  const finish = () => {
    settled = true;
    release();
    state.health.requestFinished();
  };
  return {
    success: (latencyMs) => {
      if (settled) return;
      finish();
      permit.success();
      state.health.recordSuccess(latencyMs, 'traffic');
      metrics.providerRequests.inc({ provider, outcome: 'success' });
      metrics.providerLatency.observe({ provider }, latencyMs / 1000);
    },
    failure: (error) => {
      if (settled) return;
      finish();
      metrics.providerRequests.inc({ provider, outcome: error.kind });
      if (error.kind === 'client' || error.kind === 'aborted') permit.release();
      else if (error.kind === 'rate_limited') {
        // A 429 says "not now", not "broken": avoid the provider until its retry-after instead.
        permit.release();
        state.health.recordRateLimit(error.retryAfterSeconds);
      } else {
        permit.failure();
        state.health.recordFailure('traffic');
      }
    },
    release: () => {
      if (settled) return;
      finish();
      permit.release();
    },
  };
}

/**
 * Passes a stream through, settling the attempt when it ends: completed, failed mid-way, or abandoned.
 * A plain iterator rather than a generator: it adds no promise of its own to each event.
 */
export function settleAtEnd(upstream: AsyncIterator<ChatStreamEvent>, target: ModelTarget, settlement: Settlement, firstTokenMs: number): AsyncIterator<ChatStreamEvent> {
  const ended = (result: IteratorResult<ChatStreamEvent>) => {
    if (result.done) settlement.success(firstTokenMs);
    return result;
  };
  const failed = (error: unknown): never => {
    settlement.failure(asUpstream(error, target));
    throw error;
  };
  return {
    next: () => upstream.next().then(ended, failed),
    return: async () => {
      settlement.release();
      await upstream.return?.();
      return { done: true, value: undefined };
    },
  };
}

/** Anything an attempt threw, as the failure the walk and the breaker understand. */
export function asUpstream(error: unknown, target: ModelTarget): UpstreamError {
  return error instanceof UpstreamError ? error : new UpstreamError(target.provider, 'protocol', (error as Error).message, { cause: error });
}
