/**
 * Sends one canonical request to the first candidate that answers, failing over on retryable errors.
 * Failover is possible until the first byte reaches the client: for streams, until the first upstream
 * event has arrived. Errors that another provider cannot fix go straight back.
 */
import type { AttemptContext, ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from '../providers/canonical.ts';
import { GatewayError, UpstreamError } from '../providers/errors.ts';

export interface DispatchResult<T> {
  value: T;
  target: ModelTarget;
  attempts: number;
}

/** An upstream stream whose first event has already arrived. */
export interface OpenStream {
  first: StreamEvent;
  rest: AsyncIterator<StreamEvent>;
}

export interface AttemptRecord {
  provider: string;
  error: string;
  status?: number;
}

type Attempt<T> = (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext) => Promise<T>;

export class Dispatcher {
  private readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  constructor(adapters: ReadonlyMap<string, ProviderAdapter>) {
    this.adapters = adapters;
  }

  complete(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: AttemptContext): Promise<DispatchResult<CanonicalResponse>> {
    return this.run(candidates, ctx, (adapter, target, c) => adapter.chat(request, target, c));
  }

  stream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: AttemptContext): Promise<DispatchResult<OpenStream>> {
    return this.run(candidates, ctx, async (adapter, target, c) => {
      const rest = adapter.chatStream(request, target, c)[Symbol.asyncIterator]();
      const first = await rest.next();
      if (first.done) throw new UpstreamError(target.provider, 'protocol', `${target.provider} sent an empty stream`);
      return { first: first.value, rest };
    });
  }

  embeddings(request: EmbeddingsRequest, candidates: readonly ModelTarget[], ctx: AttemptContext): Promise<DispatchResult<EmbeddingsResponse>> {
    const able = candidates.filter((t) => this.adapters.get(t.provider)?.embeddings);
    if (able.length === 0) {
      throw new GatewayError('no configured provider offers embeddings for this model', { status: 400, type: 'ValidationError', details: { field: 'model' } });
    }
    return this.run(able, ctx, (adapter, target, c) => (adapter.embeddings as NonNullable<ProviderAdapter['embeddings']>)(request, target, c));
  }

  private async run<T>(candidates: readonly ModelTarget[], ctx: AttemptContext, attempt: Attempt<T>): Promise<DispatchResult<T>> {
    const failures: UpstreamError[] = [];
    for (const target of candidates) {
      const adapter = this.adapters.get(target.provider) as ProviderAdapter;
      try {
        const value = await attempt(adapter, target, ctx);
        return { value, target, attempts: failures.length + 1 };
      } catch (error) {
        const failure = error instanceof UpstreamError ? error : new UpstreamError(target.provider, 'protocol', (error as Error).message, { cause: error });
        failures.push(failure);
        if (!failure.retryable || ctx.signal.aborted) break;
      }
    }
    throw clientFacingError(failures);
  }
}

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
  if (failures.length === 1) {
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
    return new GatewayError(last.kind === 'timeout' ? `${last.provider} timed out` : `${last.provider} failed: ${attempts[0].error}`, {
      status: last.kind === 'timeout' ? 504 : 502,
      type: 'ProcessingError',
      details: { attempts },
    });
  }
  const waits = failures.map((f) => f.retryAfterSeconds).filter((s): s is number => s !== undefined);
  return new GatewayError(`all ${failures.length} providers failed`, {
    status: 503,
    type: 'ProcessingError',
    details: { attempts },
    retryAfterSeconds: waits.length > 0 ? Math.min(...waits) : 1,
  });
}

/** Provider messages can quote credentials back (OpenAI's 401 shows part of the key): mask anything key-like. */
const KEY_LIKE = /\b(sk|pk|rk|key|api)[-_][A-Za-z0-9_*.-]{6,}/gi;

function describeFailure(failure: UpstreamError): AttemptRecord & { kind: string } {
  const upstream = failure.kind === 'auth' ? 'the provider rejected the gateway credentials' : failure.upstreamMessage?.replace(KEY_LIKE, '[redacted]');
  return {
    provider: failure.provider,
    kind: failure.kind,
    error: upstream ? `${failure.message}: ${upstream}` : failure.message,
    ...(failure.status ? { status: failure.status } : {}),
  };
}
