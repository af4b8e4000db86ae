/**
 * Azure OpenAI through the gateway: deployments and the v1 API, api-key and Entra tokens, the lossless lane for
 * Chat Completions clients, translation for the others, Azure's content filter and its errors, failover.
 */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { startFakeAzure } from './fakes/azure.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { metricSum } from './helpers/metrics.ts';
import { useStarted } from './helpers/started.ts';

const KEY = 'azure-key-0123456789abcdef';
const TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra.token';
const TOOL = { type: 'function' as const, function: { name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { input: { type: 'string' } } } } };
const PIXEL = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

describe('azure_openai: deployment paths with an api-key', () => {
  const setup = useStarted({ azure: () => startFakeAzure({ name: 'az', apiKey: KEY, deployments: { 'prod-4o': 'gpt-4o' }, filterWord: 'forbidden', filterAnswerWord: 'secretword' }) }).and({
    gateway: ({ azure }) =>
      startTestGateway(`
providers:
  az:
    type: azure_openai
    base_url: "${azure.url}/openai"
    api_key: "${KEY}"
    model: gpt-4o
    azure: {deployments: {gpt-4o: prod-4o}}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
pricing:
  gpt-4o: {input: 2.5, output: 10}
`),
  });
  afterEach(() => setup.azure.reset());
  const openai = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });

  it('sends an OpenAI client on the lossless lane to the deployment path with the api-version and the api-key', async () => {
    const res = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'ping pong' }], seed: 7, logit_bias: { '50256': -100 } });
    expect(res.choices[0].message.content).toBe('[az] ping pong');
    // Azure's own fields come back untouched on the lossless lane.
    expect((res as unknown as { prompt_filter_results: unknown[] }).prompt_filter_results).toHaveLength(1);
    const sent = setup.azure.requests.at(-1);
    expect(sent?.path).toBe('/openai/deployments/prod-4o/chat/completions');
    expect(sent?.query).toBe('api-version=2024-10-21');
    expect(sent?.headers['api-key']).toBe(KEY);
    expect(sent?.headers.authorization).toBeUndefined();
    // Fields Hapax does not model travel as written.
    expect(sent?.body).toMatchObject({ seed: 7, logit_bias: { '50256': -100 } });
  });

  it('streams on the lossless lane past the empty-choices prompt-filter chunk, with usage in metrics and cost', async () => {
    const before = await metricSum(setup.gateway.url, 'hapax_cost_usd_total{');
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } })) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage ??= chunk.usage ?? undefined;
    }
    expect(text).toBe('[az] one two three');
    expect(usage?.completion_tokens).toBe(4);
    await expect.poll(() => metricSum(setup.gateway.url, 'hapax_tokens_total{provider="az"')).toBeGreaterThan(0);
    await expect.poll(async () => (await metricSum(setup.gateway.url, 'hapax_cost_usd_total{')) - before).toBeGreaterThan(0);
  });

  it('runs a tool over two turns for an Anthropic client, translated', async () => {
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 });
    const tools = [{ name: 'lookup', description: 'Look it up', input_schema: { type: 'object' as const, properties: { input: { type: 'string' } } } }];
    const first = await anthropic.messages.create({ model: 'gpt-4o', max_tokens: 100, tools, messages: [{ role: 'user', content: 'weather in Oslo' }] });
    const use = first.content.find((b) => b.type === 'tool_use');
    expect(use?.type === 'tool_use' && use.name).toBe('lookup');
    expect(first.stop_reason).toBe('tool_use');
    if (use?.type !== 'tool_use') return;
    const second = await anthropic.messages
      .stream({
        model: 'gpt-4o',
        max_tokens: 100,
        tools,
        messages: [
          { role: 'user', content: 'weather in Oslo' },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
        ],
      })
      .finalMessage();
    expect(second.content).toEqual([{ type: 'text', text: 'tool said: sunny' }]);
    const sent = setup.azure.requests.at(-1);
    expect(sent?.path).toBe('/openai/deployments/prod-4o/chat/completions');
    expect(sent?.body.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: use.id, content: 'sunny' });
  });

  it('carries an image from an Ollama client', async () => {
    const ollama = new Ollama({ host: setup.gateway.url });
    const res = await ollama.chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'what is this', images: [PIXEL.split(',')[1]] }] });
    expect(res.message.content).toBe('[az] what is this (1 image)');
    const part = setup.azure.requests.at(-1)?.body.messages[0].content.find((p: { type: string }) => p.type === 'image_url');
    expect(part.image_url.url).toMatch(/^data:image\/png;base64,iVBOR/);
  });

  it("passes Azure's content filter on: a refused prompt is a 400 with Azure's reason, a filtered answer ends as content_filter", async () => {
    const error = await openai()
      .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'something forbidden' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/content management policy/);
    expect(setup.azure.requests).toHaveLength(1);

    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 });
    const cut = await anthropic.messages.create({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'say secretword now' }] });
    // Anthropic has no content_filter stop reason of its own: Hapax's Anthropic encoder decides how it reads.
    expect(cut.content).toEqual([{ type: 'text', text: '[az] say ' }]);
    const streamed = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'say secretword now' }], stream: true });
    const reasons: (string | null)[] = [];
    for await (const chunk of streamed) if (chunk.choices[0]?.finish_reason) reasons.push(chunk.choices[0].finish_reason);
    expect(reasons).toEqual(['content_filter']);
  });

  it('sends embeddings to the deployment path', async () => {
    const res = await openai().embeddings.create({ model: 'gpt-4o', input: ['a', 'b'] });
    expect(res.data.map((d) => d.embedding.length)).toEqual([8, 8]);
    expect(setup.azure.requests.at(-1)).toMatchObject({ path: '/openai/deployments/prod-4o/embeddings', query: 'api-version=2024-10-21' });
  });

  it('answers an unknown deployment with a 404 that names it', async () => {
    const error = await openai()
      .chat.completions.create({ model: 'az/gpt-5', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect((error as { status?: number }).status).toBe(404);
    expect(setup.azure.requests.at(-1)?.path).toBe('/openai/deployments/gpt-5/chat/completions');
  });
});

describe('azure_openai: the v1 API with an Entra token from a command, failing over to a second resource', () => {
  const setup = useStarted({
    east: () => startFakeAzure({ name: 'east', entraToken: TOKEN, deployments: { 'chat-east': 'gpt-4o' } }),
    west: () => startFakeAzure({ name: 'west', apiKey: KEY, deployments: { 'gpt-4o': 'gpt-4o' } }),
    dir: () => mkdtemp(join(tmpdir(), 'hapax-azure-')),
  }).and({
    command: async ({ dir }) => {
      // az account get-access-token's JSON, as the operator's command would print it; it counts its runs.
      const script = join(dir, 'token.sh');
      await writeFile(script, `#!/bin/sh\necho run >> "${dir}/runs"\necho '{"accessToken": "${TOKEN}", "expires_on": ${Math.floor(Date.now() / 1000) + 3600}, "tokenType": "Bearer"}'\n`);
      await chmod(script, 0o755);
      return script;
    },
  }).and({
    gateway: ({ east, west, command }) =>
      startTestGateway(`
providers:
  east:
    type: azure_openai
    base_url: "${east.url}"
    model: gpt-4o
    azure: {api: v1, deployments: {gpt-4o: chat-east}, entra_token_command: "${command}"}
  west: {type: azure_openai, base_url: "${west.url}", api_key: "${KEY}", model: gpt-4o}
provider_preference: [east, west]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
  });
  afterEach(() => {
    setup.east.reset();
    setup.west.reset();
  });
  const openai = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });

  it('sends the bearer token to /openai/v1 with the deployment as the model, running the command once', async () => {
    const [a, b] = await Promise.all([1, 2].map(() => openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] })));
    expect(a.choices[0].message.content).toBe('[east] hello');
    expect(b.choices[0].message.content).toBe('[east] hello');
    const sent = setup.east.requests.at(-1);
    expect(sent?.path).toBe('/openai/v1/chat/completions');
    expect(sent?.query).toBe('');
    expect(sent?.body.model).toBe('chat-east');
    expect(sent?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(sent?.headers['api-key']).toBeUndefined();
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(join(setup.dir, 'runs'), 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('v1 with an api_version sends it, and the client query follows it on the lossless lane', async () => {
    const gateway = await startTestGateway(`providers:\n  p: {type: azure_openai, base_url: "${setup.west.url}", api_key: "${KEY}", model: gpt-4o, azure: {api: v1, api_version: preview}}\n`);
    try {
      await new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0, defaultQuery: { trace: '1' } }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'q' }] });
      expect(setup.west.requests.at(-1)).toMatchObject({ path: '/openai/v1/chat/completions', query: 'api-version=preview&trace=1' });
    } finally {
      await gateway.close();
    }
  });

  it('fails over to the second resource on a stream cut right after the prompt-filter chunk, a 500 and a reset', async () => {
    // Cut after the prompt-filter chunk alone (no output yet): still free to fail over.
    setup.east.queueFaults({ kind: 'cut', afterChunks: 1 });
    let text = '';
    for await (const chunk of await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a b' }], stream: true })) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('[west] a b');
    for (const fault of [{ kind: 'status', status: 500 }, { kind: 'reset' }] as const) {
      setup.east.queueFaults(fault);
      const res = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }] });
      expect(res.choices[0].message.content).toBe('[west] again');
    }
    expect(setup.east.requests).toHaveLength(3);
  });

  // Last: after a 429 with Retry-After the first resource is skipped until that time has passed.
  it('fails over on a 429 with retry-after, and skips the throttled resource meanwhile', async () => {
    setup.east.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '2' } });
    const { data, response } = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] }).withResponse();
    expect(data.choices[0].message.content).toBe('[west] hello');
    expect(response.headers.get('x-hapax-provider')).toBe('west');
    expect(setup.west.requests.at(-1)?.path).toBe('/openai/deployments/gpt-4o/chat/completions');
    await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });
    expect(setup.east.requests).toHaveLength(1);
  });
});

describe('azure_openai: health probes spend no tokens', () => {
  it('lists the models: /openai/models?api-version on deployment paths, /openai/v1/models with an Entra token on v1', async () => {
    const fake = await startFakeAzure({ name: 'az', apiKey: KEY, entraToken: TOKEN });
    const gateway = await startTestGateway(`
providers:
  classic: {type: azure_openai, base_url: "${fake.url}", api_key: "${KEY}", model: chat}
  v1: {type: azure_openai, base_url: "${fake.url}/openai/v1", model: chat, azure: {api: v1, entra_token: "${TOKEN}"}}
health_check: {interval: 100ms}
`);
    try {
      const probed = () => fake.requests.filter((r) => r.method === 'GET');
      await expect.poll(() => probed().some((r) => r.path === '/openai/models' && r.query === 'api-version=2024-10-21' && r.headers['api-key'] === KEY)).toBe(true);
      await expect.poll(() => probed().some((r) => r.path === '/openai/v1/models' && r.query === '' && r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
      expect(fake.requests.every((r) => r.method === 'GET')).toBe(true);
      const state = (await (await fetch(`${gateway.url}/console/api/state`)).json()) as { providers: { name: string; healthy: boolean }[] };
      expect(state.providers.map((p) => p.healthy)).toEqual([true, true]);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });
});

describe('azure_openai: config', () => {
  const problems = (yaml: string) => {
    try {
      parseConfig(yaml);
      return [];
    } catch (error) {
      return (error as { problems: string[] }).problems;
    }
  };

  it('explains a missing endpoint and a missing credential with their key paths', () => {
    expect(problems('providers:\n  az: {type: azure_openai, model: gpt-4o}\n')).toEqual([
      'providers.az.base_url: required for type azure_openai (the resource endpoint, https://NAME.openai.azure.com)',
      'providers.az.api_key: required for type azure_openai (or azure.entra_token / azure.entra_token_command)',
    ]);
    expect(problems('providers:\n  az: {type: azure_openai, base_url: "https://r.openai.azure.com", api_key: k, model: m, azure: {entra_token: t}}\n')).toEqual([
      'providers.az.api_key: set an api_key or an Entra token (azure.entra_token / azure.entra_token_command), not both',
    ]);
    expect(problems('providers:\n  az: {type: openai, model: m, azure: {api: v1}}\n')).toEqual(['providers.az.azure: only for type azure_openai']);
  });

  it('never shows the key or the token in the logs, the console or /metrics', async () => {
    const fake = await startFakeAzure({ name: 'az', apiKey: KEY, entraToken: TOKEN });
    const gateway = await startTestGateway(
      `providers:\n  az: {type: azure_openai, base_url: "${fake.url}", api_key: "${KEY}", model: chat}\n  entra: {type: azure_openai, base_url: "${fake.url}", model: chat, azure: {entra_token: "${TOKEN}"}}\nlogging: {level: debug}\n`,
    );
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
      await client.chat.completions.create({ model: 'az/chat', messages: [{ role: 'user', content: 'hi' }] });
      await client.chat.completions.create({ model: 'entra/chat', messages: [{ role: 'user', content: 'hi' }] });
      expect(fake.requests.at(-1)?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      const shown = [JSON.stringify(gateway.logs), await (await fetch(`${gateway.url}/console/api/state`)).text(), await (await fetch(`${gateway.url}/metrics`)).text()].join('\n');
      expect(shown).not.toContain(KEY);
      expect(shown).not.toContain(TOKEN);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });

  it('never shows entra_token_command (it may carry a client secret) in the logs, errors, the console or /metrics', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hapax-azure-cmd-'));
    const script = join(dir, 'token.sh');
    await writeFile(script, `#!/bin/sh
[ "$1" = fail ] && { echo "no luck with $2" >&2; exit 3; }
echo '{"accessToken": "${TOKEN}", "expires_on": ${Math.floor(Date.now() / 1000) + 3600}}'
`);
    await chmod(script, 0o755);
    const SECRET = 'cmd-client-secret-0123456789';
    const fake = await startFakeAzure({ name: 'az', entraToken: TOKEN });
    const gateway = await startTestGateway(`
providers:
  good: {type: azure_openai, base_url: "${fake.url}", model: chat, azure: {entra_token_command: "${script} ok ${SECRET}"}}
  bad: {type: azure_openai, base_url: "${fake.url}", model: chat, azure: {entra_token_command: "${script} fail ${SECRET}"}}
retry: {max_retries: 0}
logging: {level: debug}
`);
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const answer = await client.chat.completions.create({ model: 'good/chat', messages: [{ role: 'user', content: 'hi' }] });
      expect(answer.choices[0].message.content).toBe('[az] hi');
      // The failing command is a credential problem: the request fails over, and the attempt's error is logged.
      const failed = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'bad/chat', messages: [{ role: 'user', content: 'hi' }] }) });
      expect(failed.headers.get('x-hapax-provider')).toBe('good');
      const error = await failed.text();
      expect(gateway.logs.find((l) => l.msg === 'request' && l.provider === 'good' && l.failover)?.failover).toEqual([{ provider: 'bad', kind: 'auth' }]);
      const state = await (await fetch(`${gateway.url}/console/api/state`)).text();
      // The console shows that a command is set, masked like every other secret.
      expect(state).toContain('"entra_token_command":"********"');
      // With nowhere else to go, the client gets the failure: it says the command failed, not what it was.
      const alone = await startTestGateway(`providers:\n  bad: {type: azure_openai, base_url: "${fake.url}", model: chat, azure: {entra_token_command: "${script} fail ${SECRET}"}}\nretry: {max_retries: 0}\n`);
      let refusal = '';
      try {
        const res = await fetch(`${alone.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }) });
        refusal = await res.text();
        expect(res.status).toBeGreaterThanOrEqual(500);
        refusal += JSON.stringify(alone.logs) + (await (await fetch(`${alone.url}/health/provider/bad`)).text());
      } finally {
        await alone.close();
      }
      expect(refusal).toContain('token command failed (3)');
      const shown = [JSON.stringify(gateway.logs), error, state, refusal, await (await fetch(`${gateway.url}/metrics`)).text()].join('\n');
      expect(shown).not.toContain(SECRET);
      expect(shown).not.toContain(script);
      expect(shown).not.toContain(TOKEN);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });
});
