/**
 * What the client is told when no provider answered, the request's deadline passed or its client left. Upstream
 * bodies and keys never pass through: provider messages are masked for anything key-like.
 */
import { GatewayError, isDeadline, type UpstreamError } from '../core/errors.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import type { ProviderState } from './provider-state.ts';

/** No candidate could even be tried: all rate limited (or their breakers busy with trials). */
export function unavailable(candidates: readonly ModelTarget[], states: ReadonlyMap<string, ProviderState>): GatewayError {
  const now = Date.now();
  const waits = candidates.map((t) => Math.ceil(Math.max(0, (states.get(t.provider) as ProviderState).health.rateLimitedUntil - now) / 1000));
  return new GatewayError('every provider for this request is rate limited or unavailable right now', {
    status: 503,
    type: 'ProcessingError',
    details: { providers: candidates.map((t) => t.provider) },
    retryAfterSeconds: Math.max(1, Math.min(...waits)),
  });
}

/**
 * Nothing could answer a request that had several providers to try: one status and one shape however it came
 * about (every provider failed this time, or some were skipped because their breaker is open or they are rate
 * limited after failing before): 503, with Retry-After from the soonest any of them may answer again, and every
 * provider listed with why it did not. A client retrying on 503 (the bundled clients do) waits the right time.
 */
export function noneCanAnswer(candidates: readonly ModelTarget[], failures: readonly UpstreamError[], states: ReadonlyMap<string, ProviderState>): GatewayError {
  const now = Date.now();
  const failed = new Map<string, UpstreamError>();
  for (const failure of failures) failed.set(failure.provider, failure);
  const waits: number[] = [];
  const providers = [...new Set(candidates.map((t) => t.provider))].map((provider) => {
    const state = states.get(provider) as ProviderState;
    const failure = failed.get(provider);
    if (failure?.retryAfterSeconds !== undefined) waits.push(failure.retryAfterSeconds);
    if (state.breaker.state === 'open') waits.push(Math.ceil(state.breaker.msUntilHalfOpen() / 1000));
    if (state.health.rateLimitedUntil > now) waits.push(Math.ceil((state.health.rateLimitedUntil - now) / 1000));
    if (failure) return { provider, state: 'failed', kind: failure.kind, ...(failure.status ? { status: failure.status } : {}) };
    if (state.breaker.state === 'open') return { provider, state: 'circuit_open' };
    if (state.health.isRateLimited()) return { provider, state: 'rate_limited' };
    return { provider, state: 'not_tried' };
  });
  const everyOneFailed = providers.every((p) => p.state === 'failed');
  return new GatewayError(everyOneFailed ? `all ${providers.length} providers failed` : `all ${providers.length} providers failed or are unavailable right now`, {
    status: 503,
    type: 'ProcessingError',
    details: { providers, ...(failures.length > 0 ? { attempts: failures.map(describeFailure) } : {}) },
    retryAfterSeconds: Math.max(1, waits.length > 0 ? Math.min(...waits) : 1),
  });
}

/** The request's own signal ended it: its deadline passed (504) or its client left (499). */
export function stoppedBy(signal: AbortSignal, failures: readonly UpstreamError[]): GatewayError {
  if (!isDeadline(signal.reason)) return new GatewayError('client closed the request', { status: 499, type: 'ProcessingError' });
  return new GatewayError('no provider answered within the request deadline', {
    status: 504,
    type: 'ProcessingError',
    details: failures.length > 0 ? { attempts: failures.map(describeFailure) } : undefined,
  });
}

/** A dedup flight rejects a caller that left with its signal's reason: say what that means instead. */
export function stoppedIfAborted(error: unknown, signal: AbortSignal): unknown {
  return signal.aborted && error === signal.reason ? stoppedBy(signal, []) : error;
}

/** Provider messages can quote credentials back (OpenAI's 401 shows part of the key): mask anything key-like. */
const KEY_LIKE = /\b(sk|pk|rk|key|api)[-_][A-Za-z0-9_*.-]{6,}/gi;

/** What the client is told when no candidate answered. Upstream bodies and keys never pass through. */
export function clientFacingError(failures: UpstreamError[]): GatewayError {
  const last = failures[failures.length - 1];
  if (!last) return new GatewayError('no provider is configured for this request', { status: 503, type: 'ProcessingError' });
  if (last.kind === 'aborted') return new GatewayError('client closed the request', { status: 499, type: 'ProcessingError' });
  if (last.kind === 'client') {
    return new GatewayError(last.upstreamMessage?.replace(KEY_LIKE, '[redacted]') ?? `${last.provider} rejected the request`, {
      status: last.status ?? 400,
      type: 'ValidationError',
      details: { provider: last.provider, upstream_status: last.status },
    });
  }
  const attempts = failures.map(describeFailure);
  const providers = new Set(failures.map((f) => f.provider));
  if (providers.size === 1) {
    if (last.kind === 'rate_limited') {
      return new GatewayError(`${last.provider} is rate limiting requests`, {
        status: 429,
        type: 'RateLimitError',
        details: { attempts },
        retryAfterSeconds: last.retryAfterSeconds ?? 1,
      });
    }
    if (last.kind === 'overloaded') {
      return new GatewayError(`${last.provider} is overloaded`, { status: 503, type: 'ProcessingError', details: { attempts }, retryAfterSeconds: last.retryAfterSeconds ?? 1 });
    }
    return new GatewayError(last.kind === 'timeout' ? `${last.provider} timed out` : `${last.provider} failed: ${attempts[attempts.length - 1].error}`, {
      status: last.kind === 'timeout' ? 504 : 502,
      type: 'ProcessingError',
      details: { attempts },
    });
  }
  const waits = failures.map((f) => f.retryAfterSeconds).filter((s): s is number => s !== undefined);
  return new GatewayError(`all ${providers.size} providers failed`, {
    status: 503,
    type: 'ProcessingError',
    details: { attempts },
    retryAfterSeconds: waits.length > 0 ? Math.min(...waits) : 1,
  });
}

function describeFailure(failure: UpstreamError) {
  const upstream = failure.kind === 'auth' ? 'the provider rejected the gateway credentials' : failure.upstreamMessage?.replace(KEY_LIKE, '[redacted]');
  return {
    provider: failure.provider,
    kind: failure.kind,
    error: upstream ? `${failure.message}: ${upstream}` : failure.message,
    ...(failure.status ? { status: failure.status } : {}),
  };
}
