/**
 * Upstream HTTP for adapters: one keep-alive undici Pool per origin, shared by every provider on that
 * origin and built once per config load; error mapping to UpstreamError; SSE and NDJSON readers.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Dispatcher, Pool } from 'undici';
// The two files we need, not undici's index (fetch, WebSocket, caches, mocks): see src/types/deep-imports.d.ts.
// Types still come from 'undici', so the published declarations never name these paths.
import UndiciPool from 'undici/lib/dispatcher/pool.js';
import UndiciClient from 'undici/lib/dispatcher/client.js';
import buildConnector from 'undici/lib/core/connect.js';
import undiciErrors from 'undici/lib/core/errors.js';
import { bodyRetryDelay, failureKindForStatus, isDeadline, parseRetryAfter, upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { collect, openBody, type CollectedResponse, type StreamedResponse, type UpstreamHeaders } from './upstream-body.ts';

/** How one provider reaches its origin: the connection cap (none by default) and whether HTTP/2 is offered. */
export interface PoolSettings {
  /** Connections to the origin at most; undefined: as many as requests in flight. */
  maxConnections?: number;
  /** Offer HTTP/2 in the TLS handshake (ALPN); the origin picks, HTTP/1.1 otherwise. */
  http2: boolean;
}

/** What the metrics read of one provider's pool when scraped. */
export interface PoolGauges {
  provider: string;
  /** Requests waiting because every connection is busy and the pool is at its `max_connections`. */
  queued: number;
  connected: number;
}

/**
 * One keep-alive undici Pool per origin and connection settings, shared by the providers that agree on both.
 * No connection cap by default: what bounds upstream traffic is each provider's `max_concurrency` (and its fair
 * queue), the gateway's own connection limit and memory, never a pool queue nobody sees.
 */
export class PoolRegistry {
  private readonly pools = new Map<string, UpstreamPool>();
  private readonly byProvider = new Map<string, Pool>();

  get(origin: string, settings: PoolSettings = { http2: true }, provider?: string): UpstreamPool {
    const key = `${origin} ${settings.maxConnections ?? '-'} ${settings.http2 ? 'h2' : 'h1'}`;
    let entry = this.pools.get(key);
    if (!entry) {
      const h2 = settings.http2 && origin.startsWith('https:');
      const pool: Pool = new UndiciPool(origin, {
        // null: no cap (undici's default is also none; said here so nobody adds one back by accident).
        connections: settings.maxConnections ?? null,
        allowH2: h2,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
        ...(h2 ? { factory: multiplexingClient } : {}),
      });
      entry = { pool, h2, firstConnection: h2 ? new FirstConnection(pool) : undefined };
      this.pools.set(key, entry);
    }
    if (provider !== undefined) this.byProvider.set(provider, entry.pool);
    return entry;
  }

  /** Each provider's pool as the scrape sees it now. */
  gauges(): PoolGauges[] {
    const out: PoolGauges[] = [];
    for (const [provider, pool] of this.byProvider) {
      const stats = pool.stats;
      out.push({ provider, queued: stats.queued, connected: stats.connected });
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map(({ pool }) => pool.close().catch(() => pool.destroy())));
    this.pools.clear();
    this.byProvider.clear();
  }
}

/** Requests one HTTP/2 connection carries at once before the pool opens another (Node's servers allow 100). */
const H2_STREAMS_PER_CONNECTION = 100;

/**
 * A pool client that carries many requests at once when its connection turned out to be HTTP/2: undici's
 * clients take one request at a time unless `pipelining` says otherwise, and saying it up front would also
 * pipeline HTTP/1.1, so it is set once ALPN has chosen h2.
 */
function multiplexingClient(origin: URL | string, options: object): Dispatcher {
  const connector = buildConnector({ allowH2: true });
  const client: InstanceType<typeof UndiciClient> = new UndiciClient(origin, {
    ...options,
    connect: (connectOptions, callback) =>
      connector(connectOptions, (error, socket) => {
        if (socket && (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2') client.pipelining = H2_STREAMS_PER_CONNECTION;
        if (error) callback(error, null);
        else callback(null, socket as NonNullable<typeof socket>);
      }),
  });
  return client;
}

export interface UpstreamPool {
  pool: Pool;
  /** HTTP/2 is offered (https origin, `http2` not false). */
  h2: boolean;
  firstConnection?: FirstConnection;
}

/**
 * Until a pool has one connection, undici cannot know the origin speaks HTTP/2, so a burst of N requests to a
 * cold origin would open N connections (each connecting client counts as busy). The first request goes ahead;
 * the others wait for its connection (or its failure), then share it when the origin chose h2.
 * Hand-written: undici has no option for it.
 */
class FirstConnection {
  private waiting: Promise<void> | undefined;
  private connected = false;

  constructor(pool: Pool) {
    pool.on('connect', () => this.settle(true));
    pool.on('connectionError', () => this.settle(false));
    // With no connection left, the next burst is cold again.
    pool.on('disconnect', () => pool.stats.connected === 0 && (this.connected = false));
  }

  private wake: (() => void) | undefined;

  private settle(connected: boolean): void {
    this.connected = connected;
    this.wake?.();
    this.wake = this.waiting = undefined;
  }

  /** Resolves at once when the pool is warm or this caller is the one to connect; else when that connection is made. */
  ready(): Promise<void> | undefined {
    if (this.connected) return undefined;
    if (this.waiting) return this.waiting;
    this.waiting = new Promise((resolve) => (this.wake = resolve));
    return undefined;
  }
}

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Path under the provider's base URL, e.g. "/chat/completions". */
  path: string;
  body?: unknown;
  /** This attempt's own headers as name, value pairs (undici's flat form: no object to build and copy). */
  headers?: readonly string[];
  signal: AbortSignal;
  /** Streams: the longest silence between body chunks, over the provider's (a route's stream_idle_timeout). */
  idleTimeoutMs?: number;
}



export class UpstreamClient {
  readonly provider: string;
  private readonly pool: Pool;
  private readonly h2: boolean;
  private readonly firstConnection?: FirstConnection;
  private readonly basePath: string;
  /** The provider's fixed headers in flat form, with and without a JSON content-type (built once). */
  private readonly postHeaders: readonly string[];
  private readonly getHeaders: readonly string[];
  /** Lower-cased names of the configured headers, to let an attempt's own header of the same name replace one. */
  private readonly configuredNames: ReadonlySet<string>;
  private readonly timeoutMs: number;
  /** Streams: the longest silence between body chunks (stream_idle_timeout, else `timeout`). */
  private readonly streamIdleTimeoutMs: number;

  constructor(opts: {
    provider: string;
    baseUrl: string;
    pools: PoolRegistry;
    pool?: PoolSettings;
    headers: Record<string, string>;
    timeoutMs: number;
    streamIdleTimeoutMs?: number;
  }) {
    const url = new URL(opts.baseUrl);
    this.provider = opts.provider;
    const upstream = opts.pools.get(url.origin, opts.pool, opts.provider);
    this.pool = upstream.pool;
    this.h2 = upstream.h2;
    this.firstConnection = upstream.firstConnection;
    this.basePath = url.pathname.replace(/\/+$/, '');
    const configured = Object.entries(opts.headers);
    this.configuredNames = new Set(configured.map(([name]) => name.toLowerCase()));
    this.getHeaders = configured.flat();
    // Our JSON content-type, unless the config names its own.
    this.postHeaders = this.configuredNames.has('content-type') ? this.getHeaders : ['content-type', 'application/json', ...this.getHeaders];
    this.timeoutMs = opts.timeoutMs;
    this.streamIdleTimeoutMs = opts.streamIdleTimeoutMs ?? opts.timeoutMs;
  }

  private options(req: UpstreamRequest, bodyTimeout = this.timeoutMs): Dispatcher.DispatchOptions {
    const fixed = req.body === undefined ? this.getHeaders : this.postHeaders;
    return {
      method: req.method,
      path: this.basePath + req.path,
      headers: req.headers ? this.withAttemptHeaders(fixed, req.headers) : (fixed as string[]),
      // A string is a body already serialized (the lossless lane's client text): sent as it is.
      body: req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body),
      // undici holds a POST back until the connection's other requests are done (it could not be retried);
      // on HTTP/2 that would serialize every answer on a connection. Hapax never relies on undici retrying.
      idempotent: this.h2 ? true : undefined,
      // Per attempt: time to the response head, and the longest silence between body chunks.
      headersTimeout: this.timeoutMs,
      bodyTimeout,
    };
  }

  /** The fixed headers plus the attempt's (lower-case names); an attempt's header replaces a configured one, never doubles it. */
  private withAttemptHeaders(fixed: readonly string[], attempt: readonly string[]): string[] {
    let overlaps = false;
    for (let i = 0; i < attempt.length && !overlaps; i += 2) overlaps = this.configuredNames.has(attempt[i]);
    if (!overlaps) return fixed.concat(attempt);
    const replaced = new Set(attempt.filter((_, i) => i % 2 === 0));
    const kept: string[] = [];
    for (let i = 0; i < fixed.length; i += 2) if (!replaced.has(fixed[i].toLowerCase())) kept.push(fixed[i], fixed[i + 1]);
    return kept.concat(attempt);
  }

  /** Sends a request for a streamed answer; resolves with a 2xx head whose body the caller must consume, else throws UpstreamError. */
  async send(req: UpstreamRequest): Promise<StreamedResponse> {
    let response: StreamedResponse;
    try {
      const cold = this.firstConnection?.ready();
      if (cold) await cold;
      // A stream's silences are bounded by its idle timeout (undici's own body timer: no timer of ours per event).
      response = await openBody(this.pool, this.options(req, req.idleTimeoutMs ?? this.streamIdleTimeoutMs), req.signal);
    } catch (error) {
      throw this.transportError(error, req.signal);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response.body) chunks.push(chunk);
    } catch {
      // the body broke off; the status is what matters
    }
    throw this.statusError(response.statusCode, response.headers, Buffer.concat(chunks).toString('utf8'));
  }

  /** Sends a request and returns its answer's text as sent; non-2xx answers throw UpstreamError. */
  async text(req: UpstreamRequest): Promise<string> {
    let response: CollectedResponse;
    try {
      const cold = this.firstConnection?.ready();
      if (cold) await cold;
      response = await collect(this.pool, this.options(req), req.signal);
    } catch (error) {
      throw this.transportError(error, req.signal);
    }
    const text = response.body.toString('utf8');
    if (response.statusCode < 200 || response.statusCode >= 300) throw this.statusError(response.statusCode, response.headers, text);
    return text;
  }

  /** Sends a request and parses its JSON answer; non-2xx answers throw UpstreamError. */
  async json<T>(req: UpstreamRequest): Promise<T> {
    const text = await this.text(req);
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw this.transportError(error, req.signal);
    }
  }

  private statusError(status: number, headers: UpstreamHeaders, text: string | undefined): UpstreamError {
    let message: string | undefined;
    let json: unknown;
    if (text) {
      try {
        json = JSON.parse(text);
        message = upstreamErrorMessage(json);
      } catch {
        message = text.slice(0, 200) || undefined;
      }
    }
    return new UpstreamError(this.provider, failureKindForStatus(status), `${this.provider} answered ${status}`, {
      status,
      retryAfterSeconds: parseRetryAfter(headers['retry-after']) ?? bodyRetryDelay(json),
      upstreamMessage: message,
    });
  }

  /**
   * The server-sent events of a streamed answer, parsed as they arrive. A transport failure mid-stream
   * surfaces as UpstreamError (one generator does both: every layer is a promise per event).
   */
  async *sse(body: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<EventSourceMessage> {
    const pending: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => pending.push(event) });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        for (let i = 0; i < pending.length; i++) yield pending[i];
        pending.length = 0;
      }
    } catch (error) {
      throw this.transportError(error, signal);
    }
  }

  /** Newline-delimited JSON objects of a streamed answer (Ollama's), with errors mapped as in sse(). */
  async *ndjson(body: AsyncIterable<Buffer>, signal: AbortSignal): AsyncGenerator<unknown> {
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of body) {
        buffered += decoder.decode(chunk, { stream: true });
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) yield JSON.parse(line);
          newline = buffered.indexOf('\n');
        }
      }
      if (buffered.trim()) yield JSON.parse(buffered);
    } catch (error) {
      throw this.transportError(error, signal);
    }
  }

  /** Maps undici and abort errors to what the gateway switches on. */
  transportError(error: unknown, signal: AbortSignal): UpstreamError {
    if (error instanceof UpstreamError) return error;
    if (signal.aborted) {
      const timedOut = isDeadline(signal.reason);
      return new UpstreamError(this.provider, timedOut ? 'timeout' : 'aborted', `${this.provider}: ${timedOut ? 'request deadline passed' : 'client went away'}`, { cause: error });
    }
    if (error instanceof undiciErrors.BodyTimeoutError) {
      return new UpstreamError(this.provider, 'timeout', `${this.provider} went silent mid-answer (past its stream_idle_timeout or timeout)`, { cause: error });
    }
    if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
      return new UpstreamError(this.provider, 'timeout', `${this.provider} timed out`, { cause: error });
    }
    if (error instanceof SyntaxError) {
      return new UpstreamError(this.provider, 'protocol', `${this.provider} sent a body that is not JSON`, { cause: error });
    }
    return new UpstreamError(this.provider, 'connect', `${this.provider} connection failed: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

