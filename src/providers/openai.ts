/** Adapter for OpenAI and every OpenAI-compatible server (vLLM, LM Studio, Groq, corporate proxies). */
import { decodeChatResponse, decodeChunk, encodeChatRequest } from '../dialects/openai/upstream.ts';
import { OPENAI_CHAT_RELAY } from '../dialects/openai/relay.ts';
import { OPENAI_RESPONSES_RELAY } from '../dialects/responses/relay.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from '../core/canonical.ts';
import { upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { HttpAdapter } from './http-adapter.ts';
import type { ChatStreamEvent } from '../core/lossless.ts';

const OPENAI_BASE_URL = 'https://api.openai.com/v1';

export class OpenAIAdapter extends HttpAdapter implements ProviderAdapter {
  constructor(init: AdapterInit) {
    // OpenAI itself serves the Responses API; an OpenAI-compatible server only when its config says so.
    const responses = init.config.type === 'openai' || init.config.responses === true;
    super(init, {
      defaultBaseUrl: OPENAI_BASE_URL,
      keyHeader: 'authorization',
      relay: { dialect: OPENAI_CHAT_RELAY, clientHeaders: ['openai-beta'], more: responses ? [OPENAI_RESPONSES_RELAY] : [] },
    });
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const lossless = this.losslessOf(request);
    if (lossless) return this.relayComplete(lossless, target, ctx);
    const dropped = new Set<string>();
    const body = encodeChatRequest(this.forProvider(request, false, dropped), target.model, dropped);
    const json = await this.client.json<Parameters<typeof decodeChatResponse>[0]>(this.post('/chat/completions', body, target, ctx));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.choices)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without choices`);
    return decodeChatResponse(json, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    const lossless = this.losslessOf(request);
    return lossless ? this.relayStream(lossless, target, ctx) : this.translatedStream(request, target, ctx);
  }

  private async *translatedStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = encodeChatRequest(this.forProvider(request, true, dropped), target.model, dropped);
    const response = await this.client.send(this.post('/chat/completions', body, target, ctx));
    reportDropped(ctx, dropped);
    const events: StreamEvent[] = [];
    let started = false;
    let finish: StreamEvent | undefined;
    let done = false;
    for await (const message of this.client.sse(response.body, ctx.signal)) {
      if (done) continue;
      if (message.data === '[DONE]') {
        if (!finish) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before it finished`);
        // Finish now, but let the body end by itself: leaving the loop early destroys it with an error.
        done = true;
        yield finish;
        continue;
      }
      let json: Parameters<typeof decodeChunk>[0] & { error?: unknown };
      try {
        json = JSON.parse(message.data);
      } catch {
        throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream chunk that is not JSON`);
      }
      if (json.error) {
        throw new UpstreamError(this.name, 'server', `${this.name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(json) });
      }
      if (!started) {
        started = true;
        yield { type: 'start', id: json.id ?? `chatcmpl-${ctx.requestId}`, model: json.model ?? target.model };
      }
      const finished = decodeChunk(json, events);
      for (const event of events) yield event;
      events.length = 0;
      // Usage arrives in a chunk after the finish reason; hold the finish until the stream ends.
      if (finished) finish = finished;
    }
    if (done) return;
    if (!finish) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before it finished`);
    yield finish;
  }

  async embeddings(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse> {
    const json = await this.client.json<{ model?: string; data: { embedding: number[]; index: number }[]; usage?: { prompt_tokens?: number } }>(this.post('/embeddings', { model: target.model, input: request.input, ...(request.dimensions ? { dimensions: request.dimensions } : {}) }, target, ctx));
    const vectors = [...json.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    return { model: json.model ?? target.model, vectors, usage: { inputTokens: json.usage?.prompt_tokens ?? 0, outputTokens: 0 } };
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.client.json<{ data?: { id: string }[] }>(this.get('/models', ctx));
    return (json.data ?? []).map((m) => m.id);
  }
}
