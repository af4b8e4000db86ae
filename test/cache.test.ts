/** The optional response cache, through the real HTTP interface with the OpenAI SDK. */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { metricValue } from './helpers/metrics.ts';
import { ask, sdk, streamText } from './helpers/openai.ts';
import { useStarted } from './helpers/started.ts';

const chats = (fake: FakeProvider) => fake.requests.filter((r) => r.path === '/v1/chat/completions');

const cacheHits = async (gateway: TestGateway): Promise<number> => (await metricValue(gateway.url, 'hapax_cache_hits_total')) ?? 0;

describe('response cache', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'primary' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
cache: {enabled: true, ttl: 1m, max_entries: 3}
retry: {max_retries: 0}
auth:
  enabled: true
  keys:
    - {name: alice, key: key-of-alice-0001}
    - {name: bob, key: key-of-bob-00002}
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway, '/v1', 'key-of-alice-0001') });
  afterEach(() => setup.upstream.reset());

  it('answers a repeated identical request from memory, and counts the hit', async () => {
    const before = await cacheHits(setup.gateway);
    const first = await ask(setup.client, 'what is the capital of France');
    expect(first.response.headers.get('x-hapax-cache')).toBeNull();
    const second = await ask(setup.client, 'what is the capital of France');
    expect(second.data.choices[0].message.content).toBe('[primary] what is the capital of France');
    expect(second.data.id).toBe(first.data.id);
    expect(second.data.usage).toEqual(first.data.usage);
    expect(second.response.headers.get('x-hapax-cache')).toBe('hit');
    expect(second.response.headers.get('x-hapax-provider')).toBe('primary');
    expect(second.response.headers.get('x-hapax-attempts')).toBe('0');
    expect(chats(setup.upstream)).toHaveLength(1);
    expect(await cacheHits(setup.gateway)).toBe(before + 1);
  });

  it('shares one upstream call between identical requests in flight, before anything is cached', async () => {
    setup.upstream.queueFaults({ kind: 'delay', ms: 300 });
    const [a, b] = await Promise.all([ask(setup.client, 'asked twice at once'), ask(setup.client, 'asked twice at once')]);
    expect(a.data.choices[0].message.content).toBe('[primary] asked twice at once');
    expect(b.data.choices[0].message.content).toBe('[primary] asked twice at once');
    expect(chats(setup.upstream)).toHaveLength(1);
    setup.upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 50 });
    // Same-dialect requests travel on the lossless lane, where the whole body (stream options too) is the key.
    const withUsage = { stream_options: { include_usage: true } };
    const streams = await Promise.all([streamText(setup.client, 'streamed twice at once', withUsage), streamText(setup.client, 'streamed twice at once', withUsage)]);
    expect(streams.map((r) => r.text)).toEqual(['[primary] streamed twice at once', '[primary] streamed twice at once']);
    expect(streams.map((r) => r.usage?.completion_tokens)).toEqual([5, 5]);
    expect(chats(setup.upstream)).toHaveLength(2);
  });

  it('replays a cached answer to a streaming client as a stream, with usage when asked', async () => {
    await ask(setup.client, 'one two three');
    const { text, finish, usage, response } = await streamText(setup.client, 'one two three', { stream_options: { include_usage: true } });
    expect(text).toBe('[primary] one two three');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(4);
    expect(response.headers.get('x-hapax-cache')).toBe('hit');
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(chats(setup.upstream)).toHaveLength(1);
  });

  it('keeps a streamed answer once it has finished, for streaming and non-streaming requests alike', async () => {
    const streamed = await streamText(setup.client, 'four five six');
    expect(streamed.text).toBe('[primary] four five six');
    const again = await streamText(setup.client, 'four five six');
    expect(again.text).toBe('[primary] four five six');
    expect(again.response.headers.get('x-hapax-cache')).toBe('hit');
    const whole = await ask(setup.client, 'four five six');
    expect(whole.data.choices[0].message.content).toBe('[primary] four five six');
    expect(whole.data.choices[0].finish_reason).toBe('stop');
    expect(chats(setup.upstream)).toHaveLength(1);
  });

  it('replays a cached tool call as a stream the SDK assembles', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { input: { type: 'string' } } } } }];
    const body = { model: '', messages: [{ role: 'user' as const, content: 'look it up' }], tools };
    const first = await setup.client.chat.completions.create(body);
    const call = first.choices[0].message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    const stream = setup.client.chat.completions.stream({ ...body, stream: true });
    const final = await stream.finalChatCompletion();
    const replayed = final.choices[0].message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(replayed.id).toBe(call.id);
    expect(replayed.function).toEqual({ name: 'lookup', arguments: call.function.arguments });
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    expect(chats(setup.upstream)).toHaveLength(1);
  });

  it('replays a cached answer in the Anthropic dialect too', async () => {
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'key-of-alice-0001', maxRetries: 0 });
    const body = { model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user' as const, content: 'seven eight nine' }] };
    const first = await anthropic.messages.create(body);
    const { data, response } = await anthropic.messages.stream(body).withResponse();
    const replayed = await data.finalMessage();
    expect(response.headers.get('x-hapax-cache')).toBe('hit');
    expect(replayed.content).toEqual(first.content);
    expect(replayed.stop_reason).toBe('end_turn');
    expect(chats(setup.upstream)).toHaveLength(1);
  });

  it('lets Cache-Control: no-cache bypass the cache', async () => {
    await ask(setup.client, 'always fresh');
    const fresh = await ask(setup.client, 'always fresh', { headers: { 'Cache-Control': 'no-cache' } });
    expect(fresh.response.headers.get('x-hapax-cache')).toBeNull();
    expect(chats(setup.upstream)).toHaveLength(2);
  });

  it('never gives one client another client’s cached answer', async () => {
    await ask(setup.client, 'my own question');
    const bob = await ask(sdk(setup.gateway, '/v1', 'key-of-bob-00002'), 'my own question');
    expect(bob.response.headers.get('x-hapax-cache')).toBeNull();
    expect(chats(setup.upstream)).toHaveLength(2);
  });

  it('does not keep failures or streams cut short', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 500 });
    await expect(ask(setup.client, 'fails first')).rejects.toThrow();
    expect((await ask(setup.client, 'fails first')).response.headers.get('x-hapax-cache')).toBeNull();

    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 3 });
    await expect(streamText(setup.client, 'cut off early please')).rejects.toThrow();
    const after = await streamText(setup.client, 'cut off early please');
    expect(after.text).toBe('[primary] cut off early please');
    expect(after.response.headers.get('x-hapax-cache')).toBeNull();
    expect(chats(setup.upstream)).toHaveLength(4);
  });

  it('holds at most max_entries answers, dropping the least recently used', async () => {
    for (const q of ['q1', 'q2', 'q3', 'q4']) await ask(setup.client, q);
    expect(chats(setup.upstream)).toHaveLength(4);
    expect((await ask(setup.client, 'q4')).response.headers.get('x-hapax-cache')).toBe('hit');
    expect((await ask(setup.client, 'q1')).response.headers.get('x-hapax-cache')).toBeNull();
    expect(chats(setup.upstream)).toHaveLength(5);
  });
});

describe('response cache settings', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'primary' }) });
  afterEach(() => setup.upstream.reset());

  it('is off by default', async () => {
    const gateway = await startTestGateway(`providers:\n  primary: {type: openai, base_url: "${setup.upstream.url}", model: gpt-4o-mini}\n`);
    try {
      await ask(sdk(gateway), 'same again');
      const second = await ask(sdk(gateway), 'same again');
      expect(second.response.headers.get('x-hapax-cache')).toBeNull();
      expect(chats(setup.upstream)).toHaveLength(2);
    } finally {
      await gateway.close();
    }
  });

  it('forgets an answer after its ttl', async () => {
    const gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${setup.upstream.url}", model: gpt-4o-mini}
cache: {enabled: true, ttl: 200ms}
`);
    try {
      const client = sdk(gateway);
      await ask(client, 'short lived');
      expect((await ask(client, 'short lived')).response.headers.get('x-hapax-cache')).toBe('hit');
      await vi.waitFor(async () => expect((await ask(client, 'short lived')).response.headers.get('x-hapax-cache')).toBeNull(), { timeout: 3000, interval: 100 });
      expect(chats(setup.upstream)).toHaveLength(2); // the first ask, and the first after the ttl
    } finally {
      await gateway.close();
    }
  });
});

describe('response cache across a config reload', () => {
  it('keeps cached answers when the reload leaves the cache settings alone', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadConfigFile } = await import('../src/config/load.ts');
    const { startGateway } = await import('../src/server/start.ts');
    const upstream = await startFakeOpenAI({ name: 'primary' });
    const file = join(mkdtempSync(join(tmpdir(), 'hapax-cache-reload-')), 'hapax.yaml');
    const config = (extra: string) =>
      `providers:\n  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}\ncache: {enabled: true}\nhealth_check: {enabled: false}\n${extra}`;
    writeFileSync(file, config(''));
    const gateway = await startGateway({ loaded: await loadConfigFile(file), configFile: file, watch: false, port: 0, host: '127.0.0.1', logDestination: { write: () => true } });
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      await ask(client, 'remember me');
      writeFileSync(file, config('routes:\n  - {path: /v1/extra, handler: chat}\n'));
      expect((await gateway.reload('admin')).ok).toBe(true);
      const again = await ask(client, 'remember me');
      expect(again.response.headers.get('x-hapax-cache')).toBe('hit');
      expect(chats(upstream)).toHaveLength(1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
