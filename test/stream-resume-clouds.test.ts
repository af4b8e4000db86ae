/**
 * Stream resume (route `resume_streams: true`) over the cloud dialects: Gemini (Google AI Studio and Vertex AI,
 * where the prefill is a trailing `model` turn of `contents`) and Bedrock Converse (a trailing `assistant`
 * message, over SigV4-signed event streams). The first provider's stream breaks mid-answer in its own streaming
 * format (a reset, its own error event, silence past stream_idle_timeout); the client, the official `openai` SDK
 * streaming a chat completion, gets exactly the whole answer: one id, one role chunk, usage summed over both
 * attempts, and the second provider was sent the partial answer to continue. The fakes continue a prefill with
 * exactly the rest of their deterministic answer.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeBedrock, TEST_AWS_CREDENTIALS } from './fakes/bedrock.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { scrape, valueOf } from './helpers/prometheus.ts';
import { tempDir, useStarted } from './helpers/started.ts';

/** The fakes' one answer: long enough to be cut in the middle of, in word chunks. */
const ANSWER = 'The quick brown fox jumps over the lazy dog, then runs across the wide green field until the evening sun goes down.';
const reply = () => ANSWER;
const GEMINI_KEY = 'gemini-upstream-key-0123456789';
const PROJECT = 'resume-project';
const account = makeServiceAccount(PROJECT);
const BEDROCK_MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';

interface Got {
  text: string;
  ids: Set<string>;
  roles: number;
  usage: { input: number; output: number } | undefined;
}

/** One streamed chat completion, read the way the SDK's users read it. */
async function chat(url: string, prompt: string): Promise<Got> {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: '', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] });
  const got: Got = { text: '', ids: new Set(), roles: 0, usage: undefined };
  for await (const chunk of stream) {
    got.ids.add(chunk.id);
    if (chunk.choices[0]?.delta?.role) got.roles++;
    got.text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) got.usage = { input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens };
  }
  return got;
}

const lastPost = (fake: FakeProvider) => fake.requests.filter((r) => r.method === 'POST' && !r.path.endsWith('/token')).at(-1);

/** The prefill each dialect carries: its role and text, read from the request body as the provider got it. */
const geminiPrefill = (fake: FakeProvider) => {
  const last = lastPost(fake)?.body?.contents?.at(-1);
  return { role: last?.role, text: (last?.parts ?? []).map((p: any) => p.text ?? '').join('') };
};
const bedrockPrefill = (fake: FakeProvider) => {
  const last = lastPost(fake)?.body?.messages?.at(-1);
  return { role: last?.role, text: (last?.content ?? []).map((b: any) => b.text ?? '').join('') };
};

/** The request log line of the last request the gateway finished. */
const lastRequestLine = (gateway: TestGateway) => gateway.logs.filter((l) => l.msg === 'request').at(-1) as Record<string, any>;

const COMMON = `
provider_preference: [first, second]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
routes:
  - {path: /v1/chat/completions, handler: chat, resume_streams: true}
`;

interface Upstream {
  prefillRole: string;
  prefill: (fake: FakeProvider) => { role: string | undefined; text: string };
  /** The streamed call's path on the provider (its own streaming format). */
  streamPath: RegExp;
  setup: () => { first: FakeProvider; second: FakeProvider; gateway: TestGateway };
}

function geminiSetup() {
  return useStarted({
    first: () => startFakeGemini({ name: 'first', apiKey: GEMINI_KEY, reply }),
    second: () => startFakeGemini({ name: 'second', apiKey: GEMINI_KEY, reply }),
  }).and({
    gateway: ({ first, second }) =>
      startTestGateway(`
providers:
  first: {type: gemini, base_url: "${first.url}", api_key: "${GEMINI_KEY}", model: gemini-2.5-flash, stream_idle_timeout: 300ms}
  second: {type: gemini, base_url: "${second.url}", api_key: "${GEMINI_KEY}", model: gemini-2.5-flash}
${COMMON}`),
  });
}

function vertexSetup() {
  return useStarted({
    work: async () => {
      const dir = await tempDir('hapax-resume-vertex-');
      await writeFile(join(dir.path, 'key.json'), JSON.stringify(account.keyFile));
      return dir;
    },
    first: () => startFakeVertex({ name: 'first', project: PROJECT, serviceAccounts: [account], reply }),
  })
    // One Google token endpoint (the first fake's) for both: the second accepts the tokens it issued.
    .and({ second: ({ first }) => startFakeVertex({ name: 'second', project: PROJECT, serviceAccounts: [account], reply, tokenIssuer: first }) })
    .and({ tokenRoute: ({ first }) => routeGoogleToken(`${first.url}/token`) })
    .and({
      gateway: ({ first, second, work }) =>
        startTestGateway(`
providers:
  first: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${join(work.path, 'key.json')}", base_url: "${first.url}", model: gemini-2.5-flash, stream_idle_timeout: 300ms}
  second: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${join(work.path, 'key.json')}", base_url: "${second.url}", model: gemini-2.5-flash}
${COMMON}`),
    });
}

function bedrockSetup() {
  const aws = `region: us-east-1, aws_access_key_id: ${TEST_AWS_CREDENTIALS.accessKeyId}, aws_secret_access_key: "${TEST_AWS_CREDENTIALS.secretAccessKey}"`;
  return useStarted({
    first: () => startFakeBedrock({ name: 'first', models: [BEDROCK_MODEL], reply }),
    second: () => startFakeBedrock({ name: 'second', models: [BEDROCK_MODEL], reply }),
  }).and({
    gateway: ({ first, second }) =>
      startTestGateway(`
providers:
  first: {type: bedrock, base_url: "${first.url}", ${aws}, model: "${BEDROCK_MODEL}", stream_idle_timeout: 300ms}
  second: {type: bedrock, base_url: "${second.url}", ${aws}, model: "${BEDROCK_MODEL}"}
${COMMON}`),
  });
}

const UPSTREAMS: Record<string, Omit<Upstream, 'setup'> & { start: () => { first: FakeProvider; second: FakeProvider; gateway: TestGateway } }> = {
  gemini: { prefillRole: 'model', prefill: geminiPrefill, streamPath: /:streamGenerateContent$/, start: geminiSetup },
  'vertex (Gemini)': { prefillRole: 'model', prefill: geminiPrefill, streamPath: /:streamGenerateContent$/, start: vertexSetup },
  'bedrock (Converse)': { prefillRole: 'assistant', prefill: bedrockPrefill, streamPath: /\/converse-stream$/, start: bedrockSetup },
};

for (const [dialect, upstream] of Object.entries(UPSTREAMS)) {
  describe(`resume on ${dialect} upstreams`, () => {
    const setup = upstream.start();
    afterEach(() => {
      setup.first.reset();
      setup.second.reset();
    });

    for (const how of ['reset', 'error', 'silence'] as const) {
      it(`a stream ${how === 'reset' ? 'reset' : how === 'error' ? 'ended by the provider\'s own error event' : 'gone silent past stream_idle_timeout'} mid-answer is finished by the next provider, as one answer`, async () => {
        const before = valueOf(await scrape(`${setup.gateway.url}/metrics`), 'hapax_stream_resumes_total', { provider: 'first', outcome: 'resumed' }) ?? 0;
        setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how, chunkDelayMs: 5 });
        const got = await chat(setup.gateway.url, 'tell me about the fox');
        expect(got.text).toBe(ANSWER);
        expect(got.ids.size).toBe(1);
        expect(got.roles).toBe(1);

        // The first provider was cut on its own streaming call; the second was asked to continue the partial answer.
        expect(lastPost(setup.first)?.path).toMatch(upstream.streamPath);
        expect(lastPost(setup.second)?.path).toMatch(upstream.streamPath);
        const prefill = upstream.prefill(setup.second);
        expect(prefill.role).toBe(upstream.prefillRole);
        expect(prefill.text.length).toBeGreaterThan(0);
        expect(ANSWER.startsWith(prefill.text)).toBe(true);
        expect(prefill.text).not.toBe(ANSWER);
        expect(prefill.text).toBe(prefill.text.trimEnd());

        // Usage: both attempts, each counted once (the first estimated: it was cut before it reported any).
        const line = lastRequestLine(setup.gateway);
        expect(line.resumed.at).toEqual([{ from: 'first', to: 'second', reason: how === 'silence' ? 'timeout' : expect.any(String), after_chars: expect.any(Number) }]);
        const [cut, rest] = line.resumed.spent;
        expect(cut).toMatchObject({ provider: 'first', estimated: true });
        expect(rest).toMatchObject({ provider: 'second', estimated: false });
        expect(got.usage).toEqual({ input: cut.prompt + rest.prompt, output: cut.completion + rest.completion });
        expect(line.tokens).toMatchObject({ prompt: cut.prompt + rest.prompt, completion: cut.completion + rest.completion });
        const after = valueOf(await scrape(`${setup.gateway.url}/metrics`), 'hapax_stream_resumes_total', { provider: 'first', outcome: 'resumed' });
        expect(after).toBe(before + 1);
      });
    }
  });
}
