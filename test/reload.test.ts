/**
 * Hot reload, as an operator sees it: rewrite the config file (or send POST /admin/reload) while clients
 * keep calling, and nothing fails; a bad file changes nothing; breakers of untouched providers stay as they were.
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.ts';
import { startGateway, type Gateway } from '../src/server/start.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { metricValue } from './helpers/metrics.ts';

const ADMIN_KEY = 'admin-key-for-reload-tests-0123';

interface Started {
  gateway: Gateway;
  file: string;
  logs: Record<string, unknown>[];
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakes(...names: string[]): Promise<FakeProvider[]> {
  const started = await Promise.all(names.map((name) => startFakeOpenAI({ name })));
  for (const fake of started) cleanups.push(() => fake.close());
  return started;
}

/** Writes the file the way many editors do: a temporary file renamed over the old one. */
function save(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

async function startFromFile(yaml: string, opts: { debounceMs?: number } = {}): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'hapax-reload-'));
  const file = join(dir, 'hapax.yaml');
  writeFileSync(file, yaml);
  const logs: Record<string, unknown>[] = [];
  const logDestination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const gateway = await startGateway({ loaded: await loadConfigFile(file), configFile: file, port: 0, host: '127.0.0.1', logDestination, ...opts });
  cleanups.push(() => gateway.close());
  return { gateway, file, logs };
}

function providersYaml(fakes: FakeProvider[], order: number[]): string {
  return order.map((i) => `  ${fakes[i].name}: {type: openai_compatible, base_url: "${fakes[i].url}", model: gpt-4o-mini}`).join('\n');
}

const reloadsLogged = (logs: Record<string, unknown>[]) => logs.filter((l) => l.msg === 'config reloaded' || l.msg === 'config reload rejected; the running config stays').length;

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const reloads = async (url: string, series: string): Promise<number> => (await metricValue(url, series)) ?? 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('config reload under load', () => {
  it('serves a steady load with zero failures while the file is rewritten 20 times', async () => {
    const upstreams = await fakes('alpha', 'beta', 'gamma');
    // Streams take a while, so many of them span a reload and finish on the Runtime they started on.
    for (const upstream of upstreams) upstream.fault = { kind: 'slowStream', chunkDelayMs: 15 };
    const base = 'health_check: {enabled: false}\nserver: {host: 127.0.0.1, port: 0}\n';
    const { gateway, file, logs } = await startFromFile(`${base}providers:\n${providersYaml(upstreams, [0, 1, 2])}\n`, { debounceMs: 50 });

    // Twenty configs: providers removed, added back, reordered; a route appears along the way.
    const orders = [[1, 2], [2, 0, 1], [0], [0, 2], [2], [1, 0], [0, 1, 2], [2, 1], [1], [1, 2, 0]];
    const configs = Array.from({ length: 20 }, (_, i) => {
      const order = orders[i % orders.length];
      const route = i >= 12 ? 'routes:\n  - {path: /custom/chat/completions, handler: chat}\n' : '';
      return `${base}providers:\n${providersYaml(upstreams, order)}\n${route}`;
    });
    const finalOrder = orders[19 % orders.length];

    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    // Ten clients, each starting a call every 50 ms (or as soon as the last one ended, when later): ~200 requests a second.
    const started = Date.now();
    const worker = async (w: number) => {
      for (let n = 0; !stop; n++) {
        const text = `client ${w} call ${n}`;
        sent++;
        try {
          if (n % 4 === 3) {
            const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: text }] });
            let content = '';
            for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
            if (!content.endsWith(text)) failures.push(`stream: ${content}`);
          } else {
            const answer = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: text }] });
            if (!answer.choices[0].message.content?.endsWith(text)) failures.push(`answer: ${answer.choices[0].message.content}`);
          }
        } catch (error) {
          failures.push(String(error));
        }
        await sleep(started + (n + 1) * 50 - Date.now());
      }
    };
    const load = Promise.all(Array.from({ length: 10 }, (_, w) => worker(w)));

    await sleep(250);
    for (const config of configs) {
      const before = reloadsLogged(logs);
      save(file, config);
      await until(() => reloadsLogged(logs) > before, 'the reload of a rewritten file');
      await sleep(50);
    }
    await sleep(250);
    stop = true;
    await load;

    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(300);
    expect(logs.filter((l) => l.msg === 'config reloaded')).toHaveLength(20);
    expect(await reloads(gateway.url, 'hapax_config_reloads_total{result="success"}')).toBe(20);
    // No upstream request was cut: old Runtimes closed their pools only after their streams ended.
    expect(upstreams.map((u) => u.aborted)).toEqual([0, 0, 0]);
    expect(gateway.holder.current.inFlight).toBe(0);

    // The final config's route and provider order answer.
    const custom = new OpenAI({ baseURL: `${gateway.url}/custom`, apiKey: 'unused', maxRetries: 0 });
    const { data, response } = await custom.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'last' }] }).withResponse();
    expect(data.choices[0].message.content).toBe(`[${upstreams[finalOrder[0]].name}] last`);
    expect(response.headers.get('x-hapax-provider')).toBe(upstreams[finalOrder[0]].name);
  }, 60_000);
});

describe('config reload', () => {
  it('keeps the running config when the new file is invalid, and says why by key path', async () => {
    const [one] = await fakes('one');
    const good = `health_check: {enabled: false}\nadmin: {key: ${ADMIN_KEY}}\nproviders:\n${providersYaml([one], [0])}\n`;
    const { gateway, file, logs } = await startFromFile(good);
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });

    save(file, `${good}  two: {type: openai_compatible, model: m}\nretry: {max_retries: lots}\n`);
    await until(() => logs.some((l) => l.msg === 'config reload rejected; the running config stays'), 'the rejected reload');
    const rejected = logs.find((l) => l.msg === 'config reload rejected; the running config stays') as { problems: string[] };
    expect(rejected.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^providers\.two\.base_url: /), expect.stringMatching(/^retry\.max_retries: /)]));

    // The same answer from the admin API: 422 with the problems; the old config keeps serving.
    const response = await fetch(`${gateway.url}/admin/reload`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { ok: boolean; problems: string[] };
    expect(body.ok).toBe(false);
    expect(body.problems.some((p) => p.startsWith('providers.two.base_url'))).toBe(true);
    expect((await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'still here' }] })).choices[0].message.content).toBe('[one] still here');
    expect(await reloads(gateway.url, 'hapax_config_reloads_total{result="failure"}')).toBe(2);
    expect(await reloads(gateway.url, 'hapax_config_reloads_total{result="success"}')).toBe(0);

    // Fixed: the next save applies.
    save(file, good.replace('providers:\n', 'providers:\n  extra: {type: mock, reply: from extra}\n') + 'provider_preference: [extra, one]\n');
    await until(() => logs.some((l) => l.msg === 'config reloaded'), 'the reload of the fixed file');
    expect((await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] })).choices[0].message.content).toBe('from extra');
  });

  it('adds and removes routes at once, and protects /admin/reload with admin.key', async () => {
    const base = `health_check: {enabled: false}\nadmin: {key: ${ADMIN_KEY}}\nproviders:\n  m: {type: mock, reply: pong}\n`;
    const { gateway, file } = await startFromFile(base, { debounceMs: 60_000 }); // only explicit reloads here
    const reload = (key?: string) => fetch(`${gateway.url}/admin/reload`, { method: 'POST', headers: key ? { authorization: `Bearer ${key}` } : {} });

    expect((await reload()).status).toBe(401);
    expect((await reload('wrong-admin-key-0123456789')).status).toBe(401);
    expect((await fetch(`${gateway.url}/team/chat/completions`, { method: 'POST' })).status).toBe(404);

    writeFileSync(file, `${base}routes:\n  - {path: /team/chat/completions, handler: chat}\n`);
    const ok = await reload(ADMIN_KEY);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ok: true, providers: ['m'] });
    const team = new OpenAI({ baseURL: `${gateway.url}/team`, apiKey: 'unused', maxRetries: 0 });
    expect((await team.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content).toBe('pong');

    writeFileSync(file, base);
    expect((await reload(ADMIN_KEY)).status).toBe(200);
    await expect(team.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 404 });
  });

  it('answers 404 on /admin/reload when no admin key is configured, and refuses to reload a gateway started without a file', async () => {
    const { gateway } = await startFromFile('health_check: {enabled: false}\nproviders:\n  m: {type: mock}\n');
    expect((await fetch(`${gateway.url}/admin/reload`, { method: 'POST' })).status).toBe(404);
    // A gateway from the built-in default (no file) has nothing to reload.
    const loaded = await loadConfigFile(gateway.holder.current.source);
    const fileless = await startGateway({ loaded, port: 0, host: '127.0.0.1', logDestination: new Writable({ write: (_c, _e, cb) => cb() }) });
    cleanups.push(() => fileless.close());
    expect(await fileless.reload('signal')).toMatchObject({ ok: false, error: expect.stringContaining('no config file') });
  });

  it('keeps breaker state for providers on the same endpoint, and starts fresh for one moved elsewhere', async () => {
    const [flaky, steady] = await fakes('flaky', 'steady');
    flaky.fault = { kind: 'status', status: 500 };
    const config = (steadyModel: string, flakyTimeout = '60s', flakyUrl = flaky.url) => `health_check: {enabled: false}
admin: {key: ${ADMIN_KEY}}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 2, timeout: 60s}
providers:
  flaky: {type: openai_compatible, base_url: "${flakyUrl}", model: gpt-4o-mini, timeout: ${flakyTimeout}}
  steady: {type: openai_compatible, base_url: "${steady.url}", model: ${steadyModel}}
provider_preference: [flaky, steady]
`;
    const { gateway, file } = await startFromFile(config('gpt-4o-mini'), { debounceMs: 60_000 });
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const breaker = async (name: string) => ((await (await fetch(`${gateway.url}/health/provider/${name}`)).json()) as { circuit_breaker: string }).circuit_breaker;
    const reload = () => fetch(`${gateway.url}/admin/reload`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } });

    // Asking for flaky by name puts it first every time (else its failing health would move it last).
    for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: 'flaky', messages: [{ role: 'user', content: `trip ${i}` }] });
    expect(await breaker('flaky')).toBe('open');

    // steady changes, flaky does not: flaky's breaker stays open, so even asked by name it is not called.
    writeFileSync(file, config('gpt-4.1-mini'));
    expect((await reload()).status).toBe(200);
    expect(await breaker('flaky')).toBe('open');
    const calls = flaky.requests.length;
    const answer = await client.chat.completions.create({ model: 'flaky', messages: [{ role: 'user', content: 'after' }] });
    expect(answer.choices[0].message.content).toBe('[steady] after');
    expect(flaky.requests.length).toBe(calls);

    // flaky's timeout changes but it is the same upstream: its breaker stays open.
    writeFileSync(file, config('gpt-4.1-mini', '45s'));
    expect((await reload()).status).toBe(200);
    expect(await breaker('flaky')).toBe('open');

    // flaky moves to another endpoint: another upstream as far as the breaker is concerned.
    writeFileSync(file, config('gpt-4.1-mini', '45s', steady.url));
    expect((await reload()).status).toBe(200);
    expect(await breaker('flaky')).toBe('closed');
  });
});
