/**
 * Vertex AI through the gateway: Claude through rawPredict / streamRawPredict, with a service-account key file
 * the test makes and a fake Google token endpoint (the fake Vertex checks the bearer token it issued). Anthropic
 * clients keep the lossless lane; OpenAI and Ollama clients are translated to the same body.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { fakeInputTokens, startFakeAnthropic } from './fakes/anthropic.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const PROJECT = 'hapax-test-project';
const CLAUDE = 'claude-3-5-haiku@20241022';
const account = makeServiceAccount(PROJECT);
const stranger = makeServiceAccount(PROJECT, 'not-trusted');
/** A 1×1 PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

/** The key files, written where the config points. */
async function keyFiles(): Promise<{ path: string; trusted: string; untrusted: string; close(): Promise<void> }> {
  const dir = await tempDir('hapax-vertex-');
  const trusted = join(dir.path, 'key.json');
  const untrusted = join(dir.path, 'other.json');
  await writeFile(trusted, JSON.stringify(account.keyFile));
  await writeFile(untrusted, JSON.stringify(stranger.keyFile));
  return { ...dir, trusted, untrusted };
}

describe('Vertex AI: Claude through rawPredict, with a service-account key', () => {
  const setup = useStarted({
    keys: () => keyFiles(),
    vertex: () => startFakeVertex({ name: 'vx', project: PROJECT, location: 'us-east5', serviceAccounts: [account] }),
    backup: () => startFakeAnthropic({ name: 'backup' }),
  })
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ vertex, backup, keys }) =>
        startTestGateway(`
providers:
  vx: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.trusted}", base_url: "${vertex.url}", model: "${CLAUDE}"}
  untrusted: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.untrusted}", base_url: "${vertex.url}", model: "${CLAUDE}"}
  backup: {type: anthropic, base_url: "${backup.url}", model: claude-3-5-haiku-latest}
provider_preference: [vx, backup]
routes:
  - {path: /v1/untrusted/chat/completions, handler: chat, provider_preference: [untrusted, backup]}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
pricing:
  "${CLAUDE}": {input: 1, output: 5}
`),
    })
    .and({
      openai: ({ gateway }) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }),
      anthropic: ({ gateway }) => new Anthropic({ baseURL: gateway.url, apiKey: 'x', maxRetries: 0 }),
      ollama: ({ gateway }) => new Ollama({ host: gateway.url }),
    });

  const predict = (stream: boolean) => `/v1/projects/${PROJECT}/locations/us-east5/publishers/anthropic/models/${encodeURIComponent(CLAUDE)}:${stream ? 'streamRawPredict' : 'rawPredict'}`;

  it('keeps the lossless lane for an Anthropic client: the body as Vertex takes it, the bearer token it issued', async () => {
    const { data, response } = await setup.anthropic.messages
      .create({ model: CLAUDE, max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }] }, { headers: { 'anthropic-beta': 'beta-one' } })
      .withResponse();
    expect(data.content).toEqual([{ type: 'text', text: '[vx] hello there' }]);
    expect(response.headers.get('x-hapax-provider')).toBe('vx');
    const sent = setup.vertex.requests.at(-1);
    expect(sent?.path).toBe(predict(false));
    expect(sent?.body).toEqual({ anthropic_version: 'vertex-2023-10-16', max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }] });
    expect(sent?.headers['anthropic-beta']).toBe('beta-one');
    expect(setup.vertex.issued).toContain(String(sent?.headers.authorization).replace('Bearer ', ''));
  });

  it('streams on the lossless lane, the SSE events as Vertex sent them', async () => {
    const final = await setup.anthropic.messages.stream({ model: CLAUDE, max_tokens: 100, messages: [{ role: 'user', content: 'weather' }], tools: [{ name: 'lookup', input_schema: { type: 'object' } }] }).finalMessage();
    expect(final.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'lookup', input: { input: 'weather' } })]);
    const sent = setup.vertex.requests.at(-1);
    expect(sent?.path).toBe(predict(true));
    expect(sent?.body.stream).toBe(true);
  });

  it("counts an Anthropic client's tokens with Vertex's count-tokens", async () => {
    const params = { model: CLAUDE, messages: [{ role: 'user' as const, content: 'how many tokens is this?' }] };
    const { data, response } = await setup.anthropic.messages.countTokens(params).withResponse();
    expect(response.headers.get('x-hapax-token-count')).toBe('provider');
    expect(data.input_tokens).toBe(fakeInputTokens(params));
    const sent = setup.vertex.requests.at(-1);
    expect(sent?.path).toBe(`/v1/projects/${PROJECT}/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict`);
    expect(sent?.body).toEqual({ anthropic_version: 'vertex-2023-10-16', model: CLAUDE, messages: params.messages });
  });

  it('translates an OpenAI client, plain and streamed, with a tool over two turns and an image, and counts usage', async () => {
    const TOOL = { type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { input: { type: 'string' } } } } };
    const first = await setup.openai.chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'weather' }], tools: [TOOL] });
    const call = first.choices[0].message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe('lookup');
    expect(first.usage?.prompt_tokens).toBeGreaterThan(0);
    let text = '';
    for await (const chunk of await setup.openai.chat.completions.create({
      model: CLAUDE,
      stream: true,
      tools: [TOOL],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'weather' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
    }))
      text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('tool said: sunny');
    const sent = setup.vertex.requests.at(-1)?.body;
    expect(sent).toMatchObject({ anthropic_version: 'vertex-2023-10-16', stream: true });
    expect(sent).not.toHaveProperty('model');
    expect(sent.messages[0].content[1]).toEqual({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } });
    const metrics = await (await fetch(`${setup.gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/hapax_cost_usd_total\{[^}]*provider="vx"[^}]*\} [0-9.e-]+/);
  });

  it('answers the Responses API, Claude and Gemini, whole and streamed', async () => {
    const claude = await setup.openai.responses.create({ model: CLAUDE, input: 'ping pong', store: false });
    expect(claude.output_text).toBe('[vx] ping pong');
    let text = '';
    for await (const event of await setup.openai.responses.create({ model: 'vx/gemini-2.5-flash', input: 'one two', store: false, stream: true })) if (event.type === 'response.output_text.delta') text += event.delta;
    expect(text).toBe('[vx] one two');
  });

  it('answers an Ollama client', async () => {
    const res = await setup.ollama.chat({ model: CLAUDE, messages: [{ role: 'user', content: 'ping pong' }], stream: false });
    expect(res.message.content).toBe('[vx] ping pong');
  });

  it('a key the token endpoint does not trust gets no token: the request fails over, and nothing secret is logged', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/untrusted/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-hapax-provider')).toBe('backup');
    expect(setup.vertex.refusedGrants).toBeGreaterThan(0);
    const log = JSON.stringify(setup.gateway.logs);
    for (const token of setup.vertex.issued) expect(log).not.toContain(token);
    expect(log).not.toContain('PRIVATE KEY');
  });

  it('serves a Gemini model through generateContent under the project, plain, streamed and with a tool, with the bearer token', async () => {
    const TOOL = { type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { input: { type: 'string' } } } } };
    const plain = await setup.openai.chat.completions.create({ model: 'vx/gemini-2.5-flash', messages: [{ role: 'user', content: 'ping pong' }] });
    expect(plain.choices[0].message.content).toBe('[vx] ping pong');
    expect(plain.usage?.prompt_tokens).toBeGreaterThan(0);
    const sent = setup.vertex.requests.at(-1);
    expect(sent?.path).toBe(`/v1/projects/${PROJECT}/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent`);
    expect(sent?.body.contents).toEqual([{ role: 'user', parts: [{ text: 'ping pong' }] }]);
    expect(setup.vertex.issued).toContain(String(sent?.headers.authorization).replace('Bearer ', ''));
    let text = '';
    for await (const chunk of await setup.openai.chat.completions.create({ model: 'vx/gemini-2.5-flash', messages: [{ role: 'user', content: 'one two' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('[vx] one two');
    expect(setup.vertex.requests.at(-1)?.path).toMatch(/:streamGenerateContent$/);
    expect(setup.vertex.requests.at(-1)?.query).toBe('alt=sse');
    const tool = await setup.openai.chat.completions.create({ model: 'vx/gemini-2.5-flash', messages: [{ role: 'user', content: 'weather' }], tools: [TOOL] });
    const call = tool.choices[0].message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe('lookup');
    expect(JSON.parse(call.function.arguments)).toEqual({ input: 'weather' });
  });

  it('serves a Gemini model to an Anthropic client, translated', async () => {
    const final = await setup.anthropic.messages.stream({ model: 'vx/gemini-2.5-flash', max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] }).finalMessage();
    expect(final.content.map((b) => (b.type === 'text' ? b.text : b.type))).toEqual(['[vx] hello']);
  });

  it('a 429 RESOURCE_EXHAUSTED with Retry-After fails over to the next provider', async () => {
    setup.vertex.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const first = await setup.openai.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(first.response.headers.get('x-hapax-provider')).toBe('backup');
  });

});

describe('Vertex AI faults', () => {
  const setup = useStarted(
    {
      keys: () => keyFiles(),
      vertex: () => startFakeVertex({ name: 'vx', serviceAccounts: [account] }),
      backup: () => startFakeAnthropic({ name: 'backup' }),
    },
    'each',
  )
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ vertex, backup, keys }) =>
        startTestGateway(`
providers:
  vx: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.trusted}", base_url: "${vertex.url}", model: "${CLAUDE}", timeout: 1s}
  backup: {type: anthropic, base_url: "${backup.url}", model: claude-3-5-haiku-latest}
provider_preference: [vx, backup]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    })
    .and({ anthropic: ({ gateway }) => new Anthropic({ baseURL: gateway.url, apiKey: 'x', maxRetries: 0 }) });

  it('a lossless stream cut right after message_start fails over before the client sees a byte', async () => {
    setup.vertex.queueFaults({ kind: 'cut', afterChunks: 1 });
    const final = await setup.anthropic.messages.stream({ model: '', max_tokens: 50, messages: [{ role: 'user', content: 'still there' }] }).finalMessage();
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: '[backup] still there' })]);
  });

  it('a 500 fails over', async () => {
    setup.vertex.queueFaults({ kind: 'status', status: 500 });
    const final = await setup.anthropic.messages.create({ model: '', max_tokens: 50, messages: [{ role: 'user', content: 'again' }] });
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: '[backup] again' })]);
  });

  it('a reset connection fails over, whole and streamed', async () => {
    setup.vertex.queueFaults({ kind: 'reset' }, { kind: 'reset' });
    const whole = await setup.anthropic.messages.create({ model: '', max_tokens: 50, messages: [{ role: 'user', content: 'reset' }] });
    expect(whole.content).toEqual([expect.objectContaining({ type: 'text', text: '[backup] reset' })]);
    const streamed = await setup.anthropic.messages.stream({ model: '', max_tokens: 50, messages: [{ role: 'user', content: 'reset' }] }).finalMessage();
    expect(streamed.content).toEqual([expect.objectContaining({ type: 'text', text: '[backup] reset' })]);
  });

  it('a hang is cut by the provider timeout and fails over', async () => {
    setup.vertex.queueFaults({ kind: 'hang' });
    const final = await setup.anthropic.messages.create({ model: '', max_tokens: 50, messages: [{ role: 'user', content: 'waiting' }] });
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: '[backup] waiting' })]);
    expect(setup.vertex.requests.filter((r) => r.path.endsWith(':rawPredict'))).toHaveLength(1);
  });
});

describe('Vertex AI settings in the config', () => {
  it('names a missing project and location by their key paths', () => {
    let problems: string[] = [];
    try {
      parseConfig('providers:\n  vx: {type: vertex, model: claude-3-5-haiku@20241022}\n', '(test)', {});
    } catch (error) {
      problems = (error as { problems?: string[] }).problems ?? [];
    }
    expect(problems.join('\n')).toMatch(/providers\.vx\.project: required for type vertex/);
    expect(problems.join('\n')).toMatch(/providers\.vx\.location: required for type vertex/);
  });
});

describe('Vertex AI health probes', () => {
  const setup = useStarted({ keys: () => keyFiles(), vertex: () => startFakeVertex({ name: 'vx', serviceAccounts: [account] }) })
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ vertex, keys }) =>
        startTestGateway(`
providers:
  vx: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.trusted}", base_url: "${vertex.url}", model: "${CLAUDE}"}
  vg: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.trusted}", base_url: "${vertex.url}", model: gemini-2.5-flash}
  both: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${keys.trusted}", base_url: "${vertex.url}", model: gemini-2.5-flash, models: {opus: "${CLAUDE}"}}
health_check: {interval: 100ms, timeout: 1s}
`),
    });
  const listed = (publisher: string) => setup.vertex.requests.filter((r) => r.method === 'GET' && r.path === `/v1beta1/publishers/${publisher}/models`).length;

  it("lists Model Garden's Anthropic models with the bearer token, spending no tokens", async () => {
    const probes = () => setup.vertex.requests.filter((r) => r.path === '/v1beta1/publishers/anthropic/models');
    await vi.waitFor(() => expect(probes().length).toBeGreaterThanOrEqual(2), { timeout: 3000, interval: 50 });
    expect(setup.vertex.refusedTokens).toBe(0);
    expect(setup.vertex.requests.filter((r) => r.path.includes(':'))).toHaveLength(0);
    const health = (await (await fetch(`${setup.gateway.url}/health/provider/vx`)).json()) as { healthy: boolean };
    expect(health.healthy).toBe(true);
  });

  it("probes a Gemini provider with Google's publisher list, and one serving both with both lists", async () => {
    // Three providers, each probed every 100ms: vx and both list Anthropic's models, vg and both Google's.
    await vi.waitFor(() => expect(listed('google')).toBeGreaterThanOrEqual(4), { timeout: 3000, interval: 50 });
    // Each provider has its own credentials, so its own token: what each token listed is what one provider probes.
    const byToken = new Map<string, Set<string>>();
    for (const r of setup.vertex.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1beta1/publishers/'))) {
      const token = String(r.headers.authorization);
      byToken.set(token, (byToken.get(token) ?? new Set()).add(r.path.split('/')[3]));
    }
    expect([...byToken.values()].map((s) => [...s].sort().join('+')).sort()).toEqual(['anthropic', 'anthropic+google', 'google']);
    expect(setup.vertex.refusedTokens).toBe(0);
    expect(setup.vertex.requests.filter((r) => r.path.includes(':'))).toHaveLength(0);
    for (const name of ['vg', 'both']) {
      const health = (await (await fetch(`${setup.gateway.url}/health/provider/${name}`)).json()) as { healthy: boolean };
      expect(health.healthy).toBe(true);
    }
  });
});
