/**
 * What every HTTP provider adapter shares: its UpstreamClient (pooled, built once per config load),
 * its key, and the headers each attempt carries (our request id, the client's trace context, and the
 * key in the header that provider expects).
 */
import type { ProviderType } from '../config/schema.ts';
import type { AdapterInit, AttemptContext, ModelTarget } from './adapter.ts';
import type { CanonicalRequest } from './canonical.ts';
import { UpstreamClient, type UpstreamRequest } from './http.ts';

export interface HttpAdapterOptions {
  defaultBaseUrl: string;
  /** `authorization` sends `Bearer KEY`; `x-api-key` sends the key as is. */
  keyHeader: 'authorization' | 'x-api-key';
  /** Headers of the provider's protocol, before the config's own `headers`. */
  protocolHeaders?: Record<string, string>;
  /** Adjusts the configured base URL (e.g. Anthropic paths already carry /v1). */
  normalizeBaseUrl?: (url: string) => string;
}

export abstract class HttpAdapter {
  readonly name: string;
  readonly type: ProviderType;
  protected readonly client: UpstreamClient;
  private readonly keyHeader: HttpAdapterOptions['keyHeader'];
  /** The provider key as its header carries it, made once. */
  private readonly keyValue?: string;
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
      headers: { ...opts.protocolHeaders, ...config.headers },
      timeoutMs: config.timeout ?? 60_000,
    });
  }

  /** The request as this provider takes it: without the reasoning setting where the config says so (reported). */
  protected forProvider(request: CanonicalRequest, stream: boolean, dropped: Set<string>): CanonicalRequest {
    if (this.sendReasoning || !request.reasoning) return { ...request, stream };
    dropped.add('reasoning');
    return { ...request, stream, reasoning: undefined };
  }

  /** A POST of `body` to `path` for this attempt: its headers (key, request id, trace) and signal. */
  protected post(path: string, body: unknown, target: ModelTarget, ctx: AttemptContext): UpstreamRequest {
    return { method: 'POST', path, body, headers: this.headers(target, ctx), signal: ctx.signal };
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
