/**
 * Budgets in US dollars and tokens, per key, per department (a route metrics label) and per route:
 * reserved before the request at the pricing table's price, settled to the provider's own usage, exact
 * across three gateways on one Redis, refused with the documented error and headers once spent.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.ts';
import { loadConfigFile, parseConfig } from '../src/config/load.ts';
import { startGateway } from '../src/server/start.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { metricSum } from './helpers/metrics.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';
import { ensureBuilt, ROOT } from './helpers/serve.ts';
import { execFile } from 'node:child_process';

const ADMIN = 'admin-secret-0123456789';
const MARKETING = 'marketing-key-0123456789';
const SALES = 'sales-key-0123456789';
/** The mock answers 300 words (300 completion tokens) whatever it is asked. */
const REPLY = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
/** Reserves ~11 input + 400 output tokens: $0.411 at $1000 per million. Two fit in $1, a third does not. */
const LONG = { model: '', max_tokens: 400, messages: [{ role: 'user' as const, content: 'write me a long story' }] };
const PRICE_PER_TOKEN = 1000 / 1_000_000;

function yaml(opts: { extra?: string; keyBudgets?: string; latency?: string } = {}): string {
  return `
providers:
  mock: {type: mock, model: mock-1, reply: "${REPLY}", latency: ${opts.latency ?? '300ms'}}
pricing:
  mock-1: {input: 1000, output: 1000}
auth:
  enabled: true
  key_file: /tmp/hapax-budgets-test-unused/keys.json
  keys:
    - {name: marketing, key: ${MARKETING}, budgets: ${opts.keyBudgets ?? '[{window: monthly, usd: 1}]'}}
    - {name: sales, key: ${SALES}}
admin: {key: ${ADMIN}}
${opts.extra ?? ''}
`;
}

const client = (gateway: TestGateway, apiKey = MARKETING) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 });

type Outcome = { status: number; usage?: OpenAI.CompletionUsage; error?: { type: string; details: Record<string, unknown> } };

async function call(gateway: TestGateway, apiKey = MARKETING, body: object = LONG, path = '/v1/chat/completions'): Promise<Outcome & { headers: Headers }> {
  const res = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` }, body: JSON.stringify(body) });
  const json = (await res.json()) as { usage?: OpenAI.CompletionUsage; error?: Outcome['error'] };
  return { status: res.status, usage: json.usage, error: json.error, headers: res.headers };
}

/** `count` requests at once over the gateways (the official SDK); each settles to its status and usage. */
async function burst(gateways: TestGateway[], count: number, apiKey = MARKETING): Promise<Outcome[]> {
  const clients = gateways.map((g) => client(g, apiKey));
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      clients[i % clients.length].chat.completions.create(LONG).then(
        (answer) => ({ status: 200, usage: answer.usage }),
        (error: { status?: number; error?: Outcome['error'] }) => ({ status: error.status ?? 0, error: error.error }),
      ),
    ),
  );
}

const spentUsd = (outcomes: Outcome[]) => outcomes.reduce((sum, o) => sum + (o.usage ? o.usage.total_tokens * PRICE_PER_TOKEN : 0), 0);

async function budgets(gateway: TestGateway): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(`${gateway.url}/admin/usage`, { headers: { 'x-api-key': ADMIN } });
  return ((await res.json()) as { budgets: Array<Record<string, unknown>> }).budgets;
}

describe('budgets on a fleet of three gateways on one Redis', () => {
  let redis: RedisServer;
  let fleet: TestGateway[] = [];
  let prefixes = 0;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(fleet.map((g) => g.close()));
    fleet = [];
  });
  afterAll(async () => {
    await redis?.stop();
  });
  const startFleet = async (opts: Parameters<typeof yaml>[0] = {}) => {
    const shared = yaml({ ...opts, extra: `${opts.extra ?? ''}\nstate: {redis_url: "${redis.url}", key_prefix: "budgets${++prefixes}:"}` });
    for (let i = 0; i < 3; i++) fleet.push(await startTestGateway(shared));
    return fleet;
  };

  it('admits exactly what fits of a burst spread over the fleet, charges the real usage, then every instance refuses', async () => {
    // Answers take 2 s, so the whole burst arrives while the first are in flight.
    await startFleet({ latency: '2s' });
    const outcomes = await burst(fleet, 30);
    const admitted = outcomes.filter((o) => o.status === 200);
    expect(admitted).toHaveLength(2);
    expect(outcomes.filter((o) => o.status === 429)).toHaveLength(28);
    expect(outcomes.find((o) => o.status === 429)?.error).toMatchObject({ type: 'RateLimitError', details: { reason: 'budget_exceeded', scope: 'key', budget: 'marketing', window: 'monthly', limit_usd: 1 } });
    // Settled to the provider's own usage: the spend is what the answers say they used, priced.
    const charged = spentUsd(admitted);
    expect(charged).toBeGreaterThan(0.6);
    const row = (await budgets(fleet[1])).find((b) => b.budget === 'marketing');
    expect(row).toMatchObject({ scope: 'key', window: 'monthly', unit: 'usd', limit: 1 });
    expect(row?.spent as number).toBeCloseTo(charged, 9);
    // Spent ($0.61) + the next reservation ($0.41) do not fit: every instance refuses, with the reset time.
    const nextMonth = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1));
    for (const gateway of fleet) {
      const refused = await call(gateway);
      expect(refused.status).toBe(429);
      expect(refused.error?.details).toMatchObject({ reason: 'budget_exceeded', reset: nextMonth.toISOString() });
      expect(Number(refused.headers.get('x-hapax-budget-reset'))).toBeCloseTo((nextMonth.getTime() - Date.now()) / 1000, -1);
      expect(Number(refused.headers.get('x-hapax-budget-remaining'))).toBeCloseTo(1 - charged, 6);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    // Another key is not held back by marketing's budget.
    expect((await call(fleet[0], SALES)).status).toBe(200);
  });

  it('gives spend back as it leaves a rolling window', async () => {
    await startFleet({ keyBudgets: '[{window: rolling, period: 3s, usd: 1}]', latency: '0ms' });
    expect((await call(fleet[0])).status).toBe(200);
    expect((await call(fleet[1])).status).toBe(200);
    expect((await call(fleet[2])).status).toBe(429);
    await new Promise((r) => setTimeout(r, 4100));
    expect((await call(fleet[2])).status).toBe(200);
  });
});

describe('budgets per department, per route and in tokens (one gateway)', () => {
  let gateway: TestGateway;
  afterEach(async () => {
    await gateway?.close();
  });

  it('shows what is left in headers, warns once at the soft threshold and refuses with 402 when asked to', async () => {
    gateway = await startTestGateway(
      yaml({
        latency: '0ms',
        keyBudgets: '[{window: daily, usd: 1, soft: 0.5, status: 402}]',
        extra: 'budgets: {time_zone: Europe/Berlin}',
      }),
    );
    const first = await call(gateway);
    expect(first.status).toBe(200);
    // After the first settle ($0.306): $1 - $0.306, less the second's own reservation when it is in.
    const second = await call(gateway);
    expect(second.status).toBe(200);
    const remaining = Number(second.headers.get('x-hapax-budget-remaining'));
    expect(remaining).toBeCloseTo(1 - (first.usage?.total_tokens ?? 0) * PRICE_PER_TOKEN - 0.411, 2);
    expect(Number(second.headers.get('x-hapax-budget-reset'))).toBeGreaterThan(0);
    // The sales key has no budget: it is shown none of marketing's.
    const sales = await call(gateway, SALES);
    expect(sales.headers.get('x-hapax-budget-remaining')).toBeNull();
    const third = await call(gateway);
    expect(third.status).toBe(402);
    expect(third.error).toMatchObject({ type: 'RateLimitError', details: { reason: 'budget_exceeded', window: 'daily' } });
    expect(await metricSum(gateway.url, 'hapax_budget_soft_limit_total{')).toBe(1);
    expect(await metricSum(gateway.url, 'hapax_budget_refusals_total{')).toBe(1);
    expect(gateway.logs.filter((l) => l.msg === 'budget past its soft threshold')).toHaveLength(1);
  });

  it('caps a department across its routes, a route for every key, and tokens as well as dollars', async () => {
    gateway = await startTestGateway(
      yaml({
        latency: '0ms',
        keyBudgets: '[]',
        extra: `
budgets:
  labels:
    department: {marketing: [{window: weekly, usd: 0.5}]}
routes:
  - {path: /mkt/v1/chat/completions, handler: chat, metrics_labels: {department: marketing}}
  - {path: /mkt2/v1/chat/completions, handler: chat, metrics_labels: {department: marketing}}
  - {path: /eng/v1/chat/completions, handler: chat, metrics_labels: {department: engineering}, budgets: [{window: monthly, tokens: 500}]}
`,
      }),
    );
    // $0.5: one request ($0.306 settled) and then no other on either marketing route.
    expect((await call(gateway, MARKETING, LONG, '/mkt/v1/chat/completions')).status).toBe(200);
    const refused = await call(gateway, SALES, LONG, '/mkt2/v1/chat/completions');
    expect(refused.status).toBe(429);
    expect(refused.error?.details).toMatchObject({ scope: 'label', budget: 'department=marketing', window: 'weekly' });
    // 500 tokens on the engineering route: one answer (306 tokens) and then 306 + 411 reserved > 500.
    const eng = await call(gateway, SALES, LONG, '/eng/v1/chat/completions');
    expect(eng.status).toBe(200);
    expect(Number(eng.headers.get('x-hapax-budget-remaining-tokens'))).toBe(500 - 411);
    const engRefused = await call(gateway, MARKETING, LONG, '/eng/v1/chat/completions');
    expect(engRefused.error?.details).toMatchObject({ scope: 'route', budget: '/eng/v1/chat/completions', limit_tokens: 500, spent_tokens: eng.usage?.total_tokens });
    const rows = await budgets(gateway);
    expect(rows.map((r) => [r.scope, r.budget, r.unit])).toEqual([
      ['label', 'department=marketing', 'usd'],
      ['route', '/eng/v1/chat/completions', 'tokens'],
    ]);
  });

  it('takes budgets on keys made through the admin API, and refuses bad ones with the field', async () => {
    gateway = await startTestGateway(yaml({ latency: '0ms' }).replace('/tmp/hapax-budgets-test-unused', mkdtempSync(join(tmpdir(), 'hapax-budgets-'))));
    const admin = { 'content-type': 'application/json', 'x-api-key': ADMIN };
    const bad = await fetch(`${gateway.url}/admin/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'intern', budgets: [{ window: 'monthly', usd: -5 }] }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'ValidationError', details: { field: 'budgets.0.usd' } } });
    const created = await fetch(`${gateway.url}/admin/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'intern', budgets: [{ window: 'daily', usd: 0.5 }] }) });
    expect(created.status).toBe(201);
    const { key, budgets: stored } = (await created.json()) as { key: string; budgets: unknown[] };
    expect(stored).toEqual([{ window: 'daily', usd: 0.5, soft: 0.8, status: 429 }]);
    expect((await call(gateway, key)).status).toBe(200);
    expect((await call(gateway, key)).status).toBe(429);
    expect((await budgets(gateway)).find((b) => b.budget === 'intern')).toMatchObject({ scope: 'key', limit: 0.5, window: 'daily' });
  });
});

describe('budgets in the console, in a real browser', () => {
  let gateway: TestGateway;
  afterEach(async () => {
    await gateway?.close();
  });

  it('shows each budget with its spend, and a warning badge past the soft threshold, live', async () => {
    gateway = await startTestGateway(yaml({ latency: '0ms', keyBudgets: '[{window: monthly, usd: 1, soft: 0.5}]' }));
    const profile = mkdtempSync(join(tmpdir(), 'hapax-budgets-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const first = await call(gateway);
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      expect((await page.goto(`${gateway.url}/console?key=${ADMIN}`))?.status()).toBe(200);
      const row = page.locator('tr[data-budget="key:marketing:monthly:usd"]');
      const spent = `$${((first.usage?.total_tokens ?? 0) * PRICE_PER_TOKEN).toFixed(2)}`;
      await expect.poll(() => row.locator('td').nth(2).textContent(), { timeout: 10_000 }).toBe(spent);
      expect(await row.locator('td').nth(3).textContent()).toBe('$1.00');
      expect(await row.locator('.badge').textContent()).toBe('31%');
      // A second answer takes it past half: the badge turns to a warning without a reload.
      expect((await call(gateway)).status).toBe(200);
      await expect.poll(() => row.locator('.badge').textContent(), { timeout: 10_000 }).toBe('warning');
      expect(problems).toEqual([]);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('charged exactly once: failovers, cache hits and cached prompt tokens', () => {
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;
  beforeAll(async () => {
    primary = await startFakeOpenAI({ name: 'primary', autoPromptCache: true });
    backup = await startFakeOpenAI({ name: 'backup', autoPromptCache: true });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", api_key: sk-p, models: [gpt-4o-mini]}
  backup: {type: openai, base_url: "${backup.url}", api_key: sk-b, models: [gpt-4o-mini]}
provider_preference: [primary, backup]
retry: {max_retries: 0}
cache: {enabled: true}
pricing:
  gpt-4o-mini: {input: 1000, output: 2000, cached_input: 100}
auth:
  enabled: true
  key_file: /tmp/hapax-budgets-test-unused/keys.json
  keys:
    - {name: marketing, key: ${MARKETING}, budgets: [{window: monthly, usd: 100}]}
admin: {key: ${ADMIN}}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await primary?.close();
    await backup?.close();
  });

  /** What the provider's own usage costs at the test's prices (cached prompt tokens at $100 per million). */
  const priced = (usage: OpenAI.CompletionUsage) => {
    const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
    return ((usage.prompt_tokens - cached) * 1000 + cached * 100 + usage.completion_tokens * 2000) / 1_000_000;
  };
  const spent = async () => (await budgets(gateway)).find((b) => b.budget === 'marketing')?.spent as number;
  const prompt = (ending: string) => ({
    model: 'gpt-4o-mini',
    max_tokens: 30,
    messages: [
      { role: 'system' as const, content: 'A long shared preamble. '.repeat(60) },
      { role: 'user' as const, content: ending },
    ],
  });

  it('charges the answering attempt only, nothing for a cache hit, and cached prompt tokens at their price', async () => {
    primary.queueFaults({ kind: 'status', status: 500 });
    const failedOver = await call(gateway, MARKETING, prompt('first'));
    expect(failedOver.status).toBe(200);
    expect(failedOver.headers.get('x-hapax-attempts')).toBe('2');
    expect(failedOver.headers.get('x-hapax-provider')).toBe('backup');
    await expect.poll(spent).toBeCloseTo(priced(failedOver.usage as OpenAI.CompletionUsage), 9);

    // The same request again: answered from the response cache, free.
    const before = await spent();
    const hit = await call(gateway, MARKETING, prompt('first'));
    expect(hit.headers.get('x-hapax-cache')).toBe('hit');
    await new Promise((r) => setTimeout(r, 50));
    expect(await spent()).toBeCloseTo(before, 9);

    // The same preamble twice on the primary: the second time it reads it from its prompt cache, priced as such.
    const uncached = await call(gateway, MARKETING, prompt('second'));
    const cachedPrompt = await call(gateway, MARKETING, prompt('third'));
    expect(cachedPrompt.headers.get('x-hapax-provider')).toBe('primary');
    expect(cachedPrompt.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
    const expected = before + priced(uncached.usage as OpenAI.CompletionUsage) + priced(cachedPrompt.usage as OpenAI.CompletionUsage);
    await expect.poll(spent).toBeCloseTo(expected, 9);
  });
});

describe('hapax keys create --budget', () => {
  const hapax = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/hapax.js'), ...args], { timeout: 15_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('stores the budgets it is given and refuses ones that are not budgets', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'hapax-budgets-cli-'));
    const file = join(dir, 'keys.json');
    try {
      const created = await hapax(['keys', 'create', '--file', file, '--name', 'intern', '--budget', '5/daily', '--budget', '200000tokens/rolling=1h']);
      expect(created.code).toBe(0);
      const listed = JSON.parse((await hapax(['keys', 'list', '--file', file, '--json'])).stdout) as Array<{ budgets: unknown }>;
      expect(listed[0].budgets).toEqual([
        { window: 'daily', usd: 5, soft: 0.8, status: 429 },
        { window: 'rolling', period: 3_600_000, tokens: 200000, soft: 0.8, status: 429 },
      ]);
      expect((await hapax(['keys', 'list', '--file', file])).stdout).toContain('budget=$5/daily budget=200000tokens/rolling=3600000ms');
      const unknownWindow = await hapax(['keys', 'create', '--file', file, '--name', 'other', '--budget', '5/fortnightly']);
      expect(unknownWindow.code).not.toBe(0);
      expect(unknownWindow.stderr).toContain('expected a budget such as 50/monthly');
      const noPeriod = await hapax(['keys', 'create', '--file', file, '--name', 'other', '--budget', '5/rolling']);
      expect(noPeriod.code).not.toBe(0);
      expect(noPeriod.stderr).toContain('budgets.0.period');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('budget config', () => {
  const refused = (text: string): string => {
    try {
      parseConfig(`providers: {mock: {type: mock}}\n${text}\n`);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('refuses negative or non-numeric caps, unknown windows and time zones, with the key path', () => {
    expect(refused('budgets: {per_key: [{window: monthly, usd: -1}]}')).toContain('budgets.per_key[0].usd');
    expect(refused('budgets: {per_key: [{window: monthly, usd: lots}]}')).toContain('budgets.per_key[0].usd');
    expect(refused('budgets: {per_key: [{window: fortnightly, usd: 5}]}')).toContain('budgets.per_key[0].window');
    expect(refused('budgets: {time_zone: Mars/Olympus}')).toContain('budgets.time_zone');
    expect(refused('budgets: {per_key: [{window: rolling, usd: 5}]}')).toContain('budgets.per_key[0].period');
    expect(refused('budgets: {per_key: [{window: daily}]}')).toContain('budgets.per_key[0]');
    expect(refused('routes: [{path: /x, handler: chat, budgets: [{window: daily, tokens: 1.5}]}]')).toContain('routes[0].budgets[0].tokens');
  });

  it('keeps what was spent when a reload changes the budget', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hapax-budget-reload-'));
    const file = join(dir, 'hapax.yaml');
    writeFileSync(file, yaml({ latency: '0ms', keyBudgets: '[{window: monthly, usd: 1}]' }));
    const gateway = await startGateway({ loaded: await loadConfigFile(file), configFile: file, watch: false, port: 0, host: '127.0.0.1', logDestination: new Writable({ write: (_c, _e, cb) => cb() }) });
    try {
      const url = `http://127.0.0.1:${(gateway.app.server.address() as { port: number }).port}`;
      const asMarketing = () => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${MARKETING}` }, body: JSON.stringify(LONG) });
      expect((await asMarketing()).status).toBe(200);
      writeFileSync(file, yaml({ latency: '0ms', keyBudgets: '[{window: monthly, usd: 0.7}]' }));
      expect(await gateway.reload('signal')).toMatchObject({ ok: true });
      // $0.306 spent before the reload + $0.411 reserved > $0.7.
      expect((await asMarketing()).status).toBe(429);
    } finally {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
