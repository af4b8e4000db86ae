/**
 * The real Codex CLI through Hapax to the cloud providers: Codex speaks the Responses API, so each turn is
 * translated to the cloud's own dialect (Azure OpenAI's Chat Completions under a deployment, Gemini's
 * generateContent, Bedrock's ConverseStream, Vertex AI's Gemini models) and its answer back into Responses
 * events. The scripted model runs a shell command with Codex's exec_command tool, then answers from what the
 * command printed; the tokens each cloud reported reach /metrics under its provider's name. The Vertex model is a
 * Gemini 3 one, which refuses function-call history without its thought signature.
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startFakeAzure } from './fakes/azure.ts';
import { startFakeBedrock, TEST_AWS_CREDENTIALS } from './fakes/bedrock.ts';
import type { RecordedRequest, TurnView } from './fakes/common.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { codexInstalled, runCodex } from './helpers/codex.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { metricSum } from './helpers/metrics.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const CLIENT_KEY = 'codex-clouds-key-0123';
const UPSTREAM_KEY = 'cloud-upstream-key-0123456789';
const PROJECT = 'codex-project';
const BEDROCK_MODEL = 'us.amazon.nova-pro-v1:0';
const account = makeServiceAccount(PROJECT);

/** The model's side of the turn: run a command first, then report what it printed. */
const turn = (view: TurnView) => {
  if (view.toolResult !== undefined) return { text: `The command printed: ${view.toolResult.includes('hapax-42') ? 'hapax-42' : view.toolResult}` };
  if (view.tools.includes('exec_command')) return { tool: 'exec_command', input: { cmd: 'echo hapax-$((6*7))' } };
  return undefined;
};

const posts = (requests: RecordedRequest[], path: RegExp) => requests.filter((r) => r.method === 'POST' && path.test(r.path));

describe.skipIf(!codexInstalled())('Codex CLI through Hapax to the clouds', () => {
  const setup = useStarted({
    work: async () => {
      const dir = await tempDir('hapax-codex-clouds-');
      await writeFile(join(dir.path, 'key.json'), JSON.stringify(account.keyFile));
      return dir;
    },
    azure: () => startFakeAzure({ name: 'azure', apiKey: UPSTREAM_KEY, deployments: { codex: 'gpt-5-codex' }, turn }),
    gemini: () => startFakeGemini({ name: 'gemini', apiKey: UPSTREAM_KEY, models: ['gemini-2.5-pro'], turn }),
    bedrock: () => startFakeBedrock({ name: 'bedrock', models: [BEDROCK_MODEL.slice(3)], turn }),
    vertex: () => startFakeVertex({ name: 'vertex', project: PROJECT, serviceAccounts: [account], geminiModels: ['gemini-3-flash-preview'], turn }),
  })
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ azure, gemini, bedrock, vertex, work }) =>
        startTestGateway(`
providers:
  azure: {type: azure_openai, base_url: "${azure.url}", api_key: "${UPSTREAM_KEY}", model: gpt-5-codex, azure: {deployments: {gpt-5-codex: codex}}}
  gemini: {type: gemini, base_url: "${gemini.url}", api_key: "${UPSTREAM_KEY}", model: gemini-2.5-pro}
  bedrock:
    type: bedrock
    region: us-east-1
    base_url: "${bedrock.url}"
    aws_access_key_id: ${TEST_AWS_CREDENTIALS.accessKeyId}
    aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}"
    model: "${BEDROCK_MODEL}"
  vertex: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${join(work.path, 'key.json')}", base_url: "${vertex.url}", model: gemini-3-flash-preview}
auth:
  enabled: true
  keys: [{name: dev, key: ${CLIENT_KEY}}]
retry: {max_retries: 0}
`),
    });

  const codex = (model: string) => runCodex({ prompt: 'What does `echo hapax-$((6*7))` print? Run it.', baseUrl: `${setup.gateway.url}/v1`, apiKey: CLIENT_KEY, model });

  async function expectTurnDone(model: string, provider: string) {
    const run = await codex(model);
    expect(run.timedOut, run.stderr).toBe(false);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('The command printed: hapax-42');
    await expect.poll(() => metricSum(setup.gateway.url, `hapax_tokens_total{provider="${provider}"`)).toBeGreaterThan(0);
    const logged = setup.gateway.logs.filter((l) => l.msg === 'request' && l.route === '/v1/responses' && l.provider === provider);
    expect(logged.length).toBeGreaterThanOrEqual(2);
  }

  it('to azure_openai: Chat Completions under the deployment, the command output sent back as a tool message', async () => {
    await expectTurnDone('azure/gpt-5-codex', 'azure');
    const chats = posts(setup.azure.requests, /^\/openai\/deployments\/codex\/chat\/completions$/);
    expect(chats).toHaveLength(2);
    expect(chats[0].body.tools.map((t: { function: { name: string } }) => t.function.name)).toContain('exec_command');
    const result = chats[1].body.messages.find((m: { role: string }) => m.role === 'tool');
    expect(JSON.stringify(result.content)).toContain('hapax-42');
    for (const request of chats) expect(request.headers['api-key']).toBe(UPSTREAM_KEY);
  }, 120_000);

  it('to gemini: generateContent with the call and its functionResponse in the second turn', async () => {
    await expectTurnDone('gemini/gemini-2.5-pro', 'gemini');
    const calls = posts(setup.gemini.requests, /:streamGenerateContent$/);
    expect(calls).toHaveLength(2);
    const contents: any[] = calls[1].body.contents;
    const call = contents.flatMap((c) => (c.role === 'model' ? c.parts : [])).find((p: any) => p.functionCall);
    expect(call.functionCall.name).toBe('exec_command');
    const response = contents.flatMap((c) => c.parts).find((p: any) => p.functionResponse)?.functionResponse;
    expect(response?.name).toBe('exec_command');
    expect(JSON.stringify(response)).toContain('hapax-42');
  }, 120_000);

  it('to bedrock: ConverseStream, signed, with the toolUse and its toolResult in the second turn', async () => {
    await expectTurnDone('bedrock/us.amazon.nova-pro-v1:0', 'bedrock');
    const streams = posts(setup.bedrock.requests, /\/converse-stream$/);
    expect(streams).toHaveLength(2);
    expect(streams[0].path).toBe(`/model/${encodeURIComponent(BEDROCK_MODEL)}/converse-stream`);
    const blocks: any[] = streams[1].body.messages.flatMap((m: { content: unknown[] }) => m.content);
    const use = blocks.find((b) => b.toolUse)?.toolUse;
    expect(use?.name).toBe('exec_command');
    const result = blocks.find((b) => b.toolResult)?.toolResult;
    expect(result?.toolUseId).toBe(use?.toolUseId);
    expect(JSON.stringify(result)).toContain('hapax-42');
    expect(setup.bedrock.badSignatures).toBe(0);
  }, 120_000);

  it("to vertex: a Gemini 3 model under the project, with the bearer token and the call's thought signature sent back", async () => {
    await expectTurnDone('vertex/gemini-3-flash-preview', 'vertex');
    const calls = posts(setup.vertex.requests, /publishers\/google\/models\/gemini-3-flash-preview:streamGenerateContent$/);
    expect(calls).toHaveLength(2);
    const response = calls[1].body.contents.flatMap((c: { parts: unknown[] }) => c.parts).find((p: any) => p.functionResponse)?.functionResponse;
    expect(JSON.stringify(response)).toContain('hapax-42');
    // Gemini 3 refuses a call without its signature: Codex kept it in the call_id it sent back.
    const call = calls[1].body.contents.flatMap((c: { parts: unknown[] }) => c.parts).find((p: any) => p.functionCall);
    expect(call.thoughtSignature).not.toBe('skip_thought_signature_validator');
    expect(setup.vertex.refusedTokens).toBe(0);
  }, 120_000);
});
