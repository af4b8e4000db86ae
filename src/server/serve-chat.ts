/**
 * The part every chat API shares: pick candidates, dispatch (whole answer or stream), say who served
 * it, and hand the result to the client API's own encoder. A client API supplies only its wire format.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CanonicalRequest, CanonicalResponse } from '../providers/canonical.ts';
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
  const candidates = candidatesFor(state, chat.model);
  const ctx = attemptContext(request);
  const { dispatcher } = state.runtime;
  if (!chat.stream) {
    const result = await dispatcher.complete(chat, candidates, ctx);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    setDropped(reply, state, chat.unsupported, ctx.dropped);
    return wire.answer(result.value, { requestId: request.id, provider: result.target.provider, model: result.value.model || result.target.model, id: result.value.id });
  }
  const result = await dispatcher.stream(chat, candidates, ctx);
  const first = result.value.first;
  const start = first.type === 'start' ? first : undefined;
  const model = start?.model || result.target.model;
  setServedBy(reply, state, result, model);
  setDropped(reply, state, chat.unsupported, ctx.dropped);
  return sendEventStream(reply, result.value, wire.stream({ requestId: request.id, provider: result.target.provider, model, id: start?.id }));
}
