/**
 * Gemini's thought signatures, carried through clients that have no place for them.
 *
 * Gemini (Google AI Studio and Vertex AI) signs the first function call of each model step with an opaque
 * `thoughtSignature` and needs it back on that same part in the next request (Gemini 3 refuses function-call
 * history without it). OpenAI Chat, Responses and Anthropic Messages clients have no field for it, but every
 * one of them sends a tool call's id back exactly as it got it, on the call and on its result. So a signed
 * call's id reaches the client as `<id>__thought__<signature as base64url>` (the shape other gateways use,
 * with only the characters every dialect's id allows), and a request's ids are read back into the id and the
 * signature before any provider sees them: other providers get the plain id, Gemini the signature on its part.
 *
 * This is the one place that knows the encoding; clients' routes apply it on the way in and out, and
 * providers only ever see `ToolCall.signature`.
 */
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from './canonical.ts';
import type { LosslessRequest } from './lossless.ts';

const SEPARATOR = '__thought__';

/** The id a client sees for a call: with its signature when it has one. */
export function signedCallId(id: string, signature: string | undefined): string {
  if (signature === undefined) return id;
  // The signature is base64 (Gemini's bytes fields); base64url keeps it inside [A-Za-z0-9_-].
  return `${id}${SEPARATOR}${Buffer.from(signature, 'base64').toString('base64url')}`;
}

/** A client's call id read back into the provider's id and the signature it carried, if any. */
export function readCallId(wire: string): { id: string; signature?: string } {
  const at = wire.lastIndexOf(SEPARATOR);
  if (at < 0) return { id: wire };
  const encoded = wire.slice(at + SEPARATOR.length);
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return { id: wire };
  return { id: wire.slice(0, at), signature: Buffer.from(encoded, 'base64url').toString('base64') };
}

/**
 * The request's call ids (on assistant tool calls and on tool results) split into id and signature, in place:
 * the request was decoded for this one dispatch. Its lossless body, if any, gets the plain ids too: a
 * conversation that began on Gemini may go on at a provider of the client's own dialect, which knows nothing
 * of the encoding (OpenAI refuses call ids over 40 characters).
 */
export function readSignedCallIds(request: CanonicalRequest): void {
  let signed = false;
  for (const message of request.messages) {
    if (message.toolCallId?.includes(SEPARATOR)) {
      message.toolCallId = readCallId(message.toolCallId).id;
      signed = true;
    }
    for (const call of message.toolCalls ?? []) {
      if (!call.id.includes(SEPARATOR)) continue;
      const { id, signature } = readCallId(call.id);
      call.id = id;
      if (signature !== undefined) call.signature = signature;
      signed = true;
    }
  }
  if (signed && request.lossless) request.lossless = withPlainCallIds(request.lossless);
}

/** Where the lossless dialects put call ids: OpenAI chat, Anthropic Messages and Responses, calls and results. */
const ID_KEYS = new Set(['id', 'tool_call_id', 'tool_use_id', 'call_id']);

/** A copy of the value with every call id under ID_KEYS plain (only made when some id carries a signature). */
function plainIds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plainIds);
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    copy[key] = ID_KEYS.has(key) && typeof inner === 'string' && inner.includes(SEPARATOR) ? readCallId(inner).id : plainIds(inner);
  }
  return copy;
}

/** The lossless request with plain call ids in its history (its text is gone: the body changed). */
function withPlainCallIds(request: LosslessRequest): LosslessRequest {
  const { raw: _raw, ...rest } = request;
  const history = request.dialect === 'openai_responses' ? 'input' : 'messages';
  return { ...rest, body: { ...request.body, [history]: plainIds(request.body[history]) } };
}

/** The answer as the client gets it: signed calls' ids carry their signatures (a copy: answers are cached). */
export function withSignedCallIds(response: CanonicalResponse): CanonicalResponse {
  if (!response.toolCalls.some((c) => c.signature !== undefined)) return response;
  return { ...response, toolCalls: response.toolCalls.map(({ signature, ...call }) => ({ ...call, id: signedCallId(call.id, signature) })) };
}

/** The stream event as the client gets it: a signed call's start carries the signature in its id. */
export function withSignedCallId(event: StreamEvent): StreamEvent {
  if (event.type !== 'tool_call_start' || event.signature === undefined) return event;
  const { signature, ...start } = event;
  return { ...start, id: signedCallId(event.id, signature) };
}
