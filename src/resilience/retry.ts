/**
 * Retry/backoff policy: how long to wait before retrying the *same* provider, and which failures may be
 * retried at all. Pure arithmetic: the caller owns the timer and the deadline.
 *
 * Delay for retry n (1-based), before jitter: min(maxDelay, initialDelay × multiplier^(n-1)).
 * - `full` jitter (default, AWS "full jitter"): uniform in [0, that delay]; spreads a thundering herd widest.
 * - `decorrelated` (AWS, with `multiplier` in place of 3): uniform in [initialDelay, min(maxDelay,
 *   previousDelay × multiplier)]; pass the delay actually waited last time, else the un-jittered previous
 *   delay is assumed (initialDelay for the first retry).
 * - `none`: exactly the exponential delay (for logs and tests).
 * A provider's Retry-After is a floor (never retry sooner than it asked), even above maxDelay; the deadline
 * then decides whether waiting is worth it.
 */
import type { RetryConfig } from '../config/schema.ts';
import { UpstreamError, type UpstreamFailureKind } from '../core/errors.ts';

export type Jitter = 'full' | 'decorrelated' | 'none';

export interface BackoffOptions {
  /** Retries after the first attempt; 0 disables retrying. */
  maxRetries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  jitter?: Jitter;
  /** Uniform in [0, 1), injectable for tests. */
  random?: () => number;
}

export class Backoff {
  readonly maxRetries: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: Jitter;
  private readonly random: () => number;

  constructor(options: BackoffOptions) {
    this.maxRetries = Math.max(0, Math.floor(options.maxRetries));
    this.initialDelayMs = Math.max(0, options.initialDelayMs);
    this.maxDelayMs = Math.max(this.initialDelayMs, options.maxDelayMs);
    this.multiplier = Math.max(1, options.multiplier);
    this.jitter = options.jitter ?? 'full';
    this.random = options.random ?? Math.random;
  }

  /** From the (already merged: provider over global) `retry` config block; durations are in ms there. */
  static fromConfig(config: Pick<RetryConfig, 'max_retries' | 'initial_delay' | 'max_delay' | 'multiplier'>, extra: Pick<BackoffOptions, 'jitter' | 'random'> = {}): Backoff {
    return new Backoff({
      maxRetries: config.max_retries,
      initialDelayMs: config.initial_delay,
      maxDelayMs: config.max_delay,
      multiplier: config.multiplier,
      ...extra,
    });
  }

  /** The un-jittered delay before retry `attempt` (1-based), capped at maxDelay. */
  baseDelay(attempt: number): number {
    if (attempt < 1) return 0;
    // Exponent capped so huge attempt numbers cannot overflow to Infinity × 0 = NaN.
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.multiplier ** Math.min(attempt - 1, 64));
  }

  /**
   * Milliseconds to wait before retry `attempt` (1-based). `retryAfterSeconds` (from the provider) is a
   * floor; `previousDelayMs` feeds decorrelated jitter.
   */
  delayFor(attempt: number, retryAfterSeconds?: number, previousDelayMs?: number): number {
    let delay: number;
    switch (this.jitter) {
      case 'none':
        delay = this.baseDelay(attempt);
        break;
      case 'full':
        delay = this.random() * this.baseDelay(attempt);
        break;
      case 'decorrelated': {
        const previous = previousDelayMs ?? (attempt <= 1 ? this.initialDelayMs : this.baseDelay(attempt - 1));
        const upper = Math.min(this.maxDelayMs, Math.max(this.initialDelayMs, previous * this.multiplier));
        delay = this.initialDelayMs + this.random() * (upper - this.initialDelayMs);
        break;
      }
    }
    delay = Math.round(delay);
    if (retryAfterSeconds !== undefined && retryAfterSeconds > 0) delay = Math.max(delay, retryAfterSeconds * 1000);
    return delay;
  }

  /**
   * The wait before retry `attempt`, or undefined when retries are used up or the retry could not start
   * before `deadlineAt` (epoch ms, same clock as `now`). Arriving exactly at the deadline counts as too late.
   */
  nextDelay(attempt: number, deadlineAt: number, now: number, retryAfterSeconds?: number, previousDelayMs?: number): number | undefined {
    if (attempt < 1 || attempt > this.maxRetries) return undefined;
    const delay = this.delayFor(attempt, retryAfterSeconds, previousDelayMs);
    return now + delay < deadlineAt ? delay : undefined;
  }
}

/** Failure kinds worth another attempt on the same provider. */
const RETRYABLE_KINDS: ReadonlySet<UpstreamFailureKind> = new Set(['connect', 'timeout', 'server', 'rate_limited', 'overloaded', 'protocol']);

/**
 * May the same provider be tried again? Only UpstreamErrors of transient kinds. `auth` is a config problem
 * a retry cannot fix (but see canFailOver); `client` and `aborted` are final. Anything that is not an
 * UpstreamError is a bug, not an upstream hiccup, and is not retried.
 */
export function isRetryable(error: unknown): boolean {
  return error instanceof UpstreamError && RETRYABLE_KINDS.has(error.kind);
}

/** May another provider succeed where this one failed? Everything retryable, plus `auth`. */
export function canFailOver(error: unknown): boolean {
  return error instanceof UpstreamError && (error.kind === 'auth' || RETRYABLE_KINDS.has(error.kind));
}
