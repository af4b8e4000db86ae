/**
 * The Ollama-compatible API, so Ollama clients (the `ollama` npm and Python packages, Open WebUI) can use
 * Hapax as their host: /api/chat, /api/tags, /api/embed, /api/version.
 */
import {
  decodeChatRequest,
  decodeEmbedRequest,
  encodeChatResponse,
  encodeEmbedResponse,
  encodeLoadResponse,
  encodeTags,
  NDJSON_CONTENT_TYPE,
  NdjsonEncoder,
  OLLAMA_API_VERSION,
} from '../../dialects/ollama.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { sendEventStream } from '../stream.ts';

export const ollamaChatHandler: Handler = async (request, reply, state) => {
  const chat = decodeChatRequest(request.body);
  const { runtime } = state;
  const candidates = candidatesFor(state, chat.model);
  // Ollama clients send a chat without messages to load a model ahead of use; ours are always ready.
  if (chat.messages.length === 0) return encodeLoadResponse(chat.model ?? candidates[0]?.model ?? '');
  const ctx = attemptContext(request);
  if (!chat.stream) {
    const result = await runtime.dispatcher.complete(chat, candidates, ctx);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    return encodeChatResponse(result.value);
  }
  const result = await runtime.dispatcher.stream(chat, candidates, ctx);
  const first = result.value.first;
  const model = first.type === 'start' ? first.model : result.target.model;
  setServedBy(reply, state, result, model);
  const encoder = new NdjsonEncoder(model);
  return sendEventStream(reply, result.value, {
    contentType: NDJSON_CONTENT_TYPE,
    encode: (event) => encoder.encode(event),
    // Ollama clients stop at a line carrying `error` and raise its message.
    error: (error) => `${JSON.stringify(errorBody(error, request.id, 'ollama'))}\n`,
  });
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

/** By handler name, for buildApp. */
export const ollamaHandlers = {
  ollama_chat: ollamaChatHandler,
  ollama_tags: ollamaTagsHandler,
  ollama_embed: ollamaEmbedHandler,
  ollama_version: ollamaVersionHandler,
} satisfies Record<string, Handler>;
