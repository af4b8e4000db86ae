import { afterEach, describe, expect, it, vi } from 'vitest';
import { HealthChecker, HealthProbeTimeoutError, ProviderHealth } from '../../src/resilience/provider-health.ts';

describe('ProviderHealth', () => {
  it('starts healthy with the spec report shape', () => {
    const health = new ProviderHealth('openai', { now: () => 0 });
    expect(health.report()).toEqual({ healthy: true, last_check: null, consecutive_fails: 0, latency_ms: 0, error_count: 0, request_count: 0 });
  });

  it('turns unhealthy after failure_threshold consecutive failures, from probes or traffic', () => {
    const changes: boolean[] = [];
    const health = new ProviderHealth('p', { failureThreshold: 3, onHealthChange: (_, healthy) => changes.push(healthy) });
    health.recordFailure('probe');
    health.recordFailure('traffic');
    expect(health.healthy).toBe(true);
    health.recordFailure('probe');
    expect(health.healthy).toBe(false);
    expect(health.consecutiveFails).toBe(3);
    health.recordFailure();
    expect(changes).toEqual([false]);
  });

  it('marks unhealthy after any failure by default, as the spec says', () => {
    const health = new ProviderHealth('p');
    health.recordFailure();
    expect(health.healthy).toBe(false);
  });

  it('a success in between restarts the streak', () => {
    const health = new ProviderHealth('p', { failureThreshold: 2 });
    health.recordFailure();
    health.recordSuccess(10);
    health.recordFailure();
    expect(health.healthy).toBe(true);
    expect(health.errorCount).toBe(2); // errors since it last became healthy
  });

  it('ignores a probe failure when live traffic succeeded while the probe was out', () => {
    let now = 1_000;
    const health = new ProviderHealth('p', { now: () => now });
    const probeStarted = now;
    now += 150;
    health.recordSuccess(20, 'traffic');
    now += 100;
    health.recordFailure('probe', probeStarted);
    expect(health.report()).toMatchObject({ healthy: true, consecutive_fails: 0, last_check: new Date(now).toISOString() });
    // A probe that started after the last live success still counts.
    health.recordFailure('probe', now);
    expect(health.healthy).toBe(false);
  });

  it('one success recovers, resets error_count and consecutive_fails', () => {
    const changes: boolean[] = [];
    const health = new ProviderHealth('p', { failureThreshold: 2, onHealthChange: (_, healthy) => changes.push(healthy) });
    for (let i = 0; i < 5; i++) health.recordFailure();
    expect(health.report()).toMatchObject({ healthy: false, consecutive_fails: 5, error_count: 5 });
    health.recordSuccess(120, 'probe');
    expect(health.report()).toMatchObject({ healthy: true, consecutive_fails: 0, error_count: 0, latency_ms: 120 });
    expect(changes).toEqual([false, true]);
  });

  it('stamps last_check only for probes, counts requests only for traffic', () => {
    let now = Date.parse('2024-01-01T12:00:00Z');
    const health = new ProviderHealth('p', { now: () => now });
    health.requestStarted();
    health.requestStarted();
    expect(health.inFlight).toBe(2);
    health.recordSuccess(50);
    health.requestFinished();
    health.requestFinished();
    health.requestFinished(); // never below zero
    expect(health.inFlight).toBe(0);
    expect(health.report().last_check).toBeNull();
    now += 1_500;
    health.recordFailure('probe');
    expect(health.report()).toMatchObject({ last_check: '2024-01-01T12:00:01.500Z', request_count: 2 });
    expect(JSON.parse(JSON.stringify(health))).toEqual(health.report());
  });

  it('keeps a moving average of latency and the last value', () => {
    const health = new ProviderHealth('p', { ewmaAlpha: 0.5 });
    expect(health.ewmaMs).toBeUndefined();
    health.recordSuccess(100);
    expect(health.ewmaMs).toBe(100);
    health.recordSuccess(200);
    expect(health.ewmaMs).toBe(150);
    health.recordSuccess(50);
    expect(health.ewmaMs).toBe(100);
    expect(health.report().latency_ms).toBe(50);
    health.recordSuccess(Number.NaN);
    expect(health.ewmaMs).toBe(100);
  });

  it('the default EWMA weighs the newest sample by 0.3', () => {
    const health = new ProviderHealth('p');
    health.recordSuccess(100);
    health.recordSuccess(200);
    expect(health.ewmaMs).toBeCloseTo(130);
  });

  it('a 429 avoids the provider until Retry-After, without making it unhealthy', () => {
    let now = 0;
    const health = new ProviderHealth('p', { now: () => now });
    health.recordRateLimit(5);
    expect(health.healthy).toBe(true);
    expect(health.isRateLimited()).toBe(true);
    expect(health.isAvailable()).toBe(false);
    health.recordRateLimit(1); // never shortens
    expect(health.rateLimitedUntil).toBe(5_000);
    now = 4_999;
    expect(health.isRateLimited()).toBe(true);
    now = 5_000;
    expect(health.isAvailable()).toBe(true);
    health.recordRateLimit(); // no Retry-After: one second
    expect(health.rateLimitedUntil).toBe(6_000);
  });
});

describe('HealthChecker', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs every probe in parallel and records outcome and duration', async () => {
    vi.useFakeTimers();
    const a = new ProviderHealth('a');
    const b = new ProviderHealth('b');
    const results: Array<[string, boolean, number]> = [];
    let concurrent = 0;
    let peak = 0;
    const probe = (ms: number, fail = false) => async () => {
      concurrent++;
      peak = Math.max(peak, concurrent);
      await new Promise((resolve) => setTimeout(resolve, ms));
      concurrent--;
      if (fail) throw new Error('down');
    };
    const checker = new HealthChecker(
      [
        { name: 'a', health: a, probe: probe(100) },
        { name: 'b', health: b, probe: probe(300, true) },
      ],
      { intervalMs: 60_000, timeoutMs: 5_000, onResult: (name, ok, ms) => results.push([name, ok, ms]) },
    );
    const round = checker.runOnce();
    await vi.advanceTimersByTimeAsync(300);
    await round;
    expect(peak).toBe(2);
    expect(results).toEqual([
      ['a', true, 100],
      ['b', false, 300],
    ]);
    expect(a.report()).toMatchObject({ healthy: true, latency_ms: 100 });
    expect(a.report().last_check).not.toBeNull();
    expect(b.report()).toMatchObject({ healthy: false, consecutive_fails: 1, error_count: 1 });
  });

  it('times out a hanging probe and aborts its signal', async () => {
    // setImmediate stays real: the verdict waits one real turn of the event loop after the (fake) timeout.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const health = new ProviderHealth('slow');
    let seen: AbortSignal | undefined;
    const errors: unknown[] = [];
    const checker = new HealthChecker([{ name: 'slow', health, probe: (signal) => ((seen = signal), new Promise<void>(() => {})) }], {
      intervalMs: 60_000,
      timeoutMs: 5_000,
      onResult: (_, ok, ms, error) => errors.push({ ok, ms, error }),
    });
    const round = checker.runOnce();
    await vi.advanceTimersByTimeAsync(5_000);
    await round;
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBeInstanceOf(HealthProbeTimeoutError);
    expect(errors).toEqual([{ ok: false, ms: 5_000, error: expect.any(HealthProbeTimeoutError) }]);
    expect(health.healthy).toBe(false);
  });

  it('a probe that throws synchronously is a failed probe', async () => {
    const health = new ProviderHealth('p');
    const checker = new HealthChecker(
      [
        {
          name: 'p',
          health,
          probe: () => {
            throw new Error('no');
          },
        },
      ],
      { intervalMs: 1_000, timeoutMs: 1_000 },
    );
    await checker.runOnce();
    expect(health.healthy).toBe(false);
  });

  it('a throwing onResult hook does not break the round or the schedule', async () => {
    vi.useFakeTimers();
    const health = new ProviderHealth('p');
    let probes = 0;
    const checker = new HealthChecker([{ name: 'p', health, probe: async () => void probes++ }], {
      intervalMs: 1_000,
      timeoutMs: 500,
      onResult: () => {
        throw new Error('metrics broke');
      },
    });
    checker.start();
    await vi.advanceTimersByTimeAsync(1_000);
    checker.stop();
    expect(probes).toBe(2);
    expect(health.report().last_check).not.toBeNull();
  });

  it('probes at start, then every interval after a round ends, until stopped', async () => {
    vi.useFakeTimers();
    const health = new ProviderHealth('p');
    const calls: number[] = [];
    const checker = new HealthChecker([{ name: 'p', health, probe: async () => void calls.push(Date.now()) }], { intervalMs: 60_000, timeoutMs: 5_000 });
    const started = Date.now();
    checker.start();
    checker.start(); // idempotent
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual([started]);
    await vi.advanceTimersByTimeAsync(60_000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.map((t) => t - started)).toEqual([0, 60_000, 120_000]);
    checker.stop();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(calls).toHaveLength(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() aborts probes in flight and drops their results', async () => {
    vi.useFakeTimers();
    const health = new ProviderHealth('p');
    let seen: AbortSignal | undefined;
    const onResult = vi.fn();
    const checker = new HealthChecker(
      [
        {
          name: 'p',
          health,
          probe: (signal) =>
            new Promise<void>((_, reject) => {
              seen = signal;
              signal.addEventListener('abort', () => reject(signal.reason));
            }),
        },
      ],
      { intervalMs: 60_000, timeoutMs: 5_000, onResult },
    );
    checker.start();
    await vi.advanceTimersByTimeAsync(10);
    checker.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen?.aborted).toBe(true);
    expect(onResult).not.toHaveBeenCalled();
    expect(health.report()).toMatchObject({ healthy: true, last_check: null });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('uses unref\'d timers so it never keeps the process alive', async () => {
    const unref = vi.fn();
    const realSetTimeout = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const timer = realSetTimeout(fn, ms);
      const original = timer.unref.bind(timer);
      timer.unref = () => (unref(), original());
      return timer;
    }) as typeof setTimeout);
    try {
      const health = new ProviderHealth('p');
      const checker = new HealthChecker([{ name: 'p', health, probe: async () => {} }], { intervalMs: 60_000, timeoutMs: 5_000 });
      checker.start();
      await new Promise((resolve) => setImmediate(resolve));
      checker.stop();
      expect(unref.mock.calls.length).toBeGreaterThanOrEqual(2); // the probe timeout and the next-round timer
    } finally {
      spy.mockRestore();
    }
  });
});
