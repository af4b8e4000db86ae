/**
 * The benchmark's scale scenario, small: hundreds of slow streams opened at once through the gateway, with the
 * benchmark's own client (bench/scale-load.ts). Every stream completes and every one is in flight at the
 * upstream at the same time (a barrier in the fake proves none waited behind a connection limit).
 * Timings are the benchmark's business (npm run bench), not asserted here.
 */
import { describe, expect, it } from 'vitest';
import { runScale } from '../bench/scale-load.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { useStarted } from './helpers/started.ts';

const STREAMS = 500;

describe(`${STREAMS} concurrent slow streams`, () => {
  const setup = useStarted({
    upstream: () => startFakeOpenAI({ name: 'slow', reply: (text) => `${text} one two three four` }),
  }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  slow: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
`),
  });

  it('all complete, all in flight upstream at once, none queued for a connection', async () => {
    // Every stream holds its first chunk until all of them are in flight upstream: with a connection cap below
    // STREAMS the barrier would never open (the streams would stall for 30 s and fail the checks below).
    setup.upstream.fault = { kind: 'holdUntil', inFlight: STREAMS, timeoutMs: 30_000 };
    const started = Date.now();
    const result = await runScale({ origin: setup.gateway.url, path: '/v1/chat/completions', streams: STREAMS });

    expect(result.errorSamples).toEqual([]);
    expect(result).toMatchObject({ streams: STREAMS, completed: STREAMS, errors: 0, incomplete: 0 });
    expect(setup.upstream.peakInFlight).toBe(STREAMS);
    expect(Date.now() - started).toBeLessThan(30_000);
    // The gateway opened a connection per stream (kept alive now) and had none waiting for one.
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_upstream_queued_requests', { provider: 'slow' })).toBe(0);
    expect(valueOf(metrics, 'hapax_upstream_connections', { provider: 'slow' })).toBeGreaterThanOrEqual(STREAMS * 0.9);
    await expect.poll(() => setup.upstream.inFlight, { timeout: 5000 }).toBe(0);
  }, 60_000);
});
