/**
 * Stream resume (route `resume_streams: true`), through each client API's official SDK: the first provider's
 * stream breaks after part of the answer went out (a reset, its own error event, or silence past
 * stream_idle_timeout), the next candidate is sent the partial answer as a prefill, and the client gets exactly
 * the text of one uninterrupted answer: one message, one id, usage summed over both attempts, and the resume in
 * the request log and in hapax_stream_resumes_total. The fakes are deterministic: given a prefill, they continue
 * with exactly the rest of their answer. Without resume_streams the same cut ends with an error event.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import type { Fault, FakeProvider } from './fakes/common.ts';
import { startFakeOllama } from './fakes/ollama.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { expectResumedOnce, lastRequestLine, resumesFromFirst } from './helpers/resume.ts';
import { useStarted } from './helpers/started.ts';

/** The fakes' one answer: long enough to be cut in the middle of, in word chunks. */
const ANSWER = 'The quick brown fox jumps over the lazy dog, then runs across the wide green field until the evening sun goes down.';
const reply = () => ANSWER;

const ROUTES = `
routes:
  - {path: /v1/chat/completions, handler: chat, resume_streams: true}
  - {path: /v1/messages, handler: messages, resume_streams: true}
  - {path: /v1/responses, handler: responses, resume_streams: true}
  - {path: /api/chat, handler: ollama_chat, resume_streams: true}
  - {path: /v1/completions, handler: completion, resume_streams: true}
  - {path: /off/v1/chat/completions, handler: chat}
  - {path: /off/v1/messages, handler: messages}
`;

function gatewayFor(type: string, first: FakeProvider, second: FakeProvider, model: string, secondExtra = ''): Promise<TestGateway> {
  return startTestGateway(`
providers:
  first: {type: ${type}, base_url: "${first.url}", model: ${model}, stream_idle_timeout: 300ms}
  second: {type: ${type}, base_url: "${second.url}", model: ${model}${secondExtra}}
provider_preference: [first, second]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
${ROUTES}`);
}

interface Got {
  text: string;
  /** Every id the stream said its message had (one message: one distinct id). */
  ids: Set<string>;
  usage: { input: number; output: number } | undefined;
}

/** One streamed answer through each client API, read the way that API's users read it. */
const CLIENTS: Record<string, (url: string, prompt: string) => Promise<Got>> = {
  async openai(url, prompt) {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: '', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] });
    const got: Got = { text: '', ids: new Set(), usage: undefined };
    let roles = 0;
    for await (const chunk of stream) {
      got.ids.add(chunk.id);
      if (chunk.choices[0]?.delta?.role) roles++;
      got.text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) got.usage = { input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens };
    }
    expect(roles).toBe(1);
    return got;
  },
  async anthropic(url, prompt) {
    const client = new Anthropic({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
    const stream = client.messages.stream({ model: '', max_tokens: 256, messages: [{ role: 'user', content: prompt }] });
    const got: Got = { text: '', ids: new Set(), usage: undefined };
    const blocks = new Set<number>();
    for await (const event of stream) {
      if (event.type === 'message_start') got.ids.add(event.message.id);
      if (event.type === 'content_block_start') blocks.add(event.index);
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') got.text += event.delta.text;
    }
    const final = await stream.finalMessage();
    expect([...blocks]).toEqual([0]);
    expect(final.content).toHaveLength(1);
    expect(final.content[0]).toMatchObject({ type: 'text', text: got.text });
    got.usage = { input: final.usage.input_tokens, output: final.usage.output_tokens };
    return got;
  },
  async responses(url, prompt) {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = client.responses.stream({ model: '', input: prompt, store: false });
    const got: Got = { text: '', ids: new Set(), usage: undefined };
    const items = new Set<string>();
    for await (const event of stream) {
      if (event.type === 'response.created' || event.type === 'response.completed') got.ids.add(event.response.id);
      if (event.type === 'response.output_text.delta') {
        got.text += event.delta;
        items.add(event.item_id);
      }
    }
    const final = await stream.finalResponse();
    expect(items.size).toBe(1);
    expect(final.output_text).toBe(got.text);
    got.usage = final.usage ? { input: final.usage.input_tokens, output: final.usage.output_tokens } : undefined;
    return got;
  },
  async ollama(url, prompt) {
    const client = new Ollama({ host: url });
    const got: Got = { text: '', ids: new Set(['(ndjson: no id)']), usage: undefined };
    for await (const part of await client.chat({ model: 'first/any', stream: true, messages: [{ role: 'user', content: prompt }] })) {
      got.text += part.message.content;
      if (part.done) got.usage = { input: part.prompt_eval_count, output: part.eval_count };
    }
    return got;
  },
  async native(url, prompt) {
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: prompt }] }) });
    expect(res.status).toBe(200);
    const got: Got = { text: '', ids: new Set(['(native: no id)']), usage: undefined };
    for (const line of (await res.text()).split('\n')) {
      if (!line.startsWith('data: ')) continue;
      const frame = JSON.parse(line.slice(6));
      if (frame.type === 'delta') got.text += frame.text;
      if (frame.type === 'done') {
        expect(frame.completion).toBe(got.text);
        got.usage = { input: frame.usage.prompt_tokens, output: frame.usage.completion_tokens };
      }
      expect(frame.type).not.toBe('error');
    }
    return got;
  },
};

/** The upstream dialects a continuation can be prefilled in, each with two fakes of its kind. */
const UPSTREAMS = {
  openai: { type: 'openai_compatible', model: 'gpt-4o-mini', start: (name: string) => startFakeOpenAI({ name, reply }) },
  anthropic: { type: 'anthropic', model: 'claude-3-5-haiku-latest', start: (name: string) => startFakeAnthropic({ name, reply }) },
  ollama: { type: 'ollama', model: 'llama3.2', start: (name: string) => startFakeOllama({ name, reply }) },
} as const;

/** The request log line of the last request the gateway finished. */

const prefillOf = (fake: FakeProvider) => {
  const body = fake.requests.filter((r) => r.method === 'POST').at(-1)?.body;
  return body?.messages?.at(-1);
};

for (const [dialect, upstream] of Object.entries(UPSTREAMS)) {
  describe(`resume on ${dialect} upstreams`, () => {
    const setup = useStarted({
      first: () => upstream.start('first'),
      second: () => upstream.start('second'),
    }).and({
      gateway: (f) => gatewayFor(upstream.type, f.first, f.second, upstream.model),
    });
    afterEach(() => {
      setup.first.reset();
      setup.second.reset();
    });

    for (const [api, call] of Object.entries(CLIENTS)) {
      it(`${api} client: a stream reset mid-answer is finished by the next provider, as one answer`, async () => {
        const before = await resumesFromFirst(setup.gateway);
        setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how: 'reset', chunkDelayMs: 5 });
        const got = await call(setup.gateway.url, 'tell me about the fox');
        expect(got.text).toBe(ANSWER);
        expect(got.ids.size).toBe(1);

        // The second provider was asked to continue the partial answer (no trailing whitespace: Anthropic refuses it).
        const prefill = prefillOf(setup.second);
        expect(prefill.role).toBe('assistant');
        const prefilled = typeof prefill.content === 'string' ? prefill.content : prefill.content.map((b: any) => b.text).join('');
        expect(prefilled.length).toBeGreaterThan(0);
        expect(ANSWER.startsWith(prefilled)).toBe(true);
        expect(prefilled).toBe(prefilled.trimEnd());

        await expectResumedOnce(setup.gateway, got, before);
      });
    }

    for (const how of ['error', 'silence'] as const) {
      it(`a stream that ${how === 'error' ? 'reports an error event' : 'goes silent past stream_idle_timeout'} mid-answer is resumed too`, async () => {
        setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 7, how });
        const got = await CLIENTS.anthropic(setup.gateway.url, 'again');
        expect(got.text).toBe(ANSWER);
        expect(got.ids.size).toBe(1);
        expect(lastRequestLine(setup.gateway).resumed.at[0]).toMatchObject({ from: 'first', to: 'second', reason: how === 'error' ? expect.any(String) : 'timeout' });
        const got2 = await (setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 7, how }), CLIENTS.openai(setup.gateway.url, 'again'));
        expect(got2.text).toBe(ANSWER);
      });
    }
  });
}

describe('resume off, and clients that leave', () => {
  const setup = useStarted({
    first: () => startFakeOpenAI({ name: 'first', reply }),
    second: () => startFakeOpenAI({ name: 'second', reply }),
  }).and({
    // One slot on the second provider: a continuation that did not give its slot back would block the next request.
    gateway: (f) => gatewayFor('openai_compatible', f.first, f.second, 'gpt-4o-mini', ', max_concurrency: 1'),
  });
  afterEach(() => {
    setup.first.reset();
    setup.second.reset();
  });

  it('without resume_streams, a cut stream ends with an error event, as before', async () => {
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how: 'reset' });
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/off/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    await expect(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    }).rejects.toThrow();
    expect(text.length).toBeGreaterThan(0);
    expect(ANSWER.startsWith(text)).toBe(true);
    expect(text).not.toBe(ANSWER);
    expect(setup.second.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    expect(lastRequestLine(setup.gateway).resumed).toBeUndefined();
  });

  it('a tool call cut in the middle is not resumed: the stream ends with an error event', async () => {
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 3, how: 'reset' });
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { input: { type: 'string' } } } } }];
    const stream = await client.chat.completions.create({ model: '', stream: true, tools, messages: [{ role: 'user', content: 'a long question for the tool to look up' }] });
    await expect(async () => {
      for await (const _chunk of stream);
    }).rejects.toThrow();
    expect(setup.second.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_stream_resumes_total', { provider: 'first', outcome: 'tool_call' })).toBe(1);
  });

  it('a client that leaves a resumed stream aborts the continuation upstream and frees its slot', async () => {
    const slow: Fault = { kind: 'slowStream', chunkDelayMs: 100 };
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 5, how: 'reset' });
    setup.second.queueFaults(slow);
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const controller = new AbortController();
    const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: 'leave' }] }, { signal: controller.signal });
    let text = '';
    try {
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        // Well past the cut: the continuation is streaming.
        if (text.length > 40) controller.abort();
      }
    } catch {
      // the SDK may raise the abort, or just end the iteration
    }
    expect(setup.second.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(text.length).toBeLessThan(ANSWER.length);
    await expect.poll(() => setup.second.aborted, { timeout: 3000 }).toBe(1);
    await expect.poll(() => setup.second.inFlight, { timeout: 3000 }).toBe(0);
    // Its slot is back: with the first provider refusing, the next request is served by the second at once.
    setup.first.queueFaults({ kind: 'status', status: 503 });
    const again = await CLIENTS.openai(setup.gateway.url, 'next');
    expect(again.text).toBe(ANSWER);
    expect(setup.second.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });
});

describe('a resumed stream against budgets', () => {
  const KEY = 'hpx-resume-budget-key-0123456789';
  const ADMIN = 'hpx-resume-admin-key-0123456789';
  const setup = useStarted({
    first: () => startFakeOpenAI({ name: 'first', reply, models: ['cheap'] }),
    second: () => startFakeOpenAI({ name: 'second', reply, models: ['dear'] }),
  }).and({
    gateway: (f) =>
      startTestGateway(`
providers:
  first: {type: openai_compatible, base_url: "${f.first.url}", model: cheap}
  second: {type: openai_compatible, base_url: "${f.second.url}", model: dear}
provider_preference: [first, second]
retry: {max_retries: 0}
dedup: {enabled: false}
pricing:
  cheap: {input: 1000, output: 2000}
  dear: {input: 5000, output: 10000}
auth:
  enabled: true
  key_file: /tmp/hapax-resume-test-unused/keys.json
  keys:
    - {name: team, key: ${KEY}, budgets: [{window: monthly, usd: 100}]}
admin: {key: ${ADMIN}}
routes:
  - {path: /v1/chat/completions, handler: chat, resume_streams: true}
`),
  });

  it('charges each attempt once, at the price of its own provider', async () => {
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how: 'reset' });
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: '', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'price it' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe(ANSWER);
    const line = lastRequestLine(setup.gateway);
    const [cut, rest] = line.resumed.spent;
    const expected = (cut.prompt * 1000 + cut.completion * 2000 + rest.prompt * 5000 + rest.completion * 10000) / 1_000_000;
    expect(line.cost_usd).toBeCloseTo(expected, 9);
    const spent = async () => {
      const res = await fetch(`${setup.gateway.url}/admin/usage`, { headers: { 'x-api-key': ADMIN } });
      return ((await res.json()) as { budgets: Array<Record<string, unknown>> }).budgets.find((b) => b.budget === 'team')?.spent;
    };
    await expect.poll(spent).toBeCloseTo(expected, 9);
    // The usage report prices the attempts the same way.
    const report = await fetch(`${setup.gateway.url}/admin/usage?group_by=key`, { headers: { 'x-api-key': ADMIN } });
    const rows = ((await report.json()) as { report: { rows: Array<{ key: string; cost_usd: number; unpriced_requests?: number }> } }).report.rows;
    expect(rows.find((row) => row.key === 'team')).toMatchObject({ cost_usd: expect.closeTo(expected, 9) });
  });
});
