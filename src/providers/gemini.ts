/**
 * Adapter for Google's Gemini API (Google AI Studio): generateContent, streamGenerateContent?alt=sse and the
 * models list, with the key in x-goog-api-key. No client speaks Gemini, so there is no lossless lane.
 */
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { decodeGenerateContentResponse, encodeGenerateContentRequest, GenerateContentStreamDecoder, modelId, type GeminiResponse } from '../dialects/gemini/upstream.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import { HttpAdapter, type HttpAdapterOptions } from './http-adapter.ts';

const GEMINI_BASE_URL = 'https://generativelanguage.googleapis.com';

export type GenerateMethod = 'generateContent' | 'streamGenerateContent?alt=sse';

export class GeminiAdapter extends HttpAdapter implements ProviderAdapter {
  /** `options` lets other hosts of the same body (Vertex AI's publisher models) reuse the adapter under their paths and auth. */
  constructor(init: AdapterInit, options?: HttpAdapterOptions) {
    super(
      init,
      options ?? {
        defaultBaseUrl: GEMINI_BASE_URL,
        keyHeader: 'x-goog-api-key',
        // Paths carry the API version; a base_url written with it would double it.
        normalizeBaseUrl: (url) => url.replace(/\/v1(beta)?\/?$/, ''),
      },
    );
  }

  /** Where a model's generate method is. */
  protected path(target: ModelTarget, method: GenerateMethod): string {
    return `/v1beta/models/${encodeURIComponent(modelId(target.model))}:${method}`;
  }

  /** The models list, for the health probe. */
  protected modelsPath(): string {
    return '/v1beta/models';
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const dropped = new Set<string>();
    const body = encodeGenerateContentRequest(this.forProvider(request, false, dropped), dropped);
    const json = await this.call(() => this.client.json<GeminiResponse | null>(this.post(this.path(target, 'generateContent'), body, target, ctx)));
    reportDropped(ctx, dropped);
    if (!json || (!Array.isArray(json.candidates) && !json.promptFeedback)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without candidates`);
    return decodeGenerateContentResponse(json, target.model, `gen-${ctx.requestId}`);
  }

  async *chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = encodeGenerateContentRequest(this.forProvider(request, true, dropped), dropped);
    const response = await this.call(() => this.client.send(this.post(this.path(target, 'streamGenerateContent?alt=sse'), body, target, ctx)));
    reportDropped(ctx, dropped);
    const decoder = new GenerateContentStreamDecoder(`gen-${ctx.requestId}`, target.model);
    const events: StreamEvent[] = [];
    for await (const message of this.client.sse(response.body, ctx.signal)) {
      let json: GeminiResponse & { error?: unknown };
      try {
        json = JSON.parse(message.data);
      } catch {
        throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream chunk that is not JSON`);
      }
      if (json.error) throw new UpstreamError(this.name, 'server', `${this.name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(json) });
      decoder.decode(json, events);
      yield* events;
      events.length = 0;
    }
    // Gemini's stream has no end marker: a finish reason in the last chunk says it ended on purpose.
    if (!decoder.finished) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before a finish reason`);
    decoder.end(events);
    yield* events;
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.call(() => this.client.json<{ models?: { name: string }[] }>(this.get(this.modelsPath(), ctx)));
    return (json.models ?? []).map((m) => modelId(m.name));
  }

  /**
   * Google answers a bad or expired key with 400 INVALID_ARGUMENT, not 401; only its message says so. That is
   * a provider credential problem (fail over, as for a 401), not the client's request.
   */
  private async call<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (error instanceof UpstreamError && error.status === 400 && /API key/i.test(error.upstreamMessage ?? '')) {
        throw new UpstreamError(this.name, 'auth', `${this.name} refused its API key`, { status: 400, upstreamMessage: error.upstreamMessage, cause: error });
      }
      throw error;
    }
  }
}
