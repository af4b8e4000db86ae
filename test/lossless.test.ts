/**
 * The lossless lane: a client that speaks the provider's own dialect reaches it with every field intact, and
 * gets the provider's answer back exactly as it was sent, while Hapax still reads usage for its accounting.
 * The upstream is scripted: its replies are canned wire text written from the providers' API references
 * (thinking with signatures, redacted thinking, citations, server tools, cache usage, logprobs, and fields no
 * version of either API has), so what reaches each side can be compared byte for byte.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startScriptedUpstream, type ScriptedReply } from './fakes/scripted.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const UPSTREAM_KEY = 'sk-ant-upstream-secret';
const CLIENT_KEY = 'client-own-key';
const MODEL = 'claude-sonnet-4-5';

const JSON_HEADERS = { 'content-type': 'application/json' };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8' };
const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** A Claude Code-like request: cache markers everywhere, thinking, betas' fields, and fields no API version has. */
const claudeCodeLike = () => ({
  model: MODEL,
  max_tokens: 1024,
  system: [
    { type: 'text', text: 'You are a coding agent.', cache_control: { type: 'ephemeral' } },
    { type: 'text', text: 'Project rules follow.', cache_control: { type: 'ephemeral', ttl: '1h' } },
  ],
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Read main.ts', cache_control: { type: 'ephemeral' } },
        { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQK' }, title: 'spec.pdf', citations: { enabled: true } },
        { type: 'search_result', source: 'https://docs.example.com/main', title: 'main.ts', content: [{ type: 'text', text: 'console.log(1)' }] },
        { type: 'a_block_type_of_the_future', payload: { x: 1 } },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'The user wants a file.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds==' },
        { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' },
        { type: 'tool_use', id: 'toolu_01', name: 'Read', input: { path: 'main.ts' } },
      ],
    },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: 'console.log(1)', cache_control: { type: 'ephemeral' } }] },
  ],
  tools: [
    { name: 'Read', description: 'Reads a file', input_schema: { type: 'object', properties: { path: { type: 'string' } } }, cache_control: { type: 'ephemeral' } },
    { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
  ],
  tool_choice: { type: 'auto', disable_parallel_tool_use: false },
  thinking: { type: 'enabled', budget_tokens: 2048 },
  context_management: { edits: [{ type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 30000 } }] },
  output_config: { effort: 'high' },
  metadata: { user_id: 'user_3f2a_account_9c_session_77' },
  a_field_no_api_version_has: { deep: { list: [1, 'two', null, true, 1.5] } },
});

/** A whole Messages answer with every kind of block the reference lists, and fields of the future. */
const MESSAGE_ANSWER = JSON.stringify({
  id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
  type: 'message',
  role: 'assistant',
  model: MODEL,
  content: [
    { type: 'thinking', thinking: 'Reading it now.', signature: 'WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL' },
    { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' },
    { type: 'text', text: 'It logs 1.', citations: [{ type: 'char_location', cited_text: 'console.log(1)', document_index: 0, document_title: 'main.ts', start_char_index: 0, end_char_index: 14 }] },
    { type: 'server_tool_use', id: 'srvtoolu_01', name: 'web_search', input: { query: 'console.log' } },
    { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_01', content: [] },
    { type: 'a_block_type_of_the_future', payload: { x: 1 } },
  ],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 12, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000, output_tokens: 9, service_tier: 'standard', server_tool_use: { web_search_requests: 1 } },
  container: null,
  a_top_level_field_of_the_future: { nested: [1, 2] },
});

/** A streamed answer: thinking with its signature delta, a ping, an event type of the future. */
const messageStream = (opts: { future?: boolean } = {}) => [
  sse('message_start', {
    type: 'message_start',
    message: { id: 'msg_01S', type: 'message', role: 'assistant', model: MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 25, cache_creation_input_tokens: 0, cache_read_input_tokens: 300, output_tokens: 1 } },
  }),
  'event: ping\ndata: {"type": "ping"}\n\n',
  sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
  sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Thinking it over.' } }),
  sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' } }),
  sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
  sse('content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }),
  sse('content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hello' } }),
  ...(opts.future ? [sse('an_event_type_of_the_future', { type: 'an_event_type_of_the_future', anything: true })] : []),
  sse('content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: ' there' } }),
  sse('content_block_stop', { type: 'content_block_stop', index: 1 }),
  sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
  sse('message_stop', { type: 'message_stop' }),
];

const messageReply = (): ScriptedReply => ({ headers: JSON_HEADERS, body: MESSAGE_ANSWER });
const streamReply = (opts?: { future?: boolean }): ScriptedReply => ({ headers: SSE_HEADERS, body: messageStream(opts) });
const overloaded = (): ScriptedReply => ({ status: 529, headers: JSON_HEADERS, body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' });

async function post(gateway: TestGateway, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** The request log line for a response. */
const logLine = (gateway: TestGateway, response: Response) => gateway.logs.findLast((l) => l.msg === 'request' && l.request_id === response.headers.get('x-request-id'));

describe('lossless lane: Anthropic Messages to an anthropic provider', () => {
  const setup = useStarted({ primary: () => startScriptedUpstream(), backup: () => startScriptedUpstream(), openai: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ primary, backup, openai }) =>
      startTestGateway(`
providers:
  primary: {type: anthropic, base_url: "${primary.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}}
  backup: {type: anthropic, base_url: "${backup.url}", api_key: "${UPSTREAM_KEY}-backup", model: claude-backup-model}
  gpt: {type: openai, base_url: "${openai.url}", api_key: "sk-openai", model: gpt-4o-mini}
provider_preference: [primary, backup, gpt]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
`),
  });
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
    setup.openai.reset();
  });

  it('sends the body field for field, and the client protocol headers, with the provider credentials only', async () => {
    setup.primary.queue(messageReply());
    const sent = claudeCodeLike();
    const response = await post(setup.gateway, '/v1/messages?beta=true', sent, {
      'x-api-key': CLIENT_KEY,
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'interleaved-thinking-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05',
      'x-app': 'cli',
    });
    expect(response.status).toBe(200);
    const received = setup.primary.received[0];
    expect(received.json).toEqual(sent);
    expect(received.url).toBe('/v1/messages?beta=true');
    expect(received.headers['anthropic-version']).toBe('2023-06-01');
    expect(received.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05');
    expect(received.headers['x-api-key']).toBe(UPSTREAM_KEY);
    expect(received.headers.authorization).toBeUndefined();
    expect(JSON.stringify(received.headers)).not.toContain(CLIENT_KEY);
  });

  it("sends the client's own bytes when nothing in them changes: spacing, key order, number forms, escapes", async () => {
    setup.primary.queue(messageReply());
    const text = `{ "max_tokens" : 1.0e3 ,"model":"${MODEL}",\n  "messages":[{"role":"user","content":"caf\\u00e9 \\ud83d\\ude00"}], "temperature": 0.50 }`;
    const response = await fetch(`${setup.gateway.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: text });
    expect(response.status).toBe(200);
    expect(setup.primary.received[0].text).toBe(text);
  });

  it('answers with the provider JSON exactly as sent, and accounts its usage (cache reads included)', async () => {
    setup.primary.queue(messageReply());
    const response = await post(setup.gateway, '/v1/messages', claudeCodeLike(), { 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.text()).toBe(MESSAGE_ANSWER);
    expect(response.headers.get('x-hapax-provider')).toBe('primary');
    await expect.poll(() => logLine(setup.gateway, response)?.tokens).toEqual({ prompt: 12 + 100 + 2000, completion: 9, cache_read: 2000, cache_write: 100 });
  });

  it('the Anthropic SDK gets thinking signatures, redacted thinking and citations back through the beta API', async () => {
    setup.primary.queue(messageReply());
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const message = await client.beta.messages.create({
      model: MODEL,
      max_tokens: 1024,
      betas: ['interleaved-thinking-2025-05-14'],
      thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: 'What does main.ts log?' }],
    });
    expect(message.content).toEqual(JSON.parse(MESSAGE_ANSWER).content);
    expect(message.usage.cache_read_input_tokens).toBe(2000);
    const received = setup.primary.received[0];
    expect(received.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14');
    expect(received.json.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
  });

  it('the Anthropic SDK sends cache_control on system, tools and messages, and documents, as it wrote them', async () => {
    setup.primary.queue(messageReply());
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: MODEL,
      max_tokens: 1024,
      system: [{ type: 'text', text: 'You review code.', cache_control: { type: 'ephemeral', ttl: '1h' } }],
      tools: [{ name: 'Read', description: 'Reads a file', input_schema: { type: 'object', properties: { path: { type: 'string' } } }, cache_control: { type: 'ephemeral' } }],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQK' }, title: 'spec.pdf', cache_control: { type: 'ephemeral' } },
            { type: 'text', text: 'Summarise the spec.', cache_control: { type: 'ephemeral' } },
          ],
        },
      ],
    };
    const message = await client.messages.create(params);
    expect(message.usage.cache_creation_input_tokens).toBe(100);
    expect(setup.primary.received[0].json).toEqual(params);
  });

  it('refuses a body over the route limit with 413 in Anthropic shape, before anything goes upstream', async () => {
    const huge = { ...claudeCodeLike(), a_field_no_api_version_has: 'x'.repeat(2 * 1024 * 1024) };
    const response = await post(setup.gateway, '/v1/messages', huge, { 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    expect(setup.primary.received).toHaveLength(0);
  });

  it('maps only `model` when the request names the provider rather than the model', async () => {
    setup.backup.queue(messageReply());
    const sent = { ...claudeCodeLike(), model: 'backup' };
    const response = await post(setup.gateway, '/v1/messages', sent, { 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(200);
    expect(setup.backup.received[0].json).toEqual({ ...sent, model: 'claude-backup-model' });
  });

  it('streams the provider events byte for byte, events of the future included, and accounts the usage', async () => {
    setup.primary.queue(streamReply({ future: true }));
    const response = await post(setup.gateway, '/v1/messages', { ...claudeCodeLike(), stream: true }, { 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await response.text()).toBe(messageStream({ future: true }).join(''));
    await expect.poll(() => logLine(setup.gateway, response)?.tokens).toEqual({ prompt: 325, completion: 15, cache_read: 300 });
  });

  it('the Anthropic SDK assembles a streamed thinking block with its signature', async () => {
    setup.primary.queue(streamReply());
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const final = await client.messages.stream({ model: MODEL, max_tokens: 1024, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
    expect(final.content).toEqual([
      { type: 'thinking', thinking: 'Thinking it over.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' },
      { type: 'text', text: 'Hello there' },
    ]);
  });

  it('fails over before the first byte: a 529, then an overload right after message_start', async () => {
    setup.primary.queue(overloaded());
    setup.backup.queue(messageReply());
    const json = await post(setup.gateway, '/v1/messages', claudeCodeLike(), { 'anthropic-version': '2023-06-01' });
    expect(json.status).toBe(200);
    expect(json.headers.get('x-hapax-provider')).toBe('backup');
    expect(await json.text()).toBe(MESSAGE_ANSWER);

    const frames = messageStream();
    setup.primary.queue({ headers: SSE_HEADERS, body: [frames[0], frames[1], sse('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })] });
    setup.backup.queue(streamReply());
    const stream = await post(setup.gateway, '/v1/messages', { ...claudeCodeLike(), stream: true }, { 'anthropic-version': '2023-06-01' });
    expect(stream.headers.get('x-hapax-provider')).toBe('backup');
    expect(await stream.text()).toBe(frames.join(''));
  });

  it('fails over to a provider of another dialect through the translated lane', async () => {
    setup.primary.queue(overloaded());
    setup.backup.queue(overloaded());
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const { data, response } = await client.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] }).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('gpt');
    expect(data.type).toBe('message');
    expect(data.content[0]).toEqual({ type: 'text', text: '[gpt] hello' });
    expect(setup.openai.requests.at(-1)?.body.model).toBe('gpt-4o-mini');
  });

  it('a stream the provider cuts mid-way ends with an Anthropic error event', async () => {
    setup.primary.queue({ headers: SSE_HEADERS, body: messageStream(), cutAfter: 8 });
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    await expect(stream.finalMessage()).rejects.toThrow();
    // The same through raw HTTP: the frames that came, then one error event in Anthropic's shape.
    setup.primary.queue({ headers: SSE_HEADERS, body: messageStream(), cutAfter: 8 });
    const response = await post(setup.gateway, '/v1/messages', { ...claudeCodeLike(), stream: true }, { 'anthropic-version': '2023-06-01' });
    const text = await response.text();
    expect(text.startsWith(messageStream().slice(0, 8).join(''))).toBe(true);
    const tail = text.slice(messageStream().slice(0, 8).join('').length);
    expect(tail).toMatch(/^event: error\ndata: /);
    expect(JSON.parse(tail.slice(tail.indexOf('data: ') + 6))).toMatchObject({ type: 'error', error: { type: expect.any(String), message: expect.any(String) } });
  });

  it('passes a provider error event after the first bytes on once, as the provider sent it', async () => {
    const frames = messageStream();
    const error = sse('error', { type: 'error', error: { type: 'api_error', message: 'Internal server error' } });
    setup.primary.queue({ headers: SSE_HEADERS, body: [...frames.slice(0, 8), error] });
    const response = await post(setup.gateway, '/v1/messages', { ...claudeCodeLike(), stream: true }, { 'anthropic-version': '2023-06-01' });
    expect(await response.text()).toBe(frames.slice(0, 8).join('') + error);
    await expect.poll(() => logLine(setup.gateway, response)?.error).toBe('ProcessingError');
  });

  it('refuses bad input in Anthropic error shape before anything goes upstream', async () => {
    const noMax = await post(setup.gateway, '/v1/messages', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(noMax.status).toBe(400);
    expect(await noMax.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    const notJson = await fetch(`${setup.gateway.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(setup.primary.received).toHaveLength(0);
  });
});

describe('lossless lane: header policy, dedup, cache and opting out', () => {
  const setup = useStarted({ upstream: () => startScriptedUpstream(), plain: () => startScriptedUpstream() }).and({
    gateway: ({ upstream, plain }) =>
      startTestGateway(`
providers:
  pinned:
    type: anthropic
    base_url: "${upstream.url}"
    api_key: "${UPSTREAM_KEY}"
    model: ${MODEL}
    anthropic_version: "2023-01-01"
    betas: {deny: ["context-management-*", "experimental-*"]}
  translated: {type: anthropic, base_url: "${plain.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}, lossless: false}
provider_preference: [pinned]
retry: {max_retries: 0}
cache: {enabled: true}
`),
  });
  afterEach(() => {
    setup.upstream.reset();
    setup.plain.reset();
  });

  it('pins anthropic-version and filters betas as the provider config says', async () => {
    setup.upstream.queue(messageReply());
    const response = await post(setup.gateway, '/v1/messages', claudeCodeLike(), {
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'interleaved-thinking-2025-05-14, context-management-2025-06-27,experimental-x',
      'cache-control': 'no-cache',
    });
    expect(response.status).toBe(200);
    expect(setup.upstream.received[0].headers['anthropic-version']).toBe('2023-01-01');
    expect(setup.upstream.received[0].headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14');
  });

  it('answers an identical request from the cache with the same bytes, and a changed field is a new request', async () => {
    setup.upstream.queue(streamReply(), streamReply());
    const body = { ...claudeCodeLike(), stream: true, a_field_no_api_version_has: 'cache me' };
    const first = await post(setup.gateway, '/v1/messages', body, { 'anthropic-version': '2023-06-01' });
    const firstText = await first.text();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await post(setup.gateway, '/v1/messages', body, { 'anthropic-version': '2023-06-01' });
    expect(second.headers.get('x-hapax-cache')).toBe('hit');
    expect(await second.text()).toBe(firstText);
    expect(setup.upstream.received).toHaveLength(1);
    const changed = await post(setup.gateway, '/v1/messages', { ...body, a_field_no_api_version_has: 'another' }, { 'anthropic-version': '2023-06-01' });
    await changed.text();
    expect(changed.headers.get('x-hapax-cache')).toBeNull();
    expect(setup.upstream.received).toHaveLength(2);
  });

  it('shares one upstream call between identical concurrent requests (dedup on the whole body)', async () => {
    setup.upstream.queue({ headers: SSE_HEADERS, body: messageStream() });
    const body = { ...claudeCodeLike(), stream: true, a_field_no_api_version_has: 'dedup me' };
    const headers = { 'anthropic-version': '2023-06-01', 'cache-control': 'no-store' };
    const [a, b] = await Promise.all([post(setup.gateway, '/v1/messages', body, headers), post(setup.gateway, '/v1/messages', body, headers)]);
    const [textA, textB] = await Promise.all([a.text(), b.text()]);
    expect(textA).toBe(messageStream().join(''));
    expect(textB).toBe(textA);
    expect(setup.upstream.received).toHaveLength(1);
  });

  it('translates instead when the provider sets lossless: false', async () => {
    setup.plain.queue(messageReply());
    const response = await post(setup.gateway, '/v1/messages', { ...claudeCodeLike(), model: 'translated' }, { 'anthropic-version': '2023-06-01', 'cache-control': 'no-cache' });
    expect(response.status).toBe(200);
    expect(setup.plain.received[0].json.a_field_no_api_version_has).toBeUndefined();
    // What the canonical model cannot carry is named, not silently lost.
    const dropped = response.headers.get('x-hapax-dropped')?.split(',') ?? [];
    expect(dropped).toEqual(expect.arrayContaining(['a_field_no_api_version_has', 'context_management', 'tools[1]', 'messages[0].content[2]', 'messages[0].content[3]']));
    expect(setup.plain.received[0].headers['anthropic-version']).toBe('2023-06-01');
    const answer = await response.json();
    expect(answer.a_top_level_field_of_the_future).toBeUndefined();
    expect(answer.type).toBe('message');
  });
});

describe('lossless lane: OpenAI Chat Completions to an openai provider', () => {
  const COMPLETION = JSON.stringify({
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4.1-2025-04-14',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello!', refusal: null, annotations: [], a_message_field_of_the_future: 1 },
        logprobs: { content: [{ token: 'Hello', logprob: -0.0001, bytes: [72, 101, 108, 108, 111], top_logprobs: [] }], refusal: null },
        finish_reason: 'stop',
      },
    ],
    usage: {
      prompt_tokens: 19,
      completion_tokens: 10,
      total_tokens: 29,
      prompt_tokens_details: { cached_tokens: 12, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 4, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_6b68a8204b',
  });
  const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4.1","service_tier":"default","system_fingerprint":"fp_1",';
  const CHUNKS = [
    `data: ${head}"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"a1"}\n\n`,
    `data: ${head}"choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"b2"}\n\n`,
    `data: ${head}"choices":[{"index":0,"delta":{"content":"lo"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n`,
    `data: ${head}"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n`,
  ];
  const USAGE_CHUNK = `data: ${head}"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}}}\n\n`;
  const DONE = 'data: [DONE]\n\n';

  const setup = useStarted({ upstream: () => startScriptedUpstream() }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}/v1", api_key: "sk-upstream-openai", model: gpt-4.1}
retry: {max_retries: 0}
dedup: {enabled: false}
`),
  });
  afterEach(() => setup.upstream.reset());
  const client = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, defaultHeaders: { 'OpenAI-Beta': 'assistants=v2' } });

  const chatRequest = () => ({
    model: 'gpt-4.1',
    messages: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }, { type: 'a_part_type_of_the_future' }] },
    ],
    tools: [{ type: 'custom', custom: { name: 'run_sql', description: 'Runs SQL', format: { type: 'text' } } }],
    n: 2,
    logprobs: true,
    top_logprobs: 2,
    prompt_cache_key: 'agent-42',
    reasoning_effort: 'low',
    verbosity: 'low',
    store: false,
    a_field_no_api_version_has: { x: [1, 2, 3] },
  });

  it('sends the body field for field with the OpenAI-Beta header and the provider key, and answers the provider JSON as sent', async () => {
    setup.upstream.queue({ headers: JSON_HEADERS, body: COMPLETION });
    const sent = chatRequest();
    const { data, response } = await client()
      .chat.completions.create(sent as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    const received = setup.upstream.received[0];
    expect(received.url).toBe('/v1/chat/completions');
    expect(received.json).toEqual(sent);
    expect(received.headers['openai-beta']).toBe('assistants=v2');
    expect(received.headers.authorization).toBe('Bearer sk-upstream-openai');
    expect(data).toEqual(JSON.parse(COMPLETION));
    expect(response.headers.get('x-hapax-provider')).toBe('openai');
  });

  it('asks for stream usage itself and keeps the extra usage chunk from a client that did not ask for it', async () => {
    setup.upstream.queue({ headers: SSE_HEADERS, body: [...CHUNKS, USAGE_CHUNK, DONE] });
    const sent = { ...chatRequest(), stream: true };
    const response = await post(setup.gateway, '/v1/chat/completions', sent);
    expect(await response.text()).toBe([...CHUNKS, DONE].join(''));
    expect(setup.upstream.received[0].json).toEqual({ ...sent, stream_options: { include_usage: true } });
    await expect.poll(() => logLine(setup.gateway, response)?.tokens).toEqual({ prompt: 9, completion: 2 });
  });

  it('passes the stream byte for byte to a client that asked for usage, and the SDK reads it', async () => {
    setup.upstream.queue({ headers: SSE_HEADERS, body: [...CHUNKS, USAGE_CHUNK, DONE] });
    const sent = { ...chatRequest(), stream: true, stream_options: { include_usage: true } };
    const response = await post(setup.gateway, '/v1/chat/completions', sent);
    expect(await response.text()).toBe([...CHUNKS, USAGE_CHUNK, DONE].join(''));
    expect(setup.upstream.received[0].json).toEqual(sent);

    setup.upstream.queue({ headers: SSE_HEADERS, body: [...CHUNKS, USAGE_CHUNK, DONE] });
    const stream = await client().chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Hello');
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 2 });
  });

  it('a stream cut mid-way ends with an error the openai SDK raises', async () => {
    setup.upstream.queue({ headers: SSE_HEADERS, body: [...CHUNKS, USAGE_CHUNK, DONE], cutAfter: 2 });
    const stream = await client().chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    let text = '';
    await expect(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      })(),
    ).rejects.toThrow();
    expect(text).toBe('Hel');
  });
});
