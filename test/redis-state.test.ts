/**
 * Many Hapax instances sharing state in a real redis-server: exact rate limits across the fleet, keys
 * created or revoked on one instance honoured by all, usage totals, and what happens while Redis is
 * down (on_failure open and closed), crashed or frozen, and after it comes back.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.ts';
import { loadConfigFile, parseConfig } from '../src/config/load.ts';
import { startGateway } from '../src/server/start.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';
import { metricSum } from './helpers/metrics.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const chat = { model: '', messages: [{ role: 'user' as const, content: 'hello there' }] };
const ADMIN_KEY = 'admin-secret-0123456789';
const SHARED_KEY = 'shared-key-0123456789';
/** auth.key_file of every fleet: never written, since managed keys live in Redis. */
const KEY_FILE = join(tmpdir(), 'hapax-redis-test-unused', 'keys.json');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: RedisServer;
let running: TestGateway[] = [];
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(running.map((g) => g.close()));
  running = [];
});

interface FleetOptions {
  rpm?: number;
  onFailure?: 'open' | 'closed';
  /** More top-level YAML. */
  extra?: string;
}

/** The YAML every instance of one fleet shares; each fleet gets its own key prefix in the one Redis. */
function fleetYaml(opts: FleetOptions = {}): string {
  return `
providers:
  mock: {type: mock}
state: {redis_url: "${redis.url}", key_prefix: "test${++prefixes}:", on_failure: ${opts.onFailure ?? 'open'}}
auth:
  enabled: true
  key_file: ${KEY_FILE}
  keys:
    - {name: shared, key: ${SHARED_KEY}, rate_limit: {requests_per_minute: ${opts.rpm ?? 100}}}
    - {name: unlimited, key: unlimited-key-0123456789}
admin: {key: ${ADMIN_KEY}}
${opts.extra ?? ''}
`;
}

/** Three instances of one gateway: the same config, the same Redis. */
async function startFleet(yaml: string, count = 3): Promise<TestGateway[]> {
  const fleet: TestGateway[] = [];
  for (let i = 0; i < count; i++) {
    const gateway = await startTestGateway(yaml);
    running.push(gateway);
    fleet.push(gateway);
  }
  return fleet;
}

const client = (gateway: TestGateway, apiKey = SHARED_KEY) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0, timeout: 15_000 });

/** `count` chat requests spread round-robin over the fleet, a few at a time; each settles to 'ok' or its error. */
async function roundRobin(fleet: TestGateway[], count: number, apiKey = SHARED_KEY): Promise<Array<'ok' | Error>> {
  const clients = fleet.map((g) => client(g, apiKey));
  const results: Array<'ok' | Error> = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await clients[i % clients.length].chat.completions.create(chat).then(
        () => 'ok' as const,
        (error: Error) => error,
      );
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return results;
}

const statuses = (results: Array<'ok' | Error>) => results.map((r) => (r === 'ok' ? 200 : ((r as { status?: number }).status ?? 0)));
const count = (list: number[], status: number) => list.filter((s) => s === status).length;

const admin = (gateway: TestGateway, path: string, init: RequestInit = {}) =>
  fetch(`${gateway.url}${path}`, { ...init, headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY, ...init.headers } });

const logLines = (gateway: TestGateway, text: string) => gateway.logs.filter((line) => String(line.msg).includes(text));

const metric = (gateway: TestGateway, name: string): Promise<number> => metricSum(gateway.url, name);

/** Until every instance has seen Redis again (its connection is back and it said so once). */
async function untilRecovered(fleet: TestGateway[]): Promise<void> {
  for (const gateway of fleet) await expect.poll(() => metric(gateway, 'hapax_state_available'), { timeout: 10_000, interval: 100 }).toBe(1);
}

describe('state config', () => {
  it('is strict, checks the URL without echoing it, and is applied (no "not applied" warning)', () => {
    const loaded = parseConfig(`providers: {mock: {type: mock}}\nstate: {redis_url: "redis://:pw@127.0.0.1:6379/0", on_failure: closed}\n`);
    expect(loaded.config.state).toEqual({ redis_url: 'redis://:pw@127.0.0.1:6379/0', key_prefix: 'hapax:', on_failure: 'closed' });
    expect(loaded.warnings.join('\n')).not.toContain('state');
    expect(parseConfig('providers: {mock: {type: mock}}\n').config.state).toEqual({ key_prefix: 'hapax:', on_failure: 'open' });

    const bad = (yaml: string) => {
      try {
        parseConfig(`providers: {mock: {type: mock}}\n${yaml}`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error('expected a config error');
    };
    const wrongUrl = bad('state: {redis_url: "http://secret-host-xyz:6379"}');
    expect(wrongUrl).toContain('state.redis_url');
    expect(wrongUrl).not.toContain('secret-host-xyz');
    expect(bad('state: {redis_url: "redis://h:1", on_failure: maybe}')).toContain('state.on_failure');
    expect(bad('state: {redis: "redis://h:1"}')).toContain('redis');
  });
});

describe('many instances sharing Redis', () => {
  it('lets exactly the limit through across three instances; the rest get 429 with Retry-After', async () => {
    const fleet = await startFleet(fleetYaml({ rpm: 100 }));
    const results = await roundRobin(fleet, 150);
    const list = statuses(results);
    expect(count(list, 200)).toBe(100);
    expect(count(list, 429)).toBe(50);
    for (const result of results) {
      if (result === 'ok') continue;
      expect(result).toBeInstanceOf(OpenAI.RateLimitError);
      const retryAfter = Number((result as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // Each instance both admitted and refused some: the count really was shared.
    for (const gateway of fleet) expect(await metric(gateway, 'hapax_rate_limit_hits_total')).toBeGreaterThan(0);
  });

  it('a key created on one instance is accepted by the others; revoked on one, it is refused by all within a second', async () => {
    const [a, b, c] = await startFleet(fleetYaml());
    const created = await admin(a, '/admin/keys', { method: 'POST', body: JSON.stringify({ name: 'fleet-made' }) });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    await sleep(1000);
    for (const gateway of [a, b, c]) await expect(client(gateway, key).chat.completions.create(chat)).resolves.toBeTruthy();
    // Every instance lists it; none shows the key or its hash.
    const listed = await (await admin(c, '/admin/keys')).text();
    expect(listed).toContain('fleet-made');
    expect(listed).not.toContain(key);
    // A second active key of that name is refused on any instance.
    expect((await admin(c, '/admin/keys', { method: 'POST', body: JSON.stringify({ name: 'fleet-made' }) })).status).toBe(409);

    expect((await admin(b, '/admin/keys/fleet-made', { method: 'DELETE' })).status).toBe(200);
    await sleep(1000);
    for (const gateway of [a, b, c]) {
      await expect(client(gateway, key).chat.completions.create(chat)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    }
  });

  it('`hapax keys create|list|revoke --config` work on the Redis the config names', async () => {
    const yaml = fleetYaml();
    const fleet = await startFleet(yaml);
    const dir = mkdtempSync(join(tmpdir(), 'hapax-redis-cli-'));
    const file = join(dir, 'hapax.yaml');
    writeFileSync(file, yaml);
    try {
      const created = await cli(['keys', 'create', '--name', 'cli-made', '--rpm', '50', '--config', file]);
      expect(created.code).toBe(0);
      const key = created.stdout.trim();
      expect(key).toMatch(/^hpx_/);
      await sleep(1000);
      for (const gateway of fleet) await expect(client(gateway, key).chat.completions.create(chat)).resolves.toBeTruthy();

      const listed = await cli(['keys', 'list', '--json', '--config', file]);
      expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ name: 'cli-made', rate_limit: { requests_per_minute: 50 }, revoked: null })]);

      expect((await cli(['keys', 'revoke', 'cli-made', '--config', file])).code).toBe(0);
      await sleep(1000);
      for (const gateway of fleet) {
        await expect(client(gateway, key).chat.completions.create(chat)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      }
      // The key file was never written: the keys live in Redis.
      expect(existsSync(KEY_FILE)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Three runs of the CLI from source; slow only when the machine is busy.
  }, 60_000);

  it('shares the response cache: an answer one instance got is served by the others from Redis', async () => {
    const [a, b, c] = await startFleet(fleetYaml({ extra: 'cache: {enabled: true, ttl: 1m}' }));
    const question = { ...chat, messages: [{ role: 'user' as const, content: 'a question worth caching' }] };
    const first = await client(a).chat.completions.create(question).withResponse();
    expect(first.response.headers.get('x-hapax-cache')).toBeNull();
    for (const gateway of [b, c]) {
      // The first instance stores the answer just after answering: ask until the others find it.
      await expect.poll(async () => (await client(gateway).chat.completions.create(question).withResponse()).response.headers.get('x-hapax-cache'), { timeout: 5_000 }).toBe('hit');
      const again = await client(gateway).chat.completions.create(question);
      expect(again.choices[0].message.content).toBe(first.data.choices[0].message.content);
    }
  });

  it('adds up requests and tokens per key across the fleet in GET /admin/usage', async () => {
    const fleet = await startFleet(fleetYaml());
    const clients = fleet.map((g) => client(g));
    let input = 0;
    let output = 0;
    for (let i = 0; i < 9; i++) {
      const completion = await clients[i % 3].chat.completions.create(chat);
      input += completion.usage?.prompt_tokens ?? 0;
      output += completion.usage?.completion_tokens ?? 0;
    }
    expect(input).toBeGreaterThan(0);
    const usage = async () => {
      const body = (await (await admin(fleet[2], '/admin/usage')).json()) as { scope: string; usage: Array<Record<string, unknown>> };
      return body;
    };
    await expect.poll(async () => (await usage()).usage.find((row) => row.client === 'shared'), { timeout: 5_000 }).toEqual({
      client: 'shared',
      requests: 9,
      input_tokens: input,
      output_tokens: output,
      total_tokens: input + output,
    });
    expect((await usage()).scope).toBe('shared');
    expect((await fetch(`${fleet[0].url}/admin/usage`)).status).toBe(401);
  });
});

describe('when Redis goes away', () => {
  it('on_failure open: admits on per-instance limits, logs the outage once, counts it, and shares limits again once Redis is back', async () => {
    const fleet = await startFleet(fleetYaml({ rpm: 6, onFailure: 'open' }));
    expect(count(statuses(await roundRobin(fleet, 3)), 200)).toBe(3);

    await redis.kill();
    // Nine requests, three per instance: over the shared limit of 6, within each instance's own 6.
    expect(statuses(await roundRobin(fleet, 9))).toEqual(Array(9).fill(200));
    for (const gateway of fleet) {
      expect(logLines(gateway, 'shared state store unreachable')).toHaveLength(1);
      expect(await metric(gateway, 'hapax_state_errors_total')).toBeGreaterThan(0);
      expect(await metric(gateway, 'hapax_state_available')).toBe(0);
    }
    const text = await (await fetch(`${fleet[0].url}/metrics`)).text();
    expect(text).toMatch(/hapax_state_errors_total\{operation="rate_limit"\} [1-9]/);
    expect(text).not.toContain(redis.url);

    await redis.restart();
    await untilRecovered(fleet);
    for (const gateway of fleet) expect(logLines(gateway, 'shared state store reachable again')).toHaveLength(1);
    // Redis came back empty: the fleet shares one fresh count of 6 again.
    const after = statuses(await roundRobin(fleet, 9));
    expect(count(after, 200)).toBe(6);
    expect(count(after, 429)).toBe(3);
  });

  it('on_failure closed: refuses requests that need shared state with 503 at once, and serves again once Redis is back', async () => {
    const [a, b] = await startFleet(fleetYaml({ rpm: 100, onFailure: 'closed' }), 2);
    const created = await admin(a, '/admin/keys', { method: 'POST', body: JSON.stringify({ name: 'managed' }) });
    const { key: managed } = (await created.json()) as { key: string };
    await sleep(1000);
    await expect(client(b, managed).chat.completions.create(chat)).resolves.toBeTruthy();

    await redis.kill();
    for (const gateway of [a, b]) {
      // Rate-limited: the shared counter cannot be reached.
      const limited = await client(gateway).chat.completions.create(chat).catch((e: unknown) => e);
      expect(limited).toBeInstanceOf(OpenAI.InternalServerError);
      expect((limited as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((limited as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('1');
      // A managed key: whether it was revoked meanwhile cannot be known.
      await expect(client(gateway, managed).chat.completions.create(chat)).rejects.toMatchObject({ status: 503 });
      // A config key without a limit needs nothing shared.
      await expect(client(gateway, 'unlimited-key-0123456789').chat.completions.create(chat)).resolves.toBeTruthy();
      expect((await admin(gateway, '/admin/usage')).status).toBe(503);
      expect(logLines(gateway, 'shared state store unreachable')).toHaveLength(1);
    }

    await redis.restart();
    await untilRecovered([a, b]);
    await expect(client(a).chat.completions.create(chat)).resolves.toBeTruthy();
    await expect(client(b).chat.completions.create(chat)).resolves.toBeTruthy();
    // The restarted Redis kept nothing (no persistence in this test): the managed key is gone.
    await sleep(1000);
    await expect(client(a, managed).chat.completions.create(chat)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('a frozen Redis does not hold requests: commands time out and the policy applies', async () => {
    const [closed] = await startFleet(fleetYaml({ onFailure: 'closed' }), 1);
    const [open] = await startFleet(fleetYaml({ onFailure: 'open' }), 1);
    redis.freeze();
    try {
      // The SDK gives up after 15 s; the gateway answers long before, by its Redis command timeout.
      const started = Date.now();
      await expect(client(closed).chat.completions.create(chat)).rejects.toMatchObject({ status: 503 });
      await expect(client(open).chat.completions.create(chat)).resolves.toBeTruthy();
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      redis.thaw();
    }
    await untilRecovered([closed, open]);
    await expect(client(closed).chat.completions.create(chat)).resolves.toBeTruthy();
  });
});

describe('without Redis', () => {
  it('keeps usage per instance in memory, and state is always available', async () => {
    const gateway = await startTestGateway(`
providers:
  mock: {type: mock}
admin: {key: ${ADMIN_KEY}}
`);
    running.push(gateway);
    await client(gateway, 'anything').chat.completions.create(chat);
    const body = (await (await admin(gateway, '/admin/usage')).json()) as { scope: string; usage: Array<{ client: string; requests: number }> };
    expect(body.scope).toBe('instance');
    expect(body.usage).toEqual([expect.objectContaining({ client: '127.0.0.1', requests: 1 })]);
    expect(await metric(gateway, 'hapax_state_available')).toBe(1);
  });
});

describe('config reloads', () => {
  it('keep the state store when `state` is unchanged: counters survive, a changed `state` starts a new store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hapax-reload-state-'));
    const file = join(dir, 'hapax.yaml');
    const yaml = (reply: string, state = '') => `
providers:
  mock: {type: mock, reply: "${reply}"}
rate_limit: {requests_per_minute: 3}
admin: {key: ${ADMIN_KEY}}
${state}
`;
    writeFileSync(file, yaml('one'));
    const gateway = await startGateway({
      loaded: await loadConfigFile(file),
      configFile: file,
      watch: false,
      port: 0,
      host: '127.0.0.1',
      logDestination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
    });
    try {
      const ask = () => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }).chat.completions.create(chat).then(
        (c) => c.choices[0].message.content,
        (e: { status?: number }) => e.status,
      );
      expect([await ask(), await ask()]).toEqual(['one', 'one']);
      writeFileSync(file, yaml('two'));
      expect((await gateway.reload('admin')).ok).toBe(true);
      expect([await ask(), await ask()]).toEqual(['two', 429]);

      const prefix = `reload${++prefixes}:`;
      writeFileSync(file, yaml('three', `state: {redis_url: "${redis.url}", key_prefix: "${prefix}"}`));
      expect((await gateway.reload('admin')).ok).toBe(true);
      expect([await ask(), await ask(), await ask(), await ask()]).toEqual(['three', 'three', 'three', 429]);
      await expect.poll(() => redis.otherClients()).toBe(1);
    } finally {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // The gateway's Redis connection ended with it.
    await expect.poll(() => redis.otherClients()).toBe(0);
  });
});

/** The `hapax` command from source, as a user runs it (Node 24 runs the TypeScript directly). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}
