/** Adapter for Ollama's native API (/api/chat, /api/embed, /api/tags). */
import { decodeChatResponse, decodeEmbedResponse, decodeTags, encodeChatRequest, encodeEmbedRequest, OllamaStreamDecoder, type OllamaChatChunk, type OllamaEmbedResponse } from '../dialects/ollama/upstream.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from '../core/canonical.ts';
import { GatewayError, upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { HttpAdapter } from './http-adapter.ts';

const OLLAMA_BASE_URL = 'http://localhost:11434';

type ChatLine = OllamaChatChunk & { error?: unknown };

export class OllamaAdapter extends HttpAdapter implements ProviderAdapter {
  constructor(init: AdapterInit) {
    // A local Ollama needs no key; one behind an authenticating proxy (or Ollama's cloud) takes a bearer token.
    super(init, { defaultBaseUrl: OLLAMA_BASE_URL, keyHeader: 'authorization' });
  }

  /** The /api/chat body; content Ollama cannot carry is the caller's problem, so no other attempt is made. */
  private chatBody(request: CanonicalRequest, target: ModelTarget, dropped: Set<string>): Record<string, unknown> {
    try {
      return encodeChatRequest(request, target.model, dropped);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      throw new UpstreamError(this.name, 'client', `${this.name} cannot take this request`, { status: error.status, upstreamMessage: error.message });
    }
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const dropped = new Set<string>();
    const body = this.chatBody(this.forProvider(request, false, dropped), target, dropped);
    const json = await this.client.json<ChatLine | null>(this.post('/api/chat', body, target, ctx));
    reportDropped(ctx, dropped);
    if (typeof json?.message !== 'object' || json.message === null) {
      throw new UpstreamError(this.name, 'protocol', `${this.name} answered without a message`, { upstreamMessage: upstreamErrorMessage(json) });
    }
    return decodeChatResponse(json, `chatcmpl-${ctx.requestId}`, target.model);
  }

  async *chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = this.chatBody(this.forProvider(request, true, dropped), target, dropped);
    const response = await this.client.send(this.post('/api/chat', body, target, ctx));
    reportDropped(ctx, dropped);
    const decoder = new OllamaStreamDecoder(`chatcmpl-${ctx.requestId}`, target.model);
    const events: StreamEvent[] = [];
    for await (const value of this.client.ndjson(response.body, ctx.signal)) {
      const line = value as ChatLine | null;
      if (line === null || typeof line !== 'object') throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream line that is not an object`);
      // Ollama reports a failure after the 200 head as a line of its own.
      if (line.error !== undefined) {
        throw new UpstreamError(this.name, 'server', `${this.name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(line) });
      }
      const done = decoder.decode(line, events);
      yield* events;
      events.length = 0;
      if (done) return;
    }
    throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before it finished`);
  }

  async embeddings(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse> {
    const json = await this.client.json<OllamaEmbedResponse | null>(this.post('/api/embed', encodeEmbedRequest(request, target.model), target, ctx));
    if (!Array.isArray(json?.embeddings)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without embeddings`);
    return decodeEmbedResponse(json, target.model);
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.client.json<Parameters<typeof decodeTags>[0]>(this.get('/api/tags', ctx));
    return decodeTags(json);
  }
}
