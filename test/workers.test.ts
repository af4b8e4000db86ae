/**
 * `server.workers: 2`: the real `hapax serve` runs two worker processes on one port. Both serve
 * requests, /metrics (from either worker) shows the sum over both, a rate limit holds across them, a
 * worker that dies is replaced, and SIGTERM stops them all.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, freshRequest, serve, stopAll, until, type Served } from './helpers/serve.ts';

const OPEN_KEY = 'sk-hapax-workers-open-0123456789';
const LIMITED_KEY = 'sk-hapax-workers-limited-012345';

beforeAll(ensureBuilt, 120_000);
afterEach(stopAll);
afterAll(stopAll);

async function serveWorkers(args: string[] = []): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'hapax-workers-'));
  writeFileSync(
    join(dir, 'hapax.yaml'),
    `server: {host: 127.0.0.1, port: 0, workers: 2}
health_check: {enabled: false}
providers:
  m: {type: mock, reply: pong}
auth:
  enabled: true
  keys:
    - {name: open, key: ${OPEN_KEY}}
    - {name: limited, key: ${LIMITED_KEY}, rate_limit: {requests_per_minute: 10}}
`,
  );
  return serve(args, { cwd: dir });
}

const chat = (url: string, key: string, text = 'ping') =>
  freshRequest(`${url}/v1/chat/completions`, { headers: { authorization: `Bearer ${key}` }, body: { model: '', messages: [{ role: 'user', content: text }] } });

/** PIDs of the processes that logged a finished request for this request id. */
const servedBy = (served: Served, ids: Set<string>) =>
  new Set(served.logs.filter((l) => l.msg === 'request' && ids.has(l.request_id as string)).map((l) => l.pid as number));

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('hapax serve with server.workers: 2', () => {
  it('serves from both workers, sums /metrics over them, and holds a rate limit across them', async () => {
    const served = await serveWorkers();
    expect(served.logs.find((l) => l.msg === 'hapax listening')).toMatchObject({ workers: 2 });
    const workerPids = new Set(served.logs.filter((l) => (l.msg as string)?.startsWith('Server listening')).map((l) => l.pid));
    expect(workerPids.size).toBe(2);
    expect(workerPids.has(served.child.pid)).toBe(false);

    // New connections go to the workers in turn: 20 requests reach both.
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const answer = await chat(served.url, OPEN_KEY, `call ${i}`);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).choices[0].message.content).toBe('pong');
      ids.add(answer.headers['x-request-id'] as string);
    }
    await until(() => servedBy(served, ids).size === 2 && served.logs.filter((l) => ids.has(l.request_id as string)).length === 20, 'request logs from both workers');
    expect([...servedBy(served, ids)].sort()).toEqual([...workerPids].sort());

    // Whichever worker answers /metrics, it shows the cluster's total.
    const series = 'hapax_http_requests_total{endpoint="/v1/chat/completions",status="200"}';
    for (let i = 0; i < 4; i++) {
      const metrics = await freshRequest(`${served.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
      expect(sample(metrics.body, series)).toBe(20);
    }

    // 10 requests a minute for this key, counted once for the whole cluster.
    const statuses: number[] = [];
    const limitedIds = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const answer = await chat(served.url, LIMITED_KEY, `limited ${i}`);
      statuses.push(answer.status);
      limitedIds.add(answer.headers['x-request-id'] as string);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);
    await until(() => servedBy(served, limitedIds).size === 2, 'limited requests on both workers');

    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  }, 30_000);

  it('replaces a worker that dies', async () => {
    const served = await serveWorkers();
    const listening = () => served.logs.filter((l) => (l.msg as string)?.startsWith('Server listening')).map((l) => l.pid as number);
    // The gateway answers once one worker listens; on a loaded machine the second may take a moment longer.
    await until(() => listening().length === 2, 'both workers listening');
    const first = listening();
    expect(first).toHaveLength(2);
    process.kill(first[0], 'SIGKILL');
    await until(() => served.logs.some((l) => l.msg === 'worker died; starting a new one'), 'the primary to notice');
    await until(() => served.logs.filter((l) => (l.msg as string)?.startsWith('Server listening')).length === 3, 'a new worker');
    const replacement = served.logs.filter((l) => (l.msg as string)?.startsWith('Server listening')).at(-1)?.pid as number;
    expect(first).not.toContain(replacement);

    // Requests keep being served, by the survivor and the newcomer.
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const answer = await chat(served.url, OPEN_KEY);
      expect(answer.status).toBe(200);
      ids.add(answer.headers['x-request-id'] as string);
    }
    await until(() => servedBy(served, ids).size === 2, 'both workers serving');
    expect([...servedBy(served, ids)].sort()).toEqual([first[1], replacement].sort());

    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  }, 30_000);

  it("stops with the workers' exit code when they cannot start", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as { port: number }).port;
      await expect(serveWorkers(['--port', String(port)])).rejects.toThrow(/exited with 1 before listening:\n.*EADDRINUSE/s);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
