/**
 * Every client API against every provider dialect, plain and streamed, with tool calls: the client's
 * own SDK must accept the answer unchanged and see the same text and the same tool call whichever
 * provider produced it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeAzure } from './fakes/azure.ts';
import { startFakeBedrock, TEST_AWS_CREDENTIALS } from './fakes/bedrock.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { tempDir } from './helpers/started.ts';
import { startFakeOllama } from './fakes/ollama.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';

/**
 * bd: Bedrock through Converse (Nova); bc: Claude on Bedrock (InvokeModel on the Anthropic lane, Converse for
 * the rest); vx: Claude on Vertex AI (rawPredict on the Anthropic lane, the same body translated for the rest);
 * vg: Gemini on Vertex AI (generateContent).
 */
const PROVIDERS = ['oa', 'an', 'ol', 'mk', 'gm', 'az', 'bd', 'bc', 'vx', 'vg'] as const;
type Provider = (typeof PROVIDERS)[number];
const TOOL = { name: 'lookup', description: 'Look something up', schema: { type: 'object', properties: { input: { type: 'string' } } } };

/** What each provider says back to "ping pong": the fakes prefix their name, the mock quotes. */
const expectedText = (p: Provider, said: string) => (p === 'mk' ? `Hello from the Hapax mock provider. You said: ${said}` : `[${p}] ${said}`);

interface Answer {
  text: string;
  toolName?: string;
  toolArgs?: unknown;
}

type Client = (model: string, opts: { stream: boolean; tools: boolean }) => Promise<Answer>;

describe('every client API × every provider dialect', () => {
  /** Everything started for the file (fakes, the key file's directory, the token route), closed after it. */
  const fakes: { close(): unknown }[] = [];
  let gateway: TestGateway;
  const clients: Record<string, Client> = {};

  beforeAll(async () => {
    const [oa, an, ol, gm, az] = await Promise.all([startFakeOpenAI({ name: 'oa' }), startFakeAnthropic({ name: 'an' }), startFakeOllama({ name: 'ol' }), startFakeGemini({ name: 'gm', apiKey: 'gm-key' }), startFakeAzure({ name: 'az', apiKey: 'az-key', deployments: { chat: 'gpt-4o' } })]);
    const [bd, bc] = await Promise.all([startFakeBedrock({ name: 'bd' }), startFakeBedrock({ name: 'bc' })]);
    fakes.push(oa, an, ol, gm, az, bd, bc);
    const account = makeServiceAccount('matrix-project');
    const vx = await startFakeVertex({ name: 'vx', project: 'matrix-project', serviceAccounts: [account] });
    const vg = await startFakeVertex({ name: 'vg', project: 'matrix-project', tokenIssuer: vx });
    const keys = await tempDir('hapax-matrix-');
    await writeFile(join(keys.path, 'key.json'), JSON.stringify(account.keyFile));
    // One Google token endpoint (vx's) for the process; vg accepts the tokens it issued.
    fakes.push(vx, vg, keys, routeGoogleToken(`${vx.url}/token`));
    const aws = `region: us-east-1, aws_access_key_id: ${TEST_AWS_CREDENTIALS.accessKeyId}, aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}"`;
    gateway = await startTestGateway(`
providers:
  oa: {type: openai, base_url: "${oa.url}", model: gpt-4o-mini}
  an: {type: anthropic, base_url: "${an.url}", model: claude-3-5-haiku-latest}
  ol: {type: ollama, base_url: "${ol.url}", model: llama3}
  mk: {type: mock}
  gm: {type: gemini, base_url: "${gm.url}", api_key: gm-key, model: gemini-2.5-flash}
  az: {type: azure_openai, base_url: "${az.url}", api_key: az-key, model: gpt-4o, azure: {deployments: {gpt-4o: chat}}}
  bd: {type: bedrock, base_url: "${bd.url}", ${aws}, model: amazon.nova-lite-v1:0}
  bc: {type: bedrock, base_url: "${bc.url}", ${aws}, model: "us.anthropic.claude-3-5-haiku-20241022-v1:0"}
  vx: {type: vertex, project: matrix-project, location: us-east5, credentials_file: "${join(keys.path, 'key.json')}", base_url: "${vx.url}", model: "claude-3-5-haiku@20241022"}
  vg: {type: vertex, project: matrix-project, location: us-east5, credentials_file: "${join(keys.path, 'key.json')}", base_url: "${vg.url}", model: gemini-2.5-flash}
provider_preference: [oa, an, ol, mk, gm, az, bd, bc, vx, vg]
`);
    const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const anthropic = new Anthropic({ baseURL: gateway.url, apiKey: 'x', maxRetries: 0 });
    const ollama = new Ollama({ host: gateway.url });

    clients.openai = async (model, { stream, tools }) => {
      const body = {
        model,
        messages: [{ role: 'user' as const, content: 'ping pong' }],
        ...(tools ? { tools: [{ type: 'function' as const, function: { name: TOOL.name, description: TOOL.description, parameters: TOOL.schema } }] } : {}),
      };
      if (!stream) {
        const res = await openai.chat.completions.create(body);
        const call = res.choices[0].message.tool_calls?.[0];
        return { text: res.choices[0].message.content ?? '', ...(call?.type === 'function' ? { toolName: call.function.name, toolArgs: JSON.parse(call.function.arguments) } : {}) };
      }
      let text = '';
      let toolName: string | undefined;
      let args = '';
      for await (const chunk of await openai.chat.completions.create({ ...body, stream: true })) {
        const delta = chunk.choices[0]?.delta;
        text += delta?.content ?? '';
        for (const call of delta?.tool_calls ?? []) {
          toolName ??= call.function?.name;
          args += call.function?.arguments ?? '';
        }
      }
      return { text, ...(toolName ? { toolName, toolArgs: JSON.parse(args) } : {}) };
    };

    clients.anthropic = async (model, { stream, tools }) => {
      const body = {
        model,
        max_tokens: 100,
        messages: [{ role: 'user' as const, content: 'ping pong' }],
        ...(tools ? { tools: [{ name: TOOL.name, description: TOOL.description, input_schema: TOOL.schema as Anthropic.Tool.InputSchema }] } : {}),
      };
      const message = stream ? await anthropic.messages.stream(body).finalMessage() : await anthropic.messages.create(body);
      const text = message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
      const use = message.content.find((b) => b.type === 'tool_use');
      return { text, ...(use?.type === 'tool_use' ? { toolName: use.name, toolArgs: use.input } : {}) };
    };

    clients.ollama = async (model, { stream, tools }) => {
      const body = {
        model,
        messages: [{ role: 'user', content: 'ping pong' }],
        ...(tools ? { tools: [{ type: 'function', function: { name: TOOL.name, description: TOOL.description, parameters: TOOL.schema } }] } : {}),
      };
      if (!stream) {
        const res = await ollama.chat({ ...body, stream: false });
        const call = res.message.tool_calls?.[0];
        return { text: res.message.content, ...(call ? { toolName: call.function.name, toolArgs: call.function.arguments } : {}) };
      }
      let text = '';
      let call: { function: { name: string; arguments: unknown } } | undefined;
      for await (const part of await ollama.chat({ ...body, stream: true })) {
        text += part.message.content;
        call ??= part.message.tool_calls?.[0];
      }
      return { text, ...(call ? { toolName: call.function.name, toolArgs: call.function.arguments } : {}) };
    };

    clients.native = async (model, { stream }) => {
      const res = await fetch(`${gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'ping pong' }], stream }),
      });
      if (!stream) return { text: ((await res.json()) as { completion: string }).completion };
      let text = '';
      for (const frame of (await res.text()).split('\n\n')) {
        if (!frame.startsWith('data: ')) continue;
        const event = JSON.parse(frame.slice(6)) as { type: string; text?: string };
        if (event.type === 'delta') text += event.text;
        if (event.type === 'error') throw new Error(frame);
      }
      return { text };
    };
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(fakes.map((f) => f.close()));
  });

  for (const client of ['openai', 'anthropic', 'ollama', 'native']) {
    for (const provider of PROVIDERS) {
      for (const stream of [false, true]) {
        it(`${client} → ${provider}${stream ? ' (streamed)' : ''}: text`, async () => {
          const answer = await clients[client](provider, { stream, tools: false });
          expect(answer.text).toBe(expectedText(provider, 'ping pong'));
        });
        if (client === 'native') continue;
        it(`${client} → ${provider}${stream ? ' (streamed)' : ''}: tool call`, async () => {
          const answer = await clients[client](provider, { stream, tools: true });
          expect(answer.toolName).toBe('lookup');
          expect(answer.toolArgs).toEqual({ input: 'ping pong' });
        });
      }
    }
  }
});
