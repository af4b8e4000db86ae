/**
 * The real Claude Code CLI (test/agents, run headless by helpers/claude-code.ts) completing a tool-using turn:
 * against the Anthropic fake directly, through Hapax to an `anthropic` provider (same dialect) and to an `openai`
 * provider (translated), and — the lossless lane — checking that what the provider receives through Hapax is
 * what Claude Code sends it directly.
 *
 * The fakes play a scripted model: the first turn asks for the `Read` tool on note.txt in the CLI's working
 * directory, the next (which carries the tool's result) answers with what the tool returned.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import type { FakeOptions, FakeProvider, RecordedRequest } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { runClaudeCode, type ClaudeCodeRun } from './helpers/claude-code.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { tempDir, useStarted } from './helpers/started.ts';

/** Pinned, so that a CLI release with another default model changes nothing here. */
const MODEL = 'claude-opus-5-5';
const UPSTREAM_KEY = 'sk-ant-api03-claude-code-upstream-0123456789';
const CLIENT_KEY = 'sk-ant-api03-claude-code-client-0123456789';
const NOTE = 'the secret word is pineapple';
const TOOL_USE_ID = 'toolu_01ReadTheNote';
const PROMPT = 'What does note.txt say?';
/** One headless turn takes about a second here; a loaded two-core machine gets a wide margin. */
const CLI_TIMEOUT = 120_000;
const TEST_TIMEOUT = 2 * CLI_TIMEOUT + 30_000;

/** A working directory holding note.txt, removed with the test's other started things. */
async function workdir() {
  const dir = await tempDir('hapax-claude-work-');
  await writeFile(join(dir.path, 'note.txt'), `${NOTE}\n`);
  return dir;
}

/** The scripted model: Read the note in `dir()`, then say what the tool returned. */
function readTheNote(dir: () => string): FakeOptions['turn'] {
  return (view) =>
    view.toolResult === undefined
      ? { tool: 'Read', input: { file_path: join(dir(), 'note.txt') }, id: TOOL_USE_ID }
      : { text: `The note says: ${view.toolResult}` };
}

function claude(baseUrl: string, cwd: string): Promise<ClaudeCodeRun> {
  return runClaudeCode({ prompt: PROMPT, baseUrl, apiKey: CLIENT_KEY, model: MODEL, allowedTools: ['Read'], cwd, timeoutMs: CLI_TIMEOUT });
}

/** The CLI finished the turn: it ran the tool and its final answer carries what the tool read. */
function expectToolTurnDone(run: ClaudeCodeRun): void {
  expect(run.timedOut, run.stderr).toBe(false);
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
  expect(run.json).toMatchObject({ type: 'result', subtype: 'success', is_error: false, num_turns: 2 });
  expect(run.json?.result).toContain(`The note says: `);
  expect(run.json?.result).toContain(NOTE);
}

function messagesRequests(fake: FakeProvider): RecordedRequest[] {
  return fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages');
}

/** The Anthropic request that carried Read's result back to the model, with the tool_use before it. */
function expectToolResultReachedAnthropic(fake: FakeProvider): void {
  const sent = messagesRequests(fake);
  const last = sent.at(-1)?.body;
  const blocks = (last?.messages ?? []).flatMap((m: any) => (Array.isArray(m.content) ? m.content.map((b: any) => ({ role: m.role, ...b })) : []));
  expect(blocks).toContainEqual(expect.objectContaining({ role: 'assistant', type: 'tool_use', id: TOOL_USE_ID, name: 'Read' }));
  const result = blocks.find((b: any) => b.type === 'tool_result');
  expect(result).toMatchObject({ role: 'user', tool_use_id: TOOL_USE_ID });
  expect(JSON.stringify(result.content)).toContain(NOTE);
}

describe('Claude Code against the Anthropic fake directly', () => {
  const setup = useStarted({ work: workdir }).and({
    anthropic: ({ work }) => startFakeAnthropic({ name: 'anthropic', apiKey: CLIENT_KEY, turn: readTheNote(() => work.path) }),
  });

  it(
    'runs a turn that calls Read and answers with its result, streaming from /v1/messages?beta=true',
    async () => {
      const run = await claude(setup.anthropic.url, setup.work.path);
      expectToolTurnDone(run);
      expectToolResultReachedAnthropic(setup.anthropic);
      // With nonessential traffic off, the turn is only Messages calls, streamed, with the SDK's beta query.
      for (const request of setup.anthropic.requests) {
        expect(request).toMatchObject({ method: 'POST', path: '/v1/messages', query: 'beta=true' });
        expect(request.body).toMatchObject({ model: MODEL, stream: true });
        expect(request.headers['x-api-key']).toBe(CLIENT_KEY);
      }
    },
    TEST_TIMEOUT,
  );
});

describe('Claude Code through Hapax to an anthropic provider', () => {
  const setup = useStarted({ work: workdir })
    .and({ anthropic: ({ work }) => startFakeAnthropic({ name: 'anthropic', apiKey: UPSTREAM_KEY, turn: readTheNote(() => work.path) }) })
    .and({
      gateway: ({ anthropic }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${anthropic.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}}
retry: {max_retries: 0}
`),
    });

  it(
    'runs a turn that calls Read and answers with its result; the tool_result reaches the provider',
    async () => {
      const run = await claude(setup.gateway.url, setup.work.path);
      expectToolTurnDone(run);
      expectToolResultReachedAnthropic(setup.anthropic);
      // The provider sees Hapax's credential, never the client's.
      for (const request of messagesRequests(setup.anthropic)) expect(request.headers['x-api-key']).toBe(UPSTREAM_KEY);
      expect(JSON.stringify(setup.anthropic.requests)).not.toContain(CLIENT_KEY);
    },
    TEST_TIMEOUT,
  );
});

describe('Claude Code through Hapax to an openai provider (Messages in, Chat Completions upstream)', () => {
  const setup = useStarted({ work: workdir })
    .and({ openai: ({ work }) => startFakeOpenAI({ name: 'openai', apiKey: UPSTREAM_KEY, turn: readTheNote(() => work.path) }) })
    .and({
      gateway: ({ openai }) =>
        startTestGateway(`
providers:
  gpt: {type: openai, base_url: "${openai.url}", api_key: "${UPSTREAM_KEY}", model: gpt-4o-mini, models: [${MODEL}]}
retry: {max_retries: 0}
`),
    });

  it(
    'runs a turn that calls Read and answers with its result; the tool result reaches the provider as a tool message',
    async () => {
      const run = await claude(setup.gateway.url, setup.work.path);
      expectToolTurnDone(run);

      const chats = setup.openai.requests.filter((r) => r.method === 'POST' && r.path === '/v1/chat/completions');
      const first = chats[0]?.body;
      expect(first).toMatchObject({ model: MODEL, stream: true });
      // Claude Code's tools arrive as functions, Read among them.
      expect(first.tools).toContainEqual(expect.objectContaining({ type: 'function', function: expect.objectContaining({ name: 'Read' }) }));
      const messages: any[] = chats.at(-1)?.body.messages ?? [];
      const call = messages.find((m) => m.role === 'assistant' && Array.isArray(m.tool_calls));
      expect(call.tool_calls).toEqual([expect.objectContaining({ id: TOOL_USE_ID, type: 'function', function: expect.objectContaining({ name: 'Read' }) })]);
      expect(JSON.parse(call.tool_calls[0].function.arguments)).toEqual({ file_path: join(setup.work.path, 'note.txt') });
      const result = messages.find((m) => m.role === 'tool');
      expect(result).toMatchObject({ tool_call_id: TOOL_USE_ID });
      expect(JSON.stringify(result.content)).toContain(NOTE);
      for (const request of chats) expect(request.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    },
    TEST_TIMEOUT,
  );
});

/**
 * What Claude Code sends, with what differs between two direct runs of the same turn made alike. Measured on
 * 2.1.332 by running it directly twice: the session id (`x-claude-code-session-id`, and `session_id` inside
 * `metadata.user_id`), the device id (`device_id` inside `metadata.user_id`, made per fresh HOME), and the
 * temporary HOME's path (the memory directory in the system prompt). The working directory is the same for
 * both runs here, so its path needs no such treatment.
 */
function comparable(request: RecordedRequest | undefined, home: string) {
  const body = JSON.parse(JSON.stringify(request?.body ?? null).replaceAll(home, '<HOME>'));
  if (typeof body?.metadata?.user_id === 'string') {
    const user = JSON.parse(body.metadata.user_id);
    body.metadata.user_id = JSON.stringify({ ...user, device_id: '<varies per HOME>', session_id: '<varies per run>' });
  }
  return { 'anthropic-beta': request?.headers['anthropic-beta'], 'anthropic-version': request?.headers['anthropic-version'], body };
}

/**
 * What reached `got` in its run is what reached `want` in its own: the two headers and every body field of
 * each request, in order. Soft, one field at a time, so that a failure lists every field that differs.
 */
function expectSameRequests(got: { fake: FakeProvider; run: ClaudeCodeRun }, want: { fake: FakeProvider; run: ClaudeCodeRun }): void {
  const sentGot = messagesRequests(got.fake);
  const sentWant = messagesRequests(want.fake);
  expect(sentGot.length).toBe(sentWant.length);
  for (let i = 0; i < sentWant.length; i++) {
    const w = comparable(sentWant[i], want.run.home);
    const g = comparable(sentGot[i], got.run.home);
    const where = `request ${i + 1} of ${sentWant.length}`;
    expect.soft(sentGot[i].query, `${where}: query`).toBe(sentWant[i].query);
    expect.soft(g['anthropic-beta'], `${where}: anthropic-beta`).toBe(w['anthropic-beta']);
    expect.soft(g['anthropic-version'], `${where}: anthropic-version`).toBe(w['anthropic-version']);
    for (const field of new Set([...Object.keys(w.body), ...Object.keys(g.body ?? {})])) {
      expect.soft(g.body?.[field], `${where}: body.${field}`).toEqual(w.body[field]);
    }
  }
}

describe('lossless: an anthropic provider gets through Hapax what Claude Code sends it directly', () => {
  const setup = useStarted({ work: workdir })
    .and({
      direct: ({ work }) => startFakeAnthropic({ name: 'direct', apiKey: CLIENT_KEY, turn: readTheNote(() => work.path) }),
      again: ({ work }) => startFakeAnthropic({ name: 'again', apiKey: CLIENT_KEY, turn: readTheNote(() => work.path) }),
      proxied: ({ work }) => startFakeAnthropic({ name: 'proxied', apiKey: UPSTREAM_KEY, turn: readTheNote(() => work.path) }),
    })
    .and({
      gateway: ({ proxied }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${proxied.url}", api_key: "${UPSTREAM_KEY}", model: ${MODEL}}
retry: {max_retries: 0}
`),
    });
  afterEach(() => {
    for (const fake of [setup.direct, setup.again, setup.proxied]) fake.reset();
  });

  // The control for the test below: if a CLI release adds something that varies per run, this names it.
  it(
    'compares two direct runs as equal once the session, device and HOME are set aside',
    async () => {
      const first = await claude(setup.direct.url, setup.work.path);
      expectToolTurnDone(first);
      const second = await claude(setup.again.url, setup.work.path);
      expectToolTurnDone(second);
      expectSameRequests({ fake: setup.again, run: second }, { fake: setup.direct, run: first });
    },
    TEST_TIMEOUT,
  );

  /**
   * Expected to fail until the lossless same-dialect lane lands (issue 13): today Hapax rebuilds the request
   * from its canonical model, dropping the betas, thinking, cache_control and more.
   */
  it(
    'sends the same anthropic-beta and anthropic-version headers and the same body, field by field',
    async () => {
      const direct = await claude(setup.direct.url, setup.work.path);
      expectToolTurnDone(direct);
      const proxied = await claude(setup.gateway.url, setup.work.path);
      expectToolTurnDone(proxied);
      expectSameRequests({ fake: setup.proxied, run: proxied }, { fake: setup.direct, run: direct });
    },
    TEST_TIMEOUT,
  );
});
