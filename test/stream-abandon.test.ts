/**
 * Many clients leaving streams at random points, mixed with clients that read to the end: nothing is left
 * behind. Every abandoned upstream stream is closed, the in-flight gauge returns to zero, every request
 * leaves exactly one log line, and the gateway keeps answering.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { useStarted } from './helpers/started.ts';

const LEAVING = 24;
const STAYING = 8;

describe('streams abandoned by their clients', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'slow', reply: (text) => `${text} ${'word '.repeat(12)}` }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  slow: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
`),
  });

  /** Streams one request; leaves after `leaveAfter` chunks (or reads to the end). Resolves with its request id. */
  function stream(text: string, leaveAfter?: number): Promise<{ id: string; completed: boolean }> {
    return new Promise((resolve, reject) => {
      const url = new URL(`${setup.gateway.url}/v1/chat/completions`);
      const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
      request.once('error', reject);
      request.once('response', (response) => {
        const id = response.headers['x-request-id'] as string;
        let chunks = 0;
        response.on('data', () => {
          if (leaveAfter !== undefined && ++chunks >= leaveAfter) {
            request.destroy();
            resolve({ id, completed: false });
          }
        });
        response.once('end', () => resolve({ id, completed: true }));
        response.once('error', () => resolve({ id, completed: false }));
      });
      request.end(JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: text }] }));
    });
  }

  it('closes every abandoned upstream, logs every request once, and leaves nothing in flight', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 15 };
    const runs = [
      ...Array.from({ length: LEAVING }, (_, i) => stream(`leaving ${i}`, 1 + (i % 4))),
      ...Array.from({ length: STAYING }, (_, i) => stream(`staying ${i}`)),
    ];
    const outcomes = await Promise.all(runs);
    expect(outcomes.filter((o) => o.completed)).toHaveLength(STAYING);

    await expect.poll(() => setup.upstream.aborted, { timeout: 5000 }).toBe(LEAVING);
    await expect.poll(() => setup.upstream.inFlight, { timeout: 5000 }).toBe(0);
    const ids = new Set(outcomes.map((o) => o.id));
    expect(ids.size).toBe(LEAVING + STAYING);
    await expect.poll(() => setup.gateway.logs.filter((l) => l.msg === 'request' && ids.has(l.request_id as string)).length, { timeout: 5000 }).toBe(LEAVING + STAYING);
    const lines = setup.gateway.logs.filter((l) => l.msg === 'request' && ids.has(l.request_id as string));
    expect(new Set(lines.map((l) => l.request_id)).size).toBe(LEAVING + STAYING);
    expect(lines.every((l) => l.status === 200 && l.provider === 'slow')).toBe(true);

    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_http_active_requests', { endpoint: '/v1/chat/completions' })).toBe(0);
    expect(valueOf(metrics, 'hapax_http_requests_total', { endpoint: '/v1/chat/completions', status: '200' })).toBe(LEAVING + STAYING);

    // And the gateway still answers, plainly and streamed.
    setup.upstream.fault = null;
    const last = await stream('after');
    expect(last.completed).toBe(true);
  }, 30_000);
});
