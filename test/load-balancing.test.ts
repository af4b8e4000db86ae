/**
 * Load balancing inside a preference tier (`provider_preference: [[a, b], c]`), through the real HTTP
 * interface: how requests are shared, failover inside and across tiers, and what the config accepts.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../src/config/errors.ts';
import { parseConfig } from '../src/config/load.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { sdk } from './helpers/openai.ts';

/** Sends `count` different requests one after another; returns who served each. */
async function servedBy(client: OpenAI, count: number, label = 'request'): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < count; i++) {
    const { response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: `${label} ${i}` }] }).withResponse();
    served.push(response.headers.get('x-hapax-provider') as string);
  }
  return served;
}

const tally = (names: string[]) => names.reduce<Record<string, number>>((counts, name) => ({ ...counts, [name]: (counts[name] ?? 0) + 1 }), {});

function problemsOf(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('load balancing inside a preference tier', () => {
  let fakes: Record<'a' | 'b' | 'c', FakeProvider>;
  const gateways: TestGateway[] = [];

  const start = async (settings: string) => {
    const gateway = await startTestGateway(`
providers:
  a: {type: openai, base_url: "${fakes.a.url}", model: gpt-4o-mini, weight: 3}
  b: {type: openai, base_url: "${fakes.b.url}", model: gpt-4o-mini}
  c: {type: openai, base_url: "${fakes.c.url}", model: gpt-4o-mini}
${settings}
`);
    gateways.push(gateway);
    return gateway;
  };

  beforeAll(async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => startFakeOpenAI({ name })));
    fakes = { a, b, c };
  });
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close()));
    for (const fake of Object.values(fakes)) fake.reset();
  });
  afterAll(async () => {
    await Promise.all(Object.values(fakes).map((f) => f.close()));
  });

  it('weighted: shares 3:1 exactly over 40 requests, interleaved', async () => {
    const gateway = await start('provider_preference: [[a, b], c]\nload_balancing: {strategy: weighted}');
    const served = await servedBy(sdk(gateway), 40);
    expect(tally(served)).toEqual({ a: 30, b: 10 });
    // Smooth weighted round robin: never four of a in a row.
    expect(served.join('')).not.toContain('aaaa');
    expect(fakes.c.requests).toHaveLength(0);
  });

  it('weighted is the default for a nested tier, and load_balancing.weights overrides the providers’ weights', async () => {
    const byDefault = await start('provider_preference: [[a, b]]');
    expect(tally(await servedBy(sdk(byDefault), 8))).toEqual({ a: 6, b: 2 });
    const overridden = await start('provider_preference: [[a, b]]\nload_balancing: {weights: {a: 1, b: 1}}');
    expect(tally(await servedBy(sdk(overridden), 8))).toEqual({ a: 4, b: 4 });
  });

  it('round_robin: alternates between the tier’s providers', async () => {
    const gateway = await start('provider_preference: [[a, b], c]\nload_balancing: {strategy: round_robin}');
    expect(await servedBy(sdk(gateway), 6)).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('a flat list stays pure failover whatever the strategy', async () => {
    const gateway = await start('provider_preference: [a, b, c]\nload_balancing: {strategy: round_robin}');
    expect(await servedBy(sdk(gateway), 4)).toEqual(['a', 'a', 'a', 'a']);
  });

  it('least_busy: avoids a provider with a slow request in flight', async () => {
    const gateway = await start('provider_preference: [[a, b]]\nload_balancing: {strategy: least_busy}');
    const client = sdk(gateway);
    // One request hangs at whichever provider it reaches first.
    fakes.a.fault = { kind: 'hang' };
    fakes.b.fault = { kind: 'hang' };
    const slow = new AbortController();
    const pending = client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'slow one' }] }, { signal: slow.signal }).catch(() => undefined);
    await vi.waitFor(() => expect(fakes.a.inFlight + fakes.b.inFlight).toBe(1), { timeout: 3000, interval: 10 });
    const busy = fakes.a.inFlight === 1 ? 'a' : 'b';
    fakes.a.fault = null;
    fakes.b.fault = null;
    const served = await servedBy(client, 10, 'quick');
    expect(served).toEqual(Array(10).fill(busy === 'a' ? 'b' : 'a'));
    slow.abort();
    await pending;
  });

  it('least_latency: sends traffic to the faster provider once both are measured', async () => {
    const gateway = await start('provider_preference: [[a, b]]\nload_balancing: {strategy: least_latency}');
    fakes.a.fault = { kind: 'delay', ms: 150 };
    const client = sdk(gateway);
    // Unmeasured providers go first so that each gets a sample.
    expect(await servedBy(client, 2, 'warm-up')).toEqual(['a', 'b']);
    expect(await servedBy(client, 8)).toEqual(Array(8).fill('b'));
  });

  it('fails over inside the tier first, then to the next tier', async () => {
    const gateway = await start('provider_preference: [[a, b], c]\nload_balancing: {strategy: round_robin}\nretry: {max_retries: 0}');
    fakes.a.fault = { kind: 'status', status: 500 };
    const client = sdk(gateway);
    const inTier = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }).withResponse();
    expect(inTier.response.headers.get('x-hapax-provider')).toBe('b');
    fakes.b.fault = { kind: 'status', status: 500 };
    const nextTier = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'y' }] }).withResponse();
    expect(nextTier.response.headers.get('x-hapax-provider')).toBe('c');
    expect(nextTier.response.headers.get('x-hapax-attempts')).toBe('3');
  });

  it('shares a tier only among providers that can take traffic: an open breaker leaves the other all of it', async () => {
    const gateway = await start('provider_preference: [[a, b]]\nload_balancing: {strategy: round_robin}\ncircuit_breaker: {failure_threshold: 1, timeout: 1m}');
    fakes.a.queueFaults({ kind: 'status', status: 500 });
    const client = sdk(gateway);
    expect(await servedBy(client, 1, 'opens a')).toEqual(['b']);
    expect(await servedBy(client, 5)).toEqual(Array(5).fill('b'));
    expect(fakes.a.requests).toHaveLength(1);
  });

  it('a route can have its own tiers and strategy', async () => {
    const gateway = await start(`provider_preference: [[a, b]]
load_balancing: {strategy: round_robin}
routes:
  - {path: /pinned/v1/chat/completions, handler: chat, load_balancing: {strategy: priority}}
  - {path: /other/v1/chat/completions, handler: chat, provider_preference: [[b, c]]}
`);
    expect(await servedBy(sdk(gateway, '/pinned/v1'), 3)).toEqual(['a', 'a', 'a']);
    expect(await servedBy(sdk(gateway, '/other/v1'), 4)).toEqual(['b', 'c', 'b', 'c']);
    expect(await servedBy(sdk(gateway), 2)).toEqual(['a', 'b']);
  });

  it('puts what the client named first, before balancing the rest', async () => {
    const gateway = await start('provider_preference: [[a, b], c]\nload_balancing: {strategy: round_robin}');
    for (let i = 0; i < 3; i++) {
      const { response } = await sdk(gateway).chat.completions.create({ model: 'c', messages: [{ role: 'user', content: `named ${i}` }] }).withResponse();
      expect(response.headers.get('x-hapax-provider')).toBe('c');
    }
  });
});

describe('load balancing config', () => {
  const providers = `
providers:
  openai: {type: openai, model: gpt-4o-mini}
  azure: {type: openai, model: gpt-4o-mini}
  anthropic: {type: anthropic, model: claude-3-5-haiku-latest}
`;

  it('accepts nested tiers, a strategy, and per-route settings', () => {
    const { config } = parseConfig(`${providers}
provider_preference: [[openai, azure], anthropic]
load_balancing: {strategy: least_busy, weights: {openai: 2}}
routes:
  - {path: /x, handler: chat, provider_preference: [anthropic, [openai, azure]], load_balancing: {strategy: round_robin}}
`);
    expect(config.provider_preference).toEqual([['openai', 'azure'], 'anthropic']);
    expect(config.load_balancing).toEqual({ strategy: 'least_busy', weights: { openai: 2 } });
    expect(config.routes?.[0].load_balancing?.strategy).toBe('round_robin');
  });

  it('takes the camelCase spelling too', () => {
    const { config } = parseConfig(`${providers}\nproviderPreference: [[openai, azure]]\nloadBalancing: {strategy: round_robin}\n`);
    expect(config.load_balancing?.strategy).toBe('round_robin');
  });

  it('reports unknown names inside tiers with their full path', () => {
    const problems = problemsOf(`${providers}
provider_preference: [[openai, azzure], anthropic]
routes:
  - {path: /x, handler: chat, provider_preference: [anthropic, [openai, gemini]]}
`);
    expect(problems).toContainEqual(expect.stringMatching(/^provider_preference\[0\]\[1\]: unknown provider "azzure" \(did you mean azure\?\)/));
    expect(problems).toContainEqual(expect.stringMatching(/^routes\[0\]\.provider_preference\[1\]\[1\]: unknown provider "gemini"/));
  });

  it('reports a provider listed in two tiers, an empty tier, an unknown strategy and weights for unknown providers', () => {
    const problems = problemsOf(`${providers}
provider_preference: [[openai, azure], [], openai]
load_balancing: {strategy: fastest, weights: {opnai: 2}}
`);
    expect(problems).toContainEqual(expect.stringMatching(/^provider_preference\[2\]: "openai" is listed twice/));
    expect(problems).toContainEqual(expect.stringMatching(/^provider_preference\[1\]: /));
    expect(problems).toContainEqual(expect.stringMatching(/^load_balancing\.strategy: expected one of priority, round_robin, weighted, least_latency, least_busy/));
    expect(problems).toContainEqual(expect.stringMatching(/^load_balancing\.weights\.opnai: unknown provider "opnai" \(did you mean openai\?\)/));
  });
});
