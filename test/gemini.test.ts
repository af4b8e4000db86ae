/**
 * The Gemini API through the gateway, with the official OpenAI, Anthropic and Ollama clients: system prompts,
 * streaming, tools over two turns, images, reasoning (thinkingConfig and thoughts), structured output, safety
 * blocks, usage with cached and thinking tokens in metrics and cost, Google's errors, faults and failover.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { metricSum } from './helpers/metrics.ts';
import { useStarted } from './helpers/started.ts';

const KEY = 'AIzaSy-gemini-key-0123456789';
const PIXEL = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const LOOKUP = { type: 'function' as const, function: { name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false } } };

describe('gemini: every client API', () => {
  const setup = useStarted({ gemini: () => startFakeGemini({ name: 'gm', apiKey: KEY, blockWord: 'bomb', answerBlockWord: 'secret' }) }).and({
    gateway: ({ gemini }) =>
      startTestGateway(`
providers:
  gm: {type: gemini, base_url: "${gemini.url}/v1beta", api_key: "${KEY}", model: gemini-2.5-flash}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
pricing:
  gemini-2.5-flash: {input: 0.3, output: 2.5, cached_input: 0.075}
`),
  });
  afterEach(() => setup.gemini.reset());
  const openai = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const anthropic = () => new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 });
  const last = () => setup.gemini.requests.at(-1);

  it('OpenAI chat: system prompt as systemInstruction, generation settings, the key in x-goog-api-key, usage back', async () => {
    const res = await openai().chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'ping pong' },
      ],
      temperature: 0.2,
      top_p: 0.9,
      max_tokens: 50,
      stop: ['END'],
      seed: 3,
    });
    expect(res.choices[0]).toMatchObject({ message: { role: 'assistant', content: '[gm] ping pong' }, finish_reason: 'stop' });
    expect(res.usage).toMatchObject({ completion_tokens: 3 });
    expect(res.usage?.prompt_tokens).toBeGreaterThan(0);
    const sent = last();
    expect(sent?.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(sent?.headers['x-goog-api-key']).toBe(KEY);
    expect(sent?.headers.authorization).toBeUndefined();
    expect(sent?.body).toEqual({
      contents: [{ role: 'user', parts: [{ text: 'ping pong' }] }],
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      generationConfig: { temperature: 0.2, topP: 0.9, maxOutputTokens: 50, stopSequences: ['END'], seed: 3 },
    });
  });

  it('OpenAI chat, streamed: text deltas over SSE and the usage chunk', async () => {
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await openai().chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } })) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage ??= chunk.usage ?? undefined;
    }
    expect(text).toBe('[gm] one two three');
    expect(usage?.completion_tokens).toBe(4);
    expect(last()?.path).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent');
    expect(last()?.query).toBe('alt=sse');
  });

  it('OpenAI chat: a tool over two turns, with a strict JSON Schema sent as parametersJsonSchema', async () => {
    const first = await openai().chat.completions.create({ model: 'gemini-2.5-flash', tools: [LOOKUP], tool_choice: { type: 'function', function: { name: 'lookup' } }, messages: [{ role: 'user', content: 'Oslo weather' }] });
    const call = first.choices[0].message.tool_calls?.[0];
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function).toEqual({ name: 'lookup', arguments: '{"input":"Oslo weather"}' });
    expect(last()?.body.tools).toEqual([{ functionDeclarations: [{ name: 'lookup', description: 'Look it up', parametersJsonSchema: LOOKUP.function.parameters }] }]);
    expect(last()?.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['lookup'] } });
    if (!call) return;
    const second = await openai().chat.completions.create({
      model: 'gemini-2.5-flash',
      tools: [LOOKUP],
      messages: [{ role: 'user', content: 'Oslo weather' }, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
    });
    expect(second.choices[0].message.content).toBe('tool said: sunny');
    expect(last()?.body.contents).toEqual([
      { role: 'user', parts: [{ text: 'Oslo weather' }] },
      // The signature Gemini put on the call, carried in the call's id by the client (test/gemini-thought-signatures.test.ts).
      { role: 'model', parts: [{ functionCall: { name: 'lookup', args: { input: 'Oslo weather' } }, thoughtSignature: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) }] },
      { role: 'user', parts: [{ functionResponse: { name: 'lookup', response: { result: 'sunny' } } }] },
    ]);
    expect(last()?.body.contents[1].parts[0].thoughtSignature).not.toBe('skip_thought_signature_validator');
  });

  it('Ollama, streamed: a tool call and its answer', async () => {
    const ollama = new Ollama({ host: setup.gateway.url });
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { input: { type: 'string' } } } } }];
    let call: { function: { name: string; arguments: unknown } } | undefined;
    for await (const part of await ollama.chat({ model: 'gemini-2.5-flash', tools, messages: [{ role: 'user', content: 'find it' }], stream: true })) call ??= part.message.tool_calls?.[0];
    expect(call?.function).toEqual({ name: 'lookup', arguments: { input: 'find it' } });
    const answer = await ollama.chat({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'find it' }, { role: 'assistant', content: '', tool_calls: [call as never] }, { role: 'tool', content: 'found' }] });
    expect(answer.message.content).toBe('tool said: found');
  });

  it('Anthropic: an image goes as inlineData; thinking becomes thinkingConfig and the thoughts come back', async () => {
    const message = await anthropic().messages.create({
      model: 'gemini-2.5-flash',
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PIXEL } }, { type: 'text', text: 'what is it' }] }],
    });
    expect(message.content).toEqual([
      { type: 'thinking', thinking: 'Thinking about: what is it', signature: '' },
      { type: 'text', text: '[gm] what is it (1 image)' },
    ]);
    const sent = last()?.body;
    expect(sent.contents[0].parts).toEqual([{ inlineData: { mimeType: 'image/png', data: PIXEL } }, { text: 'what is it' }]);
    expect(sent.generationConfig).toEqual({ maxOutputTokens: 4096, thinkingConfig: { includeThoughts: true, thinkingBudget: 2048 } });
    // Thinking tokens count as output, and as reasoning.
    expect(message.usage.output_tokens).toBe(6 + 5);
  });

  it('Anthropic, streamed: thinking deltas before the text; reasoning off is a zero budget', async () => {
    const stream = anthropic().messages.stream({ model: 'gemini-2.5-flash', max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hello' }] });
    const thinking: string[] = [];
    stream.on('thinking', (delta) => thinking.push(delta));
    const final = await stream.finalMessage();
    expect(thinking.join('')).toBe('Thinking about: hello');
    expect(final.content.at(-1)).toEqual({ type: 'text', text: '[gm] hello' });

    await openai().chat.completions.create({ model: 'gemini-2.5-flash', reasoning_effort: 'none', messages: [{ role: 'user', content: 'hi' }] });
    expect(last()?.body.generationConfig).toEqual({ thinkingConfig: { thinkingBudget: 0 } });
  });

  it('OpenAI reasoning_effort: an effort is a thinking budget; reasoning tokens reach the client', async () => {
    const res = await openai().chat.completions.create({ model: 'gemini-2.5-flash', reasoning_effort: 'low', messages: [{ role: 'user', content: 'hi' }] });
    expect(last()?.body.generationConfig.thinkingConfig).toEqual({ includeThoughts: true, thinkingBudget: 2048 });
    expect(res.usage?.completion_tokens_details?.reasoning_tokens).toBe(3);
    expect((res.choices[0].message as unknown as { reasoning_content: string }).reasoning_content).toBe('Thinking about: hi');
  });

  it('structured output: a JSON schema as responseMimeType and responseJsonSchema', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    const res = await openai().chat.completions.create({ model: 'gemini-2.5-flash', response_format: { type: 'json_schema', json_schema: { name: 'a', schema, strict: true } }, messages: [{ role: 'user', content: 'json please' }] });
    expect(JSON.parse(res.choices[0].message.content ?? '')).toEqual({ answer: '[gm] json please' });
    expect(last()?.body.generationConfig).toEqual({ responseMimeType: 'application/json', responseJsonSchema: schema });
  });

  it("safety: a blocked prompt and a blocked answer both end as content_filter", async () => {
    const blocked = await openai().chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'how to build a bomb' }] });
    expect(blocked.choices[0]).toMatchObject({ finish_reason: 'content_filter', message: { content: '' } });
    const reasons: (string | null)[] = [];
    let text = '';
    for await (const chunk of await openai().chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'tell the secret' }], stream: true })) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.choices[0]?.finish_reason) reasons.push(chunk.choices[0].finish_reason);
    }
    expect(text).toBe('[gm] tell the ');
    expect(reasons).toEqual(['content_filter']);
  });

  it('usage: cached prompt tokens reach the client, the metrics and the cost', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'user', content: 'a long shared prefix of the conversation, long enough to count' },
      { role: 'assistant', content: 'noted' },
      { role: 'user', content: 'first' },
    ];
    await openai().chat.completions.create({ model: 'gemini-2.5-flash', messages });
    const before = await metricSum(setup.gateway.url, 'hapax_cost_usd_total{');
    const again = await openai().chat.completions.create({ model: 'gemini-2.5-flash', messages: [...messages.slice(0, 2), { role: 'user', content: 'second' }] });
    expect(again.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
    await expect.poll(() => metricSum(setup.gateway.url, 'hapax_tokens_total{provider="gm"')).toBeGreaterThan(0);
    await expect.poll(async () => (await metricSum(setup.gateway.url, 'hapax_cost_usd_total{')) - before).toBeGreaterThan(0);
  });

  it("passes Google's errors on: an unknown model is a 404 with Google's message", async () => {
    const error = await openai()
      .chat.completions.create({ model: 'gm/gemini-0-nope', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect((error as { status?: number }).status).toBe(404);
    expect(String((error as Error).message)).toMatch(/not found for API version v1beta/);
  });
});

describe('gemini: faults and failover', () => {
  const setup = useStarted({
    primary: () => startFakeGemini({ name: 'primary', apiKey: KEY }),
    backup: () => startFakeGemini({ name: 'backup', apiKey: KEY }),
  }).and({
    gateway: ({ primary, backup }) =>
      startTestGateway(`
providers:
  primary: {type: gemini, base_url: "${primary.url}", api_key: "${KEY}", model: gemini-2.5-flash, timeout: 500ms}
  backup: {type: gemini, base_url: "${backup.url}", api_key: "${KEY}", model: gemini-2.5-flash}
  badkey: {type: gemini, base_url: "${primary.url}", api_key: wrong, model: gemini-2.5-flash}
provider_preference: [primary, backup]
routes:
  - {path: /v1/badkey/chat/completions, handler: chat, provider_preference: [badkey, backup]}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
  });
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
  });
  const ask = async (stream = false, content = 'hello') => {
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    if (!stream) return (await client.chat.completions.create({ model: '', messages: [{ role: 'user', content }] })).choices[0].message.content;
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: '', messages: [{ role: 'user', content }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    return text;
  };

  it('fails over when the stream is cut before any output, and when the first chunk never comes', async () => {
    setup.primary.queueFaults({ kind: 'cut', afterChunks: 0 }, { kind: 'hang' });
    expect(await ask(true)).toBe('[backup] hello');
    expect(await ask(true)).toBe('[backup] hello');
    expect(setup.primary.requests).toHaveLength(2);
  });

  it('a stream cut in the middle ends with an error the client sees, never as a finished answer', async () => {
    // Far enough in that the first words have surely reached the client before the connection drops.
    setup.primary.queueFaults({ kind: 'cut', afterChunks: 30 });
    await expect(ask(true, Array.from({ length: 60 }, (_, i) => `w${i}`).join(' '))).rejects.toThrow();
    expect(setup.primary.requests).toHaveLength(1);
    expect(setup.backup.requests).toHaveLength(0);
  });

  it("Google's 400 API_KEY_INVALID is a credential problem: the next provider answers", async () => {
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1/badkey`, apiKey: 'x', maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hello' }] }).withResponse();
    expect(data.choices[0].message.content).toBe('[backup] hello');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
    expect(setup.primary.requests.at(-1)?.headers['x-goog-api-key']).toBe('wrong');
  });

  it('fails over on 500 INTERNAL, a reset, a hang, 503 UNAVAILABLE and 429 RESOURCE_EXHAUSTED with retry-after', async () => {
    // The 429 (and its Retry-After) comes last: after it the primary is skipped until the time has passed.
    setup.primary.queueFaults({ kind: 'status', status: 500 }, { kind: 'reset' }, { kind: 'hang' }, { kind: 'status', status: 503 }, { kind: 'status', status: 429, headers: { 'retry-after': '2' } });
    for (let i = 0; i < 5; i++) expect(await ask()).toBe('[backup] hello');
    expect(setup.primary.requests).toHaveLength(5);
    expect(await ask()).toBe('[backup] hello');
    expect(setup.primary.requests).toHaveLength(5);
  });
});

describe('gemini: an error in the stream', () => {
  const setup = useStarted({ gemini: () => startFakeGemini({ name: 'gm', apiKey: KEY, streamErrorAfter: 3 }) }).and({
    gateway: ({ gemini }) => startTestGateway(`providers:\n  gm: {type: gemini, base_url: "${gemini.url}", api_key: "${KEY}", model: gemini-2.5-flash}\nretry: {max_retries: 0}\n`),
  });

  it('an error object after the first words ends the client stream with an error, not as a finished answer', async () => {
    const stream = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 }).messages.stream({ model: 'gemini-2.5-flash', max_tokens: 100, messages: [{ role: 'user', content: 'one two three four five six' }] });
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));
    const error = await stream.finalMessage().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect(deltas.join('')).toBe('[gm] one two');
  });
});

describe('gemini: throttling', () => {
  const setup = useStarted({ gemini: () => startFakeGemini({ name: 'gm', apiKey: KEY }) }).and({
    gateway: ({ gemini }) => startTestGateway(`providers:\n  gm: {type: gemini, base_url: "${gemini.url}", api_key: "${KEY}", model: gemini-2.5-flash}\nretry: {max_retries: 0}\n`),
  });

  it("reads Google's RetryInfo (no Retry-After header) into the client's 429 and its Retry-After", async () => {
    // Google's 429 body: RESOURCE_EXHAUSTED with details [{@type: ...RetryInfo, retryDelay: "2s"}].
    setup.gemini.queueFaults({ kind: 'status', status: 429 });
    const res = await fetch(`${setup.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('2');
  });
});

describe('gemini: health and config', () => {
  it('probes health through the models list, spending no tokens', async () => {
    const fake = await startFakeGemini({ name: 'gm', apiKey: KEY });
    const gateway = await startTestGateway(`providers:\n  gm: {type: gemini, base_url: "${fake.url}", api_key: "${KEY}", model: gemini-2.5-flash}\nhealth_check: {interval: 100ms}\n`);
    try {
      await expect.poll(() => fake.requests.some((r) => r.method === 'GET' && r.path === '/v1beta/models' && r.headers['x-goog-api-key'] === KEY)).toBe(true);
      expect(fake.requests.every((r) => r.method === 'GET')).toBe(true);
      expect(JSON.stringify(gateway.logs)).not.toContain(KEY);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });

  it('explains a missing key by its key path', () => {
    let problems: string[] = [];
    try {
      parseConfig('providers:\n  gm: {type: gemini, model: gemini-2.5-flash}\n');
    } catch (error) {
      problems = (error as { problems: string[] }).problems;
    }
    expect(problems).toEqual(['providers.gm.api_key: required for type gemini (a Google AI Studio key)']);
  });
});
