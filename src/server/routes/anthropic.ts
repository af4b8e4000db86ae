/** The Anthropic-compatible API: POST /v1/messages, answered in Anthropic's format whichever provider serves it. */
import { decodeMessagesRequest, encodeMessagesResponse, MessageStreamEncoder } from '../../dialects/anthropic.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { sendEventStream } from '../stream.ts';

export const messagesHandler: Handler = async (request, reply, state) => {
  const messages = decodeMessagesRequest(request.body);
  const { runtime } = state;
  const candidates = candidatesFor(state, messages.model);
  const ctx = attemptContext(request);
  if (!messages.stream) {
    const result = await runtime.dispatcher.complete(messages, candidates, ctx);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    return encodeMessagesResponse(result.value);
  }
  const result = await runtime.dispatcher.stream(messages, candidates, ctx);
  const first = result.value.first;
  const model = first.type === 'start' && first.model ? first.model : result.target.model;
  setServedBy(reply, state, result, model);
  const encoder = new MessageStreamEncoder(first.type === 'start' ? first.id : `msg_${request.id}`, model);
  return sendEventStream(reply, result.value, {
    encode: (event) => encoder.encode(event),
    error: (error) => encoder.error(errorBody(error, request.id, 'anthropic')),
  });
};
