import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { hashKey, KeyFile } from '../src/state/keys.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const chat = { model: '', messages: [{ role: 'user' as const, content: 'hi' }] };

describe('API keys and rate limits', () => {
  const setup = useStarted({ dir: () => tempDir('hapax-auth-') }).and({
    gateway: ({ dir }) =>
      startTestGateway(
        `
providers:
  mock: {type: mock}
auth:
  enabled: true
  key_file: ${join(dir.path, 'keys.json')}
  keys:
    - {name: team-a, key: "\${TEAM_A_KEY}"}
    - {name: hashed, key_sha256: ${hashKey('hashed-secret-key')}}
    - {name: limited, key: limited-key-1234, rate_limit: {requests_per_minute: 3}}
    - {name: old, key: old-key-123456, expires: "2020-01-01T00:00:00Z"}
    - {name: scoped, key: scoped-key-12345, routes: [/v1/completions]}
    - {name: tokens, key: tokens-key-12345, rate_limit: {tokens_per_minute: 25}}
admin: {key: admin-secret-0123456789}
`,
        { TEAM_A_KEY: 'team-a-secret-key' },
      ),
  });

  const openai = (apiKey: string) => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey, maxRetries: 0 });

  it('accepts a key as Bearer (openai SDK), x-api-key (Anthropic SDK) and X-API-Key', async () => {
    await expect(openai('team-a-secret-key').chat.completions.create(chat)).resolves.toBeTruthy();
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'hashed-secret-key', maxRetries: 0 });
    const message = await anthropic.messages.create({ model: '', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    expect(message.content[0]).toMatchObject({ type: 'text', text: expect.stringContaining('hi') });
    const res = await fetch(`${setup.gateway.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-API-Key': 'team-a-secret-key' },
      body: JSON.stringify({ input: 'hello' }),
    });
    expect(res.status).toBe(200);
  });

  it('refuses missing, wrong and expired keys with 401 AuthenticationError and never echoes the key', async () => {
    for (const key of [undefined, 'wrong-key-999', 'old-key-123456']) {
      const res = await fetch(`${setup.gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
        body: JSON.stringify({ input: 'x' }),
      });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text).error).toMatchObject({ type: 'AuthenticationError', code: 401 });
      if (key) expect(text).not.toContain(key);
    }
  });

  it('keeps health endpoints open', async () => {
    expect((await fetch(`${setup.gateway.url}/health`)).status).toBe(200);
  });

  it('limits a key to its routes', async () => {
    await expect(openai('scoped-key-12345').chat.completions.create(chat)).rejects.toMatchObject({ status: 403 });
  });

  it('counts requests per key with X-RateLimit headers and answers 429 with Retry-After when over', async () => {
    const client = openai('limited-key-1234');
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { response } = await client.chat.completions.create(chat).withResponse();
      expect(response.headers.get('x-ratelimit-limit')).toBe('3');
      remaining.push(response.headers.get('x-ratelimit-remaining') as string);
      expect(Number(response.headers.get('x-ratelimit-reset'))).toBeGreaterThan(0);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const error = await client.chat.completions.create(chat).catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error.error).toMatchObject({ type: 'RateLimitError' });
    expect(Number(error.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another key is not affected.
    await expect(openai('team-a-secret-key').chat.completions.create(chat)).resolves.toBeTruthy();
  });

  it('reserves tokens before the answer and settles to real usage, streams included', async () => {
    const client = openai('tokens-key-12345');
    // Each request reserves ~7 input tokens + max_tokens 8 = 15; the mock answer really uses 10.
    const capped = { ...chat, max_tokens: 8 };
    const stream = await client.chat.completions.create({ ...capped, stream: true });
    for await (const _ of stream);
    // Settled to 10: 15 more fit in 25 (unsettled, 15 + 15 would not).
    await client.chat.completions.create(capped);
    // 20 used: the next 15 do not fit, although 20 is under the limit.
    await expect(client.chat.completions.create(capped)).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it('manages keys through the admin API: created keys work at once, revoked ones are refused within a second', async () => {
    const admin = { 'content-type': 'application/json', 'x-api-key': 'admin-secret-0123456789' };
    expect((await fetch(`${setup.gateway.url}/admin/keys`, { headers: { 'x-api-key': 'nope' } })).status).toBe(401);
    const created = await fetch(`${setup.gateway.url}/admin/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'marketing', requests_per_minute: 60 }) });
    expect(created.status).toBe(201);
    const { key, rate_limit } = (await created.json()) as { key: string; rate_limit: unknown };
    expect(rate_limit).toEqual({ requests_per_minute: 60 }); // no empty tokens_per_minute stored beside it
    await expect(openai(key).chat.completions.create(chat)).resolves.toBeTruthy();
    const badExpiry = await fetch(`${setup.gateway.url}/admin/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'later', expires: 'someday' }) });
    expect(badExpiry.status).toBe(400);
    expect(await badExpiry.json()).toMatchObject({ error: { type: 'ValidationError', details: { field: 'expires' } } });
    const listed = (await (await fetch(`${setup.gateway.url}/admin/keys`, { headers: admin })).json()) as { keys: { name: string }[] };
    expect(listed.keys.map((k) => k.name)).toContain('marketing');
    expect(JSON.stringify(listed)).not.toContain(key);
    expect((await fetch(`${setup.gateway.url}/admin/keys/marketing`, { method: 'DELETE', headers: admin })).status).toBe(200);
    await expect(openai(key).chat.completions.create(chat)).rejects.toMatchObject({ status: 401 });
  });

  it('notices a key revoked by another process (the CLI) within a second', async () => {
    const file = new KeyFile(join(setup.dir.path, 'keys.json'));
    const { key } = await file.create({ name: 'cli-made' });
    await new Promise((r) => setTimeout(r, 600));
    await expect(openai(key).chat.completions.create(chat)).resolves.toBeTruthy();
    await file.revoke('cli-made');
    await new Promise((r) => setTimeout(r, 1000));
    await expect(openai(key).chat.completions.create(chat)).rejects.toMatchObject({ status: 401 });
  });
});
