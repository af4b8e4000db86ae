/** Hapax's native completion API: /v1/completions and /v1/completion. */
import { decodeNativeRequest, encodeNativeResponse, nativeRequestSchema, NativeStreamEncoder } from '../../dialects/native/client.ts';
import { defineApi, type DocumentedOperation } from '../client-api.ts';
import type { Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { serveChat, type ChatWire } from '../serve-chat.ts';

const NATIVE_WIRE: ChatWire = {
  answer: (response, served) => encodeNativeResponse(response, served),
  stream: (served) => {
    const encoder = new NativeStreamEncoder(served);
    return {
      encode: (event) => encoder.encode(event),
      error: (error) => `data: ${JSON.stringify({ type: 'error', ...(errorBody(error, served.requestId, 'hapax') as object) })}\n\n`,
    };
  },
};

export const completionHandler: Handler = async (request, reply, state) => {
  const completion = decodeNativeRequest(request.body);
  // The original Hapax's llm.system_prompt: used when the caller gives no system message.
  const systemPrompt = state.runtime.config.llm?.system_prompt;
  if (systemPrompt && !completion.messages.some((m) => m.role === 'system')) {
    completion.messages.unshift({ role: 'system', content: systemPrompt });
  }
  return serveChat(request, reply, state, completion, NATIVE_WIRE);
};

const COMPLETION_DOC: DocumentedOperation = {
  tag: 'Native',
  summary: 'Native completion',
  description: 'Give `messages` or `input`. With `stream: true` the answer is Server-Sent Events: `delta` events, then one `done` event.',
  request: {
    id: 'CompletionRequest',
    schema: nativeRequestSchema,
    description: 'Native completion request: `messages` (the conversation) or `input` (one user message)',
    example: { messages: [{ role: 'user', content: 'What is the capital of France?' }] },
  },
  responses: { 200: { description: 'the completion', json: 'Completion', sse: 'CompletionStreamEvent' } },
  errors: [400, 401, 403, 413, 415, 429, 502, 503, 504],
};

/** Hapax's own API. `advanced_completion` is the original Hapax's name for the same handler. */
export const nativeApi = defineApi({
  name: 'native',
  errorDialect: 'hapax',
  routes: [
    { path: '/v1/completions', handler: 'completion' },
    { path: '/v1/completion', handler: 'completion', summary: 'Native completion (the original path)' },
  ],
  handlers: {
    completion: { methods: ['POST'], key: 'required', operational: false, usesProviders: true, serve: completionHandler, openapi: COMPLETION_DOC },
    advanced_completion: { methods: ['POST'], key: 'required', operational: false, usesProviders: true, serve: completionHandler, openapi: COMPLETION_DOC },
  },
});
