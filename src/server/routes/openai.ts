/** The OpenAI-compatible API: /v1/chat/completions, /v1/models, /v1/embeddings. */
import { z } from 'zod';
import { ChunkEncoder, decodeChatRequest, encodeChatResponse } from '../../dialects/openai.ts';
import { parseBody } from '../../dialects/validate.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { losslessRequest, serveChat, type ChatWire } from '../serve-chat.ts';

/** OpenAI's protocol header: it travels with the body to OpenAI-type providers. */
const PROTOCOL_HEADERS = ['openai-beta'];

const openAIWire = (includeUsage: boolean): ChatWire => ({
  answer: (response) => encodeChatResponse(response),
  stream: (served) => {
    const encoder = new ChunkEncoder(served.id ?? `chatcmpl-${served.requestId}`, served.model, Math.floor(Date.now() / 1000), includeUsage);
    return {
      encode: (event) => encoder.encode(event),
      // The openai SDK raises an APIError for a data frame that carries `error`.
      error: (error) => `data: ${JSON.stringify(errorBody(error, served.requestId, 'hapax'))}\n\n`,
    };
  },
});
const WITH_USAGE = openAIWire(true);
const WITHOUT_USAGE = openAIWire(false);

export const chatHandler: Handler = async (request, reply, state) => {
  const chat = decodeChatRequest(request.body);
  chat.lossless = losslessRequest(request, 'openai_chat', PROTOCOL_HEADERS);
  return serveChat(request, reply, state, chat, chat.includeUsage ? WITH_USAGE : WITHOUT_USAGE);
};

export const modelsHandler: Handler = async (_request, _reply, state) => ({
  object: 'list',
  data: state.runtime.catalog.list().map((entry) => ({ id: entry.id, object: 'model', created: 0, owned_by: entry.provider })),
});

const embeddingsSchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(z.string()).min(1)]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
});

export const embeddingsHandler: Handler = async (request, reply, state) => {
  const body = parseBody(embeddingsSchema, request.body);
  const { runtime } = state;
  const candidates = candidatesFor(state, body.model || undefined);
  const input = typeof body.input === 'string' ? [body.input] : body.input;
  const result = await runtime.dispatcher.embeddings({ model: body.model, input, dimensions: body.dimensions }, candidates, attemptContext(request));
  setServedBy(reply, state, result, result.value.model, result.value.usage);
  const base64 = body.encoding_format === 'base64';
  return {
    object: 'list',
    data: result.value.vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      // The openai SDK asks for base64 by default: little-endian float32, as OpenAI sends it.
      embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
    })),
    model: result.value.model,
    usage: { prompt_tokens: result.value.usage.inputTokens, total_tokens: result.value.usage.inputTokens },
  };
};
