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
import { startFakeOpenAI } from './fakes/openai.ts';
import { startFakeResponses } from './fakes/openai-responses.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { expectResumedOnce, lastRequestLine, resumesFromFirst } from './helpers/resume.ts';
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
        const before = await resumesFromFirst(setup.gateway);
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

        await expectResumedOnce(setup.gateway, got, before, how === 'silence' ? 'timeout' : expect.any(String));
      });
    }
  });
}

/**
 * The Responses API on the lossless lane: the client got an OpenAI provider's own events until the cut; the
 * continuation (Chat Completions on the next provider, prefilled) goes on as that same response: the
 * provider's response id, the same message item and output_index, sequence numbers without a gap or a repeat,
 * and the response stored whole for previous_response_id.
 */
describe('resume on the Responses lossless lane', () => {
  const setup = useStarted({
    first: () => startFakeResponses({ name: 'first', reply }),
    second: () => startFakeOpenAI({ name: 'second', reply }),
  }).and({
    gateway: ({ first, second }) =>
      startTestGateway(`
providers:
  first: {type: openai, base_url: "${first.url}", model: gpt-5, stream_idle_timeout: 300ms}
  second: {type: openai, base_url: "${second.url}", model: gpt-5}
provider_preference: [first, second]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
dedup: {enabled: false}
routes:
  - {path: /v1/responses, handler: responses, resume_streams: true}
`),
  });
  afterEach(() => {
    setup.first.reset();
    setup.second.reset();
  });

  interface Read {
    text: string;
    responseIds: Set<string>;
    itemIds: Set<string>;
    outputIndices: Set<number>;
    sequence: number[];
    types: string[];
  }
  const read = (): Read => ({ text: '', responseIds: new Set(), itemIds: new Set(), outputIndices: new Set(), sequence: [], types: [] });
  const note = (got: Read, event: any) => {
    got.sequence.push(event.sequence_number);
    got.types.push(event.type);
    if (event.response?.id) got.responseIds.add(event.response.id);
    if (event.item?.id) got.itemIds.add(event.item.id);
    if (event.item_id) got.itemIds.add(event.item_id);
    if (typeof event.output_index === 'number') got.outputIndices.add(event.output_index);
    if (event.type === 'response.output_text.delta') got.text += event.delta;
  };
  const client = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });

  function expectOneResponse(got: Read) {
    expect(got.text).toBe(ANSWER);
    expect(got.responseIds.size).toBe(1);
    expect([...got.responseIds][0]).toMatch(/^resp_/);
    expect(got.itemIds.size).toBe(1);
    expect([...got.outputIndices]).toEqual([0]);
    expect(got.sequence).toEqual(got.sequence.map((_, i) => i));
    // One of each frame that opens or closes something: no second message, part or response.
    for (const type of ['response.created', 'response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.output_item.done', 'response.completed']) {
      expect(got.types.filter((t) => t === type), type).toHaveLength(1);
    }
    expect(got.types).not.toContain('error');
    // The response id is the provider's own: the client read its events until the cut.
    const relayedId = [...got.responseIds][0];
    expect(setup.first.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    return relayedId;
  }

  function expectPrefilledAndSummed(usage: { input_tokens: number; output_tokens: number } | undefined) {
    const continued = lastPost(setup.second);
    expect(continued?.path).toBe('/v1/chat/completions');
    const prefill = continued?.body.messages.at(-1);
    expect(prefill.role).toBe('assistant');
    expect(prefill.content.length).toBeGreaterThan(0);
    expect(ANSWER.startsWith(prefill.content)).toBe(true);
    const line = lastRequestLine(setup.gateway);
    const [cut, rest] = line.resumed.spent;
    expect(cut).toMatchObject({ provider: 'first', estimated: true });
    expect(rest).toMatchObject({ provider: 'second', estimated: false });
    expect(usage).toMatchObject({ input_tokens: cut.prompt + rest.prompt, output_tokens: cut.completion + rest.completion });
  }

  for (const how of ['reset', 'error', 'silence'] as const) {
    it(`responses.stream: a ${how} mid-answer goes on as the same response, item and numbering`, async () => {
      setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how, chunkDelayMs: 5 });
      const stream = client().responses.stream({ model: 'gpt-5', input: 'tell me about the fox' });
      const got = read();
      for await (const event of stream) note(got, event);
      const final = await stream.finalResponse();
      const id = expectOneResponse(got);
      expect(final.id).toBe(id);
      expect(final.output_text).toBe(ANSWER);
      expect(final.output).toHaveLength(1);
      expect(final.output[0]).toMatchObject({ type: 'message', id: [...got.itemIds][0] });
      expectPrefilledAndSummed(final.usage ?? undefined);
      expect(lastRequestLine(setup.gateway).resumed.at[0]).toMatchObject({ from: 'first', to: 'second', reason: how === 'silence' ? 'timeout' : expect.any(String) });

      // Stored whole under the provider's id: a retrieve, and a conversation continued from it, see all of it.
      const stored = await client().responses.retrieve(id);
      expect(stored.output_text).toBe(ANSWER);
    });
  }

  it('the reasoning item the provider had finished before the cut is kept as it sent it (its encrypted content too)', async () => {
    // created, in_progress, the reasoning item (added, summary part, delta, done x2, item done), the message added, its part, then 3 deltas
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 13, how: 'reset' });
    const stream = client().responses.stream({ model: 'gpt-5', input: 'tell me about the fox', store: false, reasoning: { effort: 'low', summary: 'auto' }, include: ['reasoning.encrypted_content'] });
    const got = read();
    let sealed: any;
    for await (const event of stream) {
      note(got, event);
      if (event.type === 'response.output_item.done' && event.item.type === 'reasoning') sealed = event.item;
    }
    const final = await stream.finalResponse();
    expect(got.text).toBe(ANSWER);
    expect(got.responseIds.size).toBe(1);
    expect(got.sequence).toEqual(got.sequence.map((_, i) => i));
    expect(sealed.encrypted_content).toMatch(/^fake-sealed:/);
    expect(final.output.map((item) => item.type)).toEqual(['reasoning', 'message']);
    expect(final.output[0]).toEqual(sealed);
    expect(final.output_text).toBe(ANSWER);
    // Two items, each with one id and its own index: the continuation's thinking (it had some) was not added as a third.
    expect(got.itemIds).toEqual(new Set([sealed.id, final.output[1].id]));
    expect([...got.outputIndices].sort()).toEqual([0, 1]);
    expect(got.types.filter((t) => t === 'response.output_item.added')).toHaveLength(2);
    expect(lastRequestLine(setup.gateway).resumed.at[0]).toMatchObject({ from: 'first', to: 'second' });
  });

  it('a stream cut after its message item was done, just before response.completed, is completed once', async () => {
    const words = ANSWER.match(/\s*\S+/g)?.length ?? 0;
    // created, in_progress, item added, part added, the deltas, text done, part done, item done: then the cut.
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 4 + words + 3, how: 'reset' });
    const stream = client().responses.stream({ model: 'gpt-5', input: 'tell me about the fox', store: false });
    const got = read();
    for await (const event of stream) note(got, event);
    const final = await stream.finalResponse();
    expectOneResponse(got);
    expect(final.output_text).toBe(ANSWER);
    expect(lastRequestLine(setup.gateway).resumed.at[0]).toMatchObject({ from: 'first', to: 'second' });
  });

  it('responses.create({stream: true}): the same, read event by event', async () => {
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 9, how: 'reset' });
    const stream = await client().responses.create({ model: 'gpt-5', input: 'tell me about the fox', stream: true, store: false });
    const got = read();
    let completed: any;
    for await (const event of stream) {
      note(got, event);
      if (event.type === 'response.completed') completed = event.response;
    }
    const id = expectOneResponse(got);
    expect(completed.id).toBe(id);
    expect(completed.output[0].content[0].text).toBe(ANSWER);
    expectPrefilledAndSummed(completed.usage);
  });
});

describe('a candidate that refuses the prefill', () => {
  // Newer Gemini Flash models answer a trailing model turn with 400; the one that was cut takes it.
  const setup = useStarted({
    first: () => startFakeGemini({ name: 'first', apiKey: GEMINI_KEY, reply }),
    second: () => startFakeGemini({ name: 'second', apiKey: GEMINI_KEY, reply, models: ['gemini-3.6-flash'] }),
  }).and({
    gateway: ({ first, second }) =>
      startTestGateway(`
providers:
  first: {type: gemini, base_url: "${first.url}", api_key: "${GEMINI_KEY}", model: gemini-2.5-flash}
  second: {type: gemini, base_url: "${second.url}", api_key: "${GEMINI_KEY}", model: gemini-3.6-flash}
${COMMON}`),
  });

  it('is passed over: the continuation goes on to the next candidate (here the provider that was cut)', async () => {
    setup.first.queueFaults({ kind: 'breakAfter', afterChunks: 8, how: 'reset' });
    const got = await chat(setup.gateway.url, 'tell me about the fox');
    expect(got.text).toBe(ANSWER);
    expect(got.ids.size).toBe(1);
    // The second provider was asked to continue and refused (a 400 of its own, the walk's client-kind failure).
    expect(geminiPrefill(setup.second).role).toBe('model');
    const line = lastRequestLine(setup.gateway);
    expect(line.failover).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'second', status: 400 })]));
    expect(line.resumed.at).toEqual([expect.objectContaining({ from: 'first', to: 'first' })]);
    const prefill = geminiPrefill(setup.first);
    expect(prefill.role).toBe('model');
    expect(ANSWER.startsWith(prefill.text) && prefill.text.length > 0).toBe(true);
    const [cut, rest] = line.resumed.spent;
    expect(got.usage).toEqual({ input: cut.prompt + rest.prompt, output: cut.completion + rest.completion });
  });
});
