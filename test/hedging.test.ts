/**
 * Hedged first tokens (route `hedge_after`), through the official SDKs against slow fakes: when the first
 * candidate has not sent its first event in time, the next one starts too; whichever answers first is what the
 * client gets, the other's upstream request is aborted, both are counted. Never more than one hedge; off unless
 * the route sets it; a client that leaves stops both.
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

const openai = (url: string, path: string) => new OpenAI({ baseURL: `${url}${path}`, apiKey: 'unused', maxRetries: 0 });

async function streamText(client: OpenAI, text: string, signal?: AbortSignal): Promise<string> {
  const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: text }] }, { signal });
  let out = '';
  for await (const chunk of stream) out += chunk.choices[0]?.delta?.content ?? '';
  return out;
}

const chats = (fake: FakeProvider) => fake.requests.filter((r) => r.method === 'POST');

describe('hedge_after', () => {
  const setup = useStarted({
    primary: () => startFakeOpenAI({ name: 'primary' }),
    backup: () => startFakeOpenAI({ name: 'backup' }),
    third: () => startFakeOpenAI({ name: 'third' }),
    claudeA: () => startFakeAnthropic({ name: 'claude-a' }),
    claudeB: () => startFakeAnthropic({ name: 'claude-b' }),
  }).and({
    gateway: (f) =>
      startTestGateway(`
providers:
  # One slot: a hedge that did not free the loser's slot would leave the next request waiting.
  primary: {type: openai, base_url: "${f.primary.url}", model: gpt-4o-mini, max_concurrency: 1}
  backup: {type: openai, base_url: "${f.backup.url}", model: gpt-4o-mini}
  third: {type: openai, base_url: "${f.third.url}", model: gpt-4o-mini}
  claude-a: {type: anthropic, base_url: "${f.claudeA.url}", model: claude-3-5-haiku-latest}
  claude-b: {type: anthropic, base_url: "${f.claudeB.url}", model: claude-3-5-haiku-latest}
provider_preference: [primary, backup, third]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
routes:
  - {path: /v1/chat/completions, handler: chat}
  - {path: /hedged/v1/chat/completions, handler: chat, hedge_after: 200ms}
  - {path: /v1/messages, handler: messages, provider_preference: [claude-a, claude-b], hedge_after: 200ms}
`),
  });
  afterEach(() => {
    for (const fake of [setup.primary, setup.backup, setup.third, setup.claudeA, setup.claudeB]) fake.reset();
  });
  const hedges = async (provider: string, winner: string) => valueOf(await scrape(`${setup.gateway.url}/metrics`), 'hapax_hedges_total', { provider, winner }) ?? 0;

  it('the hedge wins when the first candidate is slow to start; the first is aborted', async () => {
    setup.primary.fault = { kind: 'slowFirst', ms: 5000 };
    const before = await hedges('backup', 'hedge');
    const started = Date.now();
    const text = await streamText(openai(setup.gateway.url, '/hedged/v1'), 'race me');
    expect(text).toBe('[backup] race me');
    expect(Date.now() - started).toBeLessThan(2500);
    await expect.poll(() => setup.primary.aborted, { timeout: 3000 }).toBe(1);
    expect(await hedges('backup', 'hedge')).toBe(before + 1);
    // One hedge only: the third candidate was never started.
    expect(chats(setup.third)).toHaveLength(0);
    // The aborted loser freed its concurrency slot: the primary's only slot serves the next request at once.
    setup.primary.fault = null;
    const next = Date.now();
    expect(await streamText(openai(setup.gateway.url, '/v1'), 'slot free')).toBe('[primary] slot free');
    expect(Date.now() - next).toBeLessThan(1500);
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_provider_requests_total', { provider: 'primary', outcome: 'aborted' })).toBeGreaterThanOrEqual(1);
  });

  it('the first candidate wins when it starts before the hedge does; the hedge is aborted', async () => {
    setup.primary.fault = { kind: 'slowFirst', ms: 600 };
    setup.backup.fault = { kind: 'slowFirst', ms: 5000 };
    const before = await hedges('backup', 'first');
    const text = await streamText(openai(setup.gateway.url, '/hedged/v1'), 'slow but first');
    expect(text).toBe('[primary] slow but first');
    expect(chats(setup.backup)).toHaveLength(1);
    await expect.poll(() => setup.backup.aborted, { timeout: 3000 }).toBe(1);
    expect(await hedges('backup', 'first')).toBe(before + 1);
  });

  it('starts no hedge when the first candidate answers in time', async () => {
    const text = await streamText(openai(setup.gateway.url, '/hedged/v1'), 'quick');
    expect(text).toBe('[primary] quick');
    expect(chats(setup.backup)).toHaveLength(0);
  });

  it('is off unless the route sets hedge_after', async () => {
    setup.primary.fault = { kind: 'slowFirst', ms: 600 };
    const text = await streamText(openai(setup.gateway.url, '/v1'), 'patient');
    expect(text).toBe('[primary] patient');
    expect(chats(setup.backup)).toHaveLength(0);
  });

  it('hedges the Anthropic lossless lane too (Anthropic SDK)', async () => {
    setup.claudeA.fault = { kind: 'slowFirst', ms: 5000 };
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    const message = await client.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hedged claude' }] }).finalMessage();
    expect(message.content[0].type === 'text' && message.content[0].text).toContain('hedged claude');
    expect(chats(setup.claudeB)).toHaveLength(1);
    await expect.poll(() => setup.claudeA.aborted, { timeout: 3000 }).toBe(1);
  });

  it('a client that leaves while both are starting aborts both upstream requests', async () => {
    setup.primary.fault = { kind: 'slowFirst', ms: 5000 };
    setup.backup.fault = { kind: 'slowFirst', ms: 5000 };
    const controller = new AbortController();
    const call = streamText(openai(setup.gateway.url, '/hedged/v1'), 'never mind', controller.signal);
    await expect.poll(() => setup.primary.inFlight + setup.backup.inFlight, { timeout: 3000 }).toBe(2);
    controller.abort();
    await expect(call).rejects.toThrow();
    await expect.poll(() => setup.primary.aborted + setup.backup.aborted, { timeout: 3000 }).toBe(2);
    expect(chats(setup.third)).toHaveLength(0);
  });

  it('when the first fails while the hedge is running, the hedge still answers', async () => {
    setup.primary.fault = { kind: 'failAfter', ms: 500, status: 500 };
    setup.backup.fault = { kind: 'slowFirst', ms: 900 };
    const before = await hedges('backup', 'hedge');
    const text = await streamText(openai(setup.gateway.url, '/hedged/v1'), 'either');
    expect(text).toBe('[backup] either');
    expect(await hedges('backup', 'hedge')).toBe(before + 1);
    expect(chats(setup.third)).toHaveLength(0);
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(valueOf(metrics, 'hapax_provider_requests_total', { provider: 'primary', outcome: 'server' })).toBeGreaterThanOrEqual(1);
  });
});
