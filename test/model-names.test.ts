/**
 * Model names as agents send them, through the real HTTP interface with the official SDKs: patterns and
 * aliases decide where a request goes and which model the provider sees; /v1/models answers each SDK in
 * its own shape; key scopes name the model that is served.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { scrape, sumOf } from './helpers/prometheus.ts';
import { useStarted } from './helpers/started.ts';

const config = (anthropicUrl: string, openaiUrl: string, extra = '') => `
providers:
  anthropic:
    type: anthropic
    base_url: "${anthropicUrl}"
    api_key: sk-ant-upstream
    model: claude-sonnet-4-5
    models: [claude-sonnet-4-5, "claude-*"]
  openai:
    type: openai
    base_url: "${openaiUrl}"
    api_key: sk-openai-upstream
    model: gpt-4o
    models:
      gpt-4o: null
      claude-opus-5-5: gpt-5
      claude-haiku-9: {model: gpt-5-mini, endpoint: /v1/haiku}
      fast: gpt-4o-mini
      "gpt-*": {}
provider_preference: [openai, anthropic]
retry: {max_retries: 0}
${extra}`;

const anthropicSdk = (gateway: TestGateway, apiKey = 'client-key') => new Anthropic({ baseURL: gateway.url, apiKey, maxRetries: 0 });
const openaiSdk = (gateway: TestGateway, apiKey = 'client-key') => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 });
const hello = [{ role: 'user' as const, content: 'hello' }];

describe('patterns and aliases route what clients send', () => {
  const setup = useStarted({ anthropic: () => startFakeAnthropic({ name: 'claude' }), openai: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ anthropic, openai }) => startTestGateway(config(anthropic.url, openai.url)),
  });
  afterEach(() => {
    setup.anthropic.reset();
    setup.openai.reset();
  });

  it('sends an aliased name to its provider under the upstream name (Anthropic SDK to an OpenAI provider)', async () => {
    const { data, response } = await anthropicSdk(setup.gateway).messages.create({ model: 'claude-opus-5-5', max_tokens: 50, messages: hello }).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('openai');
    expect(data.content[0]).toMatchObject({ type: 'text', text: '[gpt] hello' });
    expect(setup.openai.requests.at(-1)?.body.model).toBe('gpt-5');
    expect(setup.anthropic.requests).toHaveLength(0);
    // Tokens are counted under the model that served them, which the config names (not "other").
    const metrics = await scrape(`${setup.gateway.url}/metrics`);
    expect(sumOf(metrics, 'hapax_tokens_total', { provider: 'openai', model: 'gpt-5' })).toBeGreaterThan(0);
  });

  it('sends a name only a pattern matches upstream as it is (a Claude Code release nobody configured)', async () => {
    const { response } = await anthropicSdk(setup.gateway).messages.create({ model: 'claude-sonnet-7-0', max_tokens: 50, messages: hello }).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('anthropic');
    expect(setup.anthropic.requests.at(-1)?.body.model).toBe('claude-sonnet-7-0');

    const chat = await openaiSdk(setup.gateway).chat.completions.create({ model: 'gpt-5.5-pro', messages: hello }).withResponse();
    expect(chat.response.headers.get('x-hapax-provider')).toBe('openai');
    expect(setup.openai.requests.at(-1)?.body.model).toBe('gpt-5.5-pro');
  });

  it('keeps the route made from an alias entry’s endpoint, sending its upstream model', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/haiku`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hi' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-hapax-provider')).toBe('openai');
    expect(setup.openai.requests.at(-1)?.body.model).toBe('gpt-5-mini');
  });

  it('answers a name nothing serves with a 400 naming the listed models and the patterns', async () => {
    const error = await openaiSdk(setup.gateway)
      .chat.completions.create({ model: 'llama-4', messages: hello })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const body = (error as InstanceType<typeof OpenAI.BadRequestError>).error as { message: string; details: Record<string, unknown> };
    expect(body.message).toBe('model "llama-4" is not served by any configured provider');
    expect(body.details).toMatchObject({ field: 'model', model_patterns: ['anthropic/claude-*', 'openai/gpt-*'] });
    expect(body.details.known_models).toContain('openai/claude-opus-5-5');
  });
});

describe('GET /v1/models in each SDK’s shape', () => {
  const setup = useStarted({ anthropic: () => startFakeAnthropic({ name: 'claude' }), openai: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ anthropic, openai }) => startTestGateway(config(anthropic.url, openai.url)),
  });
  const ids = ['anthropic/claude-sonnet-4-5', 'openai/gpt-4o', 'openai/claude-opus-5-5', 'openai/claude-haiku-9', 'openai/fast'];

  it('lists names and aliases for the openai SDK, as OpenAI does', async () => {
    const models = [];
    for await (const model of openaiSdk(setup.gateway).models.list()) models.push(model);
    expect(models.map((m) => m.id)).toEqual(ids);
    expect(models[2]).toEqual({ id: 'openai/claude-opus-5-5', object: 'model', created: 0, owned_by: 'openai' });
  });

  it('lists them for the Anthropic SDK in Anthropic’s shape, and pages with limit and after_id', async () => {
    const client = anthropicSdk(setup.gateway);
    const all = [];
    for await (const model of client.models.list()) all.push(model);
    expect(all.map((m) => m.id)).toEqual(ids);
    expect(all[2]).toEqual({ type: 'model', id: 'openai/claude-opus-5-5', display_name: 'claude-opus-5-5 (openai, as gpt-5)', created_at: '1970-01-01T00:00:00Z' });
    expect(all[0].display_name).toBe('claude-sonnet-4-5 (anthropic)');

    const first = await client.models.list({ limit: 3 });
    expect(first.data.map((m) => m.id)).toEqual(ids.slice(0, 3));
    expect(first).toMatchObject({ has_more: true, first_id: ids[0], last_id: ids[2] });
    const next = await first.getNextPage();
    expect(next.data.map((m) => m.id)).toEqual(ids.slice(3));
    expect(next.has_more).toBe(false);
    // The SDK walks every page by itself.
    const paged = [];
    for await (const model of client.models.list({ limit: 1 })) paged.push(model.id);
    expect(paged).toEqual(ids);
    const before = await client.models.list({ before_id: ids[3], limit: 2 });
    expect(before.data.map((m) => m.id)).toEqual(ids.slice(1, 3));
    expect(before.has_more).toBe(true);
  });

  it('refuses a bad page request with a 400 the Anthropic SDK raises as such', async () => {
    const client = anthropicSdk(setup.gateway);
    await expect(client.models.list({ limit: 0 })).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    const error = await client.models.list({ after_id: 'no/such-model' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    // The body is Hapax's error shape (the route's error dialect is chosen per handler, not per header).
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({
      error: { type: 'ValidationError', message: 'after_id "no/such-model" is not a listed model id', details: { field: 'after_id' } },
    });
  });

  it('retrieves one model by id or by listed name for both SDKs, and 404s anything else', async () => {
    const openai = openaiSdk(setup.gateway);
    expect(await openai.models.retrieve('openai/claude-opus-5-5')).toEqual({ id: 'openai/claude-opus-5-5', object: 'model', created: 0, owned_by: 'openai' });
    // A bare listed name shows the id it resolves to first.
    expect((await openai.models.retrieve('claude-sonnet-4-5')).id).toBe('anthropic/claude-sonnet-4-5');
    await expect(openai.models.retrieve('claude-sonnet-7-0')).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const anthropic = anthropicSdk(setup.gateway);
    expect(await anthropic.models.retrieve('openai/claude-haiku-9')).toEqual({
      type: 'model',
      id: 'openai/claude-haiku-9',
      display_name: 'claude-haiku-9 (openai, as gpt-5-mini)',
      created_at: '1970-01-01T00:00:00Z',
    });
    expect((await anthropic.models.retrieve('claude-opus-5-5')).id).toBe('openai/claude-opus-5-5');
    await expect(anthropic.models.retrieve('claude-sonnet-7-0')).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    // Unencoded, as curl users write it.
    expect((await fetch(`${setup.gateway.url}/v1/models/openai/gpt-4o`).then((r) => r.json())) as unknown).toMatchObject({ id: 'openai/gpt-4o' });
  });
});

describe('key scopes name the model that is served', () => {
  const setup = useStarted({ anthropic: () => startFakeAnthropic({ name: 'claude' }), openai: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ anthropic, openai }) =>
      startTestGateway(
        config(
          anthropic.url,
          openai.url,
          `
auth:
  enabled: true
  keys:
    - {name: upstream-scope, key: key-upstream-123, models: [gpt-5]}
    - {name: alias-scope, key: key-alias-12345, models: [claude-opus-5-5, fast]}
    - {name: provider-scope, key: key-provider-123, models: [anthropic]}
`,
        ),
      ),
  });

  it('lets a key scoped to the upstream model use an alias of it', async () => {
    const message = await anthropicSdk(setup.gateway, 'key-upstream-123').messages.create({ model: 'claude-opus-5-5', max_tokens: 50, messages: hello });
    expect(message.content[0]).toMatchObject({ text: '[gpt] hello' });
    expect(setup.openai.requests.at(-1)?.body.model).toBe('gpt-5');
  });

  it('does not let an alias name in a scope stand for its target: the scope matches served models only', async () => {
    // "fast" is openai's alias of gpt-4o-mini; the scope names "fast", not what it is served as.
    const error = await openaiSdk(setup.gateway, 'key-alias-12345')
      .chat.completions.create({ model: 'fast', messages: hello })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((error as Error).message).toContain('API key alias-scope may not use model fast (served as openai/gpt-4o-mini)');
    // claude-opus-5-5 is openai's alias of gpt-5 (not allowed), and anthropic serves it under that very name
    // through its claude-* pattern: the key reaches anthropic.
    const { response } = await anthropicSdk(setup.gateway, 'key-alias-12345').messages.create({ model: 'claude-opus-5-5', max_tokens: 50, messages: hello }).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('anthropic');
    expect(setup.anthropic.requests.at(-1)?.body.model).toBe('claude-opus-5-5');
  });

  it('keeps a pattern from widening a key: only the candidates the scope names are tried', async () => {
    // claude-sonnet-7-0 matches anthropic's claude-* only; the provider scope allows it.
    const { response } = await anthropicSdk(setup.gateway, 'key-provider-123').messages.create({ model: 'claude-sonnet-7-0', max_tokens: 50, messages: hello }).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('anthropic');
    // gpt-5.5 matches openai's gpt-* only: the failover default (anthropic's) is all this key may use.
    const other = await openaiSdk(setup.gateway, 'key-provider-123').chat.completions.create({ model: 'gpt-5.5', messages: hello }).withResponse();
    expect(other.response.headers.get('x-hapax-provider')).toBe('anthropic');
    expect(setup.anthropic.requests.at(-1)?.body.model).toBe('claude-sonnet-4-5');
    await expect(openaiSdk(setup.gateway, 'key-upstream-123').chat.completions.create({ model: 'gpt-5.5', messages: hello })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
  });
});
