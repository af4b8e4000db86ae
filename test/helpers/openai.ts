/** The official openai SDK pointed at a test gateway, and the two calls most tests make with it. */
import OpenAI from 'openai';
import type { TestGateway } from './gateway.ts';

/** A client for a gateway route prefix, without the SDK's own retries (the gateway's are under test). */
export const sdk = (gateway: TestGateway, path = '/v1', apiKey = 'unused') => new OpenAI({ baseURL: `${gateway.url}${path}`, apiKey, maxRetries: 0 });

/** One chat completion, with the response for its headers. */
export const ask = (client: OpenAI, content: string, options?: OpenAI.RequestOptions) =>
  client.chat.completions.create({ model: '', messages: [{ role: 'user', content }] }, options).withResponse();

/**
 * One streamed chat completion read to its end: the text, the pieces it came in (for tests that it came in
 * more than one), the finish reason, usage when asked for, the response.
 */
export async function streamText(client: OpenAI, content: string, extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming> = {}) {
  const { data, response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content }], stream: true, ...extra }).withResponse();
  const pieces: string[] = [];
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of data) {
    if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  return { text: pieces.join(''), pieces, finish, usage, response };
}
