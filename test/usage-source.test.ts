/**
 * Usage you can trust: each request's usage is the provider's where it sent one and an estimate where a
 * stream ended without it (an OpenAI-compatible server that ignores stream_options.include_usage, a stream
 * cut mid-way); the log, the token metric and the budgets say and use which.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import Anthropic from '@anthropic-ai/sdk';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, sumOf } from './helpers/prometheus.ts';
import { useStarted } from './helpers/started.ts';

const KEY = 'usage-key-0123456789';
const ADMIN = 'admin-secret-0123456789';

describe('usage_source', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'compat', streamUsage: false, reply: () => 'one two three four five six seven eight nine ten' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  compat: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini, lossless: false}
auth:
  enabled: true
  key_file: /tmp/hapax-usage-source-unused/keys.json
  keys:
    - {name: metered, key: ${KEY}, budgets: [{window: daily, tokens: 100000}]}
admin: {key: ${ADMIN}}
`),
  });
  const client = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: KEY, maxRetries: 0 });
  const request = { model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user' as const, content: 'count to ten please' }] };
  const lines = () => setup.gateway.logs.filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
  const spent = async () => {
    const res = await fetch(`${setup.gateway.url}/admin/usage`, { headers: { 'x-api-key': ADMIN } });
    return ((await res.json()) as { budgets: Array<{ budget: string; spent: number }> }).budgets.find((b) => b.budget === 'metered')?.spent;
  };

  it('is provider for an answer that reported usage, estimated for a stream that did not, and budgets are charged either way', async () => {
    const answer = await client().chat.completions.create(request);
    expect(lines().at(-1)).toMatchObject({ lane: 'translated', usage_source: 'provider', tokens: { prompt: answer.usage?.prompt_tokens, completion: answer.usage?.completion_tokens } });
    const afterAnswer = await spent();
    expect(afterAnswer).toBe(answer.usage?.total_tokens);

    let text = '';
    const stream = await client().chat.completions.create({ ...request, stream: true });
    for await (const chunk of stream) {
      expect(chunk.usage ?? undefined).toBeUndefined(); // the server sent none
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('one two three four five six seven eight nine ten');
    await expect.poll(() => lines().length).toBe(2);
    const line = lines().at(-1) as { usage_source: string; tokens: { prompt: number; completion: number } };
    expect(line.usage_source).toBe('estimated');
    expect(line.tokens.completion).toBe(Math.ceil(text.length / 4));
    // The prompt counted with the tokenizer: the words and the chat framing.
    expect(line.tokens.prompt).toBeGreaterThan(5);
    expect(line.tokens.prompt).toBeLessThan(20);
    expect(await spent()).toBe((afterAnswer as number) + line.tokens.prompt + line.tokens.completion);

    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(sumOf(metrics, 'hapax_tokens_total', { usage_source: 'estimated', type: 'completion' })).toBe(line.tokens.completion);
    expect(sumOf(metrics, 'hapax_tokens_total', { usage_source: 'provider', type: 'completion' })).toBe(answer.usage?.completion_tokens);
  });

  it('charges a stream cut mid-way what it streamed, not its reservation', async () => {
    const before = (await spent()) as number;
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 4 });
    let text = '';
    const stream = await client().chat.completions.create({ ...request, stream: true });
    await expect(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      })(),
    ).rejects.toThrow();
    expect(text.length).toBeGreaterThan(0);
    await expect.poll(() => lines().at(-1)?.usage_source).toBe('estimated');
    const line = lines().at(-1) as { tokens: { prompt: number; completion: number } };
    expect(line.tokens.completion).toBe(Math.ceil(text.length / 4));
    await expect.poll(spent).toBe(before + line.tokens.prompt + line.tokens.completion);
  });
});

describe('usage_source on the lossless lane', () => {
  const setup = useStarted({
    upstream: () => startFakeOpenAI({ name: 'compat', streamUsage: false, reply: () => 'one two three four five six seven eight nine ten' }),
    claude: () => startFakeAnthropic({ name: 'claude', reply: () => 'alpha beta gamma delta epsilon zeta eta theta' }),
  }).and({
    gateway: ({ upstream, claude }) =>
      startTestGateway(`
providers:
  compat: {type: openai_compatible, base_url: "${upstream.url}", model: gpt-4o-mini}
  claude: {type: anthropic, base_url: "${claude.url}", api_key: sk-ant-fake, model: claude-sonnet-4-5}
routes:
  - {path: /v1/chat/completions, handler: chat, provider_preference: [compat]}
  - {path: /v1/messages, handler: messages, provider_preference: [claude]}
`),
  });
  const lines = (route: string) => setup.gateway.logs.filter((l) => l.msg === 'request' && l.route === route);

  it('estimates the output of a relayed stream from the text its frames carried, when the provider sent no usage', async () => {
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    let text = '';
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count to ten' }], stream: true });
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('one two three four five six seven eight nine ten');
    await expect.poll(() => lines('/v1/chat/completions').length).toBe(1);
    expect(lines('/v1/chat/completions')[0]).toMatchObject({ lane: 'lossless', usage_source: 'estimated', tokens: { completion: Math.ceil(text.length / 4) } });
    // The lossless lane: the client's body went up as sent, with only the usage request added.
    expect(setup.upstream.requests.at(-1)?.body).toEqual({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count to ten' }], stream: true, stream_options: { include_usage: true } });
  });

  it('charges an Anthropic stream cut before its usage what its text deltas carried', async () => {
    setup.claude.queueFaults({ kind: 'cut', afterChunks: 5 });
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    let text = '';
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'greek letters' }] });
    stream.on('text', (delta) => (text += delta));
    await expect(stream.finalMessage()).rejects.toThrow();
    expect(text.length).toBeGreaterThan(0);
    await expect.poll(() => lines('/v1/messages').length).toBe(1);
    expect(lines('/v1/messages')[0]).toMatchObject({ usage_source: 'estimated', tokens: { completion: Math.ceil(text.length / 4) } });
  });
});
