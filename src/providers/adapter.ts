/** What every provider adapter offers the gateway. An adapter knows one upstream dialect and nothing of routes. */
import type { ProviderConfig, ProviderType } from '../config/schema.ts';
import type { CountTokensAnswer } from '../dialects/anthropic/shared.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse } from '../core/canonical.ts';
import type { PoolRegistry } from './http.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';

/** One concrete place to send a request: a provider, the model it should run, and that model's key. */
export interface ModelTarget {
  provider: string;
  model: string;
  apiKey?: string;
}

export interface AttemptContext {
  /** Aborts when the client goes away or the request deadline passes. */
  signal: AbortSignal;
  requestId: string;
  /** W3C trace context from the client, passed upstream. */
  traceparent?: string;
  /** Streams: the route's longest silence between events, over the provider's `stream_idle_timeout`. */
  streamIdleTimeoutMs?: number;
  /**
   * Streams: the gateway continues a stream cut mid-way elsewhere (resume_streams), so a provider's mid-stream
   * error event is not passed on to the client (the lossless lane would otherwise forward it as sent).
   */
  resumable?: boolean;
  /**
   * Filled by the adapter that answered: request fields (dotted paths) its upstream dialect cannot express,
   * so they were left out. The route reports them (X-Hapax-Dropped, the request log).
   */
  dropped?: Set<string>;
}

export interface ProviderAdapter {
  readonly name: string;
  readonly type: ProviderType;
  chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse>;
  /**
   * Yields canonical events (and, on the lossless lane, the provider's own frames with the usage and finish
   * events read from them); throws UpstreamError from the iteration when the upstream fails.
   */
  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent>;
  embeddings?(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse>;
  /**
   * The provider's own count of an Anthropic Messages request's input tokens (count_tokens), where it has one:
   * the client's body and protocol headers, under the same header policy as the lossless lane.
   */
  countTokens?(request: LosslessRequest, target: ModelTarget, ctx: AttemptContext): Promise<CountTokensAnswer>;
  /** Whether countTokens can count for this model (a cloud counts only its Anthropic models); absent: every model. */
  countsTokensFor?(model: string): boolean;
  /** The cheap health probe: the provider's list-models endpoint. */
  listModels(ctx: AttemptContext): Promise<string[]>;
}

export interface AdapterInit {
  name: string;
  config: ProviderConfig;
  pools: PoolRegistry;
}

/**
 * Says what this attempt's encoding left out. Only the attempt that answers counts: call it once the
 * upstream accepted the request, so an attempt that failed over reports nothing.
 */
export function reportDropped(ctx: AttemptContext, dropped: ReadonlySet<string>): void {
  const out = ctx.dropped;
  if (!out) return;
  out.clear();
  for (const field of dropped) out.add(field);
}
