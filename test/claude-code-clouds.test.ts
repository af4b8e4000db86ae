/**
 * The real Claude Code CLI (test/agents) completing a tool-using turn through Hapax to the cloud providers that
 * translate its Messages requests: Gemini 3 (generateContent, with Claude Code's JSON Schemas as
 * parametersJsonSchema, and the function call's thought signature sent back) and Azure OpenAI (Chat Completions under a deployment path). The scripted model reads
 * note.txt with the Read tool, then says what the tool returned.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFakeAzure } from './fakes/azure.ts';
import type { FakeOptions } from './fakes/common.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { runClaudeCode, type ClaudeCodeRun } from './helpers/claude-code.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const MODEL = 'claude-opus-5-5';
const UPSTREAM_KEY = 'cloud-upstream-key-0123456789';
const NOTE = 'the secret word is pineapple';
const PROMPT = 'What does note.txt say?';
const CLI_TIMEOUT = 120_000;
const TEST_TIMEOUT = 2 * CLI_TIMEOUT + 30_000;

async function workdir() {
  const dir = await tempDir('hapax-claude-cloud-');
  await writeFile(join(dir.path, 'note.txt'), `${NOTE}\n`);
  return dir;
}

function readTheNote(dir: () => string): FakeOptions['turn'] {
  return (view) => (view.toolResult === undefined ? { tool: 'Read', input: { file_path: join(dir(), 'note.txt') } } : { text: `The note says: ${view.toolResult}` });
}

function claude(baseUrl: string, cwd: string): Promise<ClaudeCodeRun> {
  return runClaudeCode({ prompt: PROMPT, baseUrl, apiKey: 'client-key', model: MODEL, allowedTools: ['Read'], cwd, timeoutMs: CLI_TIMEOUT });
}

function expectToolTurnDone(run: ClaudeCodeRun): void {
  expect(run.timedOut, run.stderr).toBe(false);
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
  expect(run.json).toMatchObject({ type: 'result', subtype: 'success', is_error: false, num_turns: 2 });
  expect(run.json?.result).toContain(NOTE);
}

describe('Claude Code through Hapax to a gemini provider', () => {
  const setup = useStarted({ work: workdir })
    .and({ gemini: ({ work }) => startFakeGemini({ name: 'gemini', apiKey: UPSTREAM_KEY, models: ['gemini-3-pro-preview'], turn: readTheNote(() => work.path) }) })
    .and({
      gateway: ({ gemini }) =>
        startTestGateway(`
providers:
  gemini: {type: gemini, base_url: "${gemini.url}", api_key: "${UPSTREAM_KEY}", model: gemini-3-pro-preview, models: {"claude-*": gemini-3-pro-preview}}
retry: {max_retries: 0}
`),
    });

  it(
    'runs a turn that calls Read and answers with its result; the result reaches Gemini as a functionResponse',
    async () => {
      const run = await claude(setup.gateway.url, setup.work.path);
      expectToolTurnDone(run);
      const calls = setup.gemini.requests.filter((r) => r.method === 'POST' && r.path.endsWith(':streamGenerateContent'));
      // Claude Code's tools, JSON Schema and all, were accepted as declarations.
      expect(calls[0]?.body.tools[0].functionDeclarations).toContainEqual(expect.objectContaining({ name: 'Read', parametersJsonSchema: expect.any(Object) }));
      expect(calls[0]?.body.systemInstruction.parts.length).toBeGreaterThan(0);
      const contents: any[] = calls.at(-1)?.body.contents ?? [];
      const call = contents.filter((c) => c.role === 'model').flatMap((c) => c.parts).find((p: any) => p.functionCall?.name === 'Read');
      // Gemini 3 refuses the call back without its thought signature: Claude Code carried it in the tool_use id.
      expect(call?.thoughtSignature).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(call?.thoughtSignature).not.toBe('skip_thought_signature_validator');
      const response = contents.flatMap((c) => c.parts).find((p: any) => p.functionResponse)?.functionResponse;
      expect(response?.name).toBe('Read');
      expect(JSON.stringify(response)).toContain(NOTE);
      for (const request of calls) expect(request.headers['x-goog-api-key']).toBe(UPSTREAM_KEY);
    },
    TEST_TIMEOUT,
  );
});

describe('Claude Code through Hapax to an azure_openai provider', () => {
  const setup = useStarted({ work: workdir })
    .and({ azure: ({ work }) => startFakeAzure({ name: 'azure', apiKey: UPSTREAM_KEY, deployments: { opus: 'gpt-4o' }, turn: readTheNote(() => work.path) }) })
    .and({
      gateway: ({ azure }) =>
        startTestGateway(`
providers:
  azure: {type: azure_openai, base_url: "${azure.url}", api_key: "${UPSTREAM_KEY}", model: gpt-4o, models: ["claude-*"], azure: {deployments: {${MODEL}: opus}}}
retry: {max_retries: 0}
`),
    });

  it(
    'runs a turn that calls Read and answers with its result, through the deployment path',
    async () => {
      const run = await claude(setup.gateway.url, setup.work.path);
      expectToolTurnDone(run);
      const chats = setup.azure.requests.filter((r) => r.method === 'POST' && r.path === '/openai/deployments/opus/chat/completions');
      expect(chats.length).toBeGreaterThanOrEqual(2);
      const result = (chats.at(-1)?.body.messages ?? []).find((m: any) => m.role === 'tool');
      expect(JSON.stringify(result?.content)).toContain(NOTE);
      for (const request of chats) expect(request.headers['api-key']).toBe(UPSTREAM_KEY);
    },
    TEST_TIMEOUT,
  );
});
