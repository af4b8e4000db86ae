/**
 * Amazon Bedrock through the gateway: OpenAI, Anthropic and Ollama clients (their official SDKs) against a fake
 * Bedrock that checks every request's SigV4 signature and streams in AWS's event-stream framing. Anthropic
 * clients asking for Claude keep the lossless lane (InvokeModel); everything else goes through Converse.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { fakeInputTokens, startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeBedrock, TEST_AWS_CREDENTIALS } from './fakes/bedrock.ts';
import { parseConfig } from '../src/config/load.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const CLAUDE = 'us.anthropic.claude-3-5-haiku-20241022-v1:0';
const NOVA = 'amazon.nova-lite-v1:0';
const KEYS = `aws_access_key_id: "${TEST_AWS_CREDENTIALS.accessKeyId}", aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}"`;
const TOOL = { type: 'function' as const, function: { name: 'lookup', description: 'Look something up', parameters: { type: 'object', properties: { input: { type: 'string' } } } } };
/** A 1×1 PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

describe('Bedrock: Converse and the Anthropic lane, signed', () => {
  const setup = useStarted({ bedrock: () => startFakeBedrock({ name: 'bd' }) })
    .and({
      gateway: ({ bedrock }) =>
        startTestGateway(`
providers:
  bd: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", ${KEYS}, model: ${NOVA}, models: ["${CLAUDE}"]}
  translated: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", ${KEYS}, model: "${CLAUDE}", lossless: false}
retry: {max_retries: 0}
pricing:
  "${NOVA}": {input: 1, output: 2}
`),
    })
    .and({
      openai: ({ gateway }) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }),
      anthropic: ({ gateway }) => new Anthropic({ baseURL: gateway.url, apiKey: 'x', maxRetries: 0 }),
    });
  afterEach(() => setup.bedrock.reset());

  it('answers an OpenAI chat through Converse, signed with SigV4, with usage', async () => {
    const res = await setup.openai.chat.completions.create({ model: NOVA, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'ping pong' }], max_tokens: 50, temperature: 0.2 });
    expect(res.choices[0].message.content).toBe('[bd] ping pong');
    expect(res.choices[0].finish_reason).toBe('stop');
    expect(res.usage?.completion_tokens).toBe(3);
    const sent = setup.bedrock.requests.at(-1);
    expect(sent?.path).toBe(`/model/${encodeURIComponent(NOVA)}/converse`);
    expect(sent?.body).toEqual({
      messages: [{ role: 'user', content: [{ text: 'ping pong' }] }],
      system: [{ text: 'Be brief.' }],
      inferenceConfig: { maxTokens: 50, temperature: 0.2 },
    });
    expect(String(sent?.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/);
    expect(setup.bedrock.badSignatures).toBe(0);
    expect(await metricsText(setup.gateway.url)).toMatch(/hapax_cost_usd_total\{[^}]*provider="bd"[^}]*\} [0-9.e-]+/);
  });

  it('streams ConverseStream event-stream messages to an OpenAI client', async () => {
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of await setup.openai.chat.completions.create({ model: NOVA, messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } })) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage ??= chunk.usage;
    }
    expect(text).toBe('[bd] one two three');
    expect(usage?.completion_tokens).toBe(4);
    expect(setup.bedrock.requests.at(-1)?.path).toBe(`/model/${encodeURIComponent(NOVA)}/converse-stream`);
  });

  it('runs a tool over two turns, streamed, and sends an image as bytes', async () => {
    const first = await setup.openai.chat.completions.create({ model: NOVA, messages: [{ role: 'user', content: 'weather' }], tools: [TOOL] });
    const call = first.choices[0].message.tool_calls?.[0];
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('lookup');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ input: 'weather' });
    let text = '';
    const second = await setup.openai.chat.completions.create({
      model: NOVA,
      stream: true,
      tools: [TOOL],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'weather' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
        { role: 'assistant', content: null, tool_calls: [call as OpenAI.ChatCompletionMessageToolCall] },
        { role: 'tool', tool_call_id: call?.id ?? '', content: 'sunny' },
      ],
    });
    for await (const chunk of second) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('tool said: sunny');
    const sent = setup.bedrock.requests.at(-1)?.body;
    expect(sent.messages[0].content[1]).toEqual({ image: { format: 'png', source: { bytes: PNG } } });
    expect(sent.messages[1].content[0]).toEqual({ toolUse: { toolUseId: call?.id, name: 'lookup', input: { input: 'weather' } } });
    expect(sent.messages[2].content[0]).toEqual({ toolResult: { toolUseId: call?.id, content: [{ text: 'sunny' }] } });
    expect(sent.toolConfig.tools[0]).toEqual({ toolSpec: { name: 'lookup', description: 'Look something up', inputSchema: { json: TOOL.function.parameters } } });
  });

  it('answers the Responses API through Converse, whole and streamed', async () => {
    const whole = await setup.openai.responses.create({ model: NOVA, input: 'ping pong', store: false });
    expect(whole.output_text).toBe('[bd] ping pong');
    expect(whole.usage?.output_tokens).toBe(3);
    let text = '';
    for await (const event of await setup.openai.responses.create({ model: CLAUDE, input: 'one two', store: false, stream: true })) if (event.type === 'response.output_text.delta') text += event.delta;
    expect(text).toBe('[bd] one two');
    expect(setup.bedrock.requests.at(-1)?.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/converse-stream`);
  });

  it('keeps the lossless lane for an Anthropic client asking for Claude: InvokeModel with the body as Bedrock takes it', async () => {
    const { data, response } = await setup.anthropic.messages
      .create({ model: CLAUDE, max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }] }, { headers: { 'anthropic-beta': 'beta-one, beta-two' } })
      .withResponse();
    expect(data.content).toEqual([{ type: 'text', text: '[bd] hello there' }]);
    expect(response.headers.get('x-hapax-provider')).toBe('bd');
    const sent = setup.bedrock.requests.at(-1);
    // The cross-region profile id goes in the path, escaped; the signature covers the escaped path.
    expect(sent?.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/invoke`);
    expect(sent?.body).toEqual({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }], anthropic_beta: ['beta-one', 'beta-two'] });
    expect(sent?.headers['anthropic-beta']).toBeUndefined();
    expect(setup.bedrock.badSignatures).toBe(0);
  });

  it('streams Claude on the lossless lane: chunk events become Anthropic SSE events, payloads as Bedrock sent them', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: CLAUDE, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'one two' }], tools: [{ name: 'lookup', input_schema: { type: 'object' } }] }),
    });
    const frames = (await res.text()).split('\n\n').filter(Boolean);
    expect(frames[0]).toMatch(/^event: message_start\ndata: \{"type":"message_start"/);
    const stop = frames.find((f) => f.startsWith('event: message_stop'));
    // Bedrock's own addition to the last event passes through untouched.
    expect(stop).toContain('"amazon-bedrock-invocationMetrics"');
    const sdk = await setup.anthropic.messages.stream({ model: CLAUDE, max_tokens: 100, messages: [{ role: 'user', content: 'weather' }], tools: [{ name: 'lookup', input_schema: { type: 'object' } }] }).finalMessage();
    expect(sdk.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'lookup', input: { input: 'weather' } })]);
    expect(setup.bedrock.requests.at(-1)?.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/invoke-with-response-stream`);
    expect(setup.bedrock.requests.at(-1)?.body).not.toHaveProperty('stream');
  });

  it("counts an Anthropic client's tokens with Bedrock's CountTokens, on the foundation-model id", async () => {
    const params = { model: CLAUDE, system: 'Be brief.', messages: [{ role: 'user' as const, content: 'how many tokens is this?' }] };
    const { data, response } = await setup.anthropic.messages.countTokens(params).withResponse();
    expect(response.headers.get('x-hapax-token-count')).toBe('provider');
    expect(data.input_tokens).toBe(fakeInputTokens(params));
    const sent = setup.bedrock.requests.at(-1);
    expect(sent?.path).toBe(`/model/${encodeURIComponent(CLAUDE.slice(3))}/count-tokens`);
    expect(JSON.parse(Buffer.from(sent?.body.input.invokeModel.body, 'base64').toString('utf8'))).toEqual({ anthropic_version: 'bedrock-2023-05-31', system: 'Be brief.', messages: params.messages, max_tokens: 1 });
  });

  it("counts a model that is not Claude locally, without a call to Bedrock", async () => {
    const before = setup.bedrock.requests.length;
    const { response } = await setup.anthropic.messages.countTokens({ model: NOVA, messages: [{ role: 'user', content: 'count me' }] }).withResponse();
    expect(response.headers.get('x-hapax-token-count')).toBe('local');
    expect(setup.bedrock.requests).toHaveLength(before);
  });

  it('translates an OpenAI client asking for Claude through Converse, with thinking in additionalModelRequestFields', async () => {
    const res = await setup.openai.chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'think' }], reasoning_effort: 'low' });
    expect(res.choices[0].message.content).toBe('[bd] think');
    const sent = setup.bedrock.requests.at(-1);
    expect(sent?.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/converse`);
    expect(sent?.body.additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 2048 } });
    expect(sent?.body.inferenceConfig.maxTokens).toBeGreaterThan(2048);
  });

  it("returns Claude's reasoning from Converse to an Ollama client as `thinking`, whole and streamed", async () => {
    const ollama = new Ollama({ host: setup.gateway.url });
    const whole = await ollama.chat({ model: CLAUDE, messages: [{ role: 'user', content: 'why' }], think: true, stream: false });
    expect(whole.message.thinking).toBe('Thinking about: why');
    expect(whole.message.content).toBe('[bd] why');
    let thinking = '';
    let content = '';
    for await (const part of await ollama.chat({ model: CLAUDE, messages: [{ role: 'user', content: 'why' }], think: true, stream: true })) {
      thinking += part.message.thinking ?? '';
      content += part.message.content;
    }
    expect(thinking).toBe('Thinking about: why');
    expect(content).toBe('[bd] why');
    expect(setup.bedrock.requests.at(-1)?.body.additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 8192 } });
  });

  it("carries Claude's signed thinking through Converse to an Anthropic client and back (lossless: false)", async () => {
    const first = await setup.anthropic.messages
      .stream({ model: `translated/${CLAUDE}`, max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'why' }] })
      .finalMessage();
    const thought = first.content.find((b) => b.type === 'thinking');
    expect(thought).toMatchObject({ type: 'thinking', thinking: 'Thinking about: why', signature: Buffer.from('fake-bedrock:why').toString('base64') });
    await setup.anthropic.messages.create({
      model: `translated/${CLAUDE}`,
      max_tokens: 4000,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [{ role: 'user', content: 'why' }, { role: 'assistant', content: first.content }, { role: 'user', content: 'and then?' }],
    });
    const sent = setup.bedrock.requests.at(-1);
    expect(sent?.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/converse`);
    expect(sent?.body.messages[1].content[0]).toEqual({ reasoningContent: { reasoningText: { text: 'Thinking about: why', signature: Buffer.from('fake-bedrock:why').toString('base64') } } });
  });

  it("does not send an Anthropic client's thinking to a model that is not Claude", async () => {
    const final = await setup.anthropic.messages
      .stream({ model: NOVA, max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'why' }] })
      .finalMessage();
    // Nova is not Claude: thinking is not sent, and is named as dropped.
    expect(final.content.map((b) => (b.type === 'text' ? b.text : b.type))).toEqual(['[bd] why']);
    expect(setup.bedrock.requests.at(-1)?.body.additionalModelRequestFields).toBeUndefined();
  });
});

describe('Bedrock faults: signatures, throttling and stream exceptions fail over', () => {
  // A fresh gateway per test: a throttled provider is kept aside for a while, which would steer the next test.
  const setup = useStarted({ bedrock: () => startFakeBedrock({ name: 'bd' }), backup: () => startFakeAnthropic({ name: 'backup' }) }, 'each')
    .and({
      gateway: ({ bedrock, backup }) =>
        startTestGateway(`
providers:
  bd: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", ${KEYS}, model: ${NOVA}, timeout: 1s}
  forged: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", aws_access_key_id: "${TEST_AWS_CREDENTIALS.accessKeyId}", aws_secret_access_key: "not-the-secret", model: ${NOVA}}
  backup: {type: anthropic, base_url: "${backup.url}", model: claude-3-5-haiku-latest}
provider_preference: [bd, backup]
routes:
  - {path: /v1/forged/chat/completions, handler: chat, provider_preference: [forged, backup]}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    })
    .and({ openai: ({ gateway }) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }) });

  it('a wrong secret is refused by the fake as AWS does (403) and the request fails over', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/forged/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-hapax-provider')).toBe('backup');
    expect(setup.bedrock.badSignatures).toBe(1);
    const log = JSON.stringify(setup.gateway.logs);
    expect(log).not.toContain('not-the-secret');
    expect(log).not.toContain(TEST_AWS_CREDENTIALS.secretAccessKey);
  });

  it('a throttlingException before any content fails over; the client never sees it', async () => {
    setup.bedrock.queueStreamException({ type: 'throttlingException', afterEvents: 1 });
    let text = '';
    for await (const chunk of await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('[backup] hi');
    expect(setup.bedrock.requests).toHaveLength(1);
  });

  it('a modelStreamErrorException mid-answer ends the stream with an error in the client\'s format', async () => {
    setup.bedrock.queueStreamException({ type: 'modelStreamErrorException', afterEvents: 3, message: 'model blew up' });
    let text = '';
    const read = async () => {
      for await (const chunk of await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'one two three' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    };
    const error = await read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).message).toContain('model blew up');
    expect(text).toBe('[bd] one');
    expect(setup.backup.requests).toHaveLength(0);
  });

  it('a stream cut in the middle of an event-stream message fails over before the first byte', async () => {
    setup.bedrock.queueFaults({ kind: 'cut', afterChunks: 1 });
    let text = '';
    for await (const chunk of await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('[backup] hi');
  });
  for (const [what, fault] of [
    ['a 500 InternalServerException', { kind: 'status', status: 500 }],
    ['a reset connection', { kind: 'reset' }],
    ['a hang (cut by the provider timeout)', { kind: 'hang' }],
  ] as const) {
    it(`${what} fails over, whole and streamed`, async () => {
      setup.bedrock.queueFaults(fault, fault);
      const whole = await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      expect(whole.response.headers.get('x-hapax-provider')).toBe('backup');
      let text = '';
      for await (const chunk of await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
      expect(text).toBe('[backup] hi');
      expect(setup.bedrock.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
    });
  }

  it('429 ThrottlingException with Retry-After fails over', async () => {
    setup.bedrock.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '3', 'x-amzn-errortype': 'ThrottlingException' } });
    const res = await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(res.response.headers.get('x-hapax-provider')).toBe('backup');
    expect(setup.bedrock.requests).toHaveLength(1);
  });

});

describe('Bedrock credentials from the standard AWS chain', () => {
  let dir: string;
  const saved = { ...process.env };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hapax-aws-'));
    const file = join(dir, 'credentials');
    await writeFile(file, `[team]\naws_access_key_id = ${TEST_AWS_CREDENTIALS.accessKeyId}\naws_secret_access_key = ${TEST_AWS_CREDENTIALS.secretAccessKey}\n`);
    // This file runs in its own process: the chain reads the shared files named here, and no real ones.
    for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
    process.env.AWS_SHARED_CREDENTIALS_FILE = file;
    process.env.AWS_CONFIG_FILE = join(dir, 'config');
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });
  afterAll(async () => {
    process.env = saved;
    await rm(dir, { recursive: true, force: true });
  });
  const setup = useStarted({ bedrock: () => startFakeBedrock({ name: 'bd', region: 'eu-west-1' }) }).and({
    gateway: ({ bedrock }) => startTestGateway(`providers:\n  bd: {type: bedrock, region: eu-west-1, profile: team, base_url: "${bedrock.url}", model: ${NOVA}}\nretry: {max_retries: 0}\n`),
  });

  it('signs with a profile from the shared credentials file', async () => {
    const openai = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const res = await openai.chat.completions.create({ model: NOVA, messages: [{ role: 'user', content: 'from the profile' }] });
    expect(res.choices[0].message.content).toBe('[bd] from the profile');
    expect(String(setup.bedrock.requests.at(-1)?.headers.authorization)).toContain('/eu-west-1/bedrock/aws4_request');
    expect(setup.bedrock.badSignatures).toBe(0);
  });
});

describe('Bedrock settings in the config', () => {
  it('names a missing region and a half-given key pair by their key paths', () => {
    const problems = (yaml: string) => {
      try {
        parseConfig(yaml, '(test)', {});
        return [];
      } catch (error) {
        return (error as { problems?: string[] }).problems ?? [String(error)];
      }
    };
    expect(problems('providers:\n  bd: {type: bedrock, model: amazon.nova-lite-v1:0}\n').join('\n')).toMatch(/providers\.bd\.region: required for type bedrock/);
    expect(problems('providers:\n  bd: {type: bedrock, region: us-east-1, aws_access_key_id: AKIA, model: m}\n').join('\n')).toMatch(/providers\.bd\.aws_secret_access_key: aws_access_key_id and aws_secret_access_key go together/);
    expect(problems('providers:\n  bd: {type: bedrock, region: us-east-1, model: m}\n')).toEqual([]);
  });
});

describe('Bedrock health probes and API keys', () => {
  const setup = useStarted({ bedrock: () => startFakeBedrock({ name: 'bd', apiKey: 'bedrock-api-key-0123456789' }) }).and({
    gateway: ({ bedrock }) =>
      startTestGateway(`
providers:
  bd: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", ${KEYS}, model: ${NOVA}}
  keyed: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", api_key: bedrock-api-key-0123456789, model: ${NOVA}}
health_check: {interval: 100ms, timeout: 1s}
retry: {max_retries: 0}
`),
  });

  it('probes with a signed model list on the control plane, spending no tokens', async () => {
    await vi.waitFor(() => expect(setup.bedrock.requests.filter((r) => r.path === '/foundation-models').length).toBeGreaterThanOrEqual(2), { timeout: 3000, interval: 50 });
    const probes = setup.bedrock.requests.filter((r) => r.path === '/foundation-models');
    expect(probes.some((r) => String(r.headers.authorization).startsWith('AWS4-HMAC-SHA256 '))).toBe(true);
    expect(setup.bedrock.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
    expect(setup.bedrock.badSignatures).toBe(0);
    const health = (await (await fetch(`${setup.gateway.url}/health/provider/bd`)).json()) as { healthy: boolean };
    expect(health.healthy).toBe(true);
  });

  it('sends a Bedrock API key as a bearer token, with no signature', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'keyed', messages: [{ role: 'user', content: 'keyed' }] }) });
    expect(((await res.json()) as OpenAI.ChatCompletion).choices[0].message.content).toBe('[bd] keyed');
    const sent = setup.bedrock.requests.filter((r) => r.method === 'POST').at(-1);
    expect(sent?.headers.authorization).toBe('Bearer bedrock-api-key-0123456789');
    expect(sent?.headers['x-amz-date']).toBeUndefined();
  });
});
