import { describe, expect, it } from 'vitest';
import { UpstreamError, type UpstreamFailureKind } from '../../src/core/errors.ts';
import { Backoff, canFailOver, isRetryable } from '../../src/resilience/retry.ts';

const policy = { maxRetries: 5, initialDelayMs: 100, maxDelayMs: 2_000, multiplier: 2 };

/** A deterministic sequence of "random" numbers. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

describe('Backoff', () => {
  it('grows by the multiplier and is capped at maxDelay', () => {
    const backoff = new Backoff({ ...policy, jitter: 'none' });
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoff.delayFor(n))).toEqual([100, 200, 400, 800, 1_600, 2_000, 2_000]);
    expect(backoff.baseDelay(1_000)).toBe(2_000);
  });

  it('full jitter stays within [0, exponential delay]', () => {
    const random = Math.random;
    const backoff = new Backoff({ ...policy, jitter: 'full', random });
    for (let attempt = 1; attempt <= 7; attempt++) {
      const cap = Math.min(2_000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 200; i++) {
        const delay = backoff.delayFor(attempt);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(cap);
      }
    }
    const edges = new Backoff({ ...policy, random: sequence(0, 0.999999) });
    expect(edges.delayFor(3)).toBe(0);
    expect(edges.delayFor(3)).toBe(400);
  });

  it('full jitter is the default and scales with the random draw', () => {
    const backoff = new Backoff({ ...policy, random: () => 0.5 });
    expect(backoff.jitter).toBe('full');
    expect([1, 2, 3, 4].map((n) => backoff.delayFor(n))).toEqual([50, 100, 200, 400]);
  });

  it('decorrelated jitter stays within [initial, min(max, previous × multiplier)]', () => {
    const backoff = new Backoff({ ...policy, jitter: 'decorrelated', random: Math.random });
    let previous: number | undefined;
    for (let attempt = 1; attempt <= 30; attempt++) {
      const delay = backoff.delayFor(attempt, undefined, previous);
      const upper = Math.min(2_000, Math.max(100, (previous ?? 100) * 2));
      expect(delay).toBeGreaterThanOrEqual(100);
      expect(delay).toBeLessThanOrEqual(upper);
      previous = delay;
    }
    const high = new Backoff({ ...policy, jitter: 'decorrelated', random: () => 0.999999 });
    expect(high.delayFor(1)).toBe(200);
    expect(high.delayFor(2, undefined, 200)).toBe(400);
    expect(high.delayFor(3)).toBe(400); // without a previous delay: the un-jittered one (200) is assumed
    expect(high.delayFor(9, undefined, 1_900)).toBe(2_000);
  });

  it('never retries sooner than the provider asked, even above maxDelay', () => {
    const backoff = new Backoff({ ...policy, random: () => 0.5 });
    expect(backoff.delayFor(1, 3)).toBe(3_000);
    expect(backoff.delayFor(1, 0)).toBe(50);
    const slow = new Backoff({ ...policy, jitter: 'none' });
    expect(slow.delayFor(6, 1)).toBe(2_000); // the backoff is already longer than Retry-After
  });

  it('nextDelay respects the retry budget and the deadline', () => {
    const backoff = new Backoff({ ...policy, maxRetries: 2, jitter: 'none' });
    const now = 50_000;
    expect(backoff.nextDelay(1, now + 10_000, now)).toBe(100);
    expect(backoff.nextDelay(2, now + 10_000, now)).toBe(200);
    expect(backoff.nextDelay(3, now + 10_000, now)).toBeUndefined(); // retries used up
    expect(backoff.nextDelay(0, now + 10_000, now)).toBeUndefined();
    expect(backoff.nextDelay(2, now + 201, now)).toBe(200);
    expect(backoff.nextDelay(2, now + 200, now)).toBeUndefined(); // would land exactly on the deadline
    expect(backoff.nextDelay(1, now + 5_000, now, 5)).toBeUndefined(); // Retry-After beyond the deadline
    expect(backoff.nextDelay(1, now + 5_001, now, 5)).toBe(5_000);
  });

  it('maxRetries 0 never retries', () => {
    const backoff = new Backoff({ ...policy, maxRetries: 0 });
    expect(backoff.nextDelay(1, Number.POSITIVE_INFINITY, 0)).toBeUndefined();
  });

  it('builds from the retry config block', () => {
    const backoff = Backoff.fromConfig({ max_retries: 3, initial_delay: 250, max_delay: 1_000, multiplier: 3 }, { jitter: 'none' });
    expect([1, 2, 3].map((n) => backoff.delayFor(n))).toEqual([250, 750, 1_000]);
    expect(backoff.maxRetries).toBe(3);
  });
});

describe('retry classification', () => {
  const error = (kind: UpstreamFailureKind) => new UpstreamError('p', kind, kind);

  it('retries transient upstream failures on the same provider', () => {
    for (const kind of ['connect', 'timeout', 'server', 'rate_limited', 'overloaded', 'protocol'] as const) {
      expect(isRetryable(error(kind)), kind).toBe(true);
      expect(canFailOver(error(kind)), kind).toBe(true);
    }
  });

  it('does not retry client errors or aborts anywhere', () => {
    for (const kind of ['client', 'aborted'] as const) {
      expect(isRetryable(error(kind)), kind).toBe(false);
      expect(canFailOver(error(kind)), kind).toBe(false);
    }
  });

  it('auth is not retried on the same provider but may fail over', () => {
    expect(isRetryable(error('auth'))).toBe(false);
    expect(canFailOver(error('auth'))).toBe(true);
  });

  it('anything that is not an UpstreamError is not retried', () => {
    expect(isRetryable(new Error('bug'))).toBe(false);
    expect(canFailOver(new TypeError('bug'))).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
  });
});
