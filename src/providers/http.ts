/**
 * Upstream HTTP for adapters: one keep-alive undici Pool per origin, shared by every provider on that
 * origin and built once per config load; error mapping to UpstreamError; SSE and NDJSON readers.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Dispatcher, Pool } from 'undici';
// The two files we need, not undici's index (fetch, WebSocket, caches, mocks): see src/types/deep-imports.d.ts.
// Types still come from 'undici', so the published declarations never name these paths.
import UndiciPool from 'undici/lib/dispatcher/pool.js';
import undiciErrors from 'undici/lib/core/errors.js';
import { bodyRetryDelay, failureKindForStatus, isDeadline, parseRetryAfter, upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { collect, openBody, type CollectedResponse, type StreamedResponse, type UpstreamHeaders } from './upstream-body.ts';

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new UndiciPool(origin, { connections: 128, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close().catch(() => pool.destroy())));
    this.pools.clear();
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
}



export class UpstreamClient {
  readonly provider: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  /** The provider's fixed headers in flat form, with and without a JSON content-type (built once). */
  private readonly postHeaders: readonly string[];
  private readonly getHeaders: readonly string[];
  /** Lower-cased names of the configured headers, to let an attempt's own header of the same name replace one. */
  private readonly configuredNames: ReadonlySet<string>;
  private readonly timeoutMs: number;

  constructor(opts: {
    provider: string;
    baseUrl: string;
    pools: PoolRegistry;
    headers: Record<string, string>;
    timeoutMs: number;
  }) {
    const url = new URL(opts.baseUrl);
    this.provider = opts.provider;
    this.pool = opts.pools.get(url.origin);
    this.basePath = url.pathname.replace(/\/+$/, '');
    const configured = Object.entries(opts.headers);
    this.configuredNames = new Set(configured.map(([name]) => name.toLowerCase()));
    this.getHeaders = configured.flat();
    // Our JSON content-type, unless the config names its own.
    this.postHeaders = this.configuredNames.has('content-type') ? this.getHeaders : ['content-type', 'application/json', ...this.getHeaders];
    this.timeoutMs = opts.timeoutMs;
  }

  private options(req: UpstreamRequest): Dispatcher.DispatchOptions {
    const fixed = req.body === undefined ? this.getHeaders : this.postHeaders;
    return {
      method: req.method,
      path: this.basePath + req.path,
      headers: req.headers ? this.withAttemptHeaders(fixed, req.headers) : (fixed as string[]),
      // A string is a body already serialized (the lossless lane's client text): sent as it is.
      body: req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body),
      // Per attempt: time to the response head, and the longest silence between body chunks.
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
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
      response = await openBody(this.pool, this.options(req), req.signal);
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
    if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
      return new UpstreamError(this.provider, 'timeout', `${this.provider} timed out`, { cause: error });
    }
    if (error instanceof SyntaxError) {
      return new UpstreamError(this.provider, 'protocol', `${this.provider} sent a body that is not JSON`, { cause: error });
    }
    return new UpstreamError(this.provider, 'connect', `${this.provider} connection failed: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

