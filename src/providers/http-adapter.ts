/**
 * What every HTTP provider adapter shares: its UpstreamClient (pooled, built once per config load),
 * its key, and the headers each attempt carries (our request id, the client's trace context, and the
 * key in the header that provider expects).
 */
import type { ProviderType } from '../config/schema.ts';
import type { AdapterInit, AttemptContext, ModelTarget } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse } from '../core/canonical.ts';
import { UpstreamClient, type UpstreamRequest } from './http.ts';
import { BetaPolicy, Relay, type RelayTransport } from './relay.ts';
import type { ChatStreamEvent, LosslessRequest, RelayDialect, WireDialect } from '../core/lossless.ts';

export interface HttpAdapterOptions {
  defaultBaseUrl: string;
  /** `authorization` sends `Bearer KEY`; the others send the key as is (api-key: Azure, x-goog-api-key: Gemini). */
  keyHeader: 'authorization' | 'x-api-key' | 'api-key' | 'x-goog-api-key';
  /** Headers of the provider's protocol, before the config's own `headers`. */
  protocolHeaders?: Record<string, string>;
  /** Adjusts the configured base URL (e.g. Anthropic paths already carry /v1). */
  normalizeBaseUrl?: (url: string) => string;
  /**
   * The lossless lane for clients of this provider's dialect(s), and the client headers that travel with it;
   * `transport` carries the main dialect's lane where the host's API is not the dialect's own (the clouds).
   */
  relay?: { dialect: RelayDialect; clientHeaders: readonly string[]; more?: readonly RelayDialect[]; transport?: RelayTransport };
}

export abstract class HttpAdapter {
  readonly name: string;
  readonly type: ProviderType;
  protected readonly client: UpstreamClient;
  private readonly keyHeader: HttpAdapterOptions['keyHeader'];
  /** The provider key as its header carries it, made once. */
  private readonly keyValue?: string;
  /** One per dialect this provider speaks as its clients do (OpenAI: Chat Completions and Responses). */
  private readonly relays = new Map<WireDialect, Relay>();
  /** Client protocol headers forwarded on the lossless lane, minus those the config pins. */
  private readonly clientHeaders: readonly string[] = [];
  private readonly betas: BetaPolicy;
  private readonly sendReasoning: boolean;

  constructor({ name, config, pools }: AdapterInit, opts: HttpAdapterOptions) {
    this.name = name;
    this.type = config.type;
    this.keyHeader = opts.keyHeader;
    this.keyValue = config.api_key ? this.keyHeaderValue(config.api_key) : undefined;
    this.sendReasoning = config.send_reasoning !== false;
    const baseUrl = config.base_url ?? opts.defaultBaseUrl;
    this.client = new UpstreamClient({
      provider: name,
      baseUrl: opts.normalizeBaseUrl ? opts.normalizeBaseUrl(baseUrl) : baseUrl,
      pools,
      pool: { maxConnections: config.max_connections, http2: config.http2 !== false },
      headers: { ...opts.protocolHeaders, ...config.headers },
      timeoutMs: config.timeout ?? 60_000,
      streamIdleTimeoutMs: config.stream_idle_timeout,
    });
    if (opts.relay && config.lossless) {
      this.relays.set(opts.relay.dialect.dialect, new Relay(this.client, opts.relay.dialect, opts.relay.transport));
      for (const dialect of opts.relay.more ?? []) this.relays.set(dialect.dialect, new Relay(this.client, dialect));
      // A header the config sets (anthropic_version, `headers`) is pinned: the client's is not forwarded.
      const pinned = new Set(Object.keys({ ...config.headers, ...(config.anthropic_version ? { 'anthropic-version': '' } : {}) }).map((n) => n.toLowerCase()));
      this.clientHeaders = opts.relay.clientHeaders.filter((name) => !pinned.has(name));
    }
    this.betas = new BetaPolicy(config.betas);
  }

  /** The client's own request when this provider speaks its dialect and the lane is on; else undefined. */
  protected losslessOf(request: CanonicalRequest): LosslessRequest | undefined {
    const lossless = request.lossless;
    return lossless && this.relays.has(lossless.dialect) ? lossless : undefined;
  }

  /** A whole answer on the lossless lane; `path` (with its query) replaces the dialect's for hosts that place it elsewhere. */
  protected relayComplete(lossless: LosslessRequest, target: ModelTarget, ctx: AttemptContext, path?: string): Promise<CanonicalResponse> {
    return (this.relays.get(lossless.dialect) as Relay).complete({ request: lossless, target, ctx, headers: this.protocolHeaders(lossless, target, ctx), path });
  }

  /** A stream on the lossless lane (`path` as in relayComplete). */
  protected relayStream(lossless: LosslessRequest, target: ModelTarget, ctx: AttemptContext, path?: string): AsyncIterable<ChatStreamEvent> {
    return (this.relays.get(lossless.dialect) as Relay).stream({ request: lossless, target, ctx, headers: this.protocolHeaders(lossless, target, ctx), path });
  }

  /** This attempt's headers plus the client's protocol headers (betas filtered by the provider's policy). */
  protected protocolHeaders(lossless: LosslessRequest, target: ModelTarget, ctx: AttemptContext): string[] {
    const headers = this.headers(target, ctx);
    for (const name of this.clientHeaders) {
      const value = lossless.headers[name];
      if (value === undefined) continue;
      const kept = name.endsWith('-beta') ? this.betas.filter(value) : value;
      if (kept !== undefined) headers.push(name, kept);
    }
    return headers;
  }

  /** The request as this provider takes it: without the reasoning setting where the config says so (reported). */
  protected forProvider(request: CanonicalRequest, stream: boolean, dropped: Set<string>): CanonicalRequest {
    if (this.sendReasoning || !request.reasoning) return { ...request, stream };
    dropped.add('reasoning');
    return { ...request, stream, reasoning: undefined };
  }

  /** A POST of `body` to `path` for this attempt: its headers (key, request id, trace) and signal. */
  protected post(path: string, body: unknown, target: ModelTarget, ctx: AttemptContext): UpstreamRequest {
    return { method: 'POST', path, body, headers: this.headers(target, ctx), signal: ctx.signal, idleTimeoutMs: ctx.streamIdleTimeoutMs };
  }

  /** A GET of `path` that concerns no model in particular (model lists, health probes). */
  protected get(path: string, ctx: AttemptContext): UpstreamRequest {
    return { method: 'GET', path, headers: this.headers({ provider: this.name, model: '' }, ctx), signal: ctx.signal };
  }

  /** This attempt's headers, as name, value pairs. */
  protected headers(target: ModelTarget, ctx: AttemptContext): string[] {
    const headers = ['x-request-id', ctx.requestId];
    // A model's own key (config `models.<name>.api_key`) wins over the provider's.
    const key = target.apiKey ? this.keyHeaderValue(target.apiKey) : this.keyValue;
    if (key) headers.push(this.keyHeader, key);
    if (ctx.traceparent) headers.push('traceparent', ctx.traceparent);
    return headers;
  }

  private keyHeaderValue(key: string): string {
    return this.keyHeader === 'authorization' ? `Bearer ${key}` : key;
  }
}
