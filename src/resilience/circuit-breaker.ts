/**
 * A three-state circuit breaker, one per provider (closed → open → half-open → closed | open).
 *
 * Hand-written rather than cockatiel's CircuitBreakerPolicy (checked against cockatiel 3.2.1), because:
 * - cockatiel's half-open admits exactly one test call and makes every other caller *wait* for its verdict;
 *   we need `max_requests` concurrent trials and an immediate "no" for the rest so the router fails over.
 * - it reads `Date.now()` directly (no injectable clock) and keeps `openedAt` private, so there is no
 *   `msUntilHalfOpen()` for "try the provider closest to half-open" and no deterministic tests.
 * - its ConsecutiveBreaker has no closed-state `interval` window that forgets old failures.
 * - it only works by wrapping `execute(fn)`, while a streamed answer gets its verdict long after the call
 *   returned (first byte, or a failure mid-stream); here a permit is settled whenever the verdict is known.
 * - state carry-over on reload is `toJSON()` + rebuild; here `reconfigure()` keeps the live object.
 *
 * Usage: `const permit = breaker.tryAcquire(); if (!permit) skip provider; ... permit.success() |
 * permit.failure() | permit.release()`. A permit remembers the breaker generation it was taken in, so a
 * verdict that arrives after the state moved on (a slow request from before the breaker opened) cannot
 * close a half-open breaker or eat another trial's slot. Settling a permit twice is a no-op, so
 * `finally { permit.release() }` after success()/failure() is safe.
 */

export type BreakerState = 'closed' | 'half_open' | 'open';

/** Numeric value for the `circuit_breaker_state` gauge. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, 0 | 1 | 2>> = Object.freeze({ closed: 0, half_open: 1, open: 2 });

export interface CircuitBreakerOptions {
  /** Consecutive failures (within one interval window) that open a closed breaker. Default 3. */
  failureThreshold?: number;
  /** How long the breaker stays open before admitting trial requests. Default 10 000 ms. */
  timeoutMs?: number;
  /** Concurrent trial requests allowed while half-open (config `max_requests`). Default 1. */
  halfOpenMaxRequests?: number;
  /** Closed-state failure counts are forgotten every interval; 0 disables. Default 30 000 ms. */
  intervalMs?: number;
  now?: () => number;
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

export interface BreakerSnapshot {
  state: BreakerState;
  /** 0 closed, 1 half-open, 2 open. */
  stateValue: 0 | 1 | 2;
  consecutiveFailures: number;
  failureThreshold: number;
  halfOpenInFlight: number;
  /** 0 unless open. */
  msUntilHalfOpen: number;
  /** Epoch ms of the last transition to open, if it ever opened. */
  openedAt?: number;
  /** How many times the breaker has opened since it was created. */
  timesOpened: number;
}

/** A reservation to send one request; settle it exactly once (later calls are ignored). */
export interface BreakerPermit {
  /** The provider answered: closes a half-open breaker, resets the closed failure streak. */
  success(): void;
  /** The provider failed in a way that counts against it. */
  failure(): void;
  /** The attempt ended without a verdict (client aborted, request rejected before sending). */
  release(): void;
}

/** Keeps the permit callback off the public surface. */
const SETTLE = Symbol('settle');

const DEFAULTS = { failureThreshold: 3, timeoutMs: 10_000, halfOpenMaxRequests: 1, intervalMs: 30_000 };

export class CircuitBreaker {
  private failureThreshold = DEFAULTS.failureThreshold;
  private timeoutMs = DEFAULTS.timeoutMs;
  private halfOpenMaxRequests = DEFAULTS.halfOpenMaxRequests;
  private intervalMs = DEFAULTS.intervalMs;
  private readonly now: () => number;
  private readonly onStateChange?: (from: BreakerState, to: BreakerState) => void;

  private current: BreakerState = 'closed';
  /** Bumped on every state change; permits from an older generation carry no verdict. */
  private generation = 0;
  private consecutiveFailures = 0;
  /** Closed state: when the current failure-counting window ends (lazy, like gobreaker's expiry). */
  private windowEndsAt: number;
  private openedAt: number | undefined;
  private halfOpenInFlight = 0;
  private timesOpened = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onStateChange = options.onStateChange;
    this.reconfigure(options);
    this.windowEndsAt = this.nextWindowEnd();
  }

  /** Applies new thresholds (config reload) keeping the current state and counts. */
  reconfigure(options: Omit<CircuitBreakerOptions, 'now' | 'onStateChange'>): void {
    this.failureThreshold = positive(options.failureThreshold, DEFAULTS.failureThreshold);
    this.timeoutMs = nonNegative(options.timeoutMs, DEFAULTS.timeoutMs);
    this.halfOpenMaxRequests = positive(options.halfOpenMaxRequests, DEFAULTS.halfOpenMaxRequests);
    this.intervalMs = nonNegative(options.intervalMs, DEFAULTS.intervalMs);
  }

  /** Current state; an open breaker whose timeout has passed reads (and becomes) half-open. */
  get state(): BreakerState {
    this.advanceClock();
    return this.current;
  }

  get stateValue(): 0 | 1 | 2 {
    return BREAKER_STATE_VALUE[this.state];
  }

  /**
   * Asks to send one request. Closed: always granted. Open: refused without a network call. Half-open:
   * granted while fewer than `max_requests` trials are in flight (the permit holds one trial slot).
   */
  tryAcquire(): BreakerPermit | undefined {
    this.advanceClock();
    if (this.current === 'closed') return new Permit(this, this.generation, false);
    if (this.current === 'open') return undefined;
    return this.takeTrialSlot();
  }

  /**
   * Last resort when every candidate is open: starts a half-open trial now instead of waiting out the
   * timeout (the router picks the breaker with the smallest `msUntilHalfOpen()`). Still bounded by
   * `max_requests`; a failing trial reopens the breaker with a fresh timeout.
   */
  tryAcquireEarly(): BreakerPermit | undefined {
    this.advanceClock();
    if (this.current === 'open') this.transition('half_open');
    return this.current === 'closed' ? new Permit(this, this.generation, false) : this.takeTrialSlot();
  }

  /**
   * A health probe just reached the provider: an open breaker half-opens now, so real traffic tests the
   * provider again at once instead of after the rest of its timeout. Closed and half-open are left alone.
   */
  probeSucceeded(): void {
    this.advanceClock();
    if (this.current === 'open') this.transition('half_open');
  }

  /** Milliseconds until an open breaker admits trials; 0 when closed or half-open. */
  msUntilHalfOpen(): number {
    this.advanceClock();
    if (this.current !== 'open' || this.openedAt === undefined) return 0;
    return Math.max(0, this.openedAt + this.timeoutMs - this.now());
  }

  snapshot(): BreakerSnapshot {
    const state = this.state;
    return {
      state,
      stateValue: BREAKER_STATE_VALUE[state],
      consecutiveFailures: this.consecutiveFailures,
      failureThreshold: this.failureThreshold,
      halfOpenInFlight: this.halfOpenInFlight,
      msUntilHalfOpen: this.msUntilHalfOpen(),
      openedAt: this.openedAt,
      timesOpened: this.timesOpened,
    };
  }

  /** Called by a permit, once. */
  [SETTLE](generation: number, heldTrialSlot: boolean, verdict: 'success' | 'failure' | 'release'): void {
    this.advanceClock();
    if (generation !== this.generation) return; // the state moved on since this request started
    if (heldTrialSlot) this.halfOpenInFlight--;
    if (verdict === 'release') return;
    if (this.current === 'half_open') {
      this.transition(verdict === 'success' ? 'closed' : 'open');
      return;
    }
    // closed
    if (verdict === 'success') {
      this.consecutiveFailures = 0;
    } else if (++this.consecutiveFailures >= this.failureThreshold) {
      this.transition('open');
    }
  }

  private takeTrialSlot(): BreakerPermit | undefined {
    if (this.halfOpenInFlight >= this.halfOpenMaxRequests) return undefined;
    this.halfOpenInFlight++;
    return new Permit(this, this.generation, true);
  }

  /** Time-driven transitions, applied lazily whenever the breaker is consulted. */
  private advanceClock(): void {
    if (this.current === 'open') {
      if (this.openedAt !== undefined && this.now() >= this.openedAt + this.timeoutMs) this.transition('half_open');
    } else if (this.current === 'closed' && this.intervalMs > 0 && this.now() >= this.windowEndsAt) {
      this.consecutiveFailures = 0;
      this.windowEndsAt = this.nextWindowEnd();
    }
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.generation++;
    this.halfOpenInFlight = 0;
    this.consecutiveFailures = 0;
    if (to === 'open') {
      this.openedAt = this.now();
      this.timesOpened++;
    } else if (to === 'closed') {
      this.windowEndsAt = this.nextWindowEnd();
    }
    this.onStateChange?.(from, to);
  }

  private nextWindowEnd(): number {
    return this.intervalMs > 0 ? this.now() + this.intervalMs : Number.POSITIVE_INFINITY;
  }
}

class Permit implements BreakerPermit {
  private breaker: CircuitBreaker | undefined;
  private readonly generation: number;
  private readonly heldTrialSlot: boolean;
  constructor(breaker: CircuitBreaker, generation: number, heldTrialSlot: boolean) {
    this.breaker = breaker;
    this.generation = generation;
    this.heldTrialSlot = heldTrialSlot;
  }
  success(): void {
    this.settle('success');
  }
  failure(): void {
    this.settle('failure');
  }
  release(): void {
    this.settle('release');
  }
  private settle(verdict: 'success' | 'failure' | 'release'): void {
    const breaker = this.breaker;
    if (!breaker) return;
    this.breaker = undefined;
    breaker[SETTLE](this.generation, this.heldTrialSlot, verdict);
  }
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value >= 1 ? Math.floor(value) : fallback;
}

function nonNegative(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
}
