/**
 * The Responses API through the translated lane, driven by the official openai SDK: to a chat-only
 * OpenAI-compatible server, Anthropic, Ollama and the mock provider, as JSON and as the official event stream;
 * tools over two turns, structured output, stored responses per key (previous_response_id, retrieve, delete,
 * input items) and the 4xx answers for what the API refuses.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeThinkingSignature, startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOllama } from './fakes/ollama.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { sdk } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

const weather: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a place',
  parameters: { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false },
  strict: true,
};

/** The event types of a stream, in order, with the sequence numbers checked on the way. */
async function eventsOf(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
  const types: string[] = [];
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  for await (const event of stream) {
    expect(event.sequence_number).toBe(events.length);
    types.push(event.type);
    events.push(event);
  }
  return { types, events };
}

describe('Responses API to a chat-only OpenAI-compatible server (translated)', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'chat' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  chat: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini}
retry: {max_retries: 0}
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway) });
  afterEach(() => setup.upstream.reset());

  it('answers a string input as a Response with output_text and usage, sent upstream as chat', async () => {
    const { data, response } = await setup.client.responses.create({ model: '', input: 'hello there', instructions: 'Be brief.', max_output_tokens: 50 }).withResponse();
    expect(data).toMatchObject({ object: 'response', status: 'completed', model: 'gpt-4o-mini', instructions: 'Be brief.', max_output_tokens: 50 });
    expect(data.id).toMatch(/^resp_/);
    expect(data.output_text).toBe('[chat] hello there');
    expect(data.output).toEqual([expect.objectContaining({ type: 'message', role: 'assistant', status: 'completed', content: [expect.objectContaining({ type: 'output_text', text: '[chat] hello there' })] })]);
    expect(data.usage).toMatchObject({ output_tokens: 3, total_tokens: data.usage!.input_tokens + 3 });
    expect(data.usage!.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-hapax-provider')).toBe('chat');
    expect(setup.upstream.requests.at(-1)?.body).toMatchObject({
      model: 'gpt-4o-mini',
      max_tokens: 50,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }],
    });
  });

  it('streams the official event sequence, and responses.stream() gives the final response', async () => {
    const stream = await setup.client.responses.create({ model: '', input: 'one two three', stream: true });
    const { types, events } = await eventsOf(stream);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.usage?.output_tokens).toBe(4);
    expect(completed.response.usage!.input_tokens).toBeGreaterThan(0);

    const helper = setup.client.responses.stream({ model: '', input: 'x y' });
    const deltas: string[] = [];
    helper.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const final = await helper.finalResponse();
    expect(deltas.join('')).toBe('[chat] x y');
    expect(final.output_text).toBe('[chat] x y');
    expect(final.status).toBe('completed');
  });

  it('calls a function tool and takes its output in a second turn (items carried by the client)', async () => {
    const first = await setup.client.responses.create({ model: '', store: false, input: 'weather in Paris', tools: [weather] });
    const call = first.output.find((item) => item.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"input":"weather in Paris"}' });
    expect(setup.upstream.requests.at(-1)?.body.tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'Weather for a place', parameters: weather.parameters, strict: true } }]);

    const second = await setup.client.responses.create({
      model: '',
      store: false,
      tools: [weather],
      input: [{ role: 'user', content: 'weather in Paris' }, call, { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21C' }],
    });
    expect(second.output_text).toBe('tool said: sunny, 21C');
    const sent = setup.upstream.requests.at(-1)?.body;
    expect(sent.messages.at(-2)).toMatchObject({ role: 'assistant', tool_calls: [{ id: call.call_id, function: { name: 'get_weather' } }] });
    expect(sent.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: call.call_id, content: 'sunny, 21C' });
  });

  it('streams a function call with its argument events', async () => {
    const stream = await setup.client.responses.create({ model: '', store: false, input: 'weather in Oslo', tools: [weather], stream: true });
    const { types, events } = await eventsOf(stream);
    expect(types[2]).toBe('response.output_item.added');
    expect(types).toContain('response.function_call_arguments.delta');
    expect(types.slice(-3)).toEqual(['response.function_call_arguments.done', 'response.output_item.done', 'response.completed']);
    const done = events.find((e) => e.type === 'response.function_call_arguments.done') as OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent;
    expect(done.arguments).toBe('{"input":"weather in Oslo"}');
  });

  it('offers a custom tool as a function of one string and answers its call as a custom_tool_call', async () => {
    const patch = { type: 'custom' as const, name: 'apply_patch', description: 'Apply a patch' };
    const first = await setup.client.responses.create({ model: '', store: false, input: '*** Begin Patch', tools: [patch] });
    expect(first.output).toEqual([expect.objectContaining({ type: 'custom_tool_call', name: 'apply_patch', input: '*** Begin Patch' })]);
    expect(setup.upstream.requests.at(-1)?.body.tools[0]).toMatchObject({ type: 'function', function: { name: 'apply_patch', parameters: { properties: { input: { type: 'string' } } } } });
    const call = first.output[0] as OpenAI.Responses.ResponseCustomToolCall;
    const second = await setup.client.responses.create({
      model: '',
      store: false,
      tools: [patch],
      input: [{ role: 'user', content: '*** Begin Patch' }, call, { type: 'custom_tool_call_output', call_id: call.call_id, output: 'applied' }],
    });
    expect(second.output_text).toBe('tool said: applied');
    expect(setup.upstream.requests.at(-1)?.body.messages.at(-2).tool_calls[0].function.arguments).toBe(JSON.stringify({ input: '*** Begin Patch' }));

    const streamed = await setup.client.responses.stream({ model: '', store: false, input: 'patch it', tools: [patch] }).finalResponse();
    expect(streamed.output).toEqual([expect.objectContaining({ type: 'custom_tool_call', input: 'patch it' })]);
  });

  it('sends text.format json_schema as response_format', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    await setup.client.responses.create({ model: '', store: false, input: 'city?', text: { format: { type: 'json_schema', name: 'place', schema, strict: true } } });
    expect(setup.upstream.requests.at(-1)?.body.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'place', schema, strict: true } });
  });

  it('drops built-in tools it cannot run, visibly', async () => {
    const { data, response } = await setup.client.responses
      .create({ model: '', store: false, input: 'news?', tools: [{ type: 'web_search' }], reasoning: { effort: 'low' } })
      .withResponse();
    expect(data.status).toBe('completed');
    expect(response.headers.get('x-hapax-dropped')).toContain('tools[0]');
    expect(setup.upstream.requests.at(-1)?.body.tools).toBeUndefined();
  });

  it('refuses what the API refuses with a 4xx in OpenAI error shape', async () => {
    const bad = async (body: Record<string, unknown>) => {
      const error = await setup.client.responses.create(body as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      return error as InstanceType<typeof OpenAI.APIError>;
    };
    expect((await bad({ model: '', input: [{ type: 'telepathy', content: 'x' }] })).status).toBe(400);
    const orphan = await bad({ model: '', input: [{ role: 'user', content: 'hi' }, { type: 'function_call_output', call_id: 'call_nowhere', output: 'x' }] });
    expect(orphan.status).toBe(400);
    expect(orphan.message).toContain('call_nowhere');
    const missing = await bad({ model: '', input: 'hi', previous_response_id: 'resp_nope' });
    expect(missing.status).toBe(400);
    expect(missing.message).toContain('resp_nope');
    expect((await bad({ model: '', input: 42 })).status).toBe(400);
    expect(setup.upstream.requests).toHaveLength(0);
  });
});

describe('Responses API state: stored per key, continued with previous_response_id', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'chat' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  chat: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini}
auth:
  enabled: true
  keys:
    - {name: alice, key: alice-key-0123456789}
    - {name: bob, key: bob-key-0123456789}
retry: {max_retries: 0}
`),
    })
    .and({ alice: ({ gateway }) => sdk(gateway, '/v1', 'alice-key-0123456789'), bob: ({ gateway }) => sdk(gateway, '/v1', 'bob-key-0123456789') });
  afterEach(() => setup.upstream.reset());

  it('continues a stored conversation, lists its input items, retrieves and deletes it', async () => {
    const first = await setup.alice.responses.create({ model: '', input: 'my name is Ada' });
    const second = await setup.alice.responses.create({ model: '', input: 'what is my name?', previous_response_id: first.id });
    expect(second.previous_response_id).toBe(first.id);
    expect(setup.upstream.requests.at(-1)?.body.messages).toEqual([
      { role: 'user', content: 'my name is Ada' },
      { role: 'assistant', content: '[chat] my name is Ada' },
      { role: 'user', content: 'what is my name?' },
    ]);

    const retrieved = await setup.alice.responses.retrieve(second.id);
    expect(retrieved).toMatchObject({ id: second.id, output_text: '[chat] what is my name?' });
    const items = await setup.alice.responses.inputItems.list(second.id, { order: 'asc' });
    expect(items.data.map((item) => (item as { content: unknown }).content)).toEqual([
      'my name is Ada',
      [expect.objectContaining({ type: 'output_text', text: '[chat] my name is Ada' })],
      'what is my name?',
    ]);

    // Another key sees nothing of it, and cannot continue it.
    await expect(setup.bob.responses.retrieve(second.id)).rejects.toMatchObject({ status: 404 });
    await expect(setup.bob.responses.create({ model: '', input: 'hi', previous_response_id: second.id })).rejects.toMatchObject({ status: 400 });
    await expect(setup.bob.responses.delete(second.id)).rejects.toMatchObject({ status: 404 });

    await setup.alice.responses.delete(second.id);
    await expect(setup.alice.responses.retrieve(second.id)).rejects.toMatchObject({ status: 404 });
  });

  it('keeps a streamed response before its response.completed reaches the client', async () => {
    const stream = setup.alice.responses.stream({ model: '', input: 'remember seven' });
    const final = await stream.finalResponse();
    const next = await setup.alice.responses.create({ model: '', input: 'and?', previous_response_id: final.id });
    expect(next.status).toBe('completed');
    expect(setup.upstream.requests.at(-1)?.body.messages.at(1)).toEqual({ role: 'assistant', content: '[chat] remember seven' });
  });

  it('keeps nothing with store: false', async () => {
    const kept = await setup.alice.responses.create({ model: '', input: 'secret', store: false });
    expect((kept as unknown as { store: boolean }).store).toBe(false);
    await expect(setup.alice.responses.retrieve(kept.id)).rejects.toMatchObject({ status: 404 });
  });
});

describe('Responses API to Anthropic, Ollama and the mock provider (translated)', () => {
  const setup = useStarted({ claude: () => startFakeAnthropic({ name: 'claude' }), ollama: () => startFakeOllama({ name: 'llama' }) }).and({
    gateway: ({ claude, ollama }) =>
      startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${claude.url}", api_key: test, model: claude-sonnet-4-5}
  llama: {type: ollama, base_url: "${ollama.url}", model: llama3.2}
  mock: {type: mock}
retry: {max_retries: 0}
`),
  });
  const client = (gateway: TestGateway) => sdk(gateway);

  it.each(['claude', 'llama', 'mock'])('answers and streams through %s', async (provider) => {
    const plain = await client(setup.gateway).responses.create({ model: provider, input: 'hello' });
    expect(plain.status).toBe('completed');
    expect(plain.output_text).toContain('hello');
    expect(plain.usage!.output_tokens).toBeGreaterThan(0);
    const final = await client(setup.gateway).responses.stream({ model: provider, input: 'hello again' }).finalResponse();
    expect(final.output_text).toContain('hello again');
    expect(final.usage!.output_tokens).toBeGreaterThan(0);
  });

  it('carries Anthropic thinking as reasoning items whose encrypted_content brings the signature back', async () => {
    const stream = client(setup.gateway).responses.stream({ model: 'claude', store: false, input: 'weather in Rome', tools: [weather], reasoning: { effort: 'low', summary: 'auto' }, max_output_tokens: 4096 });
    const types: string[] = [];
    stream.on('event', (event) => types.push(event.type));
    const first = await stream.finalResponse();
    expect(types).toContain('response.reasoning_summary_text.delta');
    const reasoning = first.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.type).toBe('reasoning');
    expect(reasoning.summary[0]?.text).toBe('Thinking about: weather in Rome');
    expect(reasoning.encrypted_content).toContain(fakeThinkingSignature('Thinking about: weather in Rome'));
    expect(setup.claude.requests.at(-1)?.body.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });

    const call = first.output.find((item) => item.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
    const second = await client(setup.gateway).responses.create({
      model: 'claude',
      store: false,
      tools: [weather],
      reasoning: { effort: 'low' },
      max_output_tokens: 4096,
      input: [{ role: 'user', content: 'weather in Rome' }, ...(first.output as never[]), { type: 'function_call_output', call_id: call.call_id, output: 'rainy' }],
    });
    // The fake refuses a thinking block whose signature is not its own: this passing means it came back intact.
    expect(second.status).toBe('completed');
    expect(setup.claude.requests.at(-1)?.body.messages[1].content[0]).toEqual({ type: 'thinking', thinking: 'Thinking about: weather in Rome', signature: fakeThinkingSignature('Thinking about: weather in Rome') });
  });

  it('sends images and files to Anthropic as its own blocks', async () => {
    const png = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
    await client(setup.gateway).responses.create({
      model: 'claude',
      store: false,
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'what is this?' }, { type: 'input_image', image_url: png, detail: 'auto' }, { type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0xLjQK' }] }],
    });
    const content = setup.claude.requests.at(-1)?.body.messages[0].content;
    expect(content.map((block: { type: string }) => block.type)).toEqual(['text', 'image', 'document']);
  });

  it('runs a two-turn tool call through Anthropic', async () => {
    const first = await client(setup.gateway).responses.create({ model: 'claude', input: 'weather in Rome', tools: [weather] });
    const call = first.output.find((item) => item.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call?.name).toBe('get_weather');
    const second = await client(setup.gateway).responses.create({
      model: 'claude',
      previous_response_id: first.id,
      tools: [weather],
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'rainy' }],
    });
    expect(second.status).toBe('completed');
    const sent = setup.claude.requests.at(-1)?.body;
    expect(sent.messages.at(-2)).toMatchObject({ role: 'assistant', content: [expect.objectContaining({ type: 'tool_use', id: call.call_id })] });
    expect(sent.messages.at(-1)).toMatchObject({ role: 'user', content: [expect.objectContaining({ type: 'tool_result', tool_use_id: call.call_id })] });
  });
});

describe('Responses API input size', () => {
  const setup = useStarted({ gateway: () => startTestGateway('providers:\n  mock: {type: mock}\nserver: {max_body_size: 4096}\n') });

  it('refuses an input larger than server.max_body_size with a 413 and stores nothing', async () => {
    const client = sdk(setup.gateway);
    const error = await client.responses.create({ model: '', input: 'x'.repeat(10_000) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    const fine = await client.responses.create({ model: '', input: 'small' });
    expect(fine.status).toBe('completed');
  });
});
