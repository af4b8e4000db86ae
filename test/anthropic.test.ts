import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { anthropicError, startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { sdk, streamText } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

/** Key-shaped on purpose, so the gateway's masking of provider messages is exercised too. */
const UPSTREAM_KEY = 'sk-ant-api03-upstream-secret-0123456789';
const MODEL = 'claude-3-5-haiku-latest';
const weatherTool = { name: 'get_weather', description: 'Weather for a place', input_schema: { type: 'object' as const, properties: { input: { type: 'string' } } } };

function anthropicClient(gateway: TestGateway): Anthropic {
  return new Anthropic({ baseURL: gateway.url, apiKey: 'client-key', maxRetries: 0 });
}

describe('Anthropic API against an Anthropic-format upstream', () => {
  const setup = useStarted({ upstream: () => startFakeAnthropic({ name: 'claude', apiKey: UPSTREAM_KEY }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${upstream.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}}
# These tests check how each upstream answer maps to the client; retries and breakers have their own tests.
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    })
    .and({ client: ({ gateway }) => anthropicClient(gateway) });
  afterEach(() => setup.upstream.reset());

  it('answers a message and sends the system prompt upstream as top-level `system` with our key', async () => {
    const { data, response } = await setup.client.messages
      .create({ model: MODEL, max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    expect(data).toMatchObject({ type: 'message', role: 'assistant', model: MODEL, stop_reason: 'end_turn', stop_sequence: null });
    expect(data.id).toMatch(/^msg_/);
    expect(data.content).toEqual([{ type: 'text', text: '[claude] hello there' }]);
    expect(data.usage).toMatchObject({ output_tokens: 3 });
    expect(data.usage.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-hapax-provider')).toBe('claude');

    const sent = setup.upstream.requests.at(-1);
    expect(sent?.body).toMatchObject({ model: MODEL, max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'hello there' }] });
    expect(sent?.headers['x-api-key']).toBe(UPSTREAM_KEY);
    // The SDK's own version travels on the lossless lane (test/lossless.test.ts compares the headers).
    expect(sent?.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    // The SDK's own Bearer credential is the client's, never forwarded.
    expect(sent?.headers.authorization).toBeUndefined();
  });

  it('streams through .stream() with text events and a final message', async () => {
    const stream = setup.client.messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'one two three' }] });
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));
    const final = await stream.finalMessage();
    expect(deltas).toEqual(['[claude]', ' one', ' two', ' three']);
    expect(final.content).toEqual([{ type: 'text', text: '[claude] one two three' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(4);
    expect(final.usage.input_tokens).toBeGreaterThan(0);
    expect(setup.upstream.requests.at(-1)?.body.stream).toBe(true);
  });

  it('streams with stream: true in Anthropic event order', async () => {
    const stream = await setup.client.messages.create({ model: MODEL, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'x y' }] });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
    }
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(text).toBe('[claude] x y');
  });

  it('round-trips tool_use and a tool_result follow-up', async () => {
    const first = await setup.client.messages.create({ model: MODEL, max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'weather in Paris' }] });
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content[0];
    if (call.type !== 'tool_use') throw new Error(`expected tool_use, got ${call.type}`);
    expect(call).toMatchObject({ name: 'get_weather', input: { input: 'weather in Paris' } });
    expect(setup.upstream.requests.at(-1)?.body.tools).toEqual([weatherTool]);

    const second = await setup.client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'weather in Paris' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'tool said: sunny' }]);
    const sent = setup.upstream.requests.at(-1)?.body.messages;
    expect(sent[1]).toEqual({ role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: { input: 'weather in Paris' } }] });
    expect(sent[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] });
  });

  it('streams tool_use with its input assembled from JSON deltas', async () => {
    const final = await setup.client.messages
      .stream({ model: MODEL, max_tokens: 100, tools: [weatherTool], tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'rain in Oslo' }] })
      .finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'get_weather', input: { input: 'rain in Oslo' } })]);
    expect(setup.upstream.requests.at(-1)?.body.tool_choice).toEqual({ type: 'tool', name: 'get_weather' });
  });

  it('requires max_tokens, like the real API', async () => {
    const error = await setup.client.messages
      .create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });
    expect(setup.upstream.requests).toHaveLength(0);
  });

  it('maps an upstream 400 to BadRequestError with the provider message', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 400 });
    const error = await setup.client.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'bad' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).message).toContain('Invalid request.');
  });

  it.each([
    [529, 'overloaded_error'],
    [500, 'api_error'],
  ])('maps an upstream %i on the only provider to a 5xx SDK error of type %s', async (status, type) => {
    setup.upstream.queueFaults({ kind: 'status', status });
    const error = await setup.client.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    expect((error as InstanceType<typeof Anthropic.InternalServerError>).error).toMatchObject({ type: 'error', error: { type } });
  });

  it('never shows the upstream key to the client, whatever the provider says', async () => {
    const call = (body: unknown) =>
      fetch(`${setup.gateway.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const plain = { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
    setup.upstream.queueFaults(
      { kind: 'status', status: 400, body: anthropicError('invalid_request_error', `key ${UPSTREAM_KEY} is not allowed here`) },
      { kind: 'status', status: 401, body: anthropicError('authentication_error', `invalid x-api-key ${UPSTREAM_KEY}`) },
    );
    const responses = [await call(plain), await call(plain), await call(plain), await call({ ...plain, stream: true })];
    expect(responses.map((r) => r.status)).toEqual([400, 502, 200, 200]);
    for (const response of responses) {
      const text = `${JSON.stringify([...response.headers])}${await response.text()}`;
      expect(text).not.toContain(UPSTREAM_KEY);
      expect(text).not.toContain('upstream-secret');
    }
  });

  // Last in this group: after a 429 the provider is avoided until its retry-after passes.
  it('maps an upstream 429 to RateLimitError and passes retry-after on', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '7' } });
    const error = await setup.client.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    expect((error as InstanceType<typeof Anthropic.RateLimitError>).headers?.get('retry-after')).toBe('7');
  });
});

describe('Anthropic API against an OpenAI-format upstream', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'gpt', apiKey: 'sk-openai-upstream' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  gpt: {type: openai, base_url: "${upstream.url}", api_key: sk-openai-upstream, model: gpt-4o-mini}
`),
    })
    .and({ client: ({ gateway }) => anthropicClient(gateway) });
  afterEach(() => setup.upstream.reset());

  it('answers in Anthropic format and sends the system prompt as a system message', async () => {
    const msg = await setup.client.messages.create({ model: '', max_tokens: 50, system: [{ type: 'text', text: 'Be brief.' }], messages: [{ role: 'user', content: 'hello there' }] });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: 'gpt-4o-mini', stop_reason: 'end_turn', content: [{ type: 'text', text: '[gpt] hello there' }] });
    expect(msg.usage.output_tokens).toBe(3);
    expect(setup.upstream.requests.at(-1)?.body).toMatchObject({
      model: 'gpt-4o-mini',
      max_tokens: 50,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello there' },
      ],
    });
  });

  it('streams with text events, final usage and stop reason', async () => {
    const stream = setup.client.messages.stream({ model: 'gpt', max_tokens: 50, messages: [{ role: 'user', content: 'one two three' }] });
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));
    const final = await stream.finalMessage();
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe('[gpt] one two three');
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(4);
    expect(final.usage.input_tokens).toBeGreaterThan(0);
  });

  it('turns tool calls into tool_use blocks and tool_result blocks into tool messages', async () => {
    const first = await setup.client.messages.create({ model: '', max_tokens: 50, tools: [weatherTool], tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'weather in Paris' }] });
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content[0];
    if (call.type !== 'tool_use') throw new Error(`expected tool_use, got ${call.type}`);
    expect(call).toMatchObject({ name: 'get_weather', input: { input: 'weather in Paris' } });
    expect(setup.upstream.requests.at(-1)?.body).toMatchObject({
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherTool.input_schema } }],
      tool_choice: 'required',
    });

    const second = await setup.client.messages.create({
      model: '',
      max_tokens: 50,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'weather in Paris' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: [{ type: 'text', text: 'sunny' }] }] },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'tool said: sunny' }]);
    const sent = setup.upstream.requests.at(-1)?.body.messages;
    expect(sent[1]).toMatchObject({ role: 'assistant', tool_calls: [{ id: call.id, function: { name: 'get_weather' } }] });
    expect(JSON.parse(sent[1].tool_calls[0].function.arguments)).toEqual({ input: 'weather in Paris' });
    expect(sent[2]).toMatchObject({ role: 'tool', tool_call_id: call.id, content: 'sunny' });
  });

  it('streams tool calls as tool_use blocks', async () => {
    const final = await setup.client.messages
      .stream({ model: '', max_tokens: 50, tools: [weatherTool], messages: [{ role: 'user', content: 'snow in Bern' }] })
      .finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'get_weather', input: { input: 'snow in Bern' } })]);
  });

  it('passes base64 images on as data: URLs', async () => {
    await setup.client.messages.create({
      model: '',
      max_tokens: 50,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'text', text: 'what is this' },
          ],
        },
      ],
    });
    expect(setup.upstream.requests.at(-1)?.body.messages[0].content).toEqual([
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
      { type: 'text', text: 'what is this' },
    ]);
  });
});

describe('OpenAI API against an Anthropic-format upstream', () => {
  const setup = useStarted({ upstream: () => startFakeAnthropic({ name: 'claude', apiKey: UPSTREAM_KEY }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${upstream.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}, max_tokens: 777}
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway) });
  afterEach(() => setup.upstream.reset());

  it('moves system messages to `system`, fills max_tokens from config and clamps temperature', async () => {
    const res = await setup.client.chat.completions.create({
      model: '',
      temperature: 1.5,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello there' },
      ],
    });
    expect(res.choices[0].message.content).toBe('[claude] hello there');
    expect(res.choices[0].finish_reason).toBe('stop');
    expect(res.usage?.completion_tokens).toBe(3);
    const sent = setup.upstream.requests.at(-1);
    expect(sent?.body).toEqual({ model: MODEL, max_tokens: 777, system: 'Be brief.', temperature: 1, messages: [{ role: 'user', content: 'hello there' }] });
    expect(sent?.headers['x-api-key']).toBe(UPSTREAM_KEY);
  });

  it('streams chunks with usage when asked', async () => {
    const { pieces, finish, usage } = await streamText(setup.client, 'one two three', { model: MODEL, max_tokens: 20, stream_options: { include_usage: true } });
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('[claude] one two three');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(4);
    expect(usage?.prompt_tokens).toBeGreaterThan(0);
    expect(setup.upstream.requests.at(-1)?.body).toMatchObject({ stream: true, max_tokens: 20 });
  });

  it('round-trips tool calls through tool_use and tool_result', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { input: { type: 'string' } } } } },
    ];
    const first = await setup.client.chat.completions.create({ model: '', tools, messages: [{ role: 'user', content: 'weather in Paris' }] });
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    const call = first.choices[0].message.tool_calls?.[0];
    if (call?.type !== 'function') throw new Error('expected a function tool call');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ input: 'weather in Paris' });

    const second = await setup.client.chat.completions.create({
      model: '',
      tools,
      messages: [
        { role: 'user', content: 'weather in Paris' },
        first.choices[0].message,
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
    });
    expect(second.choices[0].message.content).toBe('tool said: sunny');
    const sent = setup.upstream.requests.at(-1)?.body.messages;
    expect(sent).toEqual([
      { role: 'user', content: 'weather in Paris' },
      { role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: { input: 'weather in Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] },
    ]);
  });

  it('streams tool calls as OpenAI tool_call deltas', async () => {
    const stream = await setup.client.chat.completions.create({
      model: '',
      stream: true,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
      messages: [{ role: 'user', content: 'fog in London' }],
    });
    let name = '';
    let args = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.tool_calls?.[0];
      if (delta?.function?.name) name += delta.function.name;
      if (delta?.function?.arguments) args += delta.function.arguments;
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    expect(name).toBe('get_weather');
    expect(JSON.parse(args)).toEqual({ input: 'fog in London' });
    expect(finish).toBe('tool_calls');
  });

  it('asks for JSON through the system prompt when response_format is json_object', async () => {
    await setup.client.chat.completions.create({ model: '', response_format: { type: 'json_object' }, messages: [{ role: 'user', content: 'a json please' }] });
    expect(setup.upstream.requests.at(-1)?.body.system).toMatch(/JSON object/);
  });
});

describe('Anthropic streams that fail', () => {
  const setup = useStarted({ primary: () => startFakeAnthropic({ name: 'claude' }), backup: () => startFakeOpenAI({ name: 'backup' }) })
    .and({
      gateway: ({ primary, backup }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${primary.url}", model: ${MODEL}}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [claude, backup]
`),
    })
    .and({ client: ({ gateway }) => anthropicClient(gateway) });
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
  });

  it('raises an error in the SDK stream when the upstream is cut after the first tokens', async () => {
    // message_start, content_block_start, ping, first text delta, then the connection drops
    setup.primary.queueFaults({ kind: 'cut', afterChunks: 4 });
    const stream = setup.client.messages.stream({ model: MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'one two three four' }] });
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));
    const error = await stream.finalMessage().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(deltas).toEqual(['[claude]']);
    expect(setup.backup.requests).toHaveLength(0);
  });

  it('fails over when the upstream is cut right after message_start, before any output', async () => {
    setup.primary.queueFaults({ kind: 'cut', afterChunks: 1 });
    const { data, response } = await setup.client.messages
      .stream({ model: MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'still there' }] })
      .withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
    const final = await data.finalMessage();
    expect(final.content).toEqual([{ type: 'text', text: '[backup] still there' }]);
  });
});
