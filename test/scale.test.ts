/**
 * The benchmark's scale scenario, small: hundreds of slow streams opened at once through the gateway, with the
 * benchmark's own client (bench/scale-load.ts). Every stream completes, every one is in flight at the upstream
 * at the same time (none waited behind a connection limit), and the queued-for-a-connection gauge never moves.
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
    // Eight chunks 250 ms apart: long enough that the whole burst is open at once.
    upstream: () => startFakeOpenAI({ name: 'slow', reply: (text) => `${text} one two three four` }),
  }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  slow: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
`),
  });

  it('all complete, all in flight upstream at once, none queued for a connection', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 250 };
    let queuedMax = 0;
    let sampled = 0;
    const sampling = setInterval(() => {
      void scrape(`${setup.gateway.url}/metrics`).then((m) => {
        sampled++;
        queuedMax = Math.max(queuedMax, valueOf(m, 'hapax_upstream_queued_requests', { provider: 'slow' }) ?? 0);
      });
    }, 200);
    const result = await runScale({ origin: setup.gateway.url, path: '/v1/chat/completions', streams: STREAMS });
    clearInterval(sampling);

    expect(result.errorSamples).toEqual([]);
    expect(result).toMatchObject({ streams: STREAMS, completed: STREAMS, errors: 0, incomplete: 0 });
    expect(setup.upstream.peakInFlight).toBe(STREAMS);
    expect(sampled).toBeGreaterThan(0);
    expect(queuedMax).toBe(0);
    await expect.poll(() => setup.upstream.inFlight, { timeout: 5000 }).toBe(0);
  }, 60_000);
});
