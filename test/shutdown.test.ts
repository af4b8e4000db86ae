/**
 * Graceful shutdown of the real `hapax serve` process: on SIGTERM readiness turns 503 and the listener
 * closes at once, while a stream in flight runs to its end; then the process exits 0. A stream longer
 * than server.shutdown_timeout is cut at the deadline. SIGHUP reloads the config file.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { ensureBuilt, freshRequest, serve, stopAll, until } from './helpers/serve.ts';

let upstream: FakeProvider;

beforeAll(async () => {
  ensureBuilt();
  upstream = await startFakeOpenAI({ name: 'slow' });
}, 120_000);
afterEach(() => {
  stopAll();
  upstream.reset();
});
afterAll(async () => {
  stopAll();
  await upstream?.close();
});

function configDir(extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'hapax-shutdown-'));
  writeFileSync(
    join(dir, 'hapax.yaml'),
    `server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20s}
health_check: {enabled: false}
providers:
  slow: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini}
${extra}`,
  );
  return dir;
}

/** Whether a new connection is refused or told 503: either way a load balancer takes this instance out. */
async function refusedOr503(url: string): Promise<boolean> {
  try {
    return (await freshRequest(`${url}/health/ready`)).status === 503;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

describe('hapax serve: SIGTERM', () => {
  it('lets a stream in flight finish, refuses new work, and exits 0', async () => {
    upstream.fault = { kind: 'slowStream', chunkDelayMs: 200 };
    const served = await serve([], { cwd: configDir() });
    expect((await freshRequest(`${served.url}/health/ready`)).status).toBe(200);

    const client = new OpenAI({ baseURL: `${served.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const text = 'a stream that outlives the signal by a second or two';
    const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: text }] });
    const chunks = stream[Symbol.asyncIterator]();
    let content = (await chunks.next()).value?.choices[0]?.delta.content ?? '';

    served.child.kill('SIGTERM');
    // Readiness flips and the listener closes right away, long before the stream ends.
    await until(() => refusedOr503(served.url), 'new connections to be refused');
    // (The log line travels through a pipe of its own: it may arrive after the refusal.)
    await until(() => served.logs.some((l) => l.msg === 'draining: finishing requests in flight'), 'the draining log line');
    expect(served.logs.find((l) => l.msg === 'draining: finishing requests in flight')).toMatchObject({ in_flight: 1 });

    for (let next = await chunks.next(); !next.done; next = await chunks.next()) content += next.value.choices[0]?.delta.content ?? '';
    expect(content).toBe(`[slow] ${text}`);
    expect(await served.exited).toBe(0);
    expect(served.logs.find((l) => l.msg === 'stopped')).toMatchObject({ drained: true });
    expect(upstream.aborted).toBe(0);
  });

  it('exits 0 at once when idle, even with a keep-alive connection open', async () => {
    const served = await serve([], { cwd: configDir() });
    const client = new OpenAI({ baseURL: `${served.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    expect((await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content).toBe('[slow] hi');
    const killedAt = Date.now();
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    // Not held by the idle keep-alive connection (keepAliveTimeout is 72 s).
    expect(Date.now() - killedAt).toBeLessThan(3000);
  });

  it('cuts a stream that is still running at server.shutdown_timeout and exits 1', async () => {
    upstream.fault = { kind: 'slowStream', chunkDelayMs: 2_000 };
    const dir = configDir();
    writeFileSync(join(dir, 'hapax.yaml'), `server: {host: 127.0.0.1, port: 0, shutdown_timeout: 1s}\nhealth_check: {enabled: false}\nproviders:\n  slow: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini}\n`);
    const served = await serve([], { cwd: dir });
    const client = new OpenAI({ baseURL: `${served.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: 'one two three four five six seven eight' }] });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next();
    served.child.kill('SIGTERM');
    const reading = (async () => {
      for (let next = await chunks.next(); !next.done; next = await chunks.next());
    })();
    await expect(reading).rejects.toThrow();
    expect(await served.exited).toBe(1);
    expect(served.logs.find((l) => l.msg === 'shutdown timeout reached; cut the requests still running')).toMatchObject({ cut: 1 });
  });
});

describe('hapax serve: SIGHUP', () => {
  it('reloads the config file', async () => {
    const dir = configDir();
    const served = await serve([], { cwd: dir });
    writeFileSync(join(dir, 'hapax.yaml'), 'server: {host: 127.0.0.1, port: 0}\nhealth_check: {enabled: false}\nproviders:\n  canned: {type: mock, reply: reloaded by SIGHUP}\n');
    served.child.kill('SIGHUP');
    await until(() => served.logs.some((l) => l.msg === 'config reloaded'), 'the reload');
    expect(served.logs.find((l) => l.msg === 'config reloaded')).toMatchObject({ trigger: 'signal', providers: ['canned'] });
    const answer = await freshRequest(`${served.url}/v1/chat/completions`, { body: { model: '', messages: [{ role: 'user', content: 'x' }] } });
    expect(JSON.parse(answer.body).choices[0].message.content).toBe('reloaded by SIGHUP');
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });
});
