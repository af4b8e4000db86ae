/** Adapter for Anthropic's Messages API (and servers that speak it). Anthropic offers no embeddings. */
import {
  type AnthropicMessageJson,
  type AnthropicStreamEvent,
  decodeMessagesResponse,
  encodeMessagesRequest,
  MessagesStreamDecoder,
} from '../dialects/anthropic.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from './canonical.ts';
import { upstreamErrorMessage, UpstreamError, type UpstreamFailureKind } from './errors.ts';
import { HttpAdapter } from './http-adapter.ts';

const ANTHROPIC_BASE_URL = 'https://api.anthropic.com';
const ANTHROPIC_VERSION = '2023-06-01';
/** Anthropic requires max_tokens; used when neither the client nor the provider config gives one. */
const DEFAULT_MAX_TOKENS = 4096;

/** Error types of an `event: error` frame, which arrives with a 200 status already sent. */
const STREAM_ERROR_KINDS: Record<string, UpstreamFailureKind> = {
  overloaded_error: 'overloaded',
  rate_limit_error: 'rate_limited',
  timeout_error: 'timeout',
  invalid_request_error: 'client',
  authentication_error: 'auth',
  permission_error: 'auth',
};

export class AnthropicAdapter extends HttpAdapter implements ProviderAdapter {
  private readonly maxTokens: number;

  constructor(init: AdapterInit) {
    super(init, {
      defaultBaseUrl: ANTHROPIC_BASE_URL,
      keyHeader: 'x-api-key',
      protocolHeaders: { 'anthropic-version': init.config.anthropic_version ?? ANTHROPIC_VERSION },
      // Paths carry the /v1 (as in Anthropic's SDKs); a base_url written with /v1 would double it.
      normalizeBaseUrl: (url) => url.replace(/\/v1\/?$/, ''),
    });
    this.maxTokens = init.config.max_tokens ?? DEFAULT_MAX_TOKENS;
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const dropped = new Set<string>();
    const body = encodeMessagesRequest(this.forProvider(request, false, dropped), target.model, this.maxTokens, dropped);
    const json = await this.client.json<AnthropicMessageJson>(this.post('/v1/messages', body, target, ctx));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.content)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without content`);
    return decodeMessagesResponse(json, target.model);
  }

  async *chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = encodeMessagesRequest(this.forProvider(request, true, dropped), target.model, this.maxTokens, dropped);
    const response = await this.client.send(this.post('/v1/messages', body, target, ctx));
    reportDropped(ctx, dropped);
    const decoder = new MessagesStreamDecoder();
    const events: StreamEvent[] = [];
    for await (const message of this.client.sse(response.body, ctx.signal)) {
      let json: AnthropicStreamEvent;
      try {
        json = JSON.parse(message.data);
      } catch {
        throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream event that is not JSON`);
      }
      if (json.type === 'error') {
        const kind = STREAM_ERROR_KINDS[json.error?.type ?? ''] ?? 'server';
        throw new UpstreamError(this.name, kind, `${this.name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(json) });
      }
      decoder.decode(json, events);
      for (const event of events) yield event;
      events.length = 0;
    }
    if (!decoder.done) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before message_stop`);
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.client.json<{ data?: { id: string }[] }>(this.get('/v1/models', ctx));
    return (json.data ?? []).map((m) => m.id);
  }
}
