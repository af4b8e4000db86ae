/**
 * POST /v1/messages/count_tokens with the official Anthropic SDK (`messages.countTokens`): forwarded to
 * Anthropic-type providers (what they receive is the client's body with the model mapped, its betas and the
 * provider's own key), failing over between them, counted locally with the tokenizer for the others, and
 * guarded like /v1/messages (keys, scopes, errors in Anthropic's shape) without charging tokens.
 */
import Anthropic from '@anthropic-ai/sdk';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { afterEach, describe, expect, it } from 'vitest';
import { countLocally } from '../src/gateway/token-count.ts';
import { fakeInputTokens, startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const PRIMARY_KEY = 'sk-ant-api03-primary-upstream-0123456789';
const BACKUP_KEY = 'sk-ant-api03-backup-upstream-0123456789';
const CLIENT_KEY = 'hx-count-client-000001';
const ADMIN_KEY = 'admin-count-0123456789';
const UPSTREAM_MODEL = 'claude-sonnet-upstream';

/** The chat format's framing the local count adds: 3 tokens around each message (the system prompt is one), 3 to prime the answer. */
const FRAMING_PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

describe('count_tokens through the gateway', () => {
  const setup = useStarted({
    primary: () => startFakeAnthropic({ name: 'primary', apiKey: PRIMARY_KEY, models: [UPSTREAM_MODEL] }),
    backup: () => startFakeAnthropic({ name: 'backup', apiKey: BACKUP_KEY, models: [UPSTREAM_MODEL] }),
    gptFake: () => startFakeOpenAI({ name: 'gpt' }),
  }).and({
    gateway: ({ primary, backup, gptFake }) =>
      startTestGateway(`
providers:
  primary: {type: anthropic, base_url: "${primary.url}", api_key: "${PRIMARY_KEY}", model: ${UPSTREAM_MODEL}}
  backup: {type: anthropic, base_url: "${backup.url}", api_key: "${BACKUP_KEY}", model: ${UPSTREAM_MODEL}}
  gpt: {type: openai, base_url: "${gptFake.url}", api_key: sk-openai-upstream-0123456789, model: gpt-4o}
auth:
  enabled: true
  keys:
    - {name: client, key: ${CLIENT_KEY}}
    - {name: messages-only, key: hx-messages-only-0001, routes: [/v1/messages]}
    - {name: chat-only, key: hx-chat-only-000001, routes: [/v1/chat/completions]}
    - {name: frugal, key: hx-frugal-key-000001, rate_limit: {tokens_per_minute: 30}}
    - {name: hasty, key: hx-hasty-key-0000001, rate_limit: {requests_per_minute: 2}}
admin: {key: ${ADMIN_KEY}}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
  });
  const client = (apiKey = CLIENT_KEY) => new Anthropic({ baseURL: setup.gateway.url, apiKey, maxRetries: 0 });
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
    setup.gptFake.reset();
  });

  it('forwards the body as sent, with the model mapped, the client betas and the provider key, via beta.messages.countTokens (?beta=true)', async () => {
    const params = {
      model: 'primary',
      betas: ['context-management-2025-06-27'],
      system: [{ type: 'text' as const, text: 'You are terse.', cache_control: { type: 'ephemeral' as const } }],
      thinking: { type: 'enabled' as const, budget_tokens: 2048 },
      messages: [{ role: 'user' as const, content: 'How many tokens is this?' }],
      tools: [{ name: 'lookup', description: 'Looks a word up', input_schema: { type: 'object' as const, properties: { word: { type: 'string' } } } }],
      // A field no version of the API has: a count forwards the body as the client wrote it.
      hapax_unknown_field: { kept: true },
    };
    const { data, response } = await client().beta.messages.countTokens(params as Anthropic.Beta.Messages.MessageCountTokensParams).withResponse();

    const sent = setup.primary.requests.at(-1);
    expect(sent?.path).toBe('/v1/messages/count_tokens');
    const { betas: _, ...body } = params;
    expect(sent?.body).toEqual({ ...body, model: UPSTREAM_MODEL });
    expect(sent?.headers['anthropic-beta']).toBe('context-management-2025-06-27,token-counting-2024-11-01');
    // The client's own anthropic-version travels with the body, as on the lossless lane.
    expect(sent?.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(sent?.headers['x-api-key']).toBe(PRIMARY_KEY);
    expect(sent?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(sent?.headers)).not.toContain(CLIENT_KEY);

    expect(data.input_tokens).toBe(fakeInputTokens(sent?.body));
    expect(response.headers.get('x-hapax-token-count')).toBe('provider');
    expect(response.headers.get('x-hapax-provider')).toBe('primary');
    expect(setup.backup.requests).toHaveLength(0);
  });

  it('answers messages.countTokens from the provider, sending no anthropic-beta the client did not send', async () => {
    const count = await client().messages.countTokens({ model: 'primary', messages: [{ role: 'user', content: 'Hello, Claude' }] });
    const sent = setup.primary.requests.at(-1);
    expect(count.input_tokens).toBe(fakeInputTokens(sent?.body));
    expect(sent?.headers['anthropic-beta']).toBeUndefined();
  });

  it('fails over to the next Anthropic provider when the first is overloaded', async () => {
    setup.primary.queueFaults({ kind: 'status', status: 529 });
    const { data, response } = await client().messages.countTokens({ model: 'primary', messages: [{ role: 'user', content: 'fail over please' }] }).withResponse();
    expect(setup.primary.requests).toHaveLength(1);
    const sent = setup.backup.requests.at(-1);
    expect(sent?.headers['x-api-key']).toBe(BACKUP_KEY);
    expect(data.input_tokens).toBe(fakeInputTokens(sent?.body));
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
    expect(response.headers.get('x-hapax-token-count')).toBe('provider');
  });

  it('counts locally when every Anthropic provider failed', async () => {
    setup.primary.fault = { kind: 'status', status: 500 };
    setup.backup.fault = { kind: 'reset' };
    const text = 'Nobody upstream can count this.';
    const { data, response } = await client().messages.countTokens({ model: 'primary', messages: [{ role: 'user', content: text }] }).withResponse();
    expect(setup.primary.requests).toHaveLength(1);
    expect(setup.backup.requests).toHaveLength(1);
    expect(response.headers.get('x-hapax-token-count')).toBe('local');
    expect(data.input_tokens).toBe(countTokens(text) + FRAMING_PER_MESSAGE + REPLY_PRIMING);
    expect(setup.gptFake.requests).toHaveLength(0);
  });

  it('counts locally for an OpenAI-type provider: system, text, tool definitions, tool calls and results', async () => {
    const tool = { name: 'get_weather', description: 'Get the current weather in a given location', input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] } };
    const call = { location: 'Paris' };
    const { data, response } = await client()
      .messages.countTokens({
        model: 'gpt',
        system: 'You are a scientist',
        tools: [tool],
        messages: [
          { role: 'user', content: 'What is the weather in Paris?' },
          { role: 'assistant', content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: call }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny, 21 °C' }] }] },
        ],
      })
      .withResponse();
    const texts = ['You are a scientist', 'What is the weather in Paris?', 'Let me check.', 'get_weather', JSON.stringify(call), 'Sunny, 21 °C'];
    const toolDefinition = countTokens(tool.name) + countTokens(tool.description) + countTokens(JSON.stringify(tool.input_schema));
    const expected = texts.reduce((n, t) => n + countTokens(t), 0) + toolDefinition + 4 * FRAMING_PER_MESSAGE + REPLY_PRIMING;
    expect(data.input_tokens).toBe(expected);
    expect(response.headers.get('x-hapax-token-count')).toBe('local');
    // Nothing upstream was asked: not the OpenAI provider, not the Anthropic ones further down the list.
    expect(setup.gptFake.requests).toHaveLength(0);
    expect(setup.primary.requests).toHaveLength(0);
  });

  it('estimates an image at the documented figure and counts a text document by its text', async () => {
    const base = { model: 'gpt', messages: [{ role: 'user' as const, content: 'Describe this.' }] };
    const plain = await client().messages.countTokens(base);
    const withImage = await client().messages.countTokens({
      ...base,
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }, { type: 'text', text: 'Describe this.' }] }],
    });
    expect(withImage.input_tokens - plain.input_tokens).toBe(765);
    const doc = 'A plain text document with a few words in it.';
    const withDocument = await client().messages.countTokens({
      ...base,
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: doc } }, { type: 'text', text: 'Describe this.' }] }],
    });
    expect(withDocument.input_tokens - plain.input_tokens).toBe(countTokens(doc));
  });

  it('refuses bad input with 400 in Anthropic error shape, from the gateway and from the upstream', async () => {
    const error = await client()
      .messages.countTokens({ model: 'gpt', messages: [] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('messages') } });

    const res = await fetch(`${setup.gateway.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': CLIENT_KEY },
      body: JSON.stringify({ model: 'gpt', messages: [{ role: 'robot', content: 'hi' }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' }, request_id: expect.any(String) });

    // The Anthropic upstream refuses a system turn inside messages: its 400 reaches the client, no local count instead.
    const refused = await client()
      .messages.countTokens({ model: 'primary', messages: [{ role: 'system', content: 'be brief' } as never, { role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Anthropic.BadRequestError);
    expect(setup.primary.requests).toHaveLength(1);
    expect(setup.backup.requests).toHaveLength(0);
  });

  it('needs a key (401), honours key scopes (403) and lets a /v1/messages key count', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    await expect(client('hx-wrong-key-0000001').messages.countTokens({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(client('hx-chat-only-000001').messages.countTokens({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    const allowed = await client('hx-messages-only-0001').messages.countTokens({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }] });
    expect(allowed.input_tokens).toBeGreaterThan(0);
  });

  it('counts against requests_per_minute like any request: 429 in Anthropic shape once spent', async () => {
    const hasty = client('hx-hasty-key-0000001');
    const params = { model: 'gpt', messages: [{ role: 'user' as const, content: 'hi' }] };
    await hasty.messages.countTokens(params);
    await hasty.messages.countTokens(params);
    const error = await hasty.messages.countTokens(params).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    expect((error as InstanceType<typeof Anthropic.RateLimitError>).error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
  });

  it('charges no tokens: counts far over tokens_per_minute leave the budget untouched, and count as requests only', async () => {
    const frugal = client('hx-frugal-key-000001');
    const long = 'word '.repeat(200);
    for (let i = 0; i < 3; i++) {
      const local = await frugal.messages.countTokens({ model: 'gpt', messages: [{ role: 'user', content: long }] });
      expect(local.input_tokens).toBeGreaterThan(30);
      const forwarded = await frugal.messages.countTokens({ model: 'primary', messages: [{ role: 'user', content: long }] });
      expect(forwarded.input_tokens).toBeGreaterThan(30);
    }
    // Usage is charged after the answer; give the accounting a moment, as a completion's would need.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const message = await frugal.messages.create({ model: 'primary', max_tokens: 20, messages: [{ role: 'user', content: 'still allowed?' }] });
    expect(message.type).toBe('message');

    const usage = await fetch(`${setup.gateway.url}/admin/usage`, { headers: { 'x-api-key': ADMIN_KEY } });
    const { usage: rows } = (await usage.json()) as { usage: Array<{ client: string; requests: number; input_tokens: number; output_tokens: number }> };
    const row = rows.find((r) => r.client === 'frugal');
    expect(row?.requests).toBe(7);
    // Only the one completion's tokens.
    expect(row?.input_tokens).toBe(message.usage.input_tokens);
    expect(row?.output_tokens).toBe(message.usage.output_tokens);
  });
});

describe('count_tokens without providers that count (mock provider, auth off)', () => {
  const setup = useStarted({ gateway: () => startTestGateway('providers:\n  mock: {type: mock}\nserver: {max_body_size: 4096}\n') });

  it('counts locally and answers the Anthropic SDK', async () => {
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    const text = 'The quick brown fox jumps over the lazy dog.';
    const { data, response } = await anthropic.messages.countTokens({ model: 'mock', messages: [{ role: 'user', content: text }] }).withResponse();
    expect(data).toEqual({ input_tokens: countTokens(text) + FRAMING_PER_MESSAGE + REPLY_PRIMING });
    expect(response.headers.get('x-hapax-token-count')).toBe('local');
  });

  it('refuses a body over the route limit with 413 in Anthropic shape', async () => {
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'unused', maxRetries: 0 });
    const error = await anthropic.messages.countTokens({ model: 'mock', messages: [{ role: 'user', content: 'x'.repeat(8192) }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as InstanceType<typeof Anthropic.APIError>).status).toBe(413);
    expect((error as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
  });

  it('answers an unknown model like /v1/messages does: 400 in Anthropic shape', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('no-such-model') } });
  });
});

describe('local counts for a Claude model against the counts Anthropic publishes', () => {
  // The examples of Anthropic's token-counting guide, with the input_tokens it shows for each (docs/api.md).
  const weather = {
    name: 'get_weather',
    description: 'Get the current weather in a given location',
    input_schema: { type: 'object', properties: { location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' } }, required: ['location'] },
  };
  const examples = [
    { name: 'system and greeting', published: 14, request: { system: 'You are a scientist', messages: [{ role: 'user' as const, content: 'Hello, Claude' }] } },
    { name: 'a tool', published: 403, request: { tools: [weather], messages: [{ role: 'user' as const, content: "What's the weather like in San Francisco?" }] } },
    {
      name: 'an image',
      published: 1551,
      request: { messages: [{ role: 'user' as const, content: [{ type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/' } }, { type: 'text', text: 'Describe this image' }] }] },
    },
  ];

  for (const { name, published, request } of examples) {
    it(`${name}: within 2 tokens or 5% of ${published}`, async () => {
      const local = await countLocally(request, { claude: true });
      expect(Math.abs(local - published)).toBeLessThanOrEqual(Math.max(2, published * 0.05));
    });
  }
});
