/**
 * Upstream HTTP for adapters: one keep-alive undici Pool per origin, shared by every provider on that
 * origin and built once per config load; error mapping to UpstreamError; SSE and NDJSON readers.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { failureKindForStatus, parseRetryAfter, UpstreamError } from './errors.ts';

export class PoolRegistry {
  private readonly pools = new Map<string, Pool>();

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
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
  headers?: Record<string, string>;
  signal: AbortSignal;
}

/** Reads the provider's error message out of its error body, in its own dialect. */
export type ErrorMessageReader = (body: unknown) => string | undefined;

export class UpstreamClient {
  readonly provider: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly baseHeaders: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly readErrorMessage: ErrorMessageReader;

  constructor(opts: {
    provider: string;
    baseUrl: string;
    pools: PoolRegistry;
    headers: Record<string, string>;
    timeoutMs: number;
    readErrorMessage: ErrorMessageReader;
  }) {
    const url = new URL(opts.baseUrl);
    this.provider = opts.provider;
    this.pool = opts.pools.get(url.origin);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.baseHeaders = opts.headers;
    this.timeoutMs = opts.timeoutMs;
    this.readErrorMessage = opts.readErrorMessage;
  }

  /** Sends a request; resolves with a 2xx response whose body the caller must consume, else throws UpstreamError. */
  async send(req: UpstreamRequest): Promise<Dispatcher.ResponseData> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: req.method,
        path: this.basePath + req.path,
        headers: req.body === undefined
          ? { ...this.baseHeaders, ...req.headers }
          : { 'content-type': 'application/json', ...this.baseHeaders, ...req.headers },
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal: req.signal,
        // Per attempt: time to the response head, and the longest silence between body chunks.
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (error) {
      throw this.transportError(error, req.signal);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    throw await this.statusError(response);
  }

  async json<T>(req: UpstreamRequest): Promise<T> {
    const response = await this.send(req);
    try {
      return (await response.body.json()) as T;
    } catch (error) {
      throw this.transportError(error, req.signal);
    }
  }

  private async statusError(response: Dispatcher.ResponseData): Promise<UpstreamError> {
    let message: string | undefined;
    try {
      const text = await response.body.text();
      try {
        message = this.readErrorMessage(JSON.parse(text));
      } catch {
        message = text.slice(0, 200) || undefined;
      }
    } catch {
      // the body broke off; the status is what matters
    }
    const status = response.statusCode;
    return new UpstreamError(this.provider, failureKindForStatus(status), `${this.provider} answered ${status}`, {
      status,
      retryAfterSeconds: parseRetryAfter(response.headers['retry-after']),
      upstreamMessage: message,
    });
  }

  /** Maps undici and abort errors to what the gateway switches on. */
  transportError(error: unknown, signal: AbortSignal): UpstreamError {
    if (error instanceof UpstreamError) return error;
    if (signal.aborted) {
      const timedOut = (signal.reason as Error | undefined)?.name === 'TimeoutError';
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

/** Server-sent events from an upstream body. */
export async function* readSse(body: AsyncIterable<Buffer>): AsyncGenerator<EventSourceMessage> {
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event) });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    while (pending.length > 0) yield pending.shift() as EventSourceMessage;
  }
}

/** Newline-delimited JSON objects from an upstream body (Ollama's streams). */
export async function* readNdjson(body: AsyncIterable<Buffer>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  let buffered = '';
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
}

/** Wraps an upstream stream so transport failures mid-stream surface as UpstreamError. */
export async function* guardStream<T>(client: UpstreamClient, signal: AbortSignal, source: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (error) {
    throw client.transportError(error, signal);
  }
}
