/** The OpenAI-compatible API: /v1/chat/completions, /v1/models, /v1/embeddings. */
import { z } from 'zod';
import { chatRequestSchema, ChunkEncoder, decodeChatRequest, encodeChatResponse } from '../../dialects/openai/client.ts';
import { parseBody } from '../../dialects/validate.ts';
import type { CatalogEntry, ModelCatalog } from '../../gateway/catalog.ts';
import { validationError } from '../../core/errors.ts';
import { defineApi } from '../client-api.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { losslessRequest, serveChat, type ChatWire } from '../serve-chat.ts';


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
  chat.lossless = losslessRequest(request, 'openai_chat');
  return serveChat(request, reply, state, chat, chat.includeUsage ? WITH_USAGE : WITHOUT_USAGE);
};

// ---------------------------------------------------------------------------------------------------
// GET /v1/models and /v1/models/{id}: OpenAI's shape, or Anthropic's for a client that sends
// `anthropic-version` (the Anthropic SDK always does). Aliases are listed; patterns are not models.

/** Neither API's client needs a real date and Hapax does not know one: the epoch, in each API's format. */
const UNKNOWN_DATE = '1970-01-01T00:00:00Z';

const openAIModel = (entry: CatalogEntry) => ({ id: entry.id, object: 'model', created: 0, owned_by: entry.provider });

const anthropicModel = (entry: CatalogEntry) => ({
  type: 'model',
  id: entry.id,
  // An alias says what it is sent as.
  display_name: entry.upstream === entry.model ? `${entry.model} (${entry.provider})` : `${entry.model} (${entry.provider}, as ${entry.upstream})`,
  created_at: UNKNOWN_DATE,
});

/** Anthropic's list query: a page of 1-1000 (20 by default) after or before a cursor id. */
const anthropicListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(20),
  after_id: z.string().min(1).optional(),
  before_id: z.string().min(1).optional(),
});

/** Both lists are the same for every request of one config: made once per catalog. */
const listsOf = new WeakMap<ModelCatalog, { openai: unknown; anthropic: ReturnType<typeof anthropicModel>[] }>();

function lists(catalog: ModelCatalog) {
  let made = listsOf.get(catalog);
  if (!made) {
    const entries = catalog.list();
    made = { openai: { object: 'list', data: entries.map(openAIModel) }, anthropic: entries.map(anthropicModel) };
    listsOf.set(catalog, made);
  }
  return made;
}

export const modelsHandler: Handler = async (request, _reply, state) => {
  const { catalog } = state.runtime;
  const anthropic = request.headers['anthropic-version'] !== undefined;
  const shown = state.route?.pinnedModel;
  if (shown) {
    const entry = catalog.entry(shown) as CatalogEntry;
    return anthropic ? anthropicModel(entry) : openAIModel(entry);
  }
  if (!anthropic) return lists(catalog).openai;
  return anthropicPage(lists(catalog).anthropic, parseBody(anthropicListQuery, request.query ?? {}));
};

function anthropicPage<T extends { id: string }>(all: readonly T[], query: z.infer<typeof anthropicListQuery>) {
  const indexOf = (id: string, field: string) => {
    const index = all.findIndex((model) => model.id === id);
    if (index < 0) throw validationError(`${field} "${id}" is not a listed model id`, field);
    return index;
  };
  let start = 0;
  let end = all.length;
  if (query.before_id !== undefined) {
    end = indexOf(query.before_id, 'before_id');
    start = Math.max(0, end - query.limit);
  } else {
    if (query.after_id !== undefined) start = indexOf(query.after_id, 'after_id') + 1;
    end = Math.min(all.length, start + query.limit);
  }
  const data = all.slice(start, end);
  // Paging backwards, "more" lies before the page; forwards, after it.
  const hasMore = query.before_id !== undefined ? start > 0 : end < all.length;
  return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}

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

const API_ERRORS = [400, 401, 403, 413, 415, 429, 502, 503, 504] as const;

/** The OpenAI-compatible API (the `openai` SDKs with their base URL set to Hapax /v1). */
export const openaiApi = defineApi({
  name: 'openai',
  errorDialect: 'hapax',
  routes: [
    { path: '/v1/chat/completions', handler: 'chat' },
    { path: '/v1/models', handler: 'models' },
    { path: '/v1/embeddings', handler: 'embeddings' },
  ],
  handlers: {
    chat: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      serve: chatHandler,
      openapi: {
        tag: 'OpenAI',
        summary: 'Chat completion (OpenAI Chat Completions API)',
        description: 'To an OpenAI-type provider the body passes through unchanged (the lossless lane); to others it is translated.',
        request: { id: 'ChatCompletionRequest', schema: chatRequestSchema, description: 'OpenAI Chat Completions request (fields the API adds later are accepted and passed on)', example: { model: '', messages: [{ role: 'user', content: 'Hello!' }] } },
        responses: { 200: { description: 'the completion', json: 'ChatCompletion', sse: 'ChatCompletionChunk' } },
        errors: API_ERRORS,
      },
    },
    models: {
      methods: ['GET'],
      key: 'required',
      operational: false,
      usesProviders: false,
      serve: modelsHandler,
      openapi: {
        tag: 'OpenAI',
        summary: 'Models a client can ask for',
        description: "OpenAI's list; Anthropic's (`data`, `has_more`, `first_id`, `last_id`) when the request carries `anthropic-version`.",
        responses: { 200: { description: 'the models', json: 'ModelList' } },
        errors: [401],
      },
    },
    embeddings: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      serve: embeddingsHandler,
      openapi: {
        tag: 'OpenAI',
        summary: 'Embeddings (OpenAI API)',
        request: { id: 'EmbeddingsRequest', schema: embeddingsSchema, description: 'OpenAI embeddings request', example: { model: '', input: 'The quick brown fox' } },
        responses: { 200: { description: 'the vectors', json: 'Embeddings' } },
        errors: [400, 401, 403, 429, 502, 503, 504],
      },
    },
  },
});
