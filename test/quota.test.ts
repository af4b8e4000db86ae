/**
 * Reserve, then settle: tokens-per-minute limits hold under a burst of concurrent long requests, in one
 * process and across three gateways on one Redis, because each request reserves its estimated tokens
 * before going upstream and settles to its real usage when it ends.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { windowClock } from '../src/gateway/quota-window.ts';
import { estimateRequest } from '../src/gateway/usage-estimate.ts';
import { loadTokenizer, rememberedCount } from '../src/gateway/token-count.ts';
import { MemoryQuota } from '../src/state/quota.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';

const KEY = 'tpm-key-0123456789';
/** Each request reserves ~10 input tokens plus max_tokens 200: 4 fit in 1000, a 5th does not (and 4 × ~210 leaves room for no 5th). */
const LONG = { model: '', max_tokens: 200, messages: [{ role: 'user' as const, content: 'write me a long story' }] };

function yaml(extra = '', latency = '400ms'): string {
  return `
providers:
  mock: {type: mock, latency: ${latency}}
auth:
  enabled: true
  key_file: /tmp/hapax-quota-test-unused/keys.json
  keys:
    - {name: burst, key: ${KEY}, rate_limit: {tokens_per_minute: 1000}}
${extra}
`;
}

const client = (gateway: TestGateway) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: KEY, maxRetries: 0 });

/** `count` requests at once, spread round-robin over the gateways; each settles to its status. */
async function burst(gateways: TestGateway[], count: number): Promise<number[]> {
  const clients = gateways.map(client);
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      clients[i % clients.length].chat.completions.create(LONG).then(
        () => 200,
        (error: { status?: number }) => error.status ?? 0,
      ),
    ),
  );
}

describe('the quota ledger', () => {
  it('reserves on every counter or on none', () => {
    const ledger = new MemoryQuota();
    const charge = (counter: string, amount: number, limit: number) => ({ counter, amount, limit, bucket: 1, from: 1, ttlMs: 60_000 });
    expect(ledger.reserveNow([charge('a', 6, 10), charge('b', 6, 10)])).toEqual({ ok: true, used: [0, 0] });
    // b has room, a does not: nothing is taken from b either.
    expect(ledger.reserveNow([charge('b', 4, 10), charge('a', 6, 10)])).toEqual({ ok: false, index: 1, used: 6 });
    expect(ledger.reserveNow([charge('b', 4, 10)])).toEqual({ ok: true, used: [6] });
  });

  it('drops buckets that left the window', async () => {
    const ledger = new MemoryQuota();
    await ledger.reserve([{ counter: 'r', amount: 5, limit: 10, bucket: 1, from: 0, ttlMs: 60_000 }]);
    await ledger.reserve([{ counter: 'r', amount: 5, limit: 10, bucket: 2, from: 1, ttlMs: 60_000 }]);
    expect(await ledger.used('r', 2)).toBe(5);
    expect((await ledger.reserve([{ counter: 'r', amount: 5, limit: 10, bucket: 3, from: 2, ttlMs: 60_000 }])).ok).toBe(true);
  });
});

describe('estimating a request before it goes upstream', () => {
  const count = (text: string) => countTokens(text);

  it("reserves each client API's output cap, times n, else the default", () => {
    const messages = [{ role: 'user', content: 'hello there' }];
    expect(estimateRequest({ messages, max_tokens: 100 }, count, 512).outputTokens).toBe(100);
    expect(estimateRequest({ messages, max_completion_tokens: 70, n: 3 }, count, 512).outputTokens).toBe(210);
    expect(estimateRequest({ input: 'hello there', max_output_tokens: 40 }, count, 512).outputTokens).toBe(40);
    expect(estimateRequest({ messages, options: { num_predict: 33 } }, count, 512).outputTokens).toBe(33);
    expect(estimateRequest({ messages }, count, 512)).toMatchObject({ outputTokens: 512, inputTokens: count('hello there') + 6 });
  });

  it("remembers long texts' counts, so an agent's repeated context leaves the tokenizing budget to what is new", async () => {
    const tokenizer = await loadTokenizer();
    const words = (seed: string, n: number) => Array.from({ length: n }, (_, i) => `${seed}${i.toString(36)}`).join(' ');
    const context = words('ctx', 3000); // ~20K characters, under the 32K budget alone
    const fresh = words('new', 3000); // as long again: the two together are over it
    expect(context.length + fresh.length).toBeGreaterThan(32_768);
    const first = estimateRequest({ messages: [{ role: 'user', content: context }] }, tokenizer, 0);
    expect(first.inputTokens).toBe(countTokens(context) + 6);
    // Next turn: the context again plus as much new text. Without the remembered count the new text would be
    // past the budget and estimated at 3 characters a token; with it, both are exact.
    const next = estimateRequest({ messages: [{ role: 'user', content: context }, { role: 'user', content: fresh }] }, tokenizer, 0);
    expect(next.inputTokens).toBe(countTokens(context) + countTokens(fresh) + 9);
    expect(rememberedCount(fresh)).toBe(countTokens(fresh));
    expect(rememberedCount('short text')).toBeUndefined();
  });

  it('counts what the model reads: system, messages, tools and their schemas; images at a fixed figure, not their bytes', () => {
    const image = 'iVBORw0KGgo'.repeat(5000);
    const anthropic = {
      model: 'claude-x',
      max_tokens: 10,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: image } }] }],
      tools: [{ name: 'lookup', description: 'Looks things up', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }],
    };
    const estimate = estimateRequest(anthropic, count, 512);
    expect(estimate.model).toBe('claude-x');
    const text = count(['What is this?', 'Be brief.', 'lookup', 'Looks things up'].join('\n'));
    const schema = count(JSON.stringify(anthropic.tools[0].input_schema));
    // One message framed (3) + the reply primed (3) + the text + the schema + 1600 for the image.
    expect(estimate.inputTokens).toBeGreaterThanOrEqual(6 + text + 1600);
    expect(estimate.inputTokens).toBeLessThanOrEqual(6 + text + schema + 1600 + 4);
    expect(estimateRequest('not an object', count, 5)).toEqual({ inputTokens: 3, outputTokens: 5 });
  });
});

describe('calendar and rolling windows', () => {
  it('starts days, weeks (Monday) and months at local midnight in the configured time zone', () => {
    // 2026-03-29 is the day Berlin moves to summer time (02:00 → 03:00).
    const now = Date.parse('2026-03-29T12:00:00Z');
    expect(new Date(windowClock('daily', { timeZone: 'Europe/Berlin' }).at(now).resetAt).toISOString()).toBe('2026-03-29T22:00:00.000Z');
    const daily = windowClock('daily', { timeZone: 'Europe/Berlin' }).at(now);
    expect(new Date(daily.bucket * 1000).toISOString()).toBe('2026-03-28T23:00:00.000Z');
    const weekly = windowClock('weekly', { timeZone: 'Europe/Berlin' }).at(now);
    expect(new Date(weekly.bucket * 1000).toISOString()).toBe('2026-03-22T23:00:00.000Z'); // Monday 23 March, 00:00 CET
    expect(new Date(weekly.resetAt).toISOString()).toBe('2026-03-29T22:00:00.000Z'); // Monday 30 March, 00:00 CEST
    const monthly = windowClock('monthly', { timeZone: 'America/New_York' }).at(Date.parse('2026-12-31T23:30:00-05:00'));
    expect(new Date(monthly.bucket * 1000).toISOString()).toBe('2026-12-01T05:00:00.000Z');
    expect(new Date(monthly.resetAt).toISOString()).toBe('2027-01-01T05:00:00.000Z');
    const utc = windowClock('monthly').at(Date.parse('2027-02-10T00:00:00Z'));
    expect(new Date(utc.resetAt).toISOString()).toBe('2027-03-01T00:00:00.000Z');
  });

  it('moves to the next window exactly at its end (an injected clock)', () => {
    const clock = windowClock('daily', { timeZone: 'Asia/Tokyo' });
    const end = Date.parse('2026-06-01T15:00:00Z'); // midnight in Tokyo
    const before = clock.at(end - 1);
    const after = clock.at(end);
    expect(before.resetAt).toBe(end);
    expect(after.from).toBe(end / 1000);
    expect(after.from).toBeGreaterThan(before.bucket);
  });

  it('lets spend leave a rolling window one slice at a time', () => {
    const clock = windowClock('rolling', { periodMs: 3_600_000 });
    const at = clock.at(10 * 3_600_000);
    // 60 slices of a minute: the oldest counted slice is 59 minutes back.
    expect(at.bucket - at.from).toBe(59);
    expect(clock.at(11 * 3_600_000).from).toBe(at.bucket + 1);
  });
});

describe('tokens per minute under a burst', () => {
  let running: TestGateway[] = [];
  afterEach(async () => {
    await Promise.all(running.map((g) => g.close()));
    running = [];
  });

  it('admits exactly what fits from 50 concurrent long requests, then gives back what they did not use', async () => {
    // Answers take 2 s, so all 50 arrive while the first are in flight (on a busy machine too).
    const gateway = await startTestGateway(yaml('', '2s'));
    running.push(gateway);
    // Charged after the answer, all 50 would pass: none has an answer when the others arrive.
    const statuses = await burst([gateway], 50);
    expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(46);
    // Settled to the real usage (~20 tokens each): the minute has room again.
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify(LONG),
    });
    expect(res.status).toBe(200);
    const remaining = Number(res.headers.get('x-ratelimit-remaining-tokens'));
    expect(remaining).toBeGreaterThan(1000 - 5 * 260);
    expect(remaining).toBeLessThan(1000 - 210);
    expect(Number(res.headers.get('x-ratelimit-reset-tokens'))).toBeGreaterThan(0);
  });

  it('refuses in the client dialect with the reservation, the limit and when to retry', async () => {
    const gateway = await startTestGateway(yaml());
    running.push(gateway);
    const huge = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ ...LONG, max_tokens: 5000 }),
    });
    expect(huge.status).toBe(429);
    expect(Number(huge.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(huge.headers.get('x-ratelimit-limit-tokens')).toBe('1000');
    const body = (await huge.json()) as { error: { type: string; details: Record<string, number> } };
    expect(body.error.type).toBe('RateLimitError');
    expect(body.error.details.limit).toBe(1000);
    expect(body.error.details.reserved_tokens).toBeGreaterThan(5000);
    // Nothing was reserved by the refused request: a normal one still fits.
    await expect(client(gateway).chat.completions.create(LONG)).resolves.toBeTruthy();
  });

  it('releases the reservation of a request whose client leaves before the answer', async () => {
    const gateway = await startTestGateway(yaml());
    running.push(gateway);
    const controllers = Array.from({ length: 4 }, () => new AbortController());
    const pending = controllers.map((c) => client(gateway).chat.completions.create(LONG, { signal: c.signal }).catch(() => 'aborted'));
    await new Promise((r) => setTimeout(r, 150));
    for (const c of controllers) c.abort();
    expect(await Promise.all(pending)).toEqual(['aborted', 'aborted', 'aborted', 'aborted']);
    await new Promise((r) => setTimeout(r, 50));
    // All four reservations were given back: four more fit.
    const again = await burst([gateway], 4);
    expect(again.every((s) => s === 200)).toBe(true);
  });
});

describe('tokens per minute across a fleet on one Redis', () => {
  let redis: RedisServer;
  let running: TestGateway[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(running.map((g) => g.close()));
    await redis?.stop();
  });

  it('three gateways admit exactly the limit of 30 concurrent requests spread over them', async () => {
    const shared = yaml(`state: {redis_url: "${redis.url}", key_prefix: "quota-tpm:"}`, '2s');
    for (let i = 0; i < 3; i++) running.push(await startTestGateway(shared));
    const statuses = await burst(running, 30);
    expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(26);
  });

  it('follows on_failure while Redis is down: closed refuses with 503, open reserves in each instance', async () => {
    const closed = await startTestGateway(yaml(`state: {redis_url: "${redis.url}", key_prefix: "quota-closed:", on_failure: closed}`, '0ms'));
    const open = await startTestGateway(yaml(`state: {redis_url: "${redis.url}", key_prefix: "quota-open:", on_failure: open}`, '1s'));
    running.push(closed, open);
    await redis.kill();
    try {
      const refused = await fetch(`${closed.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify(LONG) });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe('state_unavailable');
      // Open: the limit still holds, per instance (4 of 6 fit in 1000 tokens a minute).
      const statuses = await Promise.all(Array.from({ length: 6 }, () => client(open).chat.completions.create(LONG).then(() => 200, (e: { status?: number }) => e.status)));
      expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    } finally {
      await redis.restart();
    }
  });
});
