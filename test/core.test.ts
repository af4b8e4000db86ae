import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { sdk, streamText } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

describe('OpenAI API against an OpenAI-format upstream', () => {
  const setup = useStarted({
    upstream: () => startFakeOpenAI({ name: 'primary', apiKey: 'sk-upstream-secret' }),
    backup: () => startFakeOpenAI({ name: 'backup' }),
  })
    .and({
      gateway: ({ upstream, backup }) =>
        startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", api_key: sk-upstream-secret, model: gpt-4o-mini}
  backup: {type: openai_compatible, base_url: "${backup.url}", model: llama-3.1-8b}
provider_preference: [primary, backup]
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway) });

  it('answers a chat completion through the primary and says who served it', async () => {
    const { data, response } = await setup.client.chat.completions
      .create({ model: '', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('[primary] hello there');
    expect(data.usage?.completion_tokens).toBe(3);
    expect(response.headers.get('x-hapax-provider')).toBe('primary');
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(setup.upstream.requests.at(-1)?.headers.authorization).toBe('Bearer sk-upstream-secret');
  });

  it('streams chunk by chunk with usage when asked', async () => {
    const { pieces, finish, usage } = await streamText(setup.client, 'one two three', { model: 'primary', stream_options: { include_usage: true } });
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('[primary] one two three');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(4);
  });

  it('pins provider/model and passes the model upstream', async () => {
    await setup.client.chat.completions.create({ model: 'backup/llama-3.1-8b', messages: [{ role: 'user', content: 'x' }] });
    expect(setup.backup.requests.at(-1)?.body.model).toBe('llama-3.1-8b');
  });

  it('fails over to the backup when the primary answers 500, and the client sees no error', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 500 });
    const { data, response } = await setup.client.chat.completions
      .create({ model: '', messages: [{ role: 'user', content: 'are you there' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('[backup] are you there');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
  });

  it('returns an upstream 400 as a 400 without trying the backup', async () => {
    const before = setup.backup.requests.length;
    setup.upstream.queueFaults({ kind: 'status', status: 400 });
    await expect(setup.client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'bad' }] })).rejects.toMatchObject({ status: 400 });
    expect(setup.backup.requests.length).toBe(before);
  });

  it('round-trips a tool call', async () => {
    const res = await setup.client.chat.completions.create({
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
    await expect(setup.client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 400,
      error: expect.objectContaining({ type: 'ValidationError', details: expect.objectContaining({ known_models: expect.arrayContaining(['primary/gpt-4o-mini']) }) }),
    });
  });

  it('lists models as provider/model ids', async () => {
    const ids = [];
    for await (const model of setup.client.models.list()) ids.push(model.id);
    expect(ids).toEqual(['primary/gpt-4o-mini', 'backup/llama-3.1-8b']);
  });

  it('keeps a sane client request id and replaces an unsafe one', async () => {
    const good = await fetch(`${setup.gateway.url}/v1/models`, { headers: { 'x-request-id': 'trace-123' } });
    expect(good.headers.get('x-request-id')).toBe('trace-123');
    const bad = await fetch(`${setup.gateway.url}/v1/models`, { headers: { 'x-request-id': 'x'.repeat(200) } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fails over when the primary refuses the gateway key (another provider can cover a config problem)', async () => {
    setup.upstream.fault = { kind: 'status', status: 401 };
    const chatCalls = () => setup.upstream.requests.filter((r) => r.path.endsWith('/chat/completions')).length;
    const before = chatCalls();
    try {
      const res = await fetch(`${setup.gateway.url}/v1/chat/completions`, {
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
      setup.upstream.fault = null;
    }
  });
});

describe('a single provider that fails', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'only', apiKey: 'sk-only-secret-123456' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  only: {type: openai, base_url: "${upstream.url}", api_key: sk-wrong-secret-987654, model: gpt-4o-mini}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway) });

  it('turns an upstream 401 on the gateway key into a 502 that never shows either key', async () => {
    const error = await setup.client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(502);
    expect(error.error.type).toBe('ProcessingError');
    const text = JSON.stringify(error.error);
    expect(text).toContain('rejected the gateway credentials');
    expect(text).not.toContain('sk-wrong-secret-987654');
    expect(text).not.toContain('sk-only-secret-123456');
  });

  it('turns a connection reset into a 502 ProcessingError', async () => {
    setup.upstream.fault = { kind: 'reset' };
    try {
      const error = await setup.client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
      expect(error.status).toBe(502);
      expect(error.error).toMatchObject({ type: 'ProcessingError', details: { attempts: [expect.objectContaining({ provider: 'only', kind: 'connect' })] } });
    } finally {
      setup.upstream.fault = null;
    }
  });
});

describe('a stream that breaks after it started', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'cut' }) })
    .and({ gateway: ({ upstream }) => startTestGateway(`providers:\n  cut: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}\n`) })
    .and({ client: ({ gateway }) => sdk(gateway) });

  it('ends a stream cut after its first tokens with an error the SDK raises, and counts it', async () => {
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 3 });
    const stream = await setup.client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'one two three four five' }], stream: true });
    const pieces: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream) pieces.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(pieces.join('')).not.toBe('');
    const metrics = await (await fetch(`${setup.gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/^hapax_errors_total\{type="ProcessingError"\} [1-9]/m);
    const line = setup.gateway.logs.findLast((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
    expect(line).toMatchObject({ status: 200, error: 'ProcessingError' });
  });
});

describe('configured provider headers', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'withheaders', apiKey: 'sk-real-key' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  withheaders:
    type: openai
    base_url: "${upstream.url}"
    api_key: sk-real-key
    model: gpt-4o-mini
    headers: {Authorization: "Bearer from-config", X-Team: platform, X-Request-ID: from-config}
`),
  });

  it('go upstream once each; the key and the request id of the attempt replace configured ones of the same name', async () => {
    const client = sdk(setup.gateway);
    const { response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(response.status).toBe(200);
    const sent = setup.upstream.requests.at(-1)?.headers ?? {};
    // Node keeps the first of duplicated authorization headers: a doubled header would show the configured one.
    expect(sent.authorization).toBe('Bearer sk-real-key');
    expect(sent['x-team']).toBe('platform');
    expect(sent['x-request-id']).toBe(response.headers.get('x-request-id'));
    expect(sent['content-type']).toBe('application/json');
  });
});
