/** Hapax's native completion API. */
import { decodeNativeRequest, encodeNativeResponse, NativeStreamEncoder } from '../../dialects/native.ts';
import { attemptContext, candidatesFor, setServedBy, type Handler } from '../context.ts';
import { errorBody } from '../errors.ts';
import { sendEventStream } from '../stream.ts';

export const completionHandler: Handler = async (request, reply, state) => {
  const completion = decodeNativeRequest(request.body);
  const { runtime } = state;
  const systemPrompt = runtime.config.llm?.system_prompt;
  if (systemPrompt && !completion.messages.some((m) => m.role === 'system')) {
    completion.messages.unshift({ role: 'system', content: systemPrompt });
  }
  const candidates = candidatesFor(state, completion.model);
  const ctx = attemptContext(request);
  if (!completion.stream) {
    const result = await runtime.dispatcher.complete(completion, candidates, ctx);
    setServedBy(reply, state, result, result.value.model, result.value.usage);
    return encodeNativeResponse(result.value, { requestId: request.id, provider: result.target.provider, model: result.target.model });
  }
  const result = await runtime.dispatcher.stream(completion, candidates, ctx);
  const first = result.value.first;
  const model = first.type === 'start' ? first.model : result.target.model;
  setServedBy(reply, state, result, model);
  const encoder = new NativeStreamEncoder({ requestId: request.id, provider: result.target.provider, model });
  return sendEventStream(reply, result.value, {
    encode: (event) => encoder.encode(event),
    error: (error) => `data: ${JSON.stringify({ type: 'error', ...(errorBody(error, request.id, 'hapax') as object) })}\n\n`,
  });
};
