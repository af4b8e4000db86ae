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
