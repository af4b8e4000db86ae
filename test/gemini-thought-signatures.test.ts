/**
 * Gemini's thought signatures over a two-turn tool conversation, through every client API to a Gemini 3 model
 * (which refuses function-call history without its signature) on the Gemini API and on Vertex AI: the signature
 * Gemini put on the functionCall part comes back on that part, whether the client saw the call streamed or
 * whole. Clients carry it in the tool call's id (`…__thought__<base64url>`); other providers get the plain id.
 * An Ollama client keeps no call ids, so its history goes with Google's documented placeholder.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { FakeProvider, RecordedRequest } from './fakes/common.ts';
import { startFakeGemini } from './fakes/gemini.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { makeServiceAccount, startFakeVertex } from './fakes/vertex.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { routeGoogleToken } from './helpers/google-token.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const KEY = 'AIzaSy-gemini-key-0123456789';
const PROJECT = 'signatures-project';
const account = makeServiceAccount(PROJECT);
const LOOKUP = { type: 'function' as const, function: { name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { input: { type: 'string' } } } } };
const PLACEHOLDER = 'skip_thought_signature_validator';

/** The functionCall parts of the model contents a request sent (its history). */
const callParts = (request: RecordedRequest | undefined): any[] => (request?.body.contents ?? []).filter((c: any) => c.role === 'model').flatMap((c: any) => c.parts.filter((p: any) => p.functionCall));
const generateCalls = (fake: FakeProvider) => fake.requests.filter((r) => r.method === 'POST' && /:(stream)?[gG]enerateContent$/.test(r.path));

/** What the fake answered the first turn with: the signature on the call part of its first response. */
function expectSignedReplay(fake: FakeProvider) {
  const [first, second] = generateCalls(fake).slice(-2);
  expect(callParts(first)).toEqual([]);
  const replayed = callParts(second);
  expect(replayed).toHaveLength(1);
  expect(replayed[0].functionCall.name).toBe('lookup');
  // The fake refuses placeholders nowhere but accepts only signatures it issued: this one is real.
  expect(replayed[0].thoughtSignature).toMatch(/^[A-Za-z0-9+/]+=*$/);
  expect(replayed[0].thoughtSignature).not.toBe(PLACEHOLDER);
}

describe('thought signatures: Gemini 3 on the Gemini API and Vertex AI, through every client API', () => {
  const setup = useStarted({
    work: async () => {
      const dir = await tempDir('hapax-signatures-');
      await writeFile(join(dir.path, 'key.json'), JSON.stringify(account.keyFile));
      return dir;
    },
    gemini: () => startFakeGemini({ name: 'gm', apiKey: KEY, models: ['gemini-3-pro-preview', 'gemini-2.5-flash'] }),
    vertex: () => startFakeVertex({ name: 'vx', project: PROJECT, serviceAccounts: [account], geminiModels: ['gemini-3-flash-preview'] }),
    openaiUpstream: () => startFakeOpenAI({ name: 'oa' }),
  })
    .and({ tokenRoute: ({ vertex }) => routeGoogleToken(`${vertex.url}/token`) })
    .and({
      gateway: ({ gemini, vertex, openaiUpstream, work }) =>
        startTestGateway(`
providers:
  gm: {type: gemini, base_url: "${gemini.url}/v1beta", api_key: "${KEY}", model: gemini-3-pro-preview}
  vx: {type: vertex, project: ${PROJECT}, location: us-east5, credentials_file: "${join(work.path, 'key.json')}", base_url: "${vertex.url}", model: gemini-3-flash-preview}
  oa: {type: openai, base_url: "${openaiUpstream.url}", api_key: sk-x, model: gpt-4o}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1000}
`),
    });
  afterEach(() => {
    setup.gemini.reset();
    setup.vertex.reset();
    setup.openaiUpstream.reset();
  });
  const openai = () => new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const anthropic = () => new Anthropic({ baseURL: setup.gateway.url, apiKey: 'x', maxRetries: 0 });

  for (const [provider, fake] of [['gm', () => setup.gemini], ['vx', () => setup.vertex]] as const) {
    it(`OpenAI chat, whole answers (${provider}): the signature rides in the call id and goes back on the call's part`, async () => {
      const model = provider;
      const first = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: 'weather' }], tools: [LOOKUP] });
      const call = first.choices[0].message.tool_calls?.[0];
      expect(call?.id).toMatch(/__thought__[A-Za-z0-9_-]+$/);
      const second = await openai().chat.completions.create({
        model,
        tools: [LOOKUP],
        messages: [{ role: 'user', content: 'weather' }, first.choices[0].message, { role: 'tool', tool_call_id: call?.id ?? '', content: 'sunny' }],
      });
      expect(second.choices[0].message.content).toBe('tool said: sunny');
      expectSignedReplay(fake());
    });
  }

  it('OpenAI chat, streamed: the signed id arrives in the first tool-call chunk', async () => {
    let id = '';
    let args = '';
    for await (const chunk of await openai().chat.completions.create({ model: 'gm', messages: [{ role: 'user', content: 'weather' }], tools: [LOOKUP], stream: true })) {
      const delta = chunk.choices[0]?.delta.tool_calls?.[0];
      id ||= delta?.id ?? '';
      args += delta?.function?.arguments ?? '';
    }
    expect(id).toContain('__thought__');
    const second = await openai().chat.completions.create({
      model: 'gm',
      tools: [LOOKUP],
      stream: true,
      messages: [{ role: 'user', content: 'weather' }, { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: args } }] }, { role: 'tool', tool_call_id: id, content: 'sunny' }],
    });
    let text = '';
    for await (const chunk of second) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('tool said: sunny');
    expectSignedReplay(setup.gemini);
  });

  it('Responses, streamed and then whole: the function_call call_id carries the signature', async () => {
    const events = await openai().responses.create({ model: 'vx', input: 'weather', tools: [{ type: 'function', name: 'lookup', parameters: LOOKUP.function.parameters, strict: false }], store: false, stream: true });
    let call: OpenAI.Responses.ResponseFunctionToolCall | undefined;
    for await (const event of events) if (event.type === 'response.output_item.done' && event.item.type === 'function_call') call = event.item;
    expect(call?.call_id).toContain('__thought__');
    const second = await openai().responses.create({
      model: 'vx',
      store: false,
      tools: [{ type: 'function', name: 'lookup', parameters: LOOKUP.function.parameters, strict: false }],
      input: [{ role: 'user', content: 'weather' }, { type: 'function_call', call_id: call?.call_id ?? '', name: 'lookup', arguments: call?.arguments ?? '{}' }, { type: 'function_call_output', call_id: call?.call_id ?? '', output: 'sunny' }],
    });
    expect(second.output_text).toBe('tool said: sunny');
    expectSignedReplay(setup.vertex);
  });

  it('Responses with stored state: the call in the stored response goes back signed after previous_response_id', async () => {
    const tools = [{ type: 'function' as const, name: 'lookup', parameters: LOOKUP.function.parameters, strict: false }];
    const first = await openai().responses.create({ model: 'gm', input: 'weather', tools });
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call?.call_id).toContain('__thought__');
    const second = await openai().responses.create({ model: 'gm', tools, previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: call?.call_id ?? '', output: 'sunny' }] });
    expect(second.output_text).toBe('tool said: sunny');
    expectSignedReplay(setup.gemini);
  });

  it('Anthropic Messages, streamed: the tool_use id carries the signature, and the tool_result answers it', async () => {
    const first = await anthropic().messages.stream({ model: 'gm', max_tokens: 100, messages: [{ role: 'user', content: 'weather' }], tools: [{ name: 'lookup', input_schema: { type: 'object' } }] }).finalMessage();
    const use = first.content.find((b) => b.type === 'tool_use');
    expect(use?.id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(use?.id).toContain('__thought__');
    const second = await anthropic().messages.create({
      model: 'gm',
      max_tokens: 100,
      tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
      messages: [
        { role: 'user', content: 'weather' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use?.id ?? '', content: 'sunny' }] },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'tool said: sunny' }]);
    expectSignedReplay(setup.gemini);
  });

  it('Ollama keeps no call ids: its history goes with the placeholder Google documents, which Gemini 3 accepts', async () => {
    const ollama = new Ollama({ host: setup.gateway.url });
    const tools = [LOOKUP];
    const first = await ollama.chat({ model: 'gm', tools, messages: [{ role: 'user', content: 'weather' }], stream: false });
    const call = first.message.tool_calls?.[0];
    expect(call?.function.name).toBe('lookup');
    const second = await ollama.chat({ model: 'gm', tools, messages: [{ role: 'user', content: 'weather' }, { role: 'assistant', content: '', tool_calls: [call as never] }, { role: 'tool', content: 'sunny' }], stream: false });
    expect(second.message.content).toBe('tool said: sunny');
    expect(callParts(generateCalls(setup.gemini).at(-1))[0].thoughtSignature).toBe(PLACEHOLDER);
  });

  it('a signed history that goes on at another provider reaches it with the plain call ids', async () => {
    const first = await openai().chat.completions.create({ model: 'gm', messages: [{ role: 'user', content: 'weather' }], tools: [LOOKUP] });
    const call = first.choices[0].message.tool_calls?.[0];
    await openai().chat.completions.create({ model: 'oa', tools: [LOOKUP], messages: [{ role: 'user', content: 'weather' }, first.choices[0].message, { role: 'tool', tool_call_id: call?.id ?? '', content: 'sunny' }] });
    const sent = setup.openaiUpstream.requests.at(-1)?.body;
    const plain = call?.id.slice(0, call.id.indexOf('__thought__'));
    expect(sent.messages[1].tool_calls[0].id).toBe(plain);
    expect(sent.messages[2].tool_call_id).toBe(plain);
  });

  it('a Gemini 3 fake refuses a function-call history without the signature, as Google documents; Gemini 2.5 takes it', async () => {
    const history = {
      contents: [
        { role: 'user', parts: [{ text: 'weather' }] },
        { role: 'model', parts: [{ functionCall: { name: 'lookup', args: {} } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'lookup', response: { result: 'sunny' } } }] },
      ],
    };
    const post = (model: string, body: unknown) =>
      fetch(`${setup.gemini.url}/v1beta/models/${model}:generateContent`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': KEY }, body: JSON.stringify(body) });
    const refused = await post('gemini-3-pro-preview', history);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string; status: string } }).error).toMatchObject({ status: 'INVALID_ARGUMENT', message: expect.stringContaining('thought_signature') });
    const forged = structuredClone(history) as any;
    forged.contents[1].parts[0].thoughtSignature = Buffer.from('not-from-gemini').toString('base64');
    expect((await post('gemini-3-pro-preview', forged)).status).toBe(400);
    expect((await post('gemini-2.5-flash', history)).status).toBe(200);
    // A turn that starts over with a new user text leaves the earlier calls unchecked.
    const later = { contents: [...history.contents, { role: 'model', parts: [{ text: 'It is sunny.' }] }, { role: 'user', parts: [{ text: 'thanks' }] }] };
    expect((await post('gemini-3-pro-preview', later)).status).toBe(200);
  });
});
