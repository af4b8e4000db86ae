/** What every provider adapter offers the gateway. An adapter knows one upstream dialect and nothing of routes. */
import type { ProviderConfig, ProviderType } from '../config/schema.ts';
import type { CountTokensAnswer, CountTokensRequest } from '../dialects/anthropic-count-tokens.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from './canonical.ts';
import type { PoolRegistry } from './http.ts';

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
}

export interface ProviderAdapter {
  readonly name: string;
  readonly type: ProviderType;
  chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse>;
  /** Yields canonical events; throws UpstreamError from the iteration when the upstream fails. */
  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<StreamEvent>;
  embeddings?(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse>;
  /** The provider's own count of an Anthropic Messages request's input tokens (count_tokens), where it has one. */
  countTokens?(request: CountTokensRequest, target: ModelTarget, ctx: AttemptContext, beta?: string): Promise<CountTokensAnswer>;
  /** The cheap health probe: the provider's list-models endpoint. */
  listModels(ctx: AttemptContext): Promise<string[]>;
}

export interface AdapterInit {
  name: string;
  config: ProviderConfig;
  pools: PoolRegistry;
}
