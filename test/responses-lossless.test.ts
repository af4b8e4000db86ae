/**
 * The Responses API's lossless lane: to an OpenAI provider (or an openai_compatible one with `responses: true`)
 * the client's body goes as sent (built-in tools, encrypted reasoning, fields of the future) and the answer
 * comes back byte for byte, JSON or events, while usage is read on the side; failover before the first byte,
 * and conversations kept by Hapax continue there too.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startFakeResponses } from './fakes/openai-responses.ts';
import { startScriptedUpstream } from './fakes/scripted.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { sdk } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

const sse = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** A Codex-like request: built-in tools, encrypted reasoning handed back, include, fields no API version has. */
const codexLike = () => ({
  model: 'gpt-5-codex',
  instructions: 'You are a coding agent.',
  input: [
    { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Sandbox: read-only.' }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'list files' }] },
    { type: 'reasoning', id: 'rs_01', summary: [{ type: 'summary_text', text: 'Run ls.' }], encrypted_content: 'gAAAAABo-opaque-0123' },
    { type: 'function_call', id: 'fc_01', call_id: 'call_01', name: 'shell', arguments: '{"command":["ls"]}' },
    { type: 'function_call_output', call_id: 'call_01', output: 'main.ts' },
  ],
  tools: [{ type: 'function', name: 'shell', parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } } }, strict: false }, { type: 'web_search' }],
  tool_choice: 'auto',
  parallel_tool_calls: false,
  reasoning: { effort: 'medium', summary: 'auto' },
  store: false,
  include: ['reasoning.encrypted_content'],
  prompt_cache_key: 'session-42',
  a_field_no_api_version_has: { deep: [1, 'two', null] },
});

const COMPLETED = {
  id: 'resp_up_1',
  object: 'response',
  created_at: 1767225600,
  status: 'completed',
  model: 'gpt-5-codex',
  output: [
    { id: 'rs_02', type: 'reasoning', summary: [], encrypted_content: 'gAAAAABo-next-4567' },
    { id: 'ws_01', type: 'web_search_call', status: 'completed', action: { type: 'search', query: 'x' } },
    { id: 'msg_01', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'main.ts', annotations: [] }] },
  ],
  usage: { input_tokens: 120, input_tokens_details: { cached_tokens: 100 }, output_tokens: 9, output_tokens_details: { reasoning_tokens: 4 }, total_tokens: 129 },
  a_field_of_the_future: true,
};

const STREAM = [
  sse('response.created', { sequence_number: 0, response: { ...COMPLETED, status: 'in_progress', output: [], usage: null } }),
  sse('response.in_progress', { sequence_number: 1, response: { ...COMPLETED, status: 'in_progress', output: [], usage: null } }),
  sse('response.output_item.added', { sequence_number: 2, output_index: 0, item: { id: 'rs_02', type: 'reasoning', summary: [] } }),
  sse('response.output_item.done', { sequence_number: 3, output_index: 0, item: COMPLETED.output[0] }),
  sse('response.web_search_call.searching', { sequence_number: 4, output_index: 1, item_id: 'ws_01' }),
  sse('response.an_event_of_the_future', { sequence_number: 5, payload: { x: 1 } }),
  sse('response.output_text.delta', { sequence_number: 6, item_id: 'msg_01', output_index: 2, content_index: 0, delta: 'main.ts' }),
  sse('response.completed', { sequence_number: 7, response: COMPLETED }),
];

describe('Responses lossless lane, byte for byte', () => {
  const setup = useStarted({ upstream: () => startScriptedUpstream() }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}/v1", api_key: sk-upstream, model: gpt-5-codex}
retry: {max_retries: 0}
`),
  });
  afterEach(() => setup.upstream.reset());

  const post = (body: unknown) =>
    fetch(`${setup.gateway.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer client-key', 'openai-beta': 'responses=experimental' }, body: JSON.stringify(body) });

  it('sends the body as written and gives the JSON back as sent, with usage read on the side', async () => {
    const answer = JSON.stringify(COMPLETED);
    setup.upstream.queue({ headers: { 'content-type': 'application/json' }, body: answer });
    const res = await post(codexLike());
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(answer);
    expect(res.headers.get('x-hapax-dropped')).toBeNull();
    const sent = setup.upstream.received[0];
    expect(sent.url).toBe('/v1/responses');
    expect(sent.json).toEqual(codexLike());
    expect(sent.headers.authorization).toBe('Bearer sk-upstream');
    expect(sent.headers['openai-beta']).toBe('responses=experimental');
    const line = setup.gateway.logs.find((l) => l.msg === 'request' && l.route === '/v1/responses');
    expect(line).toMatchObject({ provider: 'openai', tokens: { prompt: 120, completion: 9 } });
  });

  it('relays every event exactly, those it has never heard of too', async () => {
    setup.upstream.queue({ headers: { 'content-type': 'text/event-stream' }, body: STREAM });
    const res = await post({ ...codexLike(), stream: true });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(STREAM.join(''));
    expect(setup.upstream.received[0].json.stream).toBe(true);
  });

  it('ends a stream the provider cut with error and response.failed events numbered after its own', async () => {
    setup.upstream.queue({ headers: { 'content-type': 'text/event-stream' }, body: STREAM, cutAfter: 4 });
    const res = await post({ ...codexLike(), stream: true });
    const text = await res.text();
    expect(text.startsWith(STREAM.slice(0, 4).join(''))).toBe(true);
    const added = text.slice(STREAM.slice(0, 4).join('').length);
    expect(added).toMatch(/^event: error\ndata: \{"type":"error","sequence_number":4,/);
    expect(added).toContain('event: response.failed\ndata: {"type":"response.failed","sequence_number":5,');
  });

  it('fails over before the first byte: a 500 after response.created goes to no client', async () => {
    setup.upstream.queue({ status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"boom","type":"server_error"}}' });
    const res = await post(codexLike());
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBeTruthy();
  });
});

describe('Responses lossless lane with the official SDK and a Responses fake', () => {
  const setup = useStarted({ primary: () => startFakeResponses({ name: 'primary' }), backup: () => startFakeResponses({ name: 'backup' }), chat: () => startFakeOpenAI({ name: 'chatonly' }) }).and({
    gateway: ({ primary, backup, chat }) =>
      startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-5}
  backup: {type: openai_compatible, base_url: "${backup.url}", model: gpt-5, responses: true}
  chatonly: {type: openai_compatible, base_url: "${chat.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
  });
  const client = () => sdk(setup.gateway);
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
    setup.chat.reset();
  });

  it('streams through responses.stream() with encrypted reasoning and a built-in tool kept', async () => {
    const final = await client()
      .responses.stream({ model: '', input: 'find news', tools: [{ type: 'web_search' }], reasoning: { effort: 'low', summary: 'auto' }, include: ['reasoning.encrypted_content'], store: false })
      .finalResponse();
    expect(final.output.map((item) => item.type)).toEqual(['reasoning', 'web_search_call', 'message']);
    const reasoning = final.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.encrypted_content).toMatch(/^fake-sealed:/);
    expect(final.output_text).toBe('[primary] find news');
    expect(setup.primary.requests.at(-1)?.body.tools).toEqual([{ type: 'web_search' }]);

    // Handed back as it came, the sealed reasoning reaches the provider that can read it.
    const next = await client().responses.create({ model: '', store: false, input: [...(final.output as never[]), { role: 'user', content: 'more' }] });
    expect(next.status).toBe('completed');
    expect(setup.primary.requests.at(-1)?.body.input[0].encrypted_content).toBe(reasoning.encrypted_content);
  });

  it('fails over to the next Responses-speaking provider before the first byte', async () => {
    setup.primary.queueFaults({ kind: 'status', status: 503 });
    const { data, response } = await client().responses.create({ model: '', input: 'hello', store: false }).withResponse();
    expect(data.output_text).toBe('[backup] hello');
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    expect(setup.backup.requests.at(-1)?.path).toBe('/v1/responses');
  });

  it('continues a conversation Hapax keeps: the provider gets the whole input, never an id it has not seen', async () => {
    const first = await client().responses.create({ model: '', input: 'my name is Ada' });
    const second = await client().responses.create({ model: '', input: 'and mine?', previous_response_id: first.id });
    expect(second.output_text).toBe('[primary] and mine?');
    const sent = setup.primary.requests.at(-1)?.body;
    expect(sent.previous_response_id).toBeUndefined();
    expect(sent.input.map((item: { type?: string; role?: string }) => item.role ?? item.type)).toEqual(['user', 'assistant', 'user']);
    // A streamed answer is kept too, before its response.completed reaches the client.
    const streamed = await client().responses.stream({ model: '', input: 'streamed turn', previous_response_id: second.id }).finalResponse();
    const after = await client().responses.create({ model: '', input: 'after the stream', previous_response_id: streamed.id });
    expect(after.status).toBe('completed');
    expect(setup.primary.requests.at(-1)?.body.input).toHaveLength(7);
    // Begun on a provider of another dialect, a conversation reaches OpenAI without the items' Hapax-made ids.
    const elsewhere = await client().responses.create({ model: 'chatonly', input: 'begun elsewhere', reasoning: { effort: 'low' } });
    await client().responses.create({ model: 'primary', input: 'continued on OpenAI', previous_response_id: elsewhere.id });
    expect(setup.primary.requests.at(-1)?.body.input).toEqual([
      { type: 'message', role: 'user', content: 'begun elsewhere' },
      { type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: '[chatonly] begun elsewhere', annotations: [], logprobs: [] }] },
      { type: 'message', role: 'user', content: 'continued on OpenAI' },
    ]);
    // Kept by Hapax: retrievable, and continued on a chat-only provider through the translated lane.
    expect((await client().responses.retrieve(second.id)).output_text).toBe('[primary] and mine?');
    const third = await client().responses.create({ model: 'chatonly', input: 'who am I?', previous_response_id: second.id });
    expect(third.output_text).toBe('[chatonly] who am I?');
    expect(setup.chat.requests.at(-1)?.body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
  });
  it('continues a kept conversation with the exact model name too: the history goes up, not the bare request', async () => {
    const first = await client().responses.create({ model: 'gpt-5', input: 'my name is Ada' });
    await client().responses.create({ model: 'gpt-5', input: 'and mine?', previous_response_id: first.id });
    const sent = setup.primary.requests.at(-1)?.body;
    expect(sent.previous_response_id).toBeUndefined();
    expect(sent.input.map((item: { type?: string; role?: string }) => item.role ?? item.type)).toEqual(['user', 'assistant', 'user']);
  });

  it('ends a stream cut in the middle with an error the SDK raises', async () => {
    setup.primary.queueFaults({ kind: 'cut', afterChunks: 5 });
    const stream = client().responses.stream({ model: '', input: 'one two three four five six', store: false });
    await expect(stream.finalResponse()).rejects.toThrow();
  });
});

describe('Responses API with the response cache and rate limits', () => {
  const setup = useStarted({ upstream: () => startFakeResponses({ name: 'openai' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}", model: gpt-5}
  mock: {type: mock}
cache: {enabled: true}
rate_limit: {requests_per_minute: 1000}
`),
  });

  it.each(['openai', 'mock'])('serves an identical request from the cache (%s), whole and streamed', async (model) => {
    const client = sdk(setup.gateway);
    const body = { model, input: `cache me ${model}`, store: false };
    const first = await client.responses.create(body).withResponse();
    const again = await client.responses.create(body).withResponse();
    expect(again.response.headers.get('x-hapax-cache')).toBe('hit');
    expect(again.data.output_text).toBe(first.data.output_text);
    const streamed = await client.responses.stream(body).finalResponse();
    expect(streamed.output_text).toBe(first.data.output_text);
    // One upstream call: the streamed request gets the kept answer re-encoded as an event stream.
    if (model === 'openai') expect(setup.upstream.requests.filter((r) => r.body?.input === body.input)).toHaveLength(1);
  });
});

describe('Responses lossless lane when a provider hangs or resets', () => {
  const setup = useStarted({ primary: () => startFakeResponses({ name: 'primary' }), backup: () => startFakeResponses({ name: 'backup' }) }).and({
    gateway: ({ primary, backup }) =>
      startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-5, timeout: 500ms}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-5}
provider_preference: [primary, backup]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
  });

  it.each([{ kind: 'hang' as const }, { kind: 'reset' as const }])('fails over on a $kind, streamed or not', async (fault) => {
    setup.primary.queueFaults(fault, fault);
    const whole = await sdk(setup.gateway).responses.create({ model: '', input: 'hi', store: false }).withResponse();
    expect(whole.response.headers.get('x-hapax-provider')).toBe('backup');
    const streamed = await sdk(setup.gateway).responses.stream({ model: '', input: 'hi there', store: false }).finalResponse();
    expect(streamed.output_text).toBe('[backup] hi there');
  });
});
