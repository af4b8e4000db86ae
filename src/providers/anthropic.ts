/** Adapter for Anthropic's Messages API (and servers that speak it). Anthropic offers no embeddings. */
import { type AnthropicMessageJson, type AnthropicStreamEvent, decodeMessagesResponse, encodeMessagesRequest, MessagesStreamDecoder } from '../dialects/anthropic/upstream.ts';
import { ANTHROPIC_RELAY, STREAM_ERROR_KINDS } from '../dialects/anthropic/relay.ts';
import type { CountTokensAnswer } from '../dialects/anthropic/shared.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { HttpAdapter } from './http-adapter.ts';
import type { UpstreamClient } from './http.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';

const ANTHROPIC_BASE_URL = 'https://api.anthropic.com';
const ANTHROPIC_VERSION = '2023-06-01';
/** Anthropic requires max_tokens; used when neither the client nor the provider config gives one. */
const DEFAULT_MAX_TOKENS = 4096;

export class AnthropicAdapter extends HttpAdapter implements ProviderAdapter {
  private readonly maxTokens: number;

  constructor(init: AdapterInit) {
    super(init, {
      defaultBaseUrl: ANTHROPIC_BASE_URL,
      keyHeader: 'x-api-key',
      protocolHeaders: { 'anthropic-version': init.config.anthropic_version ?? ANTHROPIC_VERSION },
      // Paths carry the /v1 (as in Anthropic's SDKs); a base_url written with /v1 would double it.
      normalizeBaseUrl: (url) => url.replace(/\/v1\/?$/, ''),
      relay: { dialect: ANTHROPIC_RELAY, clientHeaders: ['anthropic-version', 'anthropic-beta'] },
    });
    this.maxTokens = init.config.max_tokens ?? DEFAULT_MAX_TOKENS;
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const lossless = this.losslessOf(request);
    if (lossless) return this.relayComplete(lossless, target, ctx);
    const dropped = new Set<string>();
    const body = encodeMessagesRequest(this.forProvider(request, false, dropped), target.model, this.maxTokens, dropped);
    const json = await this.client.json<AnthropicMessageJson>(this.post('/v1/messages', body, target, ctx));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.content)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without content`);
    return decodeMessagesResponse(json, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    const lossless = this.losslessOf(request);
    return lossless ? this.relayStream(lossless, target, ctx) : this.translatedStream(request, target, ctx);
  }

  private async *translatedStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = encodeMessagesRequest(this.forProvider(request, true, dropped), target.model, this.maxTokens, dropped);
    const response = await this.client.send(this.post('/v1/messages', body, target, ctx));
    reportDropped(ctx, dropped);
    yield* messagesStream(this.client, response.body, ctx.signal);
  }

  /**
   * Anthropic's own count (POST /v1/messages/count_tokens) of the client's request as it sent it, with the
   * target's model and the client's `anthropic-beta` (betas change what is counted, e.g. context management).
   */
  /** The provider's own count (count_tokens), sent like a lossless-lane request: the client's body and headers. */
  async countTokens(request: LosslessRequest, target: ModelTarget, ctx: AttemptContext): Promise<CountTokensAnswer> {
    const json = await this.client.json<CountTokensAnswer>({
      method: 'POST',
      path: '/v1/messages/count_tokens' + request.query,
      body: { ...request.body, model: target.model },
      headers: this.protocolHeaders(request, target, ctx),
      signal: ctx.signal,
    });
    if (typeof json?.input_tokens !== 'number') throw new UpstreamError(this.name, 'protocol', `${this.name} answered a token count without input_tokens`);
    return json;
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.client.json<{ data?: { id: string }[] }>(this.get('/v1/models', ctx));
    return (json.data ?? []).map((m) => m.id);
  }
}

/**
 * The canonical events of a Messages SSE stream (Anthropic's API, or a cloud that hosts Claude and streams the
 * same events). An `error` event throws UpstreamError of its kind; a stream without message_stop is cut.
 */
export async function* messagesStream(client: UpstreamClient, body: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  const name = client.provider;
  const decoder = new MessagesStreamDecoder();
  const events: StreamEvent[] = [];
  for await (const message of client.sse(body, signal)) {
    let json: AnthropicStreamEvent;
    try {
      json = JSON.parse(message.data);
    } catch {
      throw new UpstreamError(name, 'protocol', `${name} sent a stream event that is not JSON`);
    }
    if (json.type === 'error') {
      const kind = STREAM_ERROR_KINDS[json.error?.type ?? ''] ?? 'server';
      throw new UpstreamError(name, kind, `${name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(json) });
    }
    decoder.decode(json, events);
    for (const event of events) yield event;
    events.length = 0;
  }
  if (!decoder.done) throw new UpstreamError(name, 'protocol', `${name} stream ended before message_stop`);
}
