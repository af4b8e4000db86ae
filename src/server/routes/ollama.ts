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

/** By handler name, for buildApp. */
export const ollamaHandlers = {
  ollama_chat: ollamaChatHandler,
  ollama_tags: ollamaTagsHandler,
  ollama_embed: ollamaEmbedHandler,
  ollama_version: ollamaVersionHandler,
} satisfies Record<string, Handler>;
