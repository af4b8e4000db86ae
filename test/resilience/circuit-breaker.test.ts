import { describe, expect, it } from 'vitest';
import { type BreakerState, CircuitBreaker } from '../../src/resilience/circuit-breaker.ts';

function setup(options: { failureThreshold?: number; timeoutMs?: number; halfOpenMaxRequests?: number; intervalMs?: number } = {}) {
  let now = 1_000_000;
  const changes: Array<[BreakerState, BreakerState]> = [];
  const breaker = new CircuitBreaker({
    failureThreshold: 3,
    timeoutMs: 10_000,
    halfOpenMaxRequests: 1,
    intervalMs: 30_000,
    ...options,
    now: () => now,
    onStateChange: (from, to) => changes.push([from, to]),
  });
  const fail = (times = 1) => {
    for (let i = 0; i < times; i++) breaker.tryAcquire()?.failure();
  };
  return { breaker, changes, fail, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('starts closed and admits requests', () => {
    const { breaker } = setup();
    expect(breaker.state).toBe('closed');
    expect(breaker.stateValue).toBe(0);
    expect(breaker.tryAcquire()).toBeDefined();
    expect(breaker.msUntilHalfOpen()).toBe(0);
  });

  it('half-opens at once when a health probe reaches the provider, and leaves other states alone', () => {
    const { breaker, fail, changes } = setup({ failureThreshold: 2, timeoutMs: 60_000 });
    breaker.probeSucceeded();
    expect(breaker.state).toBe('closed');
    fail(2);
    expect(breaker.state).toBe('open');
    breaker.probeSucceeded();
    expect(breaker.state).toBe('half_open');
    breaker.tryAcquire()?.success();
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('opens after exactly failure_threshold consecutive failures', () => {
    const { breaker, fail, changes } = setup({ failureThreshold: 3 });
    fail(2);
    expect(breaker.state).toBe('closed');
    fail(1);
    expect(breaker.state).toBe('open');
    expect(breaker.stateValue).toBe(2);
    expect(changes).toEqual([['closed', 'open']]);
  });

  it('a success resets the consecutive failure streak', () => {
    const { breaker, fail } = setup({ failureThreshold: 3 });
    fail(2);
    breaker.tryAcquire()?.success();
    fail(2);
    expect(breaker.state).toBe('closed');
    fail(1);
    expect(breaker.state).toBe('open');
  });

  it('refuses every request while open and reports the time left', () => {
    const { breaker, fail, advance } = setup({ timeoutMs: 10_000 });
    fail(3);
    for (let i = 0; i < 100; i++) expect(breaker.tryAcquire()).toBeUndefined();
    expect(breaker.msUntilHalfOpen()).toBe(10_000);
    advance(4_000);
    expect(breaker.msUntilHalfOpen()).toBe(6_000);
    expect(breaker.tryAcquire()).toBeUndefined();
  });

  it('half-opens after the timeout and admits exactly max_requests concurrent trials', () => {
    const { breaker, fail, advance, changes } = setup({ timeoutMs: 10_000, halfOpenMaxRequests: 3 });
    fail(3);
    advance(9_999);
    expect(breaker.state).toBe('open');
    advance(1);
    expect(breaker.state).toBe('half_open');
    expect(breaker.stateValue).toBe(1);
    expect(breaker.msUntilHalfOpen()).toBe(0);
    const trials = [breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire()];
    expect(trials.every(Boolean)).toBe(true);
    expect(breaker.tryAcquire()).toBeUndefined();
    expect(breaker.snapshot().halfOpenInFlight).toBe(3);
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
    ]);
  });

  it('a released trial frees its slot without a verdict', () => {
    const { breaker, fail, advance } = setup();
    fail(3);
    advance(10_000);
    const trial = breaker.tryAcquire();
    expect(breaker.tryAcquire()).toBeUndefined();
    trial?.release();
    expect(breaker.state).toBe('half_open');
    expect(breaker.tryAcquire()).toBeDefined();
  });

  it('a successful trial closes the breaker', () => {
    const { breaker, fail, advance, changes } = setup();
    fail(3);
    advance(10_000);
    breaker.tryAcquire()?.success();
    expect(breaker.state).toBe('closed');
    expect(changes.at(-1)).toEqual(['half_open', 'closed']);
    // and the failure count starts from zero again
    fail(2);
    expect(breaker.state).toBe('closed');
  });

  it('a failed trial reopens the breaker with a fresh timeout', () => {
    const { breaker, fail, advance } = setup({ timeoutMs: 10_000 });
    fail(3);
    advance(10_000);
    breaker.tryAcquire()?.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.msUntilHalfOpen()).toBe(10_000);
    expect(breaker.snapshot().timesOpened).toBe(2);
    advance(10_000);
    expect(breaker.state).toBe('half_open');
  });

  it('ignores verdicts from requests that started before the state changed', () => {
    const { breaker, fail, advance } = setup({ halfOpenMaxRequests: 1 });
    const slow = breaker.tryAcquire(); // taken while closed
    fail(3);
    advance(10_000);
    const trial = breaker.tryAcquire();
    expect(trial).toBeDefined();
    slow?.success(); // a stale success must neither close the breaker nor free the trial slot
    expect(breaker.state).toBe('half_open');
    expect(breaker.tryAcquire()).toBeUndefined();
    trial?.success();
    expect(breaker.state).toBe('closed');
  });

  it('settling a permit twice counts once', () => {
    const { breaker } = setup({ failureThreshold: 2 });
    const permit = breaker.tryAcquire();
    permit?.failure();
    permit?.failure();
    permit?.release();
    expect(breaker.state).toBe('closed');
    expect(breaker.snapshot().consecutiveFailures).toBe(1);
  });

  it('forgets closed-state failures when the interval window ends', () => {
    const { breaker, fail, advance } = setup({ failureThreshold: 3, intervalMs: 30_000 });
    fail(2);
    advance(30_000);
    expect(breaker.snapshot().consecutiveFailures).toBe(0);
    fail(2);
    expect(breaker.state).toBe('closed');
    fail(1);
    expect(breaker.state).toBe('open');
  });

  it('counts failures across the window when they all fall inside it', () => {
    const { breaker, fail, advance } = setup({ failureThreshold: 3, intervalMs: 30_000 });
    fail(1);
    advance(29_999);
    fail(2);
    expect(breaker.state).toBe('open');
  });

  it('interval 0 never forgets', () => {
    const { breaker, fail, advance } = setup({ failureThreshold: 3, intervalMs: 0 });
    fail(2);
    advance(10 * 60_000);
    fail(1);
    expect(breaker.state).toBe('open');
  });

  it('tryAcquireEarly starts a trial before the timeout, still bounded by max_requests', () => {
    const { breaker, fail } = setup({ timeoutMs: 10_000, halfOpenMaxRequests: 1 });
    fail(3);
    const trial = breaker.tryAcquireEarly();
    expect(trial).toBeDefined();
    expect(breaker.state).toBe('half_open');
    expect(breaker.tryAcquireEarly()).toBeUndefined();
    trial?.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.msUntilHalfOpen()).toBe(10_000);
  });

  it('reconfigure keeps the state and applies new thresholds', () => {
    const { breaker, fail, advance } = setup({ failureThreshold: 5, timeoutMs: 10_000 });
    fail(3);
    breaker.reconfigure({ failureThreshold: 4, timeoutMs: 2_000 });
    expect(breaker.snapshot().consecutiveFailures).toBe(3);
    fail(1);
    expect(breaker.state).toBe('open');
    advance(2_000);
    expect(breaker.state).toBe('half_open');
  });

  it('snapshot describes the breaker for /health and metrics', () => {
    const { breaker, fail, advance } = setup();
    fail(3);
    advance(2_500);
    expect(breaker.snapshot()).toEqual({
      state: 'open',
      stateValue: 2,
      consecutiveFailures: 0,
      failureThreshold: 3,
      halfOpenInFlight: 0,
      msUntilHalfOpen: 7_500,
      openedAt: 1_000_000,
      timesOpened: 1,
    });
  });

  it('uses the documented defaults', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ now: () => now });
    for (let i = 0; i < 2; i++) breaker.tryAcquire()?.failure();
    expect(breaker.state).toBe('closed');
    breaker.tryAcquire()?.failure();
    expect(breaker.state).toBe('open');
    now += 10_000;
    expect(breaker.state).toBe('half_open');
    expect(breaker.tryAcquire()).toBeDefined();
    expect(breaker.tryAcquire()).toBeUndefined();
  });
});
