/**
 * Sends one canonical request to the first candidate that answers.
 *
 * Candidates are walked in order, healthy providers before unhealthy ones; a provider whose breaker is
 * open or that is rate limited (until its retry-after passes) is skipped without a network call. A
 * retryable failure moves on to the next candidate at once; when a whole round has failed, the round is
 * retried after a backoff, as long as the request's deadline allows. Errors another provider cannot fix
 * (the client's own 4xx) go straight back. When every breaker is open, the provider closest to
 * half-open gets one early trial instead of failing without a call.
 *
 * Failover is possible until the first byte reaches the client: for streams, until the first upstream
 * event. A stream's verdict (breaker, health, concurrency slot) is settled when it ends.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metrics } from '../observability/metrics.ts';
import type { AttemptContext, ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from '../providers/canonical.ts';
import { GatewayError, UpstreamError } from '../providers/errors.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { Backoff } from '../resilience/retry.ts';
import type { Release } from './fair-queue.ts';
import type { Candidates } from './catalog.ts';
import type { ProviderState } from './provider-state.ts';
import { dedupKey, SingleFlight, StreamFlight } from './singleflight.ts';

export interface DispatchResult<T> {
  value: T;
  target: ModelTarget;
  attempts: number;
  /** True when this caller shared another identical request's upstream call. */
  shared?: boolean;
}

/** An upstream stream whose first event has already arrived. */
export interface OpenStream {
  first: StreamEvent;
  rest: AsyncIterator<StreamEvent>;
}

export interface DispatchContext extends AttemptContext {
  /** Who is calling (key name or IP): fairness in queues, and part of the dedup key. */
  client: string;
  /** Epoch ms after which no new attempt or retry starts. */
  deadlineAt: number;
  /** Share an identical in-flight request's upstream call. */
  dedup: boolean;
  /** Time spent waiting on providers (to the answer, or to a stream's first event): the rest is overhead. */
  spent?: { upstreamMs: number };
  /** Every upstream attempt in order, appended as each ends (request log's failover path, trace spans). */
  trail?: AttemptRecord[];
}

/** One upstream attempt: which target, when (performance.now()), how long, and how it failed. */
export interface AttemptRecord {
  target: ModelTarget;
  startedAt: number;
  ms: number;
  failure?: UpstreamError;
}

/** Settles one attempt's bookkeeping (breaker permit, health, concurrency slot) exactly once. */
interface Settlement {
  success(latencyMs: number): void;
  failure(error: UpstreamError): void;
  release(): void;
}

type Attempt<T> = (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext, settlement: Settlement) => Promise<T>;

const noop = () => undefined;

export class Dispatcher {
  private readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  private readonly states: ReadonlyMap<string, ProviderState>;
  private readonly metrics: Metrics;
  private readonly backoff: Backoff;
  private readonly maxRounds: number;
  private readonly unary: SingleFlight<DispatchResult<CanonicalResponse>>;
  private readonly streams: StreamFlight<StreamEvent | DispatchResult<null>>;

  constructor(opts: { adapters: ReadonlyMap<string, ProviderAdapter>; states: ReadonlyMap<string, ProviderState>; metrics: Metrics; backoff: Backoff; maxRetries: number }) {
    this.adapters = opts.adapters;
    this.states = opts.states;
    this.metrics = opts.metrics;
    this.backoff = opts.backoff;
    this.maxRounds = opts.maxRetries + 1;
    const onFlightDone = (_key: string, callers: number) => {
      if (callers > 1) this.metrics.deduplicated.inc(callers - 1);
    };
    this.unary = new SingleFlight({ onFlightDone });
    this.streams = new StreamFlight({ onFlightDone });
  }

  complete(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<CanonicalResponse>> {
    const attempt: Attempt<CanonicalResponse> = async (adapter, target, c, settlement) => {
      const started = performance.now();
      const value = await adapter.chat(request, target, c);
      settlement.success(performance.now() - started);
      return value;
    };
    if (!ctx.dedup) return this.run(candidates, ctx, attempt);
    let mine = false;
    return this.unary
      .do(dedupKey([ctx.client, request]), (signal) => ((mine = true), this.run(candidates, { ...ctx, signal }, attempt)), ctx.signal)
      .then((result) => (mine ? result : { ...result, shared: true }));
  }

  async stream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<OpenStream>> {
    if (!ctx.dedup) return this.openStream(request, candidates, ctx);
    // Identical concurrent streams share one upstream: the flight's first item says who serves it.
    let mine = false;
    const events = this.streams.join(
      dedupKey([ctx.client, request]),
      (signal) => ((mine = true), this.flightSource(request, candidates, { ...ctx, signal })),
      ctx.signal,
    );
    const head = await events.next();
    const meta = head.value as DispatchResult<null>;
    const first = await events.next();
    if (first.done) throw new UpstreamError(meta.target.provider, 'protocol', `${meta.target.provider} sent an empty stream`);
    return { target: meta.target, attempts: meta.attempts, shared: !mine, value: { first: first.value as StreamEvent, rest: events as AsyncIterator<StreamEvent> } };
  }

  private async *flightSource(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): AsyncGenerator<StreamEvent | DispatchResult<null>> {
    const opened = await this.openStream(request, candidates, ctx);
    yield { target: opened.target, attempts: opened.attempts, value: null };
    yield opened.value.first;
    const { rest } = opened.value;
    try {
      for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
    } finally {
      await rest.return?.();
    }
  }

  private openStream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<OpenStream>> {
    return this.run(candidates, ctx, async (adapter, target, c, settlement) => {
      const started = performance.now();
      const upstream = adapter.chatStream(request, target, c)[Symbol.asyncIterator]();
      const first = await upstream.next();
      if (first.done) throw new UpstreamError(target.provider, 'protocol', `${target.provider} sent an empty stream`);
      const firstTokenMs = performance.now() - started;
      this.metrics.timeToFirstToken.observe({ provider: target.provider }, firstTokenMs / 1000);
      return { first: first.value, rest: settleAtEnd(upstream, target, settlement, firstTokenMs) };
    });
  }

  embeddings(request: EmbeddingsRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<EmbeddingsResponse>> {
    const able = candidates.filter((t) => this.adapters.get(t.provider)?.embeddings);
    if (able.length === 0) {
      throw new GatewayError('no configured provider offers embeddings for this model', { status: 400, type: 'ValidationError', details: { field: 'model' } });
    }
    return this.run(able, ctx, async (adapter, target, c, settlement) => {
      const started = performance.now();
      const value = await (adapter.embeddings as NonNullable<ProviderAdapter['embeddings']>)(request, target, c);
      settlement.success(performance.now() - started);
      return value;
    });
  }

  private async run<T>(candidates: readonly ModelTarget[], ctx: DispatchContext, attempt: Attempt<T>): Promise<DispatchResult<T>> {
    const failures: UpstreamError[] = [];
    /** Providers that refused our credentials: no later round will change that. */
    let refused: Set<string> | undefined;
    let attempts = 0;
    for (let round = 0; round < this.maxRounds; round++) {
      let tried = 0;
      let skippedOpen = false;
      // What the client named comes first; then healthy providers, then unhealthy ones as a last resort.
      const explicit = (candidates as Candidates).explicit ?? 0;
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < candidates.length; i++) {
          const target = candidates[i];
          const state = this.states.get(target.provider) as ProviderState;
          const firstPass = i < explicit || state.health.healthy;
          if (firstPass !== (pass === 0) || !this.eligible(state, round, refused)) continue;
          const permit = state.breaker.tryAcquire();
          if (!permit) {
            skippedOpen = true;
            continue;
          }
          tried++;
          attempts++;
          const outcome = await this.tryOne(target, state, permit, ctx, attempt, failures.at(-1), round);
          if ('value' in outcome) return { value: outcome.value, target, attempts };
          failures.push(outcome.error);
          if (!outcome.error.retryable) throw clientFacingError(failures);
          if (outcome.error.kind === 'auth') (refused ??= new Set()).add(target.provider);
        }
      }
      if (tried === 0 && skippedOpen && round === 0) {
        // Every breaker is open: one early trial on the provider that would half-open soonest.
        const target = closestToHalfOpen(candidates, this.states);
        const state = this.states.get(target.provider) as ProviderState;
        const permit = state.breaker.tryAcquireEarly();
        if (permit) {
          attempts++;
          const outcome = await this.tryOne(target, state, permit, ctx, attempt, failures.at(-1), round);
          if ('value' in outcome) return { value: outcome.value, target, attempts };
          failures.push(outcome.error);
          if (!outcome.error.retryable) throw clientFacingError(failures);
        }
      }
      // Another round only if someone could take it, and only within the deadline.
      if (!candidates.some((t) => this.eligible(this.states.get(t.provider) as ProviderState, round + 1, refused) && !this.isOpen(t))) break;
      const delay = this.backoff.nextDelay(round + 1, ctx.deadlineAt, Date.now());
      if (delay === undefined || ctx.signal.aborted) break;
      try {
        await sleep(delay, undefined, { signal: ctx.signal });
      } catch {
        break;
      }
    }
    if (failures.length === 0) throw unavailable(candidates, this.states);
    throw clientFacingError(failures);
  }

  private eligible(state: ProviderState, round: number, refused: Set<string> | undefined): boolean {
    return round <= state.maxRetries && round < this.maxRounds && !state.health.isRateLimited() && !refused?.has(state.name);
  }

  private isOpen(target: ModelTarget): boolean {
    return (this.states.get(target.provider) as ProviderState).breaker.state === 'open';
  }

  private async tryOne<T>(
    target: ModelTarget,
    state: ProviderState,
    permit: BreakerPermit,
    ctx: DispatchContext,
    attempt: Attempt<T>,
    previous: UpstreamError | undefined,
    round: number,
  ): Promise<{ value: T } | { error: UpstreamError }> {
    const provider = target.provider;
    if (previous) {
      if (previous.provider === provider) this.metrics.retries.inc({ provider });
      else this.metrics.failovers.inc({ from: previous.provider, to: provider, reason: previous.kind });
    } else if (round > 0) this.metrics.retries.inc({ provider });
    let release: Release = noop;
    if (state.queue) {
      try {
        this.metrics.queueDepth.set({ provider }, state.queue.depth + 1);
        release = await state.queue.acquire(ctx.client, ctx.signal);
      } catch (error) {
        permit.release();
        const kind = ctx.signal.aborted ? 'aborted' : 'overloaded';
        const rejected = error as GatewayError;
        const failure = new UpstreamError(provider, kind, `${provider}: ${rejected.message}`, { retryAfterSeconds: rejected.retryAfterSeconds });
        ctx.trail?.push({ target, startedAt: performance.now(), ms: 0, failure });
        return { error: failure };
      } finally {
        this.metrics.queueDepth.set({ provider }, state.queue.depth);
      }
    }
    state.health.requestStarted();
    const settlement = this.settlement(provider, state, permit, release);
    const started = performance.now();
    let failure: UpstreamError | undefined;
    try {
      return { value: await attempt(this.adapters.get(provider) as ProviderAdapter, target, ctx, settlement) };
    } catch (error) {
      if (error instanceof GatewayError) {
        settlement.release();
        throw error;
      }
      failure = asUpstream(error, target);
      settlement.failure(failure);
      return { error: failure };
    } finally {
      const ms = performance.now() - started;
      if (ctx.spent) ctx.spent.upstreamMs += ms;
      ctx.trail?.push({ target, startedAt: started, ms, failure });
    }
  }

  private settlement(provider: string, state: ProviderState, permit: BreakerPermit, release: Release): Settlement {
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
        this.metrics.providerRequests.inc({ provider, outcome: 'success' });
        this.metrics.providerLatency.observe({ provider }, latencyMs / 1000);
      },
      failure: (error) => {
        if (settled) return;
        finish();
        this.metrics.providerRequests.inc({ provider, outcome: error.kind });
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
}

/** Passes a stream through, settling the attempt when it ends: completed, failed mid-way, or abandoned. */
async function* settleAtEnd(upstream: AsyncIterator<StreamEvent>, target: ModelTarget, settlement: Settlement, firstTokenMs: number): AsyncGenerator<StreamEvent> {
  try {
    for (let next = await upstream.next(); !next.done; next = await upstream.next()) yield next.value;
    settlement.success(firstTokenMs);
  } catch (error) {
    settlement.failure(asUpstream(error, target));
    throw error;
  } finally {
    settlement.release();
    await upstream.return?.();
  }
}

function asUpstream(error: unknown, target: ModelTarget): UpstreamError {
  return error instanceof UpstreamError ? error : new UpstreamError(target.provider, 'protocol', (error as Error).message, { cause: error });
}

function closestToHalfOpen(candidates: readonly ModelTarget[], states: ReadonlyMap<string, ProviderState>): ModelTarget {
  let best = candidates[0];
  let soonest = Infinity;
  for (const target of candidates) {
    const wait = (states.get(target.provider) as ProviderState).breaker.msUntilHalfOpen();
    if (wait < soonest) {
      soonest = wait;
      best = target;
    }
  }
  return best;
}

/** No candidate could even be tried: all rate limited (or their breakers busy with trials). */
function unavailable(candidates: readonly ModelTarget[], states: ReadonlyMap<string, ProviderState>): GatewayError {
  const now = Date.now();
  const waits = candidates.map((t) => Math.ceil(Math.max(0, (states.get(t.provider) as ProviderState).health.rateLimitedUntil - now) / 1000));
  return new GatewayError('every provider for this request is rate limited or unavailable right now', {
    status: 503,
    type: 'ProcessingError',
    details: { providers: candidates.map((t) => t.provider) },
    retryAfterSeconds: Math.max(1, Math.min(...waits)),
  });
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
