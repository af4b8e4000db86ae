/**
 * The Ollama-compatible API, so Ollama clients (the `ollama` npm and Python packages, Open WebUI) can use
 * Hapax as their host: /api/chat, /api/tags, /api/embed, /api/version.
 */
import { chatRequestSchema, decodeChatRequest, decodeEmbedRequest, embedRequestSchema, encodeChatResponse, encodeEmbedResponse, encodeLoadResponse, encodeTags, NDJSON_CONTENT_TYPE, NdjsonEncoder, OLLAMA_API_VERSION } from '../../dialects/ollama/client.ts';
import { defineApi } from '../client-api.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { serveChat, type ChatWire } from '../serve-chat.ts';

const OLLAMA_WIRE: ChatWire = {
  answer: (response) => encodeChatResponse(response),
  stream: (served) => {
    const encoder = new NdjsonEncoder(served.model);
    return {
      contentType: NDJSON_CONTENT_TYPE,
      encode: (event) => encoder.encode(event),
      // Ollama clients stop at a line carrying `error` and raise its message.
      error: (error) => `${JSON.stringify(errorBody(error, served.requestId, 'ollama'))}\n`,
    };
  },
};

export const ollamaChatHandler: Handler = async (request, reply, state) => {
  const chat = decodeChatRequest(request.body);
  // Ollama clients send a chat without messages to load a model ahead of use; ours are always ready.
  if (chat.messages.length === 0) return encodeLoadResponse(chat.model ?? candidatesFor(state, chat.model)[0]?.model ?? '');
  return serveChat(request, reply, state, chat, OLLAMA_WIRE);
};

export const ollamaTagsHandler: Handler = async (_request, _reply, state) =>
  encodeTags(
    state.runtime.catalog.list().map((entry) => entry.id),
    state.runtime.loadedAt,
  );

export const ollamaEmbedHandler: Handler = async (request, reply, state) => {
  const embed = decodeEmbedRequest(request.body);
  const { runtime } = state;
  const candidates = candidatesFor(state, embed.model);
  const result = await runtime.dispatcher.embeddings(embed, candidates, attemptContext(request));
  setServedBy(reply, state, result, result.value.model, result.value.usage);
  return encodeEmbedResponse(result.value);
};

export const ollamaVersionHandler: Handler = async () => ({ version: OLLAMA_API_VERSION });

/** The Ollama-compatible API (the `ollama` client libraries and Open WebUI with their host set to Hapax). */
export const ollamaApi = defineApi({
  name: 'ollama',
  errorDialect: 'ollama',
  routes: [
    { path: '/api/chat', handler: 'ollama_chat' },
    { path: '/api/tags', handler: 'ollama_tags' },
    { path: '/api/embed', handler: 'ollama_embed' },
    { path: '/api/version', handler: 'ollama_version' },
  ],
  handlers: {
    ollama_chat: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      serve: ollamaChatHandler,
      openapi: {
        tag: 'Ollama',
        summary: 'Chat (Ollama API)',
        request: { id: 'OllamaChatRequest', schema: chatRequestSchema, description: 'Ollama chat request (streams NDJSON unless `stream` is false)', example: { model: '', stream: false, messages: [{ role: 'user', content: 'Hello!' }] } },
        responses: { 200: { description: 'the answer; NDJSON lines unless stream is false', json: 'OllamaChatResponse', ndjson: 'OllamaChatResponse' } },
        errors: [400, 401, 403, 429, 502, 503, 504],
      },
    },
    ollama_tags: {
      methods: ['GET'],
      key: 'required',
      operational: false,
      usesProviders: false,
      serve: ollamaTagsHandler,
      openapi: { tag: 'Ollama', summary: 'Models (Ollama API)', responses: { 200: { description: 'the models', json: 'OllamaTags' } }, errors: [401] },
    },
    ollama_embed: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      serve: ollamaEmbedHandler,
      openapi: {
        tag: 'Ollama',
        summary: 'Embeddings (Ollama API)',
        request: { id: 'OllamaEmbedRequest', schema: embedRequestSchema, description: 'Ollama embed request', example: { model: '', input: 'The quick brown fox' } },
        responses: { 200: { description: 'the vectors', json: 'OllamaEmbedResponse' } },
        errors: [400, 401, 403, 429, 502, 503, 504],
      },
    },
    ollama_version: {
      methods: ['GET'],
      key: 'required',
      operational: false,
      usesProviders: false,
      serve: ollamaVersionHandler,
      openapi: { tag: 'Ollama', summary: 'Ollama API version', responses: { 200: { description: 'the version', json: 'OllamaVersion' } }, errors: [401] },
    },
  },
});
