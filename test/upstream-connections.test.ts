/**
 * Upstream connections: no hidden cap by default (every stream is in flight upstream at once), a cap only when
 * a provider sets `max_connections` (and then the waiting shows in hapax_upstream_queued_requests), and HTTP/2
 * to an https upstream that offers it, many streams multiplexed on one connection; `http2: false` keeps 1.1.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { ensureSelfSigned } from '../src/server/tls.ts';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const openai = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });

/** Streams one chat completion with the official SDK; resolves with its text. */
async function streamText(client: OpenAI, text: string): Promise<string> {
  const stream = await client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: text }] });
  let out = '';
  for await (const chunk of stream) out += chunk.choices[0]?.delta?.content ?? '';
  return out;
}

describe('no connection cap by default', () => {
  const STREAMS = 300; // more than the 128 connections per origin the gateway used to allow
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'slow', reply: (text) => `${text} and five more words here` }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  slow: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
dedup: {enabled: false}
`),
  });

  it(`has all ${STREAMS} streams in flight upstream at once, none queued for a connection`, async () => {
    setup.upstream.reset();
    // Every stream waits upstream until the test has seen them all there (no timing to race on a slow machine).
    setup.upstream.fault = { kind: 'hang' };
    const client = openai(setup.gateway.url);
    const controller = new AbortController();
    const streams = Array.from({ length: STREAMS }, (_, i) =>
      client.chat.completions.create({ model: '', stream: true, messages: [{ role: 'user', content: `stream ${i}` }] }, { signal: controller.signal }).catch(() => undefined),
    );
    try {
      await expect.poll(() => setup.upstream.inFlight, { timeout: 15_000, interval: 50 }).toBe(STREAMS);
      const metrics = await scrape(`${setup.gateway.url}/metrics`);
      expect(valueOf(metrics, 'hapax_upstream_queued_requests', { provider: 'slow' })).toBe(0);
      expect(valueOf(metrics, 'hapax_upstream_connections', { provider: 'slow' })).toBeGreaterThanOrEqual(1);
    } finally {
      controller.abort();
      await Promise.all(streams);
    }
    // The clients left: the gateway aborted every upstream request.
    await expect.poll(() => setup.upstream.inFlight, { timeout: 10_000 }).toBe(0);
  }, 30_000);
});

describe('max_connections caps a provider, and the wait is visible', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'capped' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  capped: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, max_connections: 2}
dedup: {enabled: false}
`),
  });

  it('sends at most 2 at once; the others wait in the queued gauge, then all finish', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 200 };
    const client = openai(setup.gateway.url);
    const runs = Array.from({ length: 6 }, (_, i) => streamText(client, `capped ${i}`));
    await expect.poll(async () => valueOf(await scrape(`${setup.gateway.url}/metrics`), 'hapax_upstream_queued_requests', { provider: 'capped' }), { timeout: 5000 }).toBe(4);
    const texts = await Promise.all(runs);
    expect(texts.every((t, i) => t.includes(`capped ${i}`))).toBe(true);
    expect(setup.upstream.peakInFlight).toBe(2);
    expect(valueOf(await scrape(`${setup.gateway.url}/metrics`), 'hapax_upstream_queued_requests', { provider: 'capped' })).toBe(0);
  });
});

describe('HTTP/2 to https upstreams', () => {
  const setup = useStarted({
    dir: () => tempDir('hapax-h2-upstream-'),
  }).and({
    cert: async ({ dir }) => {
      const made = await ensureSelfSigned(dir.path);
      const pems = { key: readFileSync(made.keyFile), cert: readFileSync(made.certFile) };
      // The gateway's upstream connections trust the test certificate (as NODE_EXTRA_CA_CERTS would).
      tls.setDefaultCACertificates([...tls.getCACertificates('default'), pems.cert.toString()]);
      return pems;
    },
  }).and({
    h2: ({ cert }) => startFakeOpenAI({ name: 'h2', tls: cert }),
    h1: ({ cert }) => startFakeOpenAI({ name: 'h1', tls: cert }),
    claude: ({ cert }) => startFakeAnthropic({ name: 'claude', tls: cert }),
  }).and({
    gateway: ({ h2, h1, claude }) =>
      startTestGateway(`
providers:
  h2: {type: openai, base_url: "${h2.url.replace('127.0.0.1', 'localhost')}", model: gpt-4o-mini}
  h1: {type: openai, base_url: "${h1.url.replace('127.0.0.1', 'localhost')}", model: gpt-4o, http2: false}
  claude: {type: anthropic, base_url: "${claude.url.replace('127.0.0.1', 'localhost')}", model: claude-3-5-haiku-latest}
dedup: {enabled: false}
`),
  });

  it('multiplexes concurrent streams on one HTTP/2 connection, even in a cold burst', async () => {
    setup.h2.fault = { kind: 'slowStream', chunkDelayMs: 50 };
    const client = openai(setup.gateway.url);
    const texts = await Promise.all(Array.from({ length: 20 }, (_, i) => streamText(client, `multiplexed ${i}`)));
    expect(texts.every((t, i) => t.includes(`multiplexed ${i}`))).toBe(true);
    const chats = setup.h2.requests.filter((r) => r.path === '/v1/chat/completions');
    expect(chats).toHaveLength(20);
    expect(chats.every((r) => r.httpVersion === '2.0')).toBe(true);
    expect(setup.h2.peakInFlight).toBe(20);
    expect(setup.h2.connections).toBe(1);
  });

  it('speaks HTTP/2 to Anthropic-type providers too (the lossless lane)', async () => {
    const client = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    const stream = client.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 50, messages: [{ role: 'user', content: 'over h2' }] });
    const message = await stream.finalMessage();
    expect(message.content[0].type === 'text' && message.content[0].text).toContain('over h2');
    expect(setup.claude.requests.at(-1)?.httpVersion).toBe('2.0');
  });

  it('keeps HTTP/1.1 where the provider says http2: false', async () => {
    const client = openai(setup.gateway.url);
    await Promise.all([0, 1, 2].map((i) => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `plain ${i}` }] })));
    const chats = setup.h1.requests.filter((r) => r.path === '/v1/chat/completions');
    expect(chats).toHaveLength(3);
    expect(chats.every((r) => r.httpVersion === '1.1')).toBe(true);
  });
});
