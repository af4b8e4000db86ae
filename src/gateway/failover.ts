/**
 * The failover walk: sends one request to the first candidate that answers.
 *
 * Candidates are walked in order (a load-balanced tier reordered for each request by its balancer), what
 * the client named first, then healthy providers before unhealthy ones (demotion only when health checks
 * run: they are what brings a provider back); a provider whose breaker is open or that is rate limited
 * (until its retry-after passes) is skipped without a network call. A retryable failure moves on to the
 * next candidate at once; when a whole round has failed, the round is retried after a backoff, as long as
 * the request's deadline allows. Once the deadline has passed or the client has left, nothing new starts.
 * Errors another provider cannot fix (the client's own 4xx) go straight back. When every breaker is open,
 * the provider closest to half-open gets one early trial instead of failing without a call.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metrics } from '../observability/metrics.ts';
import type { ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import { GatewayError, UpstreamError } from '../core/errors.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { Attempt, DispatchContext, DispatchResult } from './attempts.ts';
import type { BalancedTier, Candidates } from './catalog.ts';
import { clientFacingError, noneCanAnswer, stoppedBy, unavailable } from './client-errors.ts';
import type { Release } from './fair-queue.ts';
import type { BalanceStats } from './load-balancer.ts';
import type { ProviderState } from './provider-state.ts';
import { asUpstream, settlementOf } from './settlement.ts';

/**
 * A hedge for one request (`hedge_after`): when the first attempt has not answered within `afterMs` (for a
 * stream: no first event), the next candidate is started too; the first to answer wins and the other is
 * cancelled. `discard` closes an answer that lost the race after all (both arrived together).
 */
export interface Hedge<T> {
  afterMs: number;
  discard(value: T): void;
}

type Outcome<T> = { value: T } | undefined;

/** One turn of the walk: a target, its state, the breaker's permit, the failure before it, and the round. */
interface Turn {
  target: ModelTarget;
  state: ProviderState;
  permit: BreakerPermit;
  previous: UpstreamError | undefined;
  round: number;
}

const noop = () => undefined;

export class FailoverWalk {
  private readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  private readonly states: ReadonlyMap<string, ProviderState>;
  private readonly metrics: Metrics;
  /** Unhealthy providers go last only when health checks run; without them nothing would bring them back. */
  private readonly demotesUnhealthy: boolean;

  constructor(opts: { adapters: ReadonlyMap<string, ProviderAdapter>; states: ReadonlyMap<string, ProviderState>; metrics: Metrics; demotesUnhealthy: boolean }) {
    this.adapters = opts.adapters;
    this.states = opts.states;
    this.metrics = opts.metrics;
    this.demotesUnhealthy = opts.demotesUnhealthy;
  }

  /** The provider state of a target (every configured provider has one). */
  stateOf(target: ModelTarget): ProviderState {
    return this.states.get(target.provider) as ProviderState;
  }

  /** Walks `candidates` with `attempt` until one answers; throws the error the client should see when none does. */
  async run<T>(candidates: readonly ModelTarget[], ctx: DispatchContext, attempt: Attempt<T>, hedge?: Hedge<T>): Promise<DispatchResult<T>> {
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
    const attemptWith = async (target: ModelTarget, state: ProviderState, permit: BreakerPermit, round: number, c: DispatchContext = ctx): Promise<{ value: T } | undefined> => {
      attempts++;
      const outcome = await this.tryOne({ target, state, permit, previous: failures.at(-1), round }, c, attempt);
      if ('value' in outcome) return outcome;
      failures.push(outcome.error);
      // The deadline passed or the client left: start nothing new, not even on another provider.
      if (ctx.signal.aborted) throw stoppedBy(ctx.signal, failures);
      if (!outcome.error.retryable) throw clientFacingError(failures);
      if (outcome.error.kind === 'auth') (refused ??= new Set()).add(target.provider);
      return undefined;
    };
    const visit = (target: ModelTarget, round: number, c: DispatchContext = ctx): Promise<{ value: T } | undefined> | undefined => {
      const state = this.stateOf(target);
      if (!this.eligible(state, round, refused)) return undefined;
      const permit = state.breaker.tryAcquire();
      if (!permit) {
        skippedOpen = true;
        return undefined;
      }
      tried++;
      return attemptWith(target, state, permit, round, c);
    };

    // At most one hedge per request, on its first attempt; the candidate it starts is not visited again this round.
    let hedgeLeft = hedge !== undefined;
    let hedgedTarget: ModelTarget | undefined;
    /** Visits list[i]; the request's first attempt may be hedged with the next candidate that can take it. */
    const step = async (list: readonly ModelTarget[], i: number, round: number): Promise<{ value: T; target: ModelTarget } | undefined> => {
      const target = list[i];
      if (target === hedgedTarget) return undefined;
      if (!hedgeLeft) {
        const done = await visit(target, round);
        return done && { value: done.value, target };
      }
      const own = new AbortController();
      const first = visit(target, round, { ...ctx, signal: AbortSignal.any([ctx.signal, own.signal]) });
      if (!first) return undefined;
      hedgeLeft = false;
      const won = await this.hedged(first, own, target, list.slice(i + 1), round, hedge as Hedge<T>, ctx, (next, r, c) => visit(next, r, c));
      if (won?.hedgedTarget) hedgedTarget = won.hedgedTarget;
      return won?.value === undefined ? undefined : { value: won.value.value, target: won.target };
    };

    // Rounds go on while some candidate's own `retry` (provider over global) allows another one.
    for (let round = 0; ; round++) {
      tried = 0;
      skippedOpen = false;
      hedgedTarget = undefined;
      // Unhealthy providers wait until the rest have had their turn. Decided as the walk reaches each one,
      // so a provider that fails in this round is not tried a second time in it.
      let deferred: ModelTarget[] | undefined;
      for (let i = 0; i < ordered.length; i++) {
        const target = ordered[i];
        if (i >= explicit && this.demotesUnhealthy && !this.stateOf(target).health.healthy) {
          (deferred ??= []).push(target);
          continue;
        }
        const done = await step(ordered, i, round);
        if (done) return { value: done.value, target: done.target, attempts };
      }
      for (let i = 0; i < (deferred?.length ?? 0); i++) {
        const done = await step(deferred as ModelTarget[], i, round);
        if (done) return { value: done.value, target: done.target, attempts };
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
    // Several providers to try and none answered: one 503 however it came about (see noneCanAnswer).
    if (new Set(ordered.map((t) => t.provider)).size > 1) throw noneCanAnswer(ordered, failures, this.states);
    if (failures.length === 0) throw unavailable(candidates, this.states);
    throw clientFacingError(failures);
  }

  /**
   * The first attempt, and after `hedge.afterMs` without an answer a second one on the next candidate that can
   * take it: the first answer wins, the other attempt is aborted (its slot and permit freed through its
   * settlement) or, if it answered too, discarded. A failure of one leaves the other to finish.
   */
  private async hedged<T>(
    first: Promise<Outcome<T>>,
    firstAbort: AbortController,
    firstTarget: ModelTarget,
    rest: readonly ModelTarget[],
    round: number,
    hedge: Hedge<T>,
    ctx: DispatchContext,
    visit: (target: ModelTarget, round: number, c: DispatchContext) => Promise<Outcome<T>> | undefined,
  ): Promise<{ value: Outcome<T>; target: ModelTarget; hedgedTarget?: ModelTarget } | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, hedge.afterMs, 'late')));
    const early = await Promise.race([first, late]).finally(() => clearTimeout(timer));
    if (early !== 'late') return { value: early, target: firstTarget };

    const secondAbort = new AbortController();
    let second: Promise<Outcome<T>> | undefined;
    let secondTarget: ModelTarget | undefined;
    for (const target of rest) {
      second = visit(target, round, { ...ctx, signal: AbortSignal.any([ctx.signal, secondAbort.signal]) });
      if (second) {
        secondTarget = target;
        break;
      }
    }
    if (!second || !secondTarget) return { value: await first, target: firstTarget };
    const provider = secondTarget.provider;
    type Tagged = { outcome?: Outcome<T>; error?: unknown; which: 0 | 1 };
    const tag = (p: Promise<Outcome<T>>, which: 0 | 1): Promise<Tagged> => p.then((outcome) => ({ outcome, which }), (error: unknown) => ({ error, which }));
    const racers = [tag(first, 0), tag(second, 1)];
    const aborts = [firstAbort, secondAbort];
    const targets = [firstTarget, secondTarget];
    const settled = await Promise.race(racers);
    const other = racers[1 - settled.which];
    const cancelOther = () => {
      aborts[1 - settled.which].abort(new Error('hedge lost'));
      void other.then((late) => late.outcome && hedge.discard(late.outcome.value));
    };
    if (settled.error !== undefined) {
      cancelOther();
      this.metrics.hedges.inc({ provider, winner: 'neither' });
      throw settled.error;
    }
    if (settled.outcome) {
      cancelOther();
      this.metrics.hedges.inc({ provider, winner: settled.which === 1 ? 'hedge' : 'first' });
      return { value: settled.outcome, target: targets[settled.which], hedgedTarget: secondTarget };
    }
    // The one that settled failed: the other may still answer.
    const last = await other;
    this.metrics.hedges.inc({ provider, winner: last.outcome ? (last.which === 1 ? 'hedge' : 'first') : 'neither' });
    if (last.error !== undefined) throw last.error;
    return { value: last.outcome, target: targets[last.which], hedgedTarget: secondTarget };
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

  /** One attempt at one target: the retry/failover count, a concurrency slot, the call, and its trail entry. */
  private async tryOne<T>(turn: Turn, ctx: DispatchContext, attempt: Attempt<T>): Promise<{ value: T } | { error: UpstreamError }> {
    const { target, state, permit, previous, round } = turn;
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
    const settlement = settlementOf(provider, state, permit, release, this.metrics);
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

