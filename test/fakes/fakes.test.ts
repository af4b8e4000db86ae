/**
 * Self-test for the fake upstreams: drive each with its OFFICIAL SDK (no gateway in between)
 * to prove the fakes speak the real wire formats, plus raw-fetch checks of the fault machinery.
 */
import { afterEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { startFakeOpenAI } from './openai.ts';
import { startFakeAnthropic } from './anthropic.ts';
import { startFakeOllama } from './ollama.ts';
import { useStarted } from '../helpers/started.ts';

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('fake OpenAI via openai SDK', () => {
  const setup = useStarted({ fake: () => startFakeOpenAI({ apiKey: 'sk-test', models: ['gpt-4o-mini', 'gpt-4o'] }) }).and({
    client: ({ fake }) => new OpenAI({ apiKey: 'sk-test', baseURL: fake.url, maxRetries: 0 }),
  });
  afterEach(() => setup.fake.reset());

  it('plain chat completion', async () => {
    const res = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there' },
      ],
    });
    expect(res.object).toBe('chat.completion');
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.choices[0].message.content).toBe('[openai] hello there');
    expect(res.choices[0].finish_reason).toBe('stop');
    // (8 + 11) chars / 4 → 5 ; reply has 3 words
    expect(res.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    expect(setup.fake.requests).toHaveLength(1);
    expect(setup.fake.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(setup.fake.requests[0].headers.authorization).toBe('Bearer sk-test');
  });

  it('content parts and opts.reply-free text concatenation', async () => {
    const res = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'a ' }, { type: 'text', text: 'b' }] }],
    });
    expect(res.choices[0].message.content).toBe('[openai] a b');
  });

  it('streamed chat with include_usage', async () => {
    const stream = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe('[openai] one two three');
    const contentChunks = chunks.filter((c) => c.choices[0]?.delta.content);
    expect(contentChunks.map((c) => c.choices[0].delta.content)).toEqual(['[openai]', ' one', ' two', ' three']);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0].finish_reason).toBe('stop');
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('stream helper assembles tool calls', async () => {
    const runner = setup.client.chat.completions.stream({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'weather in Paris' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
    });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls?.[0];
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.id).toMatch(/^call_/);
    expect(call?.type === 'function' && call.function.name).toBe('get_weather');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ input: 'weather in Paris' });
  });

  it('tools: tool call, then tool result answered with text', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const first = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'find x' }],
      tools,
    });
    const call = first.choices[0].message.tool_calls![0];
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(first.choices[0].message.content).toBeNull();
    expect(call.type === 'function' && call.function).toEqual({ name: 'lookup', arguments: '{"input":"find x"}' });

    const second = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      tools,
      messages: [
        { role: 'user', content: 'find x' },
        first.choices[0].message,
        { role: 'tool', tool_call_id: call.id, content: '42' },
      ],
    });
    expect(second.choices[0].message.content).toBe('tool said: 42');

    const none = await setup.client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'find x' }],
      tools,
      tool_choice: 'none',
    });
    expect(none.choices[0].message.content).toBe('[openai] find x');
  });

  it('embeddings (SDK default base64 and explicit float)', async () => {
    const b64 = await setup.client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(b64.data).toHaveLength(2);
    expect(b64.data[0].embedding).toHaveLength(8);
    const floats = await setup.client.embeddings.create({ model: 'text-embedding-3-small', input: 'a', encoding_format: 'float' });
    expect(floats.data[0].embedding).toHaveLength(8);
    for (let i = 0; i < 8; i++) expect(b64.data[0].embedding[i]).toBeCloseTo(floats.data[0].embedding[i], 5);
    expect(b64.data[1].embedding).not.toEqual(b64.data[0].embedding);
  });

  it('models list and retrieve', async () => {
    const ids = [];
    for await (const m of setup.client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['gpt-4o-mini', 'gpt-4o']);
    expect((await setup.client.models.retrieve('gpt-4o')).id).toBe('gpt-4o');
    await expect(setup.client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('429 fault surfaces as RateLimitError with retry-after; queued faults are one-shot', async () => {
    setup.fake.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '2' } });
    const err = await setup.client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.status).toBe(429);
    expect(err.headers.get('retry-after')).toBe('2');
    expect(err.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    const ok = await setup.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0].message.content).toBe('[openai] hi');
  });

  it('auth and validation errors', async () => {
    const bad = new OpenAI({ apiKey: 'wrong', baseURL: setup.fake.url, maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(setup.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [] })).rejects.toBeInstanceOf(
      OpenAI.BadRequestError,
    );
    const res = await fetch(`${setup.fake.url}/nope`, { headers: { authorization: 'Bearer sk-test' } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.type).toBe('invalid_request_error');
  });
});

describe('fake Anthropic via @anthropic-ai/sdk', () => {
  const setup = useStarted({ fake: () => startFakeAnthropic({ apiKey: 'ak-test' }) }).and({
    client: ({ fake }) => new Anthropic({ apiKey: 'ak-test', baseURL: fake.url, maxRetries: 0 }),
  });
  afterEach(() => setup.fake.reset());

  it('plain messages.create', async () => {
    const msg = await setup.client.messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      system: 'be brief',
      messages: [{ role: 'user', content: 'hello there' }],
    });
    expect(msg.type).toBe('message');
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.content).toEqual([{ type: 'text', text: '[anthropic] hello there' }]);
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.usage).toMatchObject({ input_tokens: 5, output_tokens: 3 });
    // @anthropic-ai/sdk 1.x sends the API key as a bearer token, not x-api-key
    expect(setup.fake.requests[0].headers.authorization).toBe('Bearer ak-test');
    expect(setup.fake.requests[0].headers['anthropic-version']).toBeTruthy();
  });

  it('.stream() helper and raw stream:true events', async () => {
    const stream = setup.client.messages.stream({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'one two' }] }],
    });
    const deltas: string[] = [];
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalMessage();
    expect(deltas).toEqual(['[anthropic]', ' one', ' two']);
    expect(final.content).toEqual([{ type: 'text', text: '[anthropic] one two' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(3);

    const raw = await setup.client.messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    const types: string[] = [];
    for await (const ev of raw) types.push(ev.type);
    expect(types).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]); // the SDK swallows `ping`
  });

  it('tool_use (plain and streamed) and tool_result', async () => {
    const tools = [{ name: 'lookup', input_schema: { type: 'object' as const, properties: {} } }];
    const msg = await setup.client.messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      tools,
      messages: [{ role: 'user', content: 'find x' }],
    });
    expect(msg.stop_reason).toBe('tool_use');
    const block = msg.content[0];
    expect(block.type).toBe('tool_use');
    if (block.type !== 'tool_use') throw new Error('unreachable');
    expect(block.id).toMatch(/^toolu_/);
    expect(block).toMatchObject({ name: 'lookup', input: { input: 'find x' } });

    const streamed = await setup.client.messages
      .stream({ model: 'claude-3-5-haiku-latest', max_tokens: 100, tools, messages: [{ role: 'user', content: 'find y' }] })
      .finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content[0]).toMatchObject({ type: 'tool_use', name: 'lookup', input: { input: 'find y' } });

    const after = await setup.client.messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'find x' },
        { role: 'assistant', content: msg.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: block.id, content: '42' }] },
      ],
    });
    expect(after.content).toEqual([{ type: 'text', text: 'tool said: 42' }]);
  });

  it('messages.countTokens: input_tokens without max_tokens, validated like messages, faults apply', async () => {
    const params = { model: 'claude-3-5-haiku-latest', system: 'be brief', messages: [{ role: 'user' as const, content: 'hello there' }] };
    const counted = await setup.client.messages.countTokens(params);
    // The same estimate the fake reports as a message's input_tokens.
    expect(counted).toEqual({ input_tokens: 5 });
    expect(setup.fake.requests.at(-1)?.path).toBe('/v1/messages/count_tokens');
    const withTools = await setup.client.messages.countTokens({ ...params, tools: [{ name: 'lookup', input_schema: { type: 'object', properties: {} } }] });
    expect(withTools.input_tokens).toBeGreaterThan(counted.input_tokens);
    await expect(setup.client.messages.countTokens({ model: 'm', messages: [] })).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    setup.fake.queueFaults({ kind: 'status', status: 529 });
    await expect(setup.client.messages.countTokens(params)).rejects.toBeInstanceOf(Anthropic.OverloadedError);
  });

  it('529 fault → OverloadedError; 500 → InternalServerError', async () => {
    setup.fake.queueFaults({ kind: 'status', status: 529 }, { kind: 'status', status: 500 });
    const params = { model: 'claude-3-5-haiku-latest', max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
    const e1 = await setup.client.messages.create(params).catch((e) => e);
    expect(e1).toBeInstanceOf(Anthropic.OverloadedError);
    expect(e1.error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    const e2 = await setup.client.messages.create(params).catch((e) => e);
    expect(e2).toBeInstanceOf(Anthropic.InternalServerError);
    expect(e2.error.error.type).toBe('api_error');
  });

  it('validation, auth and models', async () => {
    await expect(
      setup.client.messages.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] } as any),
    ).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(
      setup.client.messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'system', content: 'hi' }] } as any),
    ).rejects.toThrow(/system/);
    const bad = new Anthropic({ apiKey: 'wrong', baseURL: setup.fake.url, maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    const noVersion = await fetch(`${setup.fake.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'ak-test', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(noVersion.status).toBe(400);
    expect((await noVersion.json()).error.type).toBe('invalid_request_error');
    const viaXApiKey = await fetch(`${setup.fake.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'ak-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(viaXApiKey.status).toBe(200);
    expect(viaXApiKey.headers.get('request-id')).toMatch(/^req_/);

    const ids = [];
    for await (const m of setup.client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['claude-3-5-haiku-latest']);
  });
});

describe('fake Ollama via ollama npm client', () => {
  const setup = useStarted({ fake: () => startFakeOllama({ reply: (t) => `echo: ${t}` }) }).and({
    client: ({ fake }) => new Ollama({ host: fake.url }),
  });
  afterEach(() => setup.fake.reset());

  it('plain chat (opts.reply) with counts', async () => {
    const res = await setup.client.chat({ model: 'llama3', messages: [{ role: 'user', content: 'hello there' }] });
    expect(res.message).toMatchObject({ role: 'assistant', content: 'echo: hello there' });
    expect(res.done).toBe(true);
    expect(res.done_reason).toBe('stop');
    expect(res.prompt_eval_count).toBe(3);
    expect(res.eval_count).toBe(3);
    expect(res.total_duration).toBeGreaterThan(0);
    expect(setup.fake.requests[0].body.stream).toBe(false);
  });

  it('streamed chat', async () => {
    const stream = await setup.client.chat({ model: 'llama3', messages: [{ role: 'user', content: 'a b' }], stream: true });
    const parts = [];
    for await (const p of stream) parts.push(p);
    expect(parts.filter((p) => !p.done).map((p) => p.message.content)).toEqual(['echo:', ' a', ' b']);
    const last = parts[parts.length - 1];
    expect(last).toMatchObject({ done: true, done_reason: 'stop', eval_count: 3 });
  });

  it('streams by default when `stream` is absent (raw fetch)', async () => {
    const res = await fetch(`${setup.fake.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3', messages: [{ role: 'user', content: 'x y' }] }),
    });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines[3].done).toBe(true);
  });

  it('tool calls with object arguments, then tool result', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const res = await setup.client.chat({ model: 'llama3', tools, messages: [{ role: 'user', content: 'find x' }] });
    expect(res.message.tool_calls).toEqual([{ function: { name: 'lookup', arguments: { input: 'find x' } } }]);
    const after = await setup.client.chat({
      model: 'llama3',
      tools,
      messages: [
        { role: 'user', content: 'find x' },
        res.message,
        { role: 'tool', content: '42' },
      ],
    });
    expect(after.message.content).toBe('tool said: 42');
  });

  it('list() and embed()', async () => {
    const list = await setup.client.list();
    expect(list.models.map((m) => m.name)).toEqual(['llama3:latest']);
    const emb = await setup.client.embed({ model: 'all-minilm', input: ['a', 'b'] });
    expect(emb.embeddings).toHaveLength(2);
    expect(emb.embeddings[0]).toHaveLength(8);
  });

  it('status fault surfaces as ResponseError with the native message', async () => {
    setup.fake.queueFaults({ kind: 'status', status: 500 });
    const err = await setup.client.chat({ model: 'llama3', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err.status_code).toBe(500);
    expect(err.error).toMatch(/llama runner/);
  });
});

describe('fault machinery (raw fetch)', () => {
  const setup = useStarted({ fake: () => startFakeOpenAI() });
  afterEach(() => setup.fake.reset());

  const chat = (stream: boolean, signal?: AbortSignal) =>
    fetch(`${setup.fake.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'one two three four' }] }),
      signal,
    });

  it('cut truncates a stream after N events', async () => {
    setup.fake.fault = { kind: 'cut', afterChunks: 2 };
    const res = await chat(true);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    const dec = new TextDecoder();
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += dec.decode(value);
        }
      })(),
    ).rejects.toThrow();
    expect(text.match(/^data: /gm)).toHaveLength(2);
    expect(text).not.toContain('[DONE]');
    expect(setup.fake.aborted).toBe(0); // our own cut is not a client abort
  });

  it('cut truncates a non-stream body', async () => {
    setup.fake.queueFaults({ kind: 'cut', afterChunks: 0 });
    const res = await chat(false);
    await expect(res.json()).rejects.toThrow();
  });

  it('reset fails the request', async () => {
    setup.fake.queueFaults({ kind: 'reset' });
    await expect(chat(false)).rejects.toThrow();
    expect((await chat(false)).status).toBe(200);
  });

  it('delay and slowStream', async () => {
    setup.fake.queueFaults({ kind: 'delay', ms: 150 }, { kind: 'slowStream', chunkDelayMs: 40 });
    let t = Date.now();
    expect((await chat(false)).status).toBe(200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    t = Date.now();
    const body = await (await chat(true)).text();
    expect(body).toContain('[DONE]');
    expect(Date.now() - t).toBeGreaterThanOrEqual(7 * 40 - 20); // 8 events → 7 gaps
  });

  it('hang + client abort counts as aborted, inFlight tracks concurrency', async () => {
    setup.fake.fault = { kind: 'hang' };
    const ac = new AbortController();
    const pending = [chat(false, ac.signal), chat(false, ac.signal)];
    await until(() => setup.fake.inFlight === 2);
    ac.abort();
    await Promise.allSettled(pending);
    await until(() => setup.fake.aborted === 2 && setup.fake.inFlight === 0);
  });

  it('client disconnect mid-stream counts as aborted', async () => {
    setup.fake.fault = { kind: 'slowStream', chunkDelayMs: 50 };
    const ac = new AbortController();
    const res = await chat(true, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await until(() => setup.fake.aborted === 1 && setup.fake.inFlight === 0);
    // health probes are recorded but never faulted
    setup.fake.fault = { kind: 'status', status: 500 };
    expect((await fetch(`${setup.fake.url}/models`)).status).toBe(200);
    setup.fake.fault = null;
    expect(setup.fake.requests.map((r) => r.path)).toEqual(['/v1/chat/completions', '/v1/models']);
  });
});

describe('scripted turns (FakeOptions.turn), as coding agents need them', () => {
  const seen: Array<{ toolResult?: string; lastUserText: string; tools: string[] }> = [];
  const turn = ({ toolResult, lastUserText, tools }: { toolResult?: string; lastUserText: string; tools: string[] }) => {
    seen.push({ toolResult, lastUserText, tools });
    return toolResult === undefined ? { tool: 'Read', input: { file_path: '/work/note.txt' }, id: 'call_1' } : { text: `read: ${toolResult}` };
  };
  const setup = useStarted({
    anthropic: () => startFakeAnthropic({ apiKey: 'ak-test', turn }),
    openai: () => startFakeOpenAI({ apiKey: 'sk-test', turn }),
  }).and({
    claude: ({ anthropic }) => new Anthropic({ apiKey: 'ak-test', baseURL: anthropic.url, maxRetries: 0 }),
    gpt: ({ openai }) => new OpenAI({ apiKey: 'sk-test', baseURL: openai.url, maxRetries: 0 }),
  });
  afterEach(() => {
    seen.length = 0;
    setup.anthropic.reset();
    setup.openai.reset();
  });
  const readTool = { name: 'Read', description: 'Read a file', input_schema: { type: 'object' as const, properties: { file_path: { type: 'string' } } } };

  it('Anthropic beta client: a streamed tool_use with the scripted input, then text from the tool_result; system-role messages under their beta', async () => {
    const user = { role: 'user' as const, content: 'read the note' };
    // A role "system" message between turns, as Claude Code sends it under per-turn-control.
    const between = { role: 'system' as const, content: 'Working directory: /work', output_config: { effort: 'low' as const } };
    const first = await setup.claude.beta.messages
      .stream({ model: 'm', max_tokens: 50, betas: ['per-turn-control-2026-07-01'], tools: [readTool], messages: [user, between] })
      .finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([expect.objectContaining({ type: 'tool_use', id: 'call_1', name: 'Read', input: { file_path: '/work/note.txt' } })]);
    expect(setup.anthropic.requests[0]).toMatchObject({ path: '/v1/messages', query: '' });
    expect(setup.anthropic.requests[0].headers['anthropic-beta']).toBe('per-turn-control-2026-07-01');

    const second = await setup.claude.beta.messages.create({
      model: 'm',
      max_tokens: 50,
      betas: ['per-turn-control-2026-07-01'],
      tools: [readTool],
      messages: [user, between, { role: 'assistant', content: first.content as any }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: 'pineapple' }] }],
    });
    expect(second.content).toEqual([expect.objectContaining({ type: 'text', text: 'read: pineapple' })]);
    expect(seen).toEqual([
      { toolResult: undefined, lastUserText: 'read the note', tools: ['Read'] },
      { toolResult: 'pineapple', lastUserText: '', tools: ['Read'] },
    ]);

    // Without the beta the role stays refused, as before.
    await expect(setup.claude.messages.create({ model: 'm', max_tokens: 5, messages: [user, between] } as any)).rejects.toThrow(/system/);

    // The `?beta=true` query Claude Code's SDK adds is accepted and recorded.
    const withQuery = await fetch(`${setup.anthropic.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'x-api-key': 'ak-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(withQuery.status).toBe(200);
    expect(setup.anthropic.requests.at(-1)).toMatchObject({ path: '/v1/messages', query: 'beta=true' });
  });

  it('OpenAI: a streamed tool call with the scripted arguments, then text from the tool message', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'Read', parameters: { type: 'object', properties: { file_path: { type: 'string' } } } } }];
    const user = { role: 'user' as const, content: 'read the note' };
    const first = await setup.gpt.chat.completions.stream({ model: 'gpt-4o-mini', tools, messages: [user] }).finalChatCompletion();
    const call = first.choices[0].message.tool_calls?.[0];
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(call).toMatchObject({ id: 'call_1', type: 'function', function: { name: 'Read' } });
    expect(JSON.parse(call?.type === 'function' ? call.function.arguments : '')).toEqual({ file_path: '/work/note.txt' });

    const second = await setup.gpt.chat.completions.create({
      model: 'gpt-4o-mini',
      tools,
      messages: [user, first.choices[0].message, { role: 'tool', tool_call_id: 'call_1', content: 'pineapple' }],
    });
    expect(second.choices[0].message.content).toBe('read: pineapple');
    expect(seen.map((s) => s.toolResult)).toEqual([undefined, 'pineapple']);
    expect(seen[0].tools).toEqual(['Read']);
  });
});
