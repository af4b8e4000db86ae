/**
 * The OpenAI Responses API: POST /v1/responses (JSON and SSE), and for stored responses GET and DELETE
 * /v1/responses/{id} and GET /v1/responses/{id}/input_items. To an OpenAI-type provider that speaks it the
 * request passes through (the lossless lane); to every other provider it is translated.
 *
 * State is Hapax's own, whatever the provider: a stored response (`store`, on by default) keeps every item the
 * model saw and what it answered, per key, in the state store; `previous_response_id` is expanded into those
 * items before the request goes anywhere, so a conversation continues on any provider, or any instance.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { FinishReason } from '../../core/canonical.ts';
import { GatewayError, validationError } from '../../core/errors.ts';
import type { ChatStreamEvent } from '../../core/lossless.ts';
import { decodeResponsesRequest, encodeResponse, forOpenAI, inputItems, parseResponsesRequest, responsesRequestSchema, ResponseStreamEncoder, type ResponseContext, type ResponsesRequest } from '../../dialects/responses/client.ts';
import { finalResponseOf } from '../../dialects/responses/relay.ts';
import { parseBody } from '../../dialects/validate.ts';
import type { OpenStream } from '../../gateway/dispatch.ts';
import type { Runtime } from '../../gateway/runtime.ts';
import { historyOf, StoredResponses, type StoredResponse } from '../../state/stored-responses.ts';
import { defineApi } from '../client-api.ts';
import { attemptContext, candidatesFor, setDropped, setServedBy, type Handler, type RequestState } from '../context.ts';
import { losslessRequest } from '../serve-chat.ts';
import { readSignedCallIds, withSignedCallId, withSignedCallIds } from '../../core/signed-call-ids.ts';
import { sendEventStream } from '../stream.ts';

/** The stored responses of a config's state store, made once per Runtime. */
const storesOf = new WeakMap<Runtime, StoredResponses>();

function storedResponses(runtime: Runtime): StoredResponses {
  let stored = storesOf.get(runtime);
  if (!stored) {
    const { ttl, max_entries } = runtime.config.responses;
    // Not the response cache's namespace ("responses"): these are conversations, not answers to replay.
    stored = new StoredResponses(runtime.store.cache<StoredResponse>('stored_responses', { maxEntries: max_entries }), ttl);
    storesOf.set(runtime, stored);
  }
  return stored;
}

/** Whose responses these are: the key's, or everyone's alike when auth is off (there is no one to tell apart). */
const ownerOf = (state: RequestState): string => (state.key ? `key:${state.key.name}` : 'anonymous');

const notFound = (id: string) => new GatewayError(`no stored response with id "${id}"`, { status: 404, type: 'NotFoundError', details: { field: 'response_id' } });

// ---------------------------------------------------------------------------------------------------
// POST /v1/responses

const createResponse = async (request: FastifyRequest, reply: FastifyReply, state: RequestState): Promise<unknown> => {
  const body = request.body as Record<string, unknown>;
  const req = parseResponsesRequest(body);
  const stored = storedResponses(state.runtime);
  const owner = ownerOf(state);
  let history: Record<string, unknown>[] = [];
  if (req.previous_response_id) {
    const previous = await stored.get(owner, req.previous_response_id);
    // Another key's response reads exactly as a missing one: nothing says it exists.
    if (!previous) throw validationError(`previous_response_id: no stored response with id "${req.previous_response_id}"`, 'previous_response_id', { code: 'previous_response_not_found' });
    history = historyOf(previous);
  }
  const chat = decodeResponsesRequest(req, body, history);
  const input = [...history, ...inputItems(req)];
  // Upstream gets the whole conversation, not an id it may never have seen (the state is ours).
  const { previous_response_id: _previous, ...rest } = body;
  const lossless = losslessRequest(request, 'openai_responses');
  // With history the body is a new one: the client's text (raw) is not what goes up.
  chat.lossless = history.length > 0 ? { dialect: lossless.dialect, headers: lossless.headers, query: lossless.query, body: { ...rest, input: [...forOpenAI(history), ...inputItems(req)] } } : lossless;
  // Gemini's thought signatures ride in the clients' call ids; providers get them apart.
  readSignedCallIds(chat);
  const ctx: ResponseContext = { id: `resp_${randomBytes(24).toString('hex')}`, createdAt: Math.floor(Date.now() / 1000), request: req, customTools: chat.customTools };
  const keep = req.store !== false ? (response: StoredResponse['response']) => stored.put(owner, { response, input }) : undefined;

  const candidates = candidatesFor(state, chat.model);
  const attempt = attemptContext(request);
  const { dispatcher } = state.runtime;
  if (!chat.stream) {
    const result = await dispatcher.complete(chat, candidates, attempt);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    const relayed = result.value.relayed?.body;
    state.lane = relayed === undefined ? 'translated' : 'lossless';
    if (relayed !== undefined) {
      await keep?.(JSON.parse(relayed) as StoredResponse['response']);
      return reply.type('application/json').send(relayed);
    }
    setDropped(reply, state, chat.unsupported, attempt.dropped);
    const response = encodeResponse({ ...withSignedCallIds(result.value), model: result.value.model || result.target.model }, ctx);
    await keep?.(response);
    return response;
  }
  const result = await dispatcher.stream(chat, candidates, attempt);
  const first = result.value.first;
  const start = first.type === 'start' ? first : first.type === 'relayed' ? first.start : undefined;
  const model = start?.model || result.target.model;
  setServedBy(reply, state, result, model);
  const encoder = new ResponseStreamEncoder(ctx, model);
  state.lane = first.type === 'relayed' ? 'lossless' : 'translated';
  if (first.type !== 'relayed') setDropped(reply, state, chat.unsupported, attempt.dropped);
  const stream = first.type === 'relayed' || keep ? await settled(result.value, encoder, keep) : result.value;
  return sendEventStream(reply, stream, {
    encode: (event) => encoder.encode(withSignedCallId(event)),
    error: (error) => encoder.failed(error),
    catchUp: (resumed) => encoder.catchUp(resumed.frames ?? '', resumed.prior ?? []),
  });
};

const TERMINAL = /"type":"response\.(completed|incomplete)"/;

/**
 * The stream with the finished response stored before the event that finishes it goes out, so a client that
 * continues the moment it sees response.completed finds it (on this instance or another). On the lossless
 * lane the encoder, which writes only a failure's events there, learns the provider's last sequence number.
 */
async function settled(stream: OpenStream, encoder: ResponseStreamEncoder, keep: ((response: StoredResponse['response']) => Promise<void>) | undefined): Promise<OpenStream> {
  const first = stream.first;
  let frames = '';
  let resumed = false;
  const relay = async (event: Extract<ChatStreamEvent, { type: 'relayed' }>) => {
    encoder.continueAfter(event.text);
    if (!keep) return;
    frames += event.text;
    if (!TERMINAL.test(event.text)) return;
    const response = finalResponseOf(frames);
    if (response?.id) await keep(response as StoredResponse['response']);
  };
  async function* rest(): AsyncGenerator<ChatStreamEvent> {
    for (let next = await stream.rest.next(); !next.done; next = await stream.rest.next()) {
      const event = next.value;
      if (event.type === 'relayed') await relay(event);
      else if (event.type === 'resumed') resumed = true;
      // The encoder writes the end of a stream that was not relayed to its end (translated, or resumed).
      else if (event.type === 'finish' && keep && (first.type !== 'relayed' || resumed)) await keep(encoder.finish(event.reason as FinishReason).response);
      yield event;
    }
  }
  // The first frames of a relayed stream may already finish it (a short answer that came in one piece).
  if (first.type === 'relayed') await relay(first);
  const inner = rest();
  // Ending it early (the client left) ends the upstream too.
  return {
    first,
    rest: { next: () => inner.next(), return: async (value?: unknown) => (await stream.rest.return?.(value), inner.return(undefined)) },
  };
}

// ---------------------------------------------------------------------------------------------------
// GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items

const inputItemsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  order: z.enum(['asc', 'desc']).default('desc'),
  after: z.string().min(1).optional(),
});

/** Input items as the list shows them: each with an id (items sent without one get one from their place). */
function listedItems(stored: StoredResponse): Array<Record<string, unknown> & { id: string }> {
  const tail = stored.response.id.slice(stored.response.id.indexOf('_') + 1);
  return stored.input.map((item, i) => ({ ...(item.type === undefined ? { type: 'message' } : {}), ...item, id: typeof item.id === 'string' ? item.id : `item_${tail}${i.toString(16).padStart(4, '0')}` }));
}

async function storedResponse(request: FastifyRequest, reply: FastifyReply, state: RequestState, rest: string[]): Promise<unknown> {
  const [id, sub] = rest;
  const stored = storedResponses(state.runtime);
  const owner = ownerOf(state);
  if (sub === undefined && request.method === 'DELETE') {
    if (!(await stored.delete(owner, id))) throw notFound(id);
    return { id, object: 'response', deleted: true };
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    reply.header('allow', sub === undefined ? 'GET, DELETE' : 'GET');
    throw new GatewayError(`method ${request.method} is not allowed here; allowed: ${sub === undefined ? 'GET, DELETE' : 'GET'}`, { status: 405, type: 'ValidationError' });
  }
  const found = await stored.get(owner, id);
  if (!found) throw notFound(id);
  if (sub === undefined) return found.response;
  const query = parseBody(inputItemsQuery, request.query ?? {});
  let items = listedItems(found);
  if (query.order === 'desc') items = items.reverse();
  if (query.after !== undefined) {
    const at = items.findIndex((item) => item.id === query.after);
    if (at < 0) throw validationError(`after: "${query.after}" is not an item of this response`, 'after');
    items = items.slice(at + 1);
  }
  const data = items.slice(0, query.limit);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: items.length > data.length };
}

export const responsesHandler: Handler = async (request, reply, state) => {
  const base = state.route?.path ?? '/v1/responses';
  const path = request.url.split('?', 1)[0].replace(/\/$/, '');
  const rest = path.length > base.length ? path.slice(base.length + 1).split('/').map(decodeURIComponent) : [];
  if (rest.length === 0) {
    if (request.method !== 'POST') {
      reply.header('allow', 'POST');
      throw new GatewayError(`method ${request.method} is not allowed on ${base}; allowed: POST`, { status: 405, type: 'ValidationError' });
    }
    return createResponse(request, reply, state);
  }
  if (rest.length > 2 || (rest.length === 2 && rest[1] !== 'input_items') || rest[0] === '') {
    throw new GatewayError(`no route for ${request.method} ${path}`, { status: 404, type: 'ValidationError' });
  }
  return storedResponse(request, reply, state, rest);
};

/** What the operations on one stored response share: only the key that created it sees it (another gets 404). */
const STORED = {
  tag: 'OpenAI',
  description: 'Only the key that created the response sees it; for any other key it does not exist (404).',
  errors: [400, 401, 403, 404, 429],
  pathParameters: [{ name: 'response_id', description: 'The id of a stored response', example: 'resp_example' }],
} as const;

/** The Responses API (Codex, the Agents SDK, `client.responses` of the openai SDKs, the AI SDK's default). */
export const responsesApi = defineApi({
  name: 'responses',
  errorDialect: 'hapax',
  routes: [{ path: '/v1/responses', handler: 'responses' }],
  handlers: {
    responses: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      subpaths: true,
      serve: responsesHandler,
      openapi: {
        tag: 'OpenAI',
        summary: 'Create a response (OpenAI Responses API)',
        description:
          'To an OpenAI provider (or an openai_compatible one with `responses: true`) the body passes through unchanged (the lossless lane); to others it is translated. Stored responses (`store`, default true) continue with `previous_response_id` on any provider and are read with GET /v1/responses/{id}, GET /v1/responses/{id}/input_items and removed with DELETE /v1/responses/{id}, by the key that created them only.',
        request: {
          id: 'ResponsesRequest',
          schema: responsesRequestSchema,
          description: 'OpenAI Responses request (fields the API adds later are accepted and passed on)',
          example: { model: '', input: 'Hello!' } satisfies ResponsesRequest,
        },
        responses: { 200: { description: 'the response', json: 'Response', sse: 'ResponseStreamEvent' } },
        errors: [400, 401, 403, 413, 415, 429, 502, 503, 504],
      },
      subroutes: [
        { path: '/{response_id}', method: 'GET', openapi: { ...STORED, summary: 'A stored response', responses: { 200: { description: 'the response', json: 'Response' } } } },
        { path: '/{response_id}', method: 'DELETE', openapi: { ...STORED, summary: 'Delete a stored response', responses: { 200: { description: 'deleted', json: 'ResponseDeleted' } } } },
        {
          path: '/{response_id}/input_items',
          method: 'GET',
          openapi: { ...STORED, summary: "A stored response's input items (`limit`, `order`, `after`)", responses: { 200: { description: 'the items', json: 'ResponseItemList' } } },
        },
      ],
    },
  },
});
