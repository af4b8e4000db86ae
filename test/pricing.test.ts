/**
 * Prices that ship and the reports built on them, through real HTTP with the official SDKs: what each answer
 * is charged is the shipped (or configured) price times the usage the fake providers themselves reported;
 * a model without a price is counted and flagged, never $0 in silence; GET /admin/usage groups the spend by
 * key, label, route, provider, model and day, as JSON or CSV, for the admin only, with memory and Redis
 * state; a managed key's budgets change in place and keep what was spent.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';
import { PRICE_SHEETS } from '../src/observability/price-table.ts';

const ADMIN = 'admin-secret-0123456789';
const MARKETING = 'marketing-key-0123456789';
const SUPPORT = 'support-key-0123456789';

/** A shipped price, read from the table Hapax ships (the figures under test are its, not the test's). */
const shipped = (model: string) => {
  for (const sheet of PRICE_SHEETS) if (sheet.models[model]) return sheet.models[model];
  throw new Error(`no shipped price for ${model}`);
};

const admin = (gateway: TestGateway, path: string, init: RequestInit = {}) =>
  fetch(`${gateway.url}${path}`, { ...init, headers: { 'x-api-key': ADMIN, 'content-type': 'application/json', ...(init.headers ?? {}) } });

interface ReportRow {
  key?: string;
  label?: string;
  route?: string;
  provider?: string;
  model?: string;
  day?: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number;
  unpriced_requests: number;
}

async function report(gateway: TestGateway, query: string): Promise<ReportRow[]> {
  const res = await admin(gateway, `/admin/usage?${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { report: { rows: ReportRow[] } }).report.rows;
}

const requestLines = (gateway: TestGateway) => gateway.logs.filter((l) => l.msg === 'request' && typeof l.route === 'string' && !String(l.route).startsWith('/admin'));

describe('shipped prices, unpriced models and usage reports (memory state)', () => {
  let openai: FakeProvider;
  let anthropic: FakeProvider;
  let house: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    openai = await startFakeOpenAI({ name: 'openai', autoPromptCache: true, reply: () => 'a fairly short answer from the fake' });
    anthropic = await startFakeAnthropic({ name: 'anthropic', reply: () => 'an answer from the fake claude' });
    house = await startFakeOpenAI({ name: 'house', reply: () => 'home grown' });
    gateway = await startTestGateway(`
providers:
  openai: {type: openai, base_url: "${openai.url}", api_key: sk-test, models: [gpt-4o-mini]}
  anthropic: {type: anthropic, base_url: "${anthropic.url}", api_key: sk-ant-test, models: [claude-sonnet-4-5-20250929]}
  house: {type: openai_compatible, base_url: "${house.url}", models: [house-model], lossless: false}
routes:
  - {path: /marketing/v1/chat/completions, handler: chat, metrics_labels: {department: marketing}}
  - {path: /support/v1/messages, handler: messages, metrics_labels: {department: support}}
  - {path: /v1/chat/completions, handler: chat}
auth:
  enabled: true
  key_file: /tmp/hapax-pricing-test-unused/keys.json
  keys:
    - {name: marketing, key: ${MARKETING}}
    - {name: support, key: ${SUPPORT}}
admin: {key: ${ADMIN}}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([openai, anthropic, house].map((f) => f?.close()));
  });

  it('charges an OpenAI answer at the shipped price, cached prompt tokens at the cached price', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/marketing/v1`, apiKey: MARKETING, maxRetries: 0 });
    const system = { role: 'system' as const, content: 'Background the model reads every time. '.repeat(60) };
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [system, { role: 'user', content: 'Question: what now?' }] });
    const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [system, { role: 'user', content: 'And then?' }], max_tokens: 40 });
    const price = shipped('gpt-4o-mini');
    const cost = (u: OpenAI.CompletionUsage) => {
      const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
      return ((u.prompt_tokens - cached) * price.input + cached * (price.cached_input as number) + u.completion_tokens * price.output) / 1e6;
    };
    // The fake cached the prefix on the first call and read it on the second: both prices are exercised.
    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
    await expect.poll(() => requestLines(gateway).length).toBeGreaterThanOrEqual(2);
    const [a, b] = requestLines(gateway).slice(-2);
    expect(a).toMatchObject({ key: 'marketing', priced: true });
    expect(a.cost_usd as number).toBeCloseTo(cost(first.usage as OpenAI.CompletionUsage), 12);
    expect(b.cost_usd as number).toBeCloseTo(cost(second.usage as OpenAI.CompletionUsage), 12);

    const rows = await report(gateway, 'group_by=key,label,provider,model');
    const row = rows.find((r) => r.key === 'marketing');
    expect(row).toMatchObject({ label: 'department=marketing', provider: 'openai', model: 'gpt-4o-mini', requests: 2, unpriced_requests: 0 });
    expect(row?.input_tokens).toBe((first.usage?.prompt_tokens ?? 0) + (second.usage?.prompt_tokens ?? 0));
    expect(row?.cache_read_tokens).toBe((first.usage?.prompt_tokens_details?.cached_tokens ?? 0) + (second.usage?.prompt_tokens_details?.cached_tokens ?? 0));
    // Kept in nano-dollars: the sum is exact to the ninth decimal.
    expect(row?.cost_usd).toBeCloseTo(cost(first.usage as OpenAI.CompletionUsage) + cost(second.usage as OpenAI.CompletionUsage), 9);
  });

  it('charges a dated Claude id at its model, cache writes and reads at their prices', async () => {
    const client = new Anthropic({ baseURL: `${gateway.url}/support`, apiKey: SUPPORT, maxRetries: 0 });
    const system = [{ type: 'text' as const, text: 'You answer support tickets for a bakery. '.repeat(50), cache_control: { type: 'ephemeral' as const } }];
    const ask = () => client.messages.create({ model: 'claude-sonnet-4-5-20250929', max_tokens: 64, system, messages: [{ role: 'user', content: 'Where is my cake?' }] });
    const first = await ask();
    const second = await ask();
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(second.usage.cache_read_input_tokens).toBeGreaterThan(0);
    const price = shipped('claude-sonnet-4-5');
    const cost = (u: Anthropic.Usage) =>
      (u.input_tokens * price.input + (u.cache_creation_input_tokens ?? 0) * (price.cache_write as number) + (u.cache_read_input_tokens ?? 0) * (price.cached_input as number) + u.output_tokens * price.output) / 1e6;
    await expect.poll(() => requestLines(gateway).filter((l) => l.key === 'support').length).toBe(2);
    const lines = requestLines(gateway).filter((l) => l.key === 'support');
    expect(lines[0].cost_usd as number).toBeCloseTo(cost(first.usage), 12);
    expect(lines[1].cost_usd as number).toBeCloseTo(cost(second.usage), 12);
    const [row] = await report(gateway, 'group_by=route,model&key=support');
    expect(row).toMatchObject({ route: '/support/v1/messages', model: 'claude-sonnet-4-5-20250929', requests: 2, cache_write_tokens: first.usage.cache_creation_input_tokens });
    expect(row.cost_usd).toBeCloseTo(cost(first.usage) + cost(second.usage), 9);
  });

  it('counts and flags an answer from a model without a price instead of pricing it at zero', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: MARKETING, maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: 'house-model', messages: [{ role: 'user', content: 'hi' }] });
    await client.chat.completions.create({ model: 'house-model', messages: [{ role: 'user', content: 'hi again' }] });
    await expect.poll(() => requestLines(gateway).filter((l) => l.model === 'house-model').length).toBe(2);
    const line = requestLines(gateway).find((l) => l.model === 'house-model');
    expect(line).toMatchObject({ priced: false, tokens: { prompt: answer.usage?.prompt_tokens } });
    expect(line?.cost_usd).toBeUndefined();
    // Logged once per model, not once per request.
    expect(gateway.logs.filter((l) => String(l.msg).startsWith('model has no price') && l.model === 'house-model')).toHaveLength(1);
    const metrics = await scrape(`${gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_unpriced_requests_total', { provider: 'house', model: 'house-model' })).toBe(2);
    const [row] = (await report(gateway, 'group_by=provider,model')).filter((r) => r.provider === 'house');
    expect(row).toMatchObject({ requests: 2, unpriced_requests: 2, cost_usd: 0 });
    const state = (await (await admin(gateway, '/console/api/state')).json()) as { usage: { priced: boolean; unpriced_requests: number; unpriced_models: unknown[] } };
    expect(state.usage).toMatchObject({ priced: false, unpriced_requests: 2, unpriced_models: [{ model: 'house/house-model', requests: 2 }] });
  });

  it('groups by day and route, writes CSV, and refuses what it cannot do by name', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const byDay = await report(gateway, `group_by=day&from=${today}&to=${today}`);
    expect(byDay).toHaveLength(1);
    expect(byDay[0]).toMatchObject({ day: today, requests: 6 });
    expect(await report(gateway, 'group_by=day&from=2001-01-01&to=2001-01-31')).toEqual([]);

    const csv = await admin(gateway, '/admin/usage?group_by=key,label&format=csv');
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trimEnd().split('\r\n');
    expect(lines[0]).toBe('key,label,requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,total_tokens,cost_usd,unpriced_requests');
    expect(lines.some((l) => l.startsWith('marketing,department=marketing,2,'))).toBe(true);
    expect(lines.some((l) => l.startsWith('support,department=support,2,'))).toBe(true);

    for (const [query, field] of [
      ['group_by=key,team', 'group_by'],
      ['from=yesterday', 'from'],
      ['format=xml', 'format'],
      ['groupby=key', 'groupby'],
    ]) {
      const res = await admin(gateway, `/admin/usage?${query}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { type: string; message: string } };
      expect(body.error.type).toBe('ValidationError');
      expect(body.error.message).toContain(field);
    }
  });

  it('shows the report to the admin only: a client key cannot read anyone else\'s usage', async () => {
    const asClient = await fetch(`${gateway.url}/admin/usage?key=support`, { headers: { authorization: `Bearer ${MARKETING}` } });
    expect(asClient.status).toBe(401);
    expect(await asClient.text()).not.toContain('department=support');
    expect((await fetch(`${gateway.url}/admin/usage`)).status).toBe(401);
  });
});

describe('config pricing over the shipped table', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'vllm', reply: () => 'the considered answer' });
    gateway = await startTestGateway(`
providers:
  vllm: {type: openai_compatible, base_url: "${upstream.url}", models: [thinker-1, gpt-4o-mini]}
pricing:
  "thinker-*": {input: 1, output: 2, reasoning: 8}
  "vllm/gpt-4o-*": {input: 0.01, output: 0.02}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('prices by pattern, reasoning tokens at their own price, and a provider/pattern entry over the shipped price', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const thought = await client.chat.completions.create({ model: 'thinker-1', reasoning_effort: 'low', messages: [{ role: 'user', content: 'think first' }] });
    const reasoning = thought.usage?.completion_tokens_details?.reasoning_tokens ?? 0;
    expect(reasoning).toBeGreaterThan(0);
    const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'quick' }] });
    await expect.poll(() => requestLines(gateway).length).toBe(2);
    const [a, b] = requestLines(gateway);
    const u = thought.usage as OpenAI.CompletionUsage;
    expect(a.cost_usd as number).toBeCloseTo((u.prompt_tokens * 1 + (u.completion_tokens - reasoning) * 2 + reasoning * 8) / 1e6, 12);
    // The config's `vllm/gpt-4o-*` wins over the shipped gpt-4o-mini price.
    const p = plain.usage as OpenAI.CompletionUsage;
    expect(b.cost_usd as number).toBeCloseTo((p.prompt_tokens * 0.01 + p.completion_tokens * 0.02) / 1e6, 12);
  });
});

describe('changing a managed key\'s budgets', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  const dir = `/tmp/hapax-pricing-keys-${process.pid}`;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'openai', reply: () => 'ten words in this answer so that tokens are spent here' });
    gateway = await startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}", api_key: sk-test, models: [gpt-4o]}
auth: {enabled: true, key_file: ${dir}/keys.json}
admin: {key: ${ADMIN}}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('PATCH replaces the budget in place, and what was spent in the window still counts', async () => {
    const created = await admin(gateway, '/admin/keys', { method: 'POST', body: JSON.stringify({ name: 'intern', budgets: [{ window: 'daily', usd: 5 }] }) });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 });
    const ask = () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 20, messages: [{ role: 'user', content: 'say something' }] });
    const answer = await ask();
    const price = shipped('gpt-4o');
    const spent = ((answer.usage?.prompt_tokens ?? 0) * price.input + (answer.usage?.completion_tokens ?? 0) * price.output) / 1e6;
    const budget = async () => ((await (await admin(gateway, '/admin/usage')).json()) as { budgets: Array<{ budget: string; spent: number; limit: number }> }).budgets.find((b) => b.budget === 'intern');
    await expect.poll(async () => (await budget())?.spent).toBeCloseTo(spent, 9);

    // A cap just above what was spent: the next request's reservation does not fit.
    const patched = await admin(gateway, '/admin/keys/intern', { method: 'PATCH', body: JSON.stringify({ budgets: [{ window: 'daily', usd: spent + 0.000001 }] }) });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ name: 'intern', budgets: [{ window: 'daily', usd: spent + 0.000001 }], updated: expect.any(String) });
    expect(await budget()).toMatchObject({ limit: spent + 0.000001 });
    expect((await budget())?.spent).toBeCloseTo(spent, 9);
    const refused = await ask().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as InstanceType<typeof OpenAI.RateLimitError>).message).toContain('budget exceeded');

    // Raised again: admitted, the same key and secret.
    expect((await admin(gateway, '/admin/keys/intern', { method: 'PATCH', body: JSON.stringify({ budgets: [{ window: 'daily', usd: 10 }] }) })).status).toBe(200);
    await expect(ask()).resolves.toBeTruthy();

    const bad = await admin(gateway, '/admin/keys/intern', { method: 'PATCH', body: JSON.stringify({ budgets: [{ window: 'daily', usd: -1 }] }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('budgets.0.usd');
    const unknown = await admin(gateway, '/admin/keys/nobody', { method: 'PATCH', body: JSON.stringify({ budgets: [] }) });
    expect(unknown.status).toBe(404);
  });
});

describe('usage reports across a fleet on one Redis', () => {
  let redis: RedisServer;
  let upstream: FakeProvider;
  const fleet: TestGateway[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startFakeOpenAI({ name: 'openai', reply: () => 'shared answer' });
    for (let i = 0; i < 2; i++) {
      fleet.push(
        await startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}", api_key: sk-test, models: [gpt-4.1-mini]}
routes:
  - {path: /support/v1/chat/completions, handler: chat, metrics_labels: {department: support}}
auth: {enabled: true, keys: [{name: support, key: ${SUPPORT}}, {name: marketing, key: ${MARKETING}}]}
state: {redis_url: "${redis.url}", key_prefix: "pricing-fleet:"}
admin: {key: ${ADMIN}}
`),
      );
    }
  });
  afterAll(async () => {
    for (const gateway of fleet) await gateway.close();
    await upstream?.close();
    await redis?.stop();
  });

  it('adds up every instance\'s spend by key and label, priced from the shipped table', async () => {
    const price = shipped('gpt-4.1-mini');
    let support = 0;
    let marketing = 0;
    for (let i = 0; i < 6; i++) {
      const key = i % 3 === 0 ? MARKETING : SUPPORT;
      const client = new OpenAI({ baseURL: `${fleet[i % 2].url}/support/v1`, apiKey: key, maxRetries: 0 });
      const answer = await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: `question ${i}` }] });
      const cost = ((answer.usage?.prompt_tokens ?? 0) * price.input + (answer.usage?.completion_tokens ?? 0) * price.output) / 1e6;
      if (key === MARKETING) marketing += cost;
      else support += cost;
    }
    const rows = async () => (await (await admin(fleet[1], '/admin/usage?group_by=key,label')).json()) as { scope: string; report: { rows: ReportRow[] } };
    await expect.poll(async () => (await rows()).report.rows.map((r) => r.requests), { timeout: 5000 }).toEqual([2, 4]);
    const body = await rows();
    expect(body.scope).toBe('shared');
    const [m, s] = body.report.rows;
    expect(m).toMatchObject({ key: 'marketing', label: 'department=support' });
    expect(s).toMatchObject({ key: 'support', label: 'department=support' });
    expect(m.cost_usd).toBeCloseTo(marketing, 9);
    expect(s.cost_usd).toBeCloseTo(support, 9);
  });

  it('updates a managed key in Redis on one instance, and the other serves the new budget', async () => {
    const created = await admin(fleet[0], '/admin/keys', { method: 'POST', body: JSON.stringify({ name: 'temp', budgets: [{ window: 'daily', tokens: 100000 }] }) });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const client = new OpenAI({ baseURL: `${fleet[0].url}/support/v1`, apiKey: key, maxRetries: 0 });
    await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'spend a little' }] });
    const patched = await admin(fleet[1], '/admin/keys/temp', { method: 'PATCH', body: JSON.stringify({ budgets: [{ window: 'daily', tokens: 1 }] }) });
    expect(patched.status).toBe(200);
    const listed = (await (await admin(fleet[0], '/admin/keys')).json()) as { keys: Array<{ name: string; budgets: unknown }> };
    expect(listed.keys.find((k) => k.name === 'temp')?.budgets).toEqual([{ window: 'daily', tokens: 1, soft: 0.8, status: 429 }]);
    await expect.poll(async () => (await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'again' }] }).then(() => 'admitted', (e: unknown) => (e instanceof OpenAI.RateLimitError ? 'refused' : String(e)))), { timeout: 3000 }).toBe('refused');
  });
});
