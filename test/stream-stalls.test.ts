/**
 * Stall detection, through the official SDKs against slow fakes:
 * - first_token_timeout: a provider that sends no first event in time is abandoned (its request aborted) and the
 *   next candidate answers, before the client has seen a byte; per provider, and per route over it;
 * - stream_idle_timeout: silence in the middle of a stream ends it with an error event, whatever the
 *   whole-answer `timeout` says; a longer one lets a slow but steady stream finish.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { useStarted } from './helpers/started.ts';

const openai = (url: string, path = '/v1') => new OpenAI({ baseURL: `${url}${path}`, apiKey: 'unused', maxRetries: 0 });

async function streamText(client: OpenAI, text: string): Promise<string> {
  const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: text }] });
  let out = '';
  for await (const chunk of stream) out += chunk.choices[0]?.delta?.content ?? '';
  return out;
}

const chats = (fake: FakeProvider) => fake.requests.filter((r) => r.method === 'POST');

describe('first_token_timeout', () => {
  const setup = useStarted({
    slow: () => startFakeOpenAI({ name: 'slow' }),
    backup: () => startFakeOpenAI({ name: 'backup' }),
    claudeSlow: () => startFakeAnthropic({ name: 'claude-slow' }),
    claudeBackup: () => startFakeAnthropic({ name: 'claude-backup' }),
    plain: () => startFakeOpenAI({ name: 'plain' }),
    plainBackup: () => startFakeOpenAI({ name: 'plain-backup' }),
  }).and({
    gateway: (f) =>
      startTestGateway(`
providers:
  slow: {type: openai, base_url: "${f.slow.url}", model: gpt-4o-mini, first_token_timeout: 300ms}
  backup: {type: openai, base_url: "${f.backup.url}", model: gpt-4o-mini}
  claude-slow: {type: anthropic, base_url: "${f.claudeSlow.url}", model: claude-3-5-haiku-latest, first_token_timeout: 300ms}
  claude-backup: {type: anthropic, base_url: "${f.claudeBackup.url}", model: claude-3-5-haiku-latest}
  plain: {type: openai, base_url: "${f.plain.url}", model: gpt-4o}
  plain-backup: {type: openai, base_url: "${f.plainBackup.url}", model: gpt-4o}
provider_preference: [slow, backup]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
routes:
  - {path: /v1/chat/completions, handler: chat}
  - {path: /v1/messages, handler: messages, provider_preference: [claude-slow, claude-backup]}
  - {path: /quick/v1/chat/completions, handler: chat, provider_preference: [plain, plain-backup], first_token_timeout: 250ms}
`),
  });
  afterEach(() => {
    for (const fake of [setup.slow, setup.backup, setup.claudeSlow, setup.claudeBackup, setup.plain, setup.plainBackup]) fake.reset();
  });

  it('fails over when the stream opens but its first event is late (OpenAI SDK)', async () => {
    setup.slow.fault = { kind: 'slowFirst', ms: 5000 };
    const started = Date.now();
    const text = await streamText(openai(setup.gateway.url), 'late start');
    expect(text).toBe('[backup] late start');
    expect(Date.now() - started).toBeLessThan(2500);
    await expect.poll(() => setup.slow.aborted, { timeout: 3000 }).toBe(1);
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_failovers_total', { from: 'slow', to: 'backup', reason: 'timeout' })).toBeGreaterThanOrEqual(1);
  });

  it('fails over when not even the response head comes in time', async () => {
    setup.slow.fault = { kind: 'delay', ms: 5000 };
    const text = await streamText(openai(setup.gateway.url), 'no head');
    expect(text).toBe('[backup] no head');
    await expect.poll(() => setup.slow.aborted, { timeout: 3000 }).toBe(1);
  });

  it('does the same on the Anthropic lossless lane (Anthropic SDK)', async () => {
    setup.claudeSlow.fault = { kind: 'slowFirst', ms: 5000 };
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    const started = Date.now();
    const message = await client.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'slow claude' }] }).finalMessage();
    expect(message.content[0].type === 'text' && message.content[0].text).toContain('slow claude');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(chats(setup.claudeBackup)).toHaveLength(1);
    await expect.poll(() => setup.claudeSlow.aborted, { timeout: 3000 }).toBe(1);
  });

  it("a route's first_token_timeout applies to providers that have none", async () => {
    setup.plain.fault = { kind: 'slowFirst', ms: 5000 };
    const text = await streamText(openai(setup.gateway.url, '/quick/v1'), 'route limit');
    expect(text).toBe('[plain-backup] route limit');
    await expect.poll(() => setup.plain.aborted, { timeout: 3000 }).toBe(1);
  });

  it('a provider that starts in time streams on, however long the answer takes', async () => {
    setup.slow.fault = { kind: 'slowStream', chunkDelayMs: 150 };
    const text = await streamText(openai(setup.gateway.url), 'one two three four five');
    expect(text).toBe('[slow] one two three four five');
    expect(chats(setup.backup)).toHaveLength(0);
  });

  it('answers 503 in the client dialect when every candidate stalls', async () => {
    setup.slow.fault = { kind: 'slowFirst', ms: 5000 };
    setup.backup.fault = { kind: 'slowFirst', ms: 5000 };
    const route = await startTestGateway(`
providers:
  slow: {type: openai, base_url: "${setup.slow.url}", model: gpt-4o-mini, first_token_timeout: 200ms}
  backup: {type: openai, base_url: "${setup.backup.url}", model: gpt-4o-mini, first_token_timeout: 200ms}
provider_preference: [slow, backup]
retry: {max_retries: 0}
`);
    try {
      const started = Date.now();
      const error = await streamText(openai(route.url), 'all stall').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect(Date.now() - started).toBeLessThan(2500);
      expect((error as InstanceType<typeof OpenAI.APIError>).message).toContain('all 2 providers failed');
      await expect.poll(() => setup.slow.aborted + setup.backup.aborted, { timeout: 3000 }).toBe(2);
    } finally {
      await route.close();
    }
  });
});

describe('stream_idle_timeout', () => {
  const setup = useStarted({
    upstream: () => startFakeOpenAI({ name: 'gappy' }),
    backup: () => startFakeOpenAI({ name: 'unused' }),
  }).and({
    gateway: ({ upstream, backup }) =>
      startTestGateway(`
providers:
  # timeout alone would cut a 700 ms silence; stream_idle_timeout is what bounds silences in streams.
  gappy: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, timeout: 400ms, stream_idle_timeout: 2s}
  unused: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [gappy, unused]
retry: {max_retries: 0}
dedup: {enabled: false}
routes:
  - {path: /v1/chat/completions, handler: chat}
  - {path: /strict/v1/chat/completions, handler: chat, stream_idle_timeout: 300ms}
`),
  });
  afterEach(() => {
    setup.upstream.reset();
    setup.backup.reset();
  });

  it('ends a stream that goes silent mid-way with an error the SDK raises, and aborts the upstream', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 3000 };
    const started = Date.now();
    let text = '';
    const error = await (async () => {
      const stream = await openai(setup.gateway.url, '/strict/v1').chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: 'one two three' }] });
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toMatch(/silent|timed out|timeout/i);
    // The route's 300 ms, not the provider's 2 s.
    expect(Date.now() - started).toBeLessThan(1500);
    // The client had the start of the answer; nothing was sent to another provider after the first byte.
    expect('[gappy] one two three'.startsWith(text)).toBe(true);
    expect(chats(setup.backup)).toHaveLength(0);
    await expect.poll(() => setup.upstream.aborted, { timeout: 3000 }).toBe(1);
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_provider_requests_total', { provider: 'gappy', outcome: 'timeout' })).toBe(1);
  });

  it('lets silences shorter than it pass, even when they are longer than `timeout`', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 700 };
    const text = await streamText(openai(setup.gateway.url), 'slow but steady');
    expect(text).toBe('[gappy] slow but steady');
  });
});
