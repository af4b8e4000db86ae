import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ollama, type Message } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeChatRequest, NdjsonEncoder } from '../src/dialects/ollama/client.ts';
import { fakeEmbedding } from './fakes/common.ts';
import { startFakeOllama } from './fakes/ollama.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { sdk } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

/** A 1×1 PNG, as Ollama clients send images: bare base64. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const WEATHER_TOOL = {
  type: 'function' as const,
  function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { input: { type: 'string' } } } },
};

async function collect<T>(stream: AsyncIterable<T>, seen: T[] = []): Promise<T[]> {
  for await (const part of stream) seen.push(part);
  return seen;
}

/**
 * A gateway whose only provider is one Ollama server: nothing to fail over to. These tests are about
 * single failures, so the breaker is set never to open between them.
 */
function soloGateway(url: string): Promise<TestGateway> {
  return startTestGateway(`
providers:
  solo: {type: ollama, base_url: "${url}", model: "llama3:latest"}
circuit_breaker: {failure_threshold: 1000}
`);
}

describe('Ollama API and Ollama upstreams', () => {
  const setup = useStarted({
    ollamaUpstream: () => startFakeOllama({ name: 'local' }),
    openaiUpstream: () => startFakeOpenAI({ name: 'cloud', apiKey: 'sk-cloud-secret' }),
  })
    .and({
      gateway: ({ ollamaUpstream, openaiUpstream }) =>
        startTestGateway(`
providers:
  local: {type: ollama, base_url: "${ollamaUpstream.url}", model: "llama3:latest"}
  cloud: {type: openai, base_url: "${openaiUpstream.url}", api_key: sk-cloud-secret, model: gpt-4o-mini}
provider_preference: [local, cloud]
`),
    })
    .and({ ollama: ({ gateway }) => new Ollama({ host: gateway.url }), openai: ({ gateway }) => sdk(gateway) });

  describe('ollama client → Hapax → Ollama upstream', () => {
    it('answers a chat and passes options upstream as Ollama options', async () => {
      const res = await setup.ollama.chat({
        model: 'local/llama3:latest',
        messages: [{ role: 'user', content: 'hello there' }],
        options: { temperature: 0.2, num_predict: 64, stop: ['END'] },
      });
      expect(res.message).toMatchObject({ role: 'assistant', content: '[local] hello there' });
      expect(res).toMatchObject({ done: true, done_reason: 'stop', eval_count: 3 });
      expect(res.prompt_eval_count).toBeGreaterThan(0);
      const sent = setup.ollamaUpstream.requests.at(-1)?.body;
      expect(sent).toMatchObject({ model: 'llama3:latest', stream: false, options: { temperature: 0.2, num_predict: 64, stop: ['END'] } });
    });

    it('streams NDJSON line by line, ending with done and the counts', async () => {
      const parts = await collect(await setup.ollama.chat({ model: 'local', messages: [{ role: 'user', content: 'one two three' }], stream: true }));
      const text = parts.map((p) => p.message.content).join('');
      expect(parts.length).toBeGreaterThan(2);
      expect(text).toBe('[local] one two three');
      expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'stop', eval_count: 4 });
      expect(setup.ollamaUpstream.requests.at(-1)?.body.stream).toBe(true);
    });

    it('streams when the request does not say (Ollama streams by default)', async () => {
      const res = await fetch(`${setup.gateway.url}/api/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'local', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.headers.get('content-type')).toContain('application/x-ndjson');
      const lines = (await res.text()).trim().split('\n').map((line) => JSON.parse(line));
      expect(lines.at(-1)).toMatchObject({ done: true });
    });

    it('calls a tool, then answers from the tool result', async () => {
      const question: Message = { role: 'user', content: 'weather in Paris' };
      const first = await setup.ollama.chat({ model: 'local', messages: [question], tools: [WEATHER_TOOL] });
      const calls = first.message.tool_calls ?? [];
      expect(calls).toEqual([{ function: { name: 'get_weather', arguments: { input: 'weather in Paris' } } }]);

      const second = await setup.ollama.chat({
        model: 'local',
        messages: [question, first.message, { role: 'tool', content: 'sunny, 24°C', tool_name: 'get_weather' }],
        tools: [WEATHER_TOOL],
      });
      expect(second.message.content).toBe('tool said: sunny, 24°C');
      const sent = setup.ollamaUpstream.requests.at(-1)?.body.messages;
      expect(sent[1]).toMatchObject({ role: 'assistant', tool_calls: [{ function: { name: 'get_weather', arguments: { input: 'weather in Paris' } } }] });
      expect(sent[2]).toEqual({ role: 'tool', content: 'sunny, 24°C', tool_name: 'get_weather' });
    });

    it('streams a tool call whole, as Ollama does', async () => {
      const parts = await collect(await setup.ollama.chat({ model: 'local', messages: [{ role: 'user', content: 'weather in Oslo' }], tools: [WEATHER_TOOL], stream: true }));
      const calls = parts.flatMap((p) => p.message.tool_calls ?? []);
      expect(calls).toEqual([{ function: { name: 'get_weather', arguments: { input: 'weather in Oslo' } } }]);
      expect(parts.at(-1)?.done).toBe(true);
    });

    it('passes images through as base64', async () => {
      await setup.ollama.chat({ model: 'local', messages: [{ role: 'user', content: 'what is this', images: [PNG] }] });
      expect(setup.ollamaUpstream.requests.at(-1)?.body.messages[0]).toEqual({ role: 'user', content: 'what is this', images: [PNG] });
    });

    it('lists the catalog as provider/model names', async () => {
      const list = await setup.ollama.list();
      expect(list.models.map((m) => m.name)).toEqual(['local/llama3:latest', 'cloud/gpt-4o-mini']);
    });

    it('embeds through /api/embed', async () => {
      const res = await setup.ollama.embed({ model: 'local', input: ['alpha', 'beta'] });
      expect(res.embeddings).toEqual([fakeEmbedding('alpha'), fakeEmbedding('beta')]);
      expect(setup.ollamaUpstream.requests.at(-1)).toMatchObject({ path: '/api/embed', body: { model: 'llama3:latest', input: ['alpha', 'beta'] } });
    });

    it('reports a version and answers a chat without messages by "loading" the model', async () => {
      expect((await setup.ollama.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
      const before = setup.ollamaUpstream.requests.length;
      expect(await setup.ollama.chat({ model: 'local', messages: [] })).toMatchObject({ done: true, done_reason: 'load' });
      expect(setup.ollamaUpstream.requests.length).toBe(before);
    });

    it('shows errors as Ollama does, with a readable message', async () => {
      await expect(setup.ollama.chat({ model: 'llama9', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
        name: 'ResponseError',
        status_code: 400,
        message: expect.stringContaining('model "llama9" is not served'),
      });
    });
  });

  describe('ollama client → Hapax → OpenAI upstream', () => {
    it('answers a chat', async () => {
      const res = await setup.ollama.chat({ model: 'cloud', messages: [{ role: 'user', content: 'hello cloud' }] });
      expect(res.message.content).toBe('[cloud] hello cloud');
      expect(res).toMatchObject({ done: true, done_reason: 'stop', eval_count: 3 });
      expect(setup.openaiUpstream.requests.at(-1)?.body).toMatchObject({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello cloud' }] });
    });

    it('streams', async () => {
      const parts = await collect(await setup.ollama.chat({ model: 'cloud/gpt-4o-mini', messages: [{ role: 'user', content: 'one two three' }], stream: true }));
      expect(parts.map((p) => p.message.content).join('')).toBe('[cloud] one two three');
      expect(parts.at(-1)).toMatchObject({ done: true, eval_count: 4 });
    });

    it('sends images as data: URLs', async () => {
      await setup.ollama.chat({ model: 'cloud', messages: [{ role: 'user', content: 'look', images: [PNG] }] });
      expect(setup.openaiUpstream.requests.at(-1)?.body.messages[0].content).toEqual([
        { type: 'text', text: 'look' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      ]);
    });
  });

  describe('openai SDK → Hapax → Ollama upstream', () => {
    it('answers a chat completion', async () => {
      const res = await setup.openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 32 });
      expect(res.choices[0].message.content).toBe('[local] hello there');
      expect(res.choices[0].finish_reason).toBe('stop');
      expect(res.usage?.completion_tokens).toBe(3);
      expect(setup.ollamaUpstream.requests.at(-1)?.body.options).toEqual({ num_predict: 32 });
    });

    it('streams with usage when asked', async () => {
      const stream = await setup.openai.chat.completions.create({
        model: 'local',
        messages: [{ role: 'user', content: 'one two three' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = await collect(stream);
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('[local] one two three');
      expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe('stop');
      expect(chunks.at(-1)?.usage?.completion_tokens).toBe(4);
    });

    it('returns tool calls with stable ids and sends tool results back by tool name', async () => {
      const question = { role: 'user' as const, content: 'weather in Rome' };
      const first = await setup.openai.chat.completions.create({ model: 'local', messages: [question], tools: [WEATHER_TOOL] });
      const message = first.choices[0].message;
      const call = message.tool_calls?.[0];
      expect(first.choices[0].finish_reason).toBe('tool_calls');
      expect(call?.id).toBe('call_0');
      expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ input: 'weather in Rome' });

      const second = await setup.openai.chat.completions.create({
        model: 'local',
        messages: [question, message, { role: 'tool', tool_call_id: 'call_0', content: 'rainy' }],
        tools: [WEATHER_TOOL],
      });
      expect(second.choices[0].message.content).toBe('tool said: rainy');
      expect(setup.ollamaUpstream.requests.at(-1)?.body.messages[2]).toEqual({ role: 'tool', content: 'rainy', tool_name: 'get_weather' });
    });

    it('asks for structured output with a JSON schema as Ollama format', async () => {
      const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
      await setup.openai.chat.completions.create({
        model: 'local',
        messages: [{ role: 'user', content: 'city?' }],
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } },
      });
      expect(setup.ollamaUpstream.requests.at(-1)?.body.format).toEqual(schema);
    });

    it('refuses an image given by URL with a 400, since Ollama takes only inline images', async () => {
      const before = setup.openaiUpstream.requests.length;
      await expect(
        setup.openai.chat.completions.create({
          model: 'local',
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }],
        }),
      ).rejects.toMatchObject({ status: 400, error: expect.objectContaining({ message: expect.stringContaining('only inline') }) });
      expect(setup.openaiUpstream.requests.length).toBe(before);
    });

    it('embeds, including the SDK default base64 encoding', async () => {
      const res = await setup.openai.embeddings.create({ model: 'local', input: 'hello vectors' });
      const expected = fakeEmbedding('hello vectors');
      expect(res.data[0].embedding).toHaveLength(expected.length);
      res.data[0].embedding.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 5));
      const floats = await setup.openai.embeddings.create({ model: 'local', input: ['a', 'b'], encoding_format: 'float' });
      expect(floats.data.map((d) => d.embedding)).toEqual([fakeEmbedding('a'), fakeEmbedding('b')]);
    });
  });

  it('native API (POST /v1/completions) → Ollama upstream', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'local', input: 'hi native' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ completion: '[local] hi native', provider: 'local', finish_reason: 'stop' });
  });

  it('fails over to the backup when the Ollama upstream answers 500', async () => {
    setup.ollamaUpstream.fault = { kind: 'status', status: 500 };
    try {
      const res = await setup.ollama.chat({ model: 'local', messages: [{ role: 'user', content: 'are you there' }] });
      expect(res.message.content).toBe('[cloud] are you there');
      const { response } = await setup.openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(response.headers.get('x-hapax-provider')).toBe('cloud');
      expect(response.headers.get('x-hapax-attempts')).toBe('2');
    } finally {
      setup.ollamaUpstream.fault = null;
    }
  });
});

describe('Ollama upstream failures with no provider to fail over to', () => {
  const setup = useStarted({ upstream: () => startFakeOllama({ name: 'solo' }) }).and({ gateway: ({ upstream }) => soloGateway(upstream.url) });

  it('answers 502 ProcessingError when the connection is reset', async () => {
    setup.upstream.fault = { kind: 'reset' };
    try {
      const openai = sdk(setup.gateway);
      await expect(openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
        status: 502,
        error: expect.objectContaining({ type: 'ProcessingError' }),
      });
      const ollama = new Ollama({ host: setup.gateway.url });
      await expect(ollama.chat({ model: 'solo', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
        status_code: 502,
        message: expect.stringContaining('solo failed'),
      });
    } finally {
      setup.upstream.fault = null;
    }
  });

  it('makes a stream cut after the first chunk throw in the openai SDK, not end quietly', async () => {
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 1 });
    const openai = sdk(setup.gateway);
    const stream = await openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'one two three four' }], stream: true });
    const seen: OpenAI.ChatCompletionChunk[] = [];
    await expect(collect(stream, seen)).rejects.toThrow(/solo/);
    expect(seen.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('[solo]');
  });

  it('makes a cut stream throw in the ollama client too', async () => {
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 2 });
    const ollama = new Ollama({ host: setup.gateway.url });
    const stream = await ollama.chat({ model: 'solo', messages: [{ role: 'user', content: 'one two three four' }], stream: true });
    await expect(collect(stream)).rejects.toThrow(/solo failed/);
  });
});

describe('Ollama upstream stream protocol', () => {
  let lines: string[] = [];
  let server: http.Server;
  let gateway: TestGateway;
  let openai: OpenAI;

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end(lines.join(''));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    gateway = await soloGateway(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    openai = sdk(gateway);
  });
  afterAll(async () => {
    await gateway?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  const chunk = (content: string) => `${JSON.stringify({ model: 'llama3:latest', message: { role: 'assistant', content }, done: false })}\n`;
  const streamText = async () => {
    const stream = await openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }], stream: true });
    return (await collect(stream)).map((c) => c.choices[0]?.delta.content ?? '').join('');
  };

  it('turns an error line mid-stream into an error the client sees', async () => {
    lines = [chunk('partial'), '{"error":"llama runner process has terminated"}\n'];
    await expect(streamText()).rejects.toThrow(/llama runner process has terminated/);
  });

  it('treats a stream that ends without done:true as a failure', async () => {
    lines = [chunk('partial'), chunk(' answer')];
    await expect(streamText()).rejects.toThrow(/ended before it finished/);
  });
});

describe('Ollama dialect', () => {
  it('streams unless told not to, and maps options', () => {
    const req = decodeChatRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: -1, stop: 'x', top_p: 0.5 }, format: 'json' });
    expect(req).toMatchObject({ stream: true, maxTokens: undefined, stop: ['x'], topP: 0.5, responseFormat: { type: 'json_object' } });
    expect(decodeChatRequest({ messages: [{ role: 'user', content: 'hi' }], stream: false }).stream).toBe(false);
  });

  it('gives tool calls the same ids every time and matches results by tool name', () => {
    const body = {
      messages: [
        { role: 'user', content: 'both' },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'a', arguments: { n: 1 } } }, { function: { name: 'b', arguments: {} } }] },
        { role: 'tool', content: 'from b', tool_name: 'b' },
        { role: 'tool', content: 'from a' },
      ],
    };
    const req = decodeChatRequest(body);
    expect(req.messages[1].toolCalls).toEqual([
      { id: 'call_0', name: 'a', arguments: '{"n":1}' },
      { id: 'call_1', name: 'b', arguments: '{}' },
    ]);
    expect(req.messages.slice(2).map((m) => m.toolCallId)).toEqual(['call_1', 'call_0']);
    expect(decodeChatRequest(body)).toEqual(req);
  });

  it('encodes a streamed tool call as one whole call before the done line', () => {
    const encoder = new NdjsonEncoder('m');
    const out = [
      encoder.encode({ type: 'start', id: 'x', model: 'm' }),
      encoder.encode({ type: 'tool_call_start', index: 0, id: 'c', name: 'f' }),
      encoder.encode({ type: 'tool_call_delta', index: 0, arguments: '{"city":' }),
      encoder.encode({ type: 'tool_call_delta', index: 0, arguments: '"Oslo"}' }),
      encoder.encode({ type: 'usage', usage: { inputTokens: 5, outputTokens: 2 } }),
      encoder.encode({ type: 'finish', reason: 'tool_calls' }),
    ].join('');
    const lines = out.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines).toHaveLength(2);
    expect(lines[0].message.tool_calls).toEqual([{ function: { name: 'f', arguments: { city: 'Oslo' } } }]);
    expect(lines[1]).toMatchObject({ done: true, done_reason: 'stop', prompt_eval_count: 5, eval_count: 2 });
  });
});
