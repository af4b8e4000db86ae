import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';

describe('OpenAI API against an OpenAI-format upstream', () => {
  let upstream: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'primary', apiKey: 'sk-upstream-secret' });
    backup = await startFakeOpenAI({ name: 'backup' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", api_key: sk-upstream-secret, model: gpt-4o-mini}
  backup: {type: openai_compatible, base_url: "${backup.url}", model: llama-3.1-8b}
provider_preference: [primary, backup]
`);
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await backup?.close();
  });

  it('answers a chat completion through the primary and says who served it', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: '', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('[primary] hello there');
    expect(data.usage?.completion_tokens).toBe(3);
    expect(response.headers.get('x-hapax-provider')).toBe('primary');
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests.at(-1)?.headers.authorization).toBe('Bearer sk-upstream-secret');
  });

  it('streams chunk by chunk with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'primary',
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const pieces: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('[primary] one two three');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(4);
  });

  it('pins provider/model and passes the model upstream', async () => {
    await client.chat.completions.create({ model: 'backup/llama-3.1-8b', messages: [{ role: 'user', content: 'x' }] });
    expect(backup.requests.at(-1)?.body.model).toBe('llama-3.1-8b');
  });

  it('fails over to the backup when the primary answers 500, and the client sees no error', async () => {
    upstream.queueFaults({ kind: 'status', status: 500 });
    const { data, response } = await client.chat.completions
      .create({ model: '', messages: [{ role: 'user', content: 'are you there' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('[backup] are you there');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
  });

  it('returns an upstream 400 as a 400 without trying the backup', async () => {
    const before = backup.requests.length;
    upstream.queueFaults({ kind: 'status', status: 400 });
    await expect(client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'bad' }] })).rejects.toMatchObject({ status: 400 });
    expect(backup.requests.length).toBe(before);
  });

  it('round-trips a tool call', async () => {
    const res = await client.chat.completions.create({
      model: '',
      messages: [{ role: 'user', content: 'weather in Paris' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { input: { type: 'string' } } } } }],
    });
    const call = res.choices[0].message.tool_calls?.[0];
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('get_weather');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ input: 'weather in Paris' });
  });

  it('names the known models when asked for an unknown one', async () => {
    await expect(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 400,
      error: expect.objectContaining({ type: 'ValidationError', details: expect.objectContaining({ known_models: expect.arrayContaining(['primary/gpt-4o-mini']) }) }),
    });
  });

  it('lists models as provider/model ids', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(['primary/gpt-4o-mini', 'backup/llama-3.1-8b']);
  });

  it('keeps a sane client request id and replaces an unsafe one', async () => {
    const good = await fetch(`${gateway.url}/v1/models`, { headers: { 'x-request-id': 'trace-123' } });
    expect(good.headers.get('x-request-id')).toBe('trace-123');
    const bad = await fetch(`${gateway.url}/v1/models`, { headers: { 'x-request-id': 'x'.repeat(200) } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fails over when the primary refuses the gateway key (another provider can cover a config problem)', async () => {
    upstream.fault = { kind: 'status', status: 401 };
    const chatCalls = () => upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).length;
    const before = chatCalls();
    try {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'cache-control': 'no-cache' },
        body: JSON.stringify({ model: 'primary/gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      });
      // The backup answers: a provider refusing our key is a config problem another provider can cover.
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hapax-provider')).toBe('backup');
      expect(res.headers.get('x-hapax-attempts')).toBe('2');
      expect(chatCalls() - before).toBe(1); // the primary was asked once, not retried on a refused key
    } finally {
      upstream.fault = null;
    }
  });
});

describe('a single provider that fails', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;
  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'only', apiKey: 'sk-only-secret-123456' });
    gateway = await startTestGateway(`
providers:
  only: {type: openai, base_url: "${upstream.url}", api_key: sk-wrong-secret-987654, model: gpt-4o-mini}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`);
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('turns an upstream 401 on the gateway key into a 502 that never shows either key', async () => {
    const error = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(502);
    expect(error.error.type).toBe('ProcessingError');
    const text = JSON.stringify(error.error);
    expect(text).toContain('rejected the gateway credentials');
    expect(text).not.toContain('sk-wrong-secret-987654');
    expect(text).not.toContain('sk-only-secret-123456');
  });

  it('turns a connection reset into a 502 ProcessingError', async () => {
    upstream.fault = { kind: 'reset' };
    try {
      const error = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
      expect(error.status).toBe(502);
      expect(error.error).toMatchObject({ type: 'ProcessingError', details: { attempts: [expect.objectContaining({ provider: 'only', kind: 'connect' })] } });
    } finally {
      upstream.fault = null;
    }
  });
});

describe('a stream that breaks after it started', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;
  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'cut' });
    gateway = await startTestGateway(`providers:\n  cut: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}\n`);
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('ends a stream cut after its first tokens with an error the SDK raises, and counts it', async () => {
    upstream.queueFaults({ kind: 'cut', afterChunks: 3 });
    const stream = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'one two three four five' }], stream: true });
    const pieces: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream) pieces.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(pieces.join('')).not.toBe('');
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/^hapax_errors_total\{type="ProcessingError"\} [1-9]/m);
    const line = gateway.logs.findLast((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
    expect(line).toMatchObject({ status: 200, error: 'ProcessingError' });
  });
});

describe('configured provider headers', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'withheaders', apiKey: 'sk-real-key' });
    gateway = await startTestGateway(`
providers:
  withheaders:
    type: openai
    base_url: "${upstream.url}"
    api_key: sk-real-key
    model: gpt-4o-mini
    headers: {Authorization: "Bearer from-config", X-Team: platform, X-Request-ID: from-config}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('go upstream once each; the key and the request id of the attempt replace configured ones of the same name', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const { response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(response.status).toBe(200);
    const sent = upstream.requests.at(-1)?.headers ?? {};
    // Node keeps the first of duplicated authorization headers: a doubled header would show the configured one.
    expect(sent.authorization).toBe('Bearer sk-real-key');
    expect(sent['x-team']).toBe('platform');
    expect(sent['x-request-id']).toBe(response.headers.get('x-request-id'));
    expect(sent['content-type']).toBe('application/json');
  });
});
