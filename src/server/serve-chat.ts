/**
 * The part every chat API shares: pick candidates, dispatch (whole answer or stream), say who served
 * it, and hand the result to the client API's own encoder. A client API supplies only its wire format.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CanonicalRequest, CanonicalResponse } from '../core/canonical.ts';
import type { LosslessRequest, WireDialect } from '../core/lossless.ts';
import { readSignedCallIds, withSignedCallId, withSignedCallIds } from '../core/signed-call-ids.ts';
import { attemptContext, candidatesFor, setDropped, setServedBy, type RequestState } from './context.ts';
import { sendEventStream, type StreamEncoding } from './stream.ts';

/** Who answered, as the encoders need it. */
export interface Served {
  requestId: string;
  provider: string;
  /** The model the provider reported (or the configured one when it reported none). */
  model: string;
  /** The provider's id for the answer, when it gave one. */
  id?: string;
}

export interface ChatWire {
  /** The whole answer as the client API's JSON. */
  answer(response: CanonicalResponse, served: Served): unknown;
  /** How to write a stream in the client API's format. */
  stream(served: Served): StreamEncoding;
}

export async function serveChat(request: FastifyRequest, reply: FastifyReply, state: RequestState, chat: CanonicalRequest, wire: ChatWire): Promise<unknown> {
  // Gemini's thought signatures ride in the clients' call ids; providers get them apart.
  readSignedCallIds(chat);
  const candidates = candidatesFor(state, chat.model);
  const ctx = attemptContext(request);
  const { dispatcher } = state.runtime;
  if (!chat.stream) {
    const result = await dispatcher.complete(chat, candidates, ctx);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    // The lossless lane: the provider's JSON as it sent it (Fastify sends a JSON-typed string unserialized).
    const relayed = result.value.relayed?.body;
    state.lane = relayed === undefined ? 'translated' : 'lossless';
    if (relayed !== undefined) return reply.type('application/json').send(relayed);
    // Translated: what the target could not express is named (the lossless lane drops nothing).
    setDropped(reply, state, chat.unsupported, ctx.dropped);
    return wire.answer(withSignedCallIds(result.value), { requestId: request.id, provider: result.target.provider, model: result.value.model || result.target.model, id: result.value.id });
  }
  const result = await dispatcher.stream(chat, candidates, ctx);
  const first = result.value.first;
  const start = first.type === 'start' ? first : first.type === 'relayed' ? first.start : undefined;
  const model = start?.model || result.target.model;
  setServedBy(reply, state, result, model);
  state.lane = first.type === 'relayed' ? 'lossless' : 'translated';
  if (first.type !== 'relayed') setDropped(reply, state, chat.unsupported, ctx.dropped);
  const encoding = wire.stream({ requestId: request.id, provider: result.target.provider, model, id: start?.id });
  return sendEventStream(reply, result.value, { ...encoding, encode: (event) => encoding.encode(withSignedCallId(event)) });
}

/** Each dialect's protocol headers: they travel with the body to providers of that dialect. */
const PROTOCOL_HEADERS: Record<WireDialect, readonly string[]> = {
  anthropic_messages: ['anthropic-version', 'anthropic-beta'],
  openai_chat: ['openai-beta'],
  openai_responses: ['openai-beta'],
};

/**
 * The client's request as it came, for providers of its dialect (the lossless lane): the parsed body, the
 * dialect's protocol headers and the query string.
 */
export function losslessRequest(request: FastifyRequest, dialect: WireDialect): LosslessRequest {
  const headers: Record<string, string> = {};
  for (const name of PROTOCOL_HEADERS[dialect]) {
    const value = request.headers[name];
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query = request.url.indexOf('?');
  const raw = request.hapax.rawBody;
  return { dialect, body: request.body as Record<string, unknown>, ...(raw === undefined ? {} : { raw }), headers, query: query < 0 ? '' : request.url.slice(query) };
}
