/** The Anthropic-compatible API: POST /v1/messages, answered in Anthropic's format whichever provider serves it. */
import { countTokensRequestSchema } from '../../dialects/anthropic/count-tokens.ts';
import { decodeMessagesRequest, encodeMessagesResponse, messagesRequestSchema, MessageStreamEncoder } from '../../dialects/anthropic/client.ts';
import { defineApi } from '../client-api.ts';
import type { Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { losslessRequest, serveChat, type ChatWire } from '../serve-chat.ts';
import { countTokensHandler } from './count-tokens.ts';


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
  chat.lossless = losslessRequest(request, 'anthropic_messages');
  return serveChat(request, reply, state, chat, ANTHROPIC_WIRE);
};

/** The Anthropic-compatible API (the Anthropic SDKs and Claude Code with their base URL set to Hapax). */
export const anthropicApi = defineApi({
  name: 'anthropic',
  errorDialect: 'anthropic',
  routes: [
    { path: '/v1/messages', handler: 'messages' },
    { path: '/v1/messages/count_tokens', handler: 'count_tokens' },
  ],
  handlers: {
    messages: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: true,
      serve: messagesHandler,
      openapi: {
        tag: 'Anthropic',
        summary: 'Messages (Anthropic Messages API)',
        description: 'To an Anthropic-type provider the body, `anthropic-version`, `anthropic-beta` and the query string pass through unchanged (the lossless lane); to others it is translated.',
        request: { id: 'MessagesRequest', schema: messagesRequestSchema, description: 'Anthropic Messages request (fields the API adds later are accepted and passed on)', example: { model: '', max_tokens: 256, messages: [{ role: 'user', content: 'Hello!' }] } },
        responses: { 200: { description: 'the message', json: 'Message', sse: 'MessageStreamEvent' } },
        errors: [400, 401, 403, 413, 429, 502, 503, 504],
      },
    },
    count_tokens: {
      methods: ['POST'],
      key: 'required',
      operational: false,
      usesProviders: false,
      serve: countTokensHandler,
      openapi: {
        tag: 'Anthropic',
        summary: 'Count input tokens (Anthropic Token Counting API)',
        description:
          'Forwarded to an Anthropic-type provider when the request resolves to one (with failover among them), else counted by the gateway; `X-Hapax-Token-Count` says `provider` or `local`. Counts as a request for rate limits; charges no tokens.',
        request: { id: 'CountTokensRequest', schema: countTokensRequestSchema, description: 'Anthropic token count request: a Messages request without max_tokens', example: { model: '', messages: [{ role: 'user', content: 'Hello!' }] } },
        responses: { 200: { description: 'the count', json: 'MessageTokensCount' } },
        errors: [400, 401, 403, 413, 429, 502, 503, 504],
      },
    },
  },
});
