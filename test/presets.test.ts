/**
 * Presets for OpenAI-compatible hosts: the host's base URL when the config gives none, and its quirks applied
 * to translated requests (reported as dropped where something is left out), through the official SDKs.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { PRESETS } from '../src/config/presets.ts';
import { createAdapter } from '../src/providers/index.ts';
import { PoolRegistry, type PoolSettings, type UpstreamPool } from '../src/providers/http.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

describe('presets: quirks on the translated lane', () => {
  const setup = useStarted({ host: () => startFakeOpenAI({ name: 'host' }) }).and({
    gateway: ({ host }) =>
      startTestGateway(`
providers:
  groq: {type: openai_compatible, preset: groq, base_url: "${host.url}", api_key: k, model: llama, lossless: false}
  mistral: {type: openai_compatible, preset: mistral, base_url: "${host.url}", api_key: k, model: mistral-small, lossless: false}
  openrouter: {type: openai_compatible, preset: openrouter, base_url: "${host.url}", api_key: k, model: openai/o4-mini}
  deepseek: {type: openai_compatible, preset: deepseek, base_url: "${host.url}", api_key: k, model: deepseek-reasoner}
retry: {max_retries: 0}
`),
  });
  afterEach(() => setup.host.reset());
  const openai = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const anthropic = () => new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 });

  it('groq: a message name, which Groq refuses, is left out and reported', async () => {
    const { data, response } = await openai()
      .chat.completions.create({ model: 'groq', messages: [{ role: 'user', content: 'hello', name: 'ann' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('[host] hello');
    expect(setup.host.requests.at(-1)?.body.messages).toEqual([{ role: 'user', content: 'hello' }]);
    expect(response.headers.get('x-hapax-dropped')).toBe('messages.name');
  });

  it("mistral: seed goes as random_seed; a reasoning effort is not sent and is reported", async () => {
    const { response } = await openai()
      .chat.completions.create({ model: 'mistral', seed: 42, reasoning_effort: 'low', messages: [{ role: 'user', content: 'hello' }] })
      .withResponse();
    const body = setup.host.requests.at(-1)?.body;
    expect(body.random_seed).toBe(42);
    expect(body.seed).toBeUndefined();
    expect(body.reasoning_effort).toBeUndefined();
    expect(response.headers.get('x-hapax-dropped')).toBe('reasoning');
  });

  it("openrouter: an Anthropic client's thinking budget becomes OpenRouter's reasoning object", async () => {
    await anthropic().messages.create({ model: 'openrouter', max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 8000 }, messages: [{ role: 'user', content: 'hello' }] });
    const body = setup.host.requests.at(-1)?.body;
    expect(body.reasoning).toEqual({ effort: 'medium' });
    expect(body.reasoning_effort).toBeUndefined();
  });

  it("the lossless lane leaves an OpenAI client's body as written: the quirks are for translated requests", async () => {
    await openai().chat.completions.create({ model: 'openrouter', reasoning_effort: 'high', messages: [{ role: 'user', content: 'hello', name: 'ann' }] });
    const body = setup.host.requests.at(-1)?.body;
    expect(body.reasoning_effort).toBe('high');
    expect(body.reasoning).toBeUndefined();
    expect(body.messages).toEqual([{ role: 'user', content: 'hello', name: 'ann' }]);
  });

  it('deepseek: no reasoning setting is sent for a model that reasons by itself', async () => {
    const { response } = await anthropic()
      .messages.create({ model: 'deepseek', max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 8000 }, messages: [{ role: 'user', content: 'hello' }] })
      .withResponse();
    expect(setup.host.requests.at(-1)?.body.reasoning_effort).toBeUndefined();
    expect(response.headers.get('x-hapax-dropped')).toBe('reasoning');
  });
});

describe('presets: base URLs and config', () => {
  it("send to the preset's host when the config names no base_url", async () => {
    const host = await startFakeOpenAI({ name: 'host' });
    // Every origin is answered by the fake, so the test sees which origin and path the adapter chose.
    const origins: string[] = [];
    const pools = new (class extends PoolRegistry {
      override get(origin: string, settings?: PoolSettings, provider?: string): UpstreamPool {
        origins.push(origin);
        return super.get(new URL(host.url).origin, settings, provider);
      }
    })();
    try {
      for (const [name, preset] of Object.entries(PRESETS)) {
        const { config } = parseConfig(`providers:\n  p: {type: openai_compatible, preset: ${name}, api_key: k, model: m}\n`);
        const adapter = createAdapter({ name: 'p', config: config.providers.p, pools });
        await adapter.listModels({ signal: AbortSignal.timeout(5000), requestId: 'r' }).catch(() => undefined);
        const url = new URL(preset.base_url);
        expect(origins.at(-1)).toBe(url.origin);
        expect(host.requests.at(-1)?.path).toBe(`${url.pathname}/models`);
        expect(host.requests.at(-1)?.headers.authorization).toBe('Bearer k');
      }
    } finally {
      await pools.close();
      await host.close();
    }
  });

  it('explain a misplaced preset and a missing key', () => {
    const problems = (yaml: string) => {
      try {
        parseConfig(yaml);
        return [];
      } catch (error) {
        return (error as { problems: string[] }).problems;
      }
    };
    expect(problems('providers:\n  g: {type: openai, preset: groq, model: m}\n')).toEqual(['providers.g.preset: only for type openai_compatible']);
    expect(problems('providers:\n  g: {type: openai_compatible, preset: groq, model: m}\n')).toEqual(['providers.g.api_key: required for preset groq (Groq needs a key)']);
    expect(problems('providers:\n  v: {type: openai_compatible, preset: vllm, model: m}\n')).toEqual([]);
    expect(problems('providers:\n  v: {type: openai_compatible, preset: vlm, model: m}\n')[0]).toMatch(/^providers\.v\.preset: expected one of groq, mistral/);
  });
});
