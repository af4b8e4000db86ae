/** Hapax's native completion API: /v1/completions and /v1/completion. */
import { decodeNativeRequest, encodeNativeResponse, NativeStreamEncoder } from '../../dialects/native.ts';
import type { Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { serveChat, type ChatWire } from '../serve-chat.ts';

const NATIVE_WIRE: ChatWire = {
  answer: (response, served) => encodeNativeResponse(response, served),
  stream: (served) => {
    const encoder = new NativeStreamEncoder(served);
    return {
      encode: (event) => encoder.encode(event),
      error: (error) => `data: ${JSON.stringify({ type: 'error', ...(errorBody(error, served.requestId, 'hapax') as object) })}\n\n`,
    };
  },
};

export const completionHandler: Handler = async (request, reply, state) => {
  const completion = decodeNativeRequest(request.body);
  // The original Hapax's llm.system_prompt: used when the caller gives no system message.
  const systemPrompt = state.runtime.config.llm?.system_prompt;
  if (systemPrompt && !completion.messages.some((m) => m.role === 'system')) {
    completion.messages.unshift({ role: 'system', content: systemPrompt });
  }
  return serveChat(request, reply, state, completion, NATIVE_WIRE);
};
