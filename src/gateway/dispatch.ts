/**
 * Sends one canonical request to the first candidate that answers.
 *
 * Candidates are walked in order (a load-balanced tier reordered for each request by its balancer), what
 * the client named first, then healthy providers before unhealthy ones (demotion only when health checks
 * run: they are what brings a provider back); a provider whose breaker is open or that is rate limited
 * (until its retry-after passes) is skipped without a network call. A retryable failure moves on to the
 * next candidate at once; when a whole round has failed, the round is retried after a backoff, as long as
 * the request's deadline allows. Once the deadline has passed or the client has left, nothing new starts.
 * Errors another provider cannot fix (the client's own 4xx) go straight back. When every breaker is open,
 * the provider closest to half-open gets one early trial instead of failing without a call.
 *
 * Failover is possible until the first byte reaches the client: for streams, until the first upstream
 * event; the request deadline covers only that wait. A stream's verdict (breaker, health, concurrency slot)
 * is settled when it ends. With the response cache on, identical requests are answered from it first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metrics } from '../observability/metrics.ts';
import type { AttemptContext, ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse } from '../core/canonical.ts';
import { flightKeyOf as losslessFlightKey, laneOf, type ChatStreamEvent } from '../core/lossless.ts';
import { readRelayed } from '../providers/relay-dialects.ts';
import { GatewayError, isDeadline, UpstreamError } from '../core/errors.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { Release } from './fair-queue.ts';
import { AnswerCollector, answerEvents } from '../core/answer.ts';
import type { BalancedTier, Candidates } from './catalog.ts';
import type { BalanceStats } from './load-balancer.ts';
import type { ProviderState } from './provider-state.ts';
import type { CachedAnswer, ResponseCache } from './response-cache.ts';
import { flightKey, SingleFlight, StreamFlight } from './singleflight.ts';

export interface DispatchResult<T> {
  value: T;
  target: ModelTarget;
  attempts: number;
  /** True when this caller shared another identical request's upstream call. */
  shared?: boolean;
  /** True when the answer came from the response cache (no upstream call; `attempts` is 0). */
  cached?: boolean;
}

/** An upstream stream whose first event has already arrived. */
export interface OpenStream {
  first: ChatStreamEvent;
  rest: AsyncIterator<ChatStreamEvent>;
}

export interface DispatchContext extends AttemptContext {
  /** Who is calling (key name or IP): fairness in queues, and part of the dedup key. */
  client: string;
  /** Epoch ms after which no new attempt or retry starts. */
  deadlineAt: number;
  /** Share an identical in-flight request's upstream call. */
  dedup: boolean;
  /** False: do not answer from the response cache (Cache-Control: no-cache); the fresh answer is still kept. */
  cache?: boolean;
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

/** An attempt whose answer arrives whole: a success once it is in, with the time it took. */
function wholeAnswer<T>(call: (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext) => Promise<T>): Attempt<T> {
  return async (adapter, target, ctx, settlement) => {
    const started = performance.now();
    const value = await call(adapter, target, ctx);
    settlement.success(performance.now() - started);
    return value;
  };
}

const noop = () => undefined;

export class Dispatcher {
  private readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  private readonly states: ReadonlyMap<string, ProviderState>;
  private readonly metrics: Metrics;
  /** Unhealthy providers go last only when health checks run; without them nothing would bring them back. */
  private readonly demotesUnhealthy: boolean;
  private readonly cache: ResponseCache | undefined;
  private readonly unary: SingleFlight<DispatchResult<CanonicalResponse>>;
  private readonly streams: StreamFlight<ChatStreamEvent | DispatchResult<null>>;

  constructor(opts: {
    adapters: ReadonlyMap<string, ProviderAdapter>;
    states: ReadonlyMap<string, ProviderState>;
    metrics: Metrics;
    /** Whether health checks run (config health_check.enabled). Default true. */
    healthChecks?: boolean;
    cache?: ResponseCache;
  }) {
    this.adapters = opts.adapters;
    this.states = opts.states;
    this.metrics = opts.metrics;
    this.demotesUnhealthy = opts.healthChecks ?? true;
    this.cache = opts.cache;
    const onFlightDone = (_key: string, callers: number) => {
      if (callers > 1) this.metrics.deduplicated.inc(callers - 1);
    };
    this.unary = new SingleFlight({ onFlightDone });
    this.streams = new StreamFlight({ onFlightDone });
  }

  async complete(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<CanonicalResponse>> {
    const cacheKey = this.cache?.key(ctx.client, request);
    if (cacheKey !== undefined && ctx.cache !== false) {
      const hit = await (this.cache as ResponseCache).get(cacheKey);
      if (hit) return this.fromCache(hit, replayable(hit.response, request));
    }
    const attempt = wholeAnswer((adapter, target, c) => adapter.chat(request, target, c));
    const run = async (c: DispatchContext) => {
      const result = await this.run(candidates, c, attempt);
      if (cacheKey !== undefined) this.keep(cacheKey, result.value, result.target);
      return result;
    };
    try {
      if (!ctx.dedup) return await run(ctx);
      let mine = false;
      const result = await this.unary.do(this.flightKeyOf(ctx.client, request, cacheKey), (signal) => ((mine = true), run({ ...ctx, signal })), ctx.signal);
      return mine ? result : { ...result, shared: true };
    } catch (error) {
      throw stoppedIfAborted(error, ctx.signal);
    }
  }

  async stream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<OpenStream>> {
    const cacheKey = this.cache?.key(ctx.client, request);
    if (cacheKey !== undefined && ctx.cache !== false) {
      const hit = await (this.cache as ResponseCache).get(cacheKey);
      if (hit) {
        const events = answerEvents(replayable(hit.response, request));
        return this.fromCache(hit, { first: events[0], rest: replay(events) });
      }
    }
    const lifetime = new StreamLifetime(ctx.signal);
    const streamCtx = { ...ctx, signal: lifetime.signal };
    try {
      const opened = ctx.dedup ? await this.sharedStream(request, candidates, streamCtx, cacheKey) : await this.openStream(request, candidates, streamCtx, cacheKey);
      lifetime.started();
      return opened;
    } catch (error) {
      throw stoppedIfAborted(error, ctx.signal);
    }
  }

  /** Identical concurrent streams share one upstream: the flight's first item says who serves it. */
  private async sharedStream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext, cacheKey: string | undefined): Promise<DispatchResult<OpenStream>> {
    let mine = false;
    const events = this.streams.join(
      // The cache key, when there is one, already names this client's request: no second serialization.
      this.flightKeyOf(ctx.client, request, cacheKey),
      (signal) => ((mine = true), this.flightSource(request, candidates, { ...ctx, signal }, cacheKey)),
      ctx.signal,
    );
    const head = await events.next();
    const meta = head.value as DispatchResult<null>;
    const first = await events.next();
    if (first.done) throw new UpstreamError(meta.target.provider, 'protocol', `${meta.target.provider} sent an empty stream`);
    return { target: meta.target, attempts: meta.attempts, shared: !mine, value: { first: first.value as ChatStreamEvent, rest: events as AsyncIterator<ChatStreamEvent> } };
  }

  private fromCache<T>(hit: CachedAnswer, value: T): DispatchResult<T> {
    this.metrics.cacheHits.inc();
    return { value, target: { provider: hit.provider, model: hit.model }, attempts: 0, cached: true };
  }

  /**
   * What identical requests in flight share. The cache key, when there is one, already names this client's
   * request (no second serialization); on the lossless lane the whole body is the key, delivery fields included,
   * since a relayed stream is the provider's own frames for that exact request.
   */
  private flightKeyOf(client: string, request: CanonicalRequest, cacheKey: string | undefined): string {
    if (request.lossless) return losslessFlightKey(client, request.lossless);
    return cacheKey ?? flightKey(client, request);
  }

  /**
   * Keeps an answer for identical requests to come; the target's own key is not part of it. A relayed answer
   * is also read into text and tool calls, so a request that asks another way can be answered from it.
   */
  private keep(cacheKey: string, response: CanonicalResponse, target: ModelTarget): void {
    let kept = response;
    if (response.relayed) {
      try {
        kept = readRelayed(response);
      } catch {
        return; // an answer that cannot be read back is not worth keeping
      }
    }
    (this.cache as ResponseCache).set(cacheKey, { response: kept, provider: target.provider, model: target.model });
  }

  /** Passes a stream through and keeps the answer it adds up to, once it has ended cleanly. */
  private async *keepAtEnd(first: ChatStreamEvent, rest: AsyncIterator<ChatStreamEvent>, cacheKey: string, target: ModelTarget): AsyncGenerator<ChatStreamEvent> {
    const collector = new AnswerCollector(target.model);
    collector.add(first);
    try {
      for (let next = await rest.next(); !next.done; next = await rest.next()) {
        collector.add(next.value);
        yield next.value;
      }
    } finally {
      await rest.return?.();
    }
    const response = collector.answer();
    if (response) this.keep(cacheKey, response, target);
  }

  /** A shared stream's items: who serves it, then its events (see headThenRest). */
  private flightSource(
    request: CanonicalRequest,
    candidates: readonly ModelTarget[],
    ctx: DispatchContext,
    cacheKey: string | undefined,
  ): AsyncIterable<ChatStreamEvent | DispatchResult<null>> {
    const opening = this.openStream(request, candidates, ctx, cacheKey);
    // Its failure reaches whoever reads the flight; never an unhandled rejection if nobody does.
    opening.catch(() => undefined);
    return { [Symbol.asyncIterator]: () => headThenRest(opening) };
  }

  private async openStream(request: CanonicalRequest, candidates: readonly ModelTarget[], ctx: DispatchContext, cacheKey: string | undefined): Promise<DispatchResult<OpenStream>> {
    const opened = await this.run(candidates, ctx, async (adapter, target, c, settlement) => {
      const started = performance.now();
      const upstream = adapter.chatStream(request, target, c)[Symbol.asyncIterator]();
      const first = await upstream.next();
      if (first.done) throw new UpstreamError(target.provider, 'protocol', `${target.provider} sent an empty stream`);
      const firstTokenMs = performance.now() - started;
      this.metrics.timeToFirstToken.observe({ provider: target.provider }, firstTokenMs / 1000);
      return { first: first.value, rest: settleAtEnd(upstream, target, settlement, firstTokenMs) };
    });
    if (cacheKey === undefined) return opened;
    const { first, rest } = opened.value;
    return { ...opened, value: { first, rest: this.keepAtEnd(first, rest, cacheKey, opened.target) } };
  }

  embeddings(request: EmbeddingsRequest, candidates: readonly ModelTarget[], ctx: DispatchContext): Promise<DispatchResult<EmbeddingsResponse>> {
    const able = candidates.filter((t) => this.adapters.get(t.provider)?.embeddings);
    if (able.length === 0) {
      throw new GatewayError('no configured provider offers embeddings for this model', { status: 400, type: 'ValidationError', details: { field: 'model' } });
    }
    return this.run(able, ctx, wholeAnswer((adapter, target, c) => (adapter.embeddings as NonNullable<ProviderAdapter['embeddings']>)(request, target, c)));
  }

  /**
   * One whole-answer call that is neither a completion nor embeddings (e.g. counting tokens): the same walk,
   * breakers, retries and failover; no cache and no dedup. `candidates` are the ones that can take the call.
   */
  call<T>(candidates: readonly ModelTarget[], ctx: DispatchContext, call: (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext) => Promise<T>): Promise<DispatchResult<T>> {
    return this.run(candidates, ctx, wholeAnswer(call));
  }

  private async run<T>(candidates: readonly ModelTarget[], ctx: DispatchContext, attempt: Attempt<T>): Promise<DispatchResult<T>> {
    if (ctx.signal.aborted) throw stoppedBy(ctx.signal, []);
    // What the client named comes first; balanced tiers are ordered once per request, not once per round.
    const explicit = (candidates as Candidates).explicit ?? 0;
    const ordered = this.balance(candidates as Candidates);
    const failures: UpstreamError[] = [];
    /** Providers that refused our credentials: no later round will change that. */
    let refused: Set<string> | undefined;
    let attempts = 0;
    let tried = 0;
    let skippedOpen = false;

    /** One attempt under a permit. A value ends the walk; an error the client must see is thrown. */
    const attemptWith = async (target: ModelTarget, state: ProviderState, permit: BreakerPermit, round: number): Promise<{ value: T } | undefined> => {
      attempts++;
      const outcome = await this.tryOne(target, state, permit, ctx, attempt, failures.at(-1), round);
      if ('value' in outcome) return outcome;
      failures.push(outcome.error);
      // The deadline passed or the client left: start nothing new, not even on another provider.
      if (ctx.signal.aborted) throw stoppedBy(ctx.signal, failures);
      if (!outcome.error.retryable) throw clientFacingError(failures);
      if (outcome.error.kind === 'auth') (refused ??= new Set()).add(target.provider);
      return undefined;
    };
    const visit = (target: ModelTarget, round: number): Promise<{ value: T } | undefined> | undefined => {
      const state = this.stateOf(target);
      if (!this.eligible(state, round, refused)) return undefined;
      const permit = state.breaker.tryAcquire();
      if (!permit) {
        skippedOpen = true;
        return undefined;
      }
      tried++;
      return attemptWith(target, state, permit, round);
    };

    // Rounds go on while some candidate's own `retry` (provider over global) allows another one.
    for (let round = 0; ; round++) {
      tried = 0;
      skippedOpen = false;
      // Unhealthy providers wait until the rest have had their turn. Decided as the walk reaches each one,
      // so a provider that fails in this round is not tried a second time in it.
      let deferred: ModelTarget[] | undefined;
      for (let i = 0; i < ordered.length; i++) {
        const target = ordered[i];
        if (i >= explicit && this.demotesUnhealthy && !this.stateOf(target).health.healthy) {
          (deferred ??= []).push(target);
          continue;
        }
        const done = await visit(target, round);
        if (done) return { value: done.value, target, attempts };
      }
      for (const target of deferred ?? []) {
        const done = await visit(target, round);
        if (done) return { value: done.value, target, attempts };
      }
      if (tried === 0 && skippedOpen && round === 0) {
        // Every breaker is open: one early trial on the provider that would half-open soonest.
        const target = closestToHalfOpen(ordered, this.states);
        const state = this.stateOf(target);
        const permit = state.breaker.tryAcquireEarly();
        if (permit) {
          const done = await attemptWith(target, state, permit, round);
          if (done) return { value: done.value, target, attempts };
        }
      }
      // Another round only if someone could take it, and only within the deadline.
      const delay = this.nextRoundDelay(ordered, round + 1, refused, ctx.deadlineAt);
      if (delay === undefined) break;
      try {
        await sleep(delay, undefined, { signal: ctx.signal });
      } catch {
        throw stoppedBy(ctx.signal, failures);
      }
    }
    if (failures.length === 0) throw unavailable(candidates, this.states);
    throw clientFacingError(failures);
  }

  /** Candidates with each balanced tier in this request's order; the same array when nothing is balanced. */
  private balance(candidates: Candidates): readonly ModelTarget[] {
    const spans = candidates.spans;
    if (spans === undefined) return candidates;
    const out = candidates.slice();
    for (const { start, end, tier } of spans) {
      // The balancer shares traffic among providers that can take it now; the others keep the tier's tail.
      const ready: ModelTarget[] = [];
      const resting: ModelTarget[] = [];
      for (let i = start; i < end; i++) (this.canTakeTraffic(candidates[i]) ? ready : resting).push(candidates[i]);
      let k = start;
      for (const target of tier.balancer.order(ready, (name) => this.balanceStats(name, tier))) out[k++] = target;
      for (const target of resting) out[k++] = target;
    }
    return out;
  }

  private canTakeTraffic(target: ModelTarget): boolean {
    const state = this.stateOf(target);
    return (!this.demotesUnhealthy || state.health.healthy) && !state.health.isRateLimited() && state.breaker.state !== 'open';
  }

  private balanceStats(name: string, tier: BalancedTier): BalanceStats {
    const health = (this.states.get(name) as ProviderState).health;
    return { ewmaMs: health.ewmaMs, inFlight: health.inFlight, weight: tier.weights.get(name) ?? 1 };
  }

  private stateOf(target: ModelTarget): ProviderState {
    return this.states.get(target.provider) as ProviderState;
  }

  private eligible(state: ProviderState, round: number, refused: Set<string> | undefined): boolean {
    return round <= state.maxRetries && !state.health.isRateLimited() && !refused?.has(state.name);
  }

  /**
   * The wait before `round` (1-based retry), or undefined when no candidate may take part or none could start
   * before the deadline: the shortest of the waits the taking-part providers' own backoffs ask for.
   */
  private nextRoundDelay(ordered: readonly ModelTarget[], round: number, refused: Set<string> | undefined, deadlineAt: number): number | undefined {
    const now = Date.now();
    let shortest: number | undefined;
    for (const target of ordered) {
      const state = this.stateOf(target);
      if (!this.eligible(state, round, refused) || this.isOpen(target)) continue;
      const delay = state.backoff.nextDelay(round, deadlineAt, now);
      if (delay !== undefined && (shortest === undefined || delay < shortest)) shortest = delay;
    }
    return shortest;
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

/**
 * Passes a stream through, settling the attempt when it ends: completed, failed mid-way, or abandoned.
 * A plain iterator rather than a generator: it adds no promise of its own to each event.
 */
function settleAtEnd(upstream: AsyncIterator<ChatStreamEvent>, target: ModelTarget, settlement: Settlement, firstTokenMs: number): AsyncIterator<ChatStreamEvent> {
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

/**
 * Who serves the stream (for every caller's headers), its first event, then the upstream's own iterator
 * as is: no generator in between, so no promise of ours per event.
 */
function headThenRest(opening: Promise<DispatchResult<OpenStream>>): AsyncIterator<ChatStreamEvent | DispatchResult<null>> {
  let opened: DispatchResult<OpenStream> | undefined;
  let firstSent = false;
  return {
    next: () => {
      if (!opened) {
        return opening.then((result) => {
          opened = result;
          return { value: { target: result.target, attempts: result.attempts, value: null }, done: false };
        });
      }
      if (firstSent) return opened.value.rest.next();
      firstSent = true;
      return Promise.resolve({ value: opened.value.first, done: false });
    },
    return: async () => {
      await opened?.value.rest.return?.();
      return { done: true, value: undefined };
    },
  };
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

/**
 * The signal a stream runs under: the client's, except that once the first event is in, the request
 * deadline no longer applies (a long answer is not a slow provider; the provider's own `timeout` still
 * bounds each silence). A client that leaves mid-stream still stops it: the route closes the stream, which
 * returns the iterators down to the upstream request.
 */
class StreamLifetime {
  private readonly controller = new AbortController();
  private running = false;
  readonly signal = this.controller.signal;

  constructor(outer: AbortSignal) {
    if (outer.aborted) this.controller.abort(outer.reason);
    else outer.addEventListener('abort', () => (!this.running || !isDeadline(outer.reason)) && this.controller.abort(outer.reason), { once: true });
  }

  started(): void {
    this.running = true;
  }
}

/**
 * A cached answer as this request may get it: the provider's own relayed text only for a request of the same
 * lane that asked for it the same way (whole or streamed, the same stream options); else the answer it was read
 * into, for the client's own encoder.
 */
function replayable(response: CanonicalResponse, request: CanonicalRequest): CanonicalResponse {
  const relayed = response.relayed;
  if (!relayed) return response;
  const lossless = request.lossless;
  const kept = request.stream ? relayed.frames : relayed.body;
  if (kept !== undefined && lossless?.dialect === relayed.dialect && laneOf(lossless).delivery === relayed.delivery) return response;
  const { relayed: _relayed, ...read } = response;
  return read;
}

async function* replay(events: readonly ChatStreamEvent[]): AsyncGenerator<ChatStreamEvent> {
  for (let i = 1; i < events.length; i++) yield events[i];
}

/** The request's own signal ended it: its deadline passed (504) or its client left (499). */
function stoppedBy(signal: AbortSignal, failures: readonly UpstreamError[]): GatewayError {
  if (!isDeadline(signal.reason)) return new GatewayError('client closed the request', { status: 499, type: 'ProcessingError' });
  return new GatewayError('no provider answered within the request deadline', {
    status: 504,
    type: 'ProcessingError',
    details: failures.length > 0 ? { attempts: failures.map(describeFailure) } : undefined,
  });
}

/** A dedup flight rejects a caller that left with its signal's reason: say what that means instead. */
function stoppedIfAborted(error: unknown, signal: AbortSignal): unknown {
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
