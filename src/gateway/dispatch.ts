/**
 * The gateway's entry for one request: the response cache first, then identical requests in flight (dedup),
 * then the failover walk over the candidates. Each job lives in its own module:
 *
 *   answer-cache.ts   answered from the cache, kept in it (whole answers, and streams once ended cleanly)
 *   dedup-flights.ts  identical requests in flight share one upstream call; the flight key
 *   failover.ts       the walk: order, breakers, rate limits, retries and rounds, one attempt at a time (the
 *                     first one hedged with the next candidate when the route has hedge_after)
 *   stream-open.ts    a stream's attempt (a success at its first event, first_token_timeout) and its lifetime
 *   stream-resume.ts  resume_streams: a stream cut mid-way continued on the next candidate, spliced in place
 *   settlement.ts     every attempt settled exactly once (breaker, health, slot, metrics), streams at their end
 *   client-errors.ts  what the client is told when nothing answered
 *
 * Failover is possible until the first byte reaches the client: for streams, until the first upstream
 * event; the request deadline covers only that wait. A stream's verdict (breaker, health, concurrency slot)
 * is settled when it ends.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { AttemptContext, ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse } from '../core/canonical.ts';
import { GatewayError } from '../core/errors.ts';
import { AnswerCache } from './answer-cache.ts';
import { wholeAnswer, type DispatchContext, type DispatchResult, type OpenStream } from './attempts.ts';
import { stoppedIfAborted } from './client-errors.ts';
import { DedupFlights } from './dedup-flights.ts';
import { FailoverWalk } from './failover.ts';
import type { ProviderState } from './provider-state.ts';
import type { ResponseCache } from './response-cache.ts';
import { openingAttempt, StreamLifetime } from './stream-open.ts';
import { resumable, type Reopen } from './stream-resume.ts';

export type { AttemptRecord, DispatchContext, DispatchResult, OpenStream, ResumeRecord, StreamResumes } from './attempts.ts';
export { clientFacingError } from './client-errors.ts';

export class Dispatcher {
  private readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  private readonly metrics: Metrics;
  private readonly walk: FailoverWalk;
  private readonly cache: AnswerCache | undefined;
  private readonly flights: DedupFlights;

  constructor(opts: {
    adapters: ReadonlyMap<string, ProviderAdapter>;
    states: ReadonlyMap<string, ProviderState>;
    metrics: Metrics;
    /** Whether health checks run (config health_check.enabled). Default true. */
    healthChecks?: boolean;
    cache?: ResponseCache;
  }) {
    this.adapters = opts.adapters;
    this.metrics = opts.metrics;
    this.walk = new FailoverWalk({ adapters: opts.adapters, states: opts.states, metrics: opts.metrics, demotesUnhealthy: opts.healthChecks ?? true });
    this.cache = opts.cache && new AnswerCache(opts.cache, opts.metrics);
    this.flights = new DedupFlights(opts.metrics);
  }

  async complete(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<CanonicalResponse>> {
    const cache = this.cache;
    const cacheKey = cache?.keyOf(ctx.client, request);
    if (cacheKey !== undefined) {
      const hit = await (cache as AnswerCache).whole(cacheKey, request, ctx);
      if (hit) return hit;
    }
    const attempt = wholeAnswer((adapter, target, c) => adapter.chat(request, target, c));
    const run = async (c: DispatchContext) => {
      const result = await this.walk.run(candidates, c, attempt);
      if (cacheKey !== undefined) (cache as AnswerCache).keep(cacheKey, result.value, result.target);
      return result;
    };
    try {
      if (!ctx.dedup) return await run(ctx);
      return await this.flights.complete(this.flights.keyOf(ctx.client, request, cacheKey), (signal) => run({ ...ctx, signal }), ctx.signal);
    } catch (error) {
      throw stoppedIfAborted(error, ctx.signal);
    }
  }

  async stream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<OpenStream>> {
    const cacheKey = this.cache?.keyOf(ctx.client, request);
    if (cacheKey !== undefined) {
      const hit = await (this.cache as AnswerCache).stream(cacheKey, request, ctx);
      if (hit) return hit;
    }
    const lifetime = new StreamLifetime(ctx.signal);
    const streamCtx = { ...ctx, signal: lifetime.signal };
    try {
      const opened = ctx.dedup
        ? // The cache key, when there is one, already names this client's request: no second serialization.
          await this.flights.stream(this.flights.keyOf(ctx.client, request, cacheKey), (signal) => this.openStream(request, candidates, { ...streamCtx, signal }, cacheKey), streamCtx.signal)
        : await this.openStream(request, candidates, streamCtx, cacheKey);
      lifetime.started();
      return opened;
    } catch (error) {
      throw stoppedIfAborted(error, ctx.signal);
    }
  }

  private async openStream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext, cacheKey: string | undefined): Promise<DispatchResult<OpenStream>> {
    const hedge = ctx.hedgeAfterMs === undefined ? undefined : { afterMs: ctx.hedgeAfterMs, discard: closeStream };
    const first = await this.walk.run(candidates, ctx, this.opening(request, ctx), hedge);
    const opened = ctx.resume ? resumable(first, { request, candidates, ctx, resume: ctx.resume, metrics: this.metrics, reopen: this.reopen, windowMs: ctx.resumeWindowMs ?? 0 }) : first;
    return cacheKey === undefined ? opened : (this.cache as AnswerCache).keptAtEnd(opened, cacheKey);
  }

  /** A stream's opening attempt on one candidate (its breaker state from the walk). */
  private opening(request: CanonicalRequest, ctx: DispatchContext) {
    return openingAttempt(request, ctx, this.metrics, (target) => this.walk.stateOf(target));
  }

  /** A resume's continuation: the same walk and opening attempt, never hedged. */
  private readonly reopen: Reopen = (request, candidates, ctx) => this.walk.run(candidates, ctx, this.opening(request, ctx));

  embeddings(request: EmbeddingsRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<EmbeddingsResponse>> {
    const able = candidates.filter((t) => this.adapters.get(t.provider)?.embeddings);
    if (able.length === 0) {
      throw new GatewayError('no configured provider offers embeddings for this model', { status: 400, type: 'ValidationError', details: { field: 'model' } });
    }
    return this.walk.run(able, ctx, wholeAnswer((adapter, target, c) => (adapter.embeddings as NonNullable<ProviderAdapter['embeddings']>)(request, target, c)));
  }

  /**
   * One whole-answer call that is neither a completion nor embeddings (e.g. counting tokens): the same walk,
   * breakers, retries and failover; no cache and no dedup. `candidates` are the ones that can take the call.
   */
  call<T>(candidates: readonly ModelTarget[], ctx: DispatchContext, call: (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext) => Promise<T>): Promise<DispatchResult<T>> {
    return this.walk.run(candidates, ctx, wholeAnswer(call));
  }
}

/** A stream that lost a hedge after opening: closed, which aborts its upstream request and settles its attempt. */
function closeStream(stream: OpenStream): void {
  void stream.rest.return?.();
}
