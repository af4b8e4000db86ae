/**
 * The real Claude Code CLI through one failover chain across clouds, `[anthropic, bedrock, vertex]`: with
 * Anthropic's API and Bedrock down, its tool-using turn still completes on Claude on Vertex AI, and every attempt
 * took the lossless lane (what each cloud got is Claude Code's own body, as that cloud takes it). Then Claude
 * Code against Claude on Bedrock alone.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeBedrock, TEST_AWS_CREDENTIALS } from './fakes/bedrock.ts';
import type { FakeOptions, RecordedRequest } from './fakes/common.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { claudeCodeInstalled, runClaudeCode } from './helpers/claude-code.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const MODEL = 'claude-opus-5-5';
const BEDROCK_MODEL = 'us.anthropic.claude-opus-5-5-v1:0';
const VERTEX_MODEL = 'claude-opus-5-5@20260101';
const CLIENT_KEY = 'sk-ant-api03-clouds-client-0123456789';
const NOTE = 'the secret word is pineapple';
const TOOL_USE_ID = 'toolu_01ReadTheNote';
const CLI_TIMEOUT = 120_000;
const TEST_TIMEOUT = CLI_TIMEOUT + 30_000;
const PROJECT = 'clouds-project';
const account = makeServiceAccount(PROJECT);

/** The scripted model: Read the note in `dir()`, then say what the tool returned. */
function readTheNote(dir: () => string): FakeOptions['turn'] {
  return (view) => (view.toolResult === undefined ? { tool: 'Read', input: { file_path: join(dir(), 'note.txt') }, id: TOOL_USE_ID } : { text: `The note says: ${view.toolResult}` });
}

async function workdir() {
  const dir = await tempDir('hapax-clouds-work-');
  await writeFile(join(dir.path, 'note.txt'), `${NOTE}\n`);
  await writeFile(join(dir.path, 'key.json'), JSON.stringify(account.keyFile));
  return dir;
}

const modelCalls = (requests: RecordedRequest[], path: RegExp) => requests.filter((r) => r.method === 'POST' && path.test(r.path));

describe.skipIf(!claudeCodeInstalled())('Claude Code through [anthropic, bedrock, vertex] with the first two down', () => {
  const setup = useStarted({ work: workdir })
    .and({
      anthropic: ({ work }) => startFakeAnthropic({ name: 'anthropic', turn: readTheNote(() => work.path) }),
      bedrock: ({ work }) => startFakeBedrock({ name: 'bedrock', models: [BEDROCK_MODEL.slice(3)], turn: readTheNote(() => work.path) }),
      vertex: ({ work }) => startFakeVertex({ name: 'vertex', project: PROJECT, models: [VERTEX_MODEL], serviceAccounts: [account], turn: readTheNote(() => work.path) }),
    })
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ anthropic, bedrock, vertex, work }) =>
        startTestGateway(`
providers:
  anthropic: {type: anthropic, base_url: "${anthropic.url}", api_key: upstream-key, model: ${MODEL}}
  bedrock-claude:
    type: bedrock
    region: us-east-1
    base_url: "${bedrock.url}"
    aws_access_key_id: ${TEST_AWS_CREDENTIALS.accessKeyId}
    aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}"
    models: {${MODEL}: "${BEDROCK_MODEL}"}
  vertex-claude:
    type: vertex
    project: ${PROJECT}
    location: us-east5
    credentials_file: "${join(work.path, 'key.json')}"
    base_url: "${vertex.url}"
    models: {${MODEL}: "${VERTEX_MODEL}"}
provider_preference: [anthropic, bedrock-claude, vertex-claude]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    });

  it(
    'completes the tool turn on Vertex, every attempt on the lossless lane',
    async () => {
      setup.anthropic.fault = { kind: 'status', status: 529 };
      setup.bedrock.fault = { kind: 'status', status: 503 };
      const run = await runClaudeCode({ prompt: 'What does note.txt say?', baseUrl: setup.gateway.url, apiKey: CLIENT_KEY, model: MODEL, allowedTools: ['Read'], cwd: setup.work.path, timeoutMs: CLI_TIMEOUT });
      expect(run.timedOut, run.stderr).toBe(false);
      expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(run.json).toMatchObject({ type: 'result', subtype: 'success', is_error: false, num_turns: 2 });
      expect(run.json?.result).toContain(NOTE);

      const direct = modelCalls(setup.anthropic.requests, /^\/v1\/messages$/);
      const bedrock = modelCalls(setup.bedrock.requests, /invoke-with-response-stream$/);
      const vertex = modelCalls(setup.vertex.requests, /:streamRawPredict$/);
      expect(direct.length).toBeGreaterThanOrEqual(2);
      expect(bedrock).toHaveLength(direct.length);
      expect(vertex).toHaveLength(direct.length);
      for (let i = 0; i < direct.length; i++) {
        // Claude Code's body as Anthropic got it (Hapax's lossless lane), then as each cloud takes it.
        const { model: _model, stream: _stream, ...claudeCode } = direct[i].body;
        const betas = String(direct[i].headers['anthropic-beta'] ?? '').split(',').map((b) => b.trim()).filter(Boolean);
        expect(bedrock[i].body).toEqual({ anthropic_version: 'bedrock-2023-05-31', ...claudeCode, ...(betas.length ? { anthropic_beta: betas } : {}) });
        expect(vertex[i].body).toEqual({ anthropic_version: 'vertex-2023-10-16', ...claudeCode, stream: true });
        expect(vertex[i].headers['anthropic-beta']).toBe(direct[i].headers['anthropic-beta']);
      }
      // The last request carried Read's result back to the model on Vertex.
      expect(JSON.stringify(vertex.at(-1)?.body.messages)).toContain(NOTE);
      expect(JSON.stringify(setup.vertex.requests)).not.toContain(CLIENT_KEY);
    },
    TEST_TIMEOUT,
  );
});

describe.skipIf(!claudeCodeInstalled())('Claude Code against Claude on Bedrock', () => {
  const setup = useStarted({ work: workdir })
    .and({ bedrock: ({ work }) => startFakeBedrock({ name: 'bedrock', models: [BEDROCK_MODEL.slice(3)], turn: readTheNote(() => work.path) }) })
    .and({
      gateway: ({ bedrock }) =>
        startTestGateway(`
providers:
  bedrock-claude: {type: bedrock, region: us-east-1, base_url: "${bedrock.url}", aws_access_key_id: ${TEST_AWS_CREDENTIALS.accessKeyId}, aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}", models: {${MODEL}: "${BEDROCK_MODEL}"}}
retry: {max_retries: 0}
`),
    });

  it(
    'runs the tool turn through InvokeModelWithResponseStream, every request signed',
    async () => {
      const run = await runClaudeCode({ prompt: 'What does note.txt say?', baseUrl: setup.gateway.url, apiKey: CLIENT_KEY, model: MODEL, allowedTools: ['Read'], cwd: setup.work.path, timeoutMs: CLI_TIMEOUT });
      expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(run.json).toMatchObject({ type: 'result', subtype: 'success', num_turns: 2 });
      expect(run.json?.result).toContain(NOTE);
      const calls = modelCalls(setup.bedrock.requests, /invoke-with-response-stream$/);
      expect(calls.length).toBeGreaterThanOrEqual(2);
      expect(setup.bedrock.badSignatures).toBe(0);
      for (const call of calls) expect(String(call.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 /);
    },
    TEST_TIMEOUT,
  );
});
