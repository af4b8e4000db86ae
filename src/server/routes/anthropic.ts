/** The Anthropic-compatible API: POST /v1/messages, answered in Anthropic's format whichever provider serves it. */
import { decodeMessagesRequest, encodeMessagesResponse, MessageStreamEncoder } from '../../dialects/anthropic.ts';
import type { Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { losslessRequest, serveChat, type ChatWire } from '../serve-chat.ts';

/** Anthropic's protocol headers: they travel with the body to Anthropic-type providers. */
export const ANTHROPIC_PROTOCOL_HEADERS = ['anthropic-version', 'anthropic-beta'];

const ANTHROPIC_WIRE: ChatWire = {
  answer: (response) => encodeMessagesResponse(response),
  stream: (served) => {
    const encoder = new MessageStreamEncoder(served.id ?? `msg_${served.requestId}`, served.model);
    return {
      encode: (event) => encoder.encode(event),
      error: (error) => encoder.error(errorBody(error, served.requestId, 'anthropic')),
    };
  },
};

export const messagesHandler: Handler = async (request, reply, state) => {
  const chat = decodeMessagesRequest(request.body);
  chat.lossless = losslessRequest(request, 'anthropic_messages', ANTHROPIC_PROTOCOL_HEADERS);
  return serveChat(request, reply, state, chat, ANTHROPIC_WIRE);
};
