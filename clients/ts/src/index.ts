/**
 * Client for Hapax's native completion API (`/v1/completions`), with no dependencies beyond `fetch`
 * (Node.js 18+, Deno, Bun, browsers).
 *
 * - `completion()` returns `{completion, request_id, provider, model, finish_reason, usage}`.
 * - `stream()` is an async iterator over the native event stream: `delta` events, then one `done` event;
 *   an `error` event from the gateway is thrown as a HapaxError.
 * - `health()` returns the gateway's /health report (also when it answers 503: that is a report too).
 * - Every call sends an `X-Request-ID` (yours, or a fresh UUID); retries of a call reuse it.
 * - 429 and 503 answers are retried, at most `maxRetries` times, waiting what `Retry-After` says, or an
 *   exponential backoff with jitter when it says nothing. A wait longer than `maxRetryDelayMs` is not
 *   made: the error is thrown with its `retryAfter` so the caller can decide.
 * - Failures are thrown as HapaxError subclasses carrying `status`, `type` and `requestId`.
 *
 * For the OpenAI- and Anthropic-compatible endpoints use the official SDKs with their base URL set to
 * Hapax; this client covers the native API.
 */

export interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  /** The conversation; give this or `input`. */
  messages?: Message[];
  /** A single user message. */
  input?: string;
  /** Guidance given to the model as a system message. */
  function_description?: string;
  /** Empty or absent: the gateway's provider preference. Else a provider name, a model, or provider/model. */
  model?: string;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface CompletionResponse {
  completion: string;
  request_id: string;
  provider: string;
  model: string;
  finish_reason: string;
  usage: Usage;
}

export interface DeltaEvent {
  type: 'delta';
  text: string;
}

export interface DoneEvent extends CompletionResponse {
  type: 'done';
}

export type StreamEvent = DeltaEvent | DoneEvent;

export interface ProviderHealth {
  healthy: boolean;
  last_check: string | null;
  consecutive_fails: number;
  latency_ms: number;
  error_count: number;
  request_count: number;
  circuit_breaker?: 'closed' | 'half_open' | 'open';
}

export interface HealthReport {
  status: { global: boolean };
  services: Record<string, 'healthy' | 'unhealthy'>;
  providers: Record<string, ProviderHealth>;
}

export interface ClientOptions {
  /** Where Hapax listens, e.g. http://localhost:8080 (no path). */
  baseURL: string;
  /** Sent as X-API-Key when the gateway has auth on. */
  apiKey?: string;
  /** The completion route; a route of your own such as /v1/marketing/completions works too. */
  path?: string;
  /** Per attempt; for streams, until the stream starts. Default 30 s. */
  timeoutMs?: number;
  /** Retries after a 429 or 503. Default 2. */
  maxRetries?: number;
  /** First backoff when the answer has no Retry-After. Default 500 ms. */
  initialRetryDelayMs?: number;
  /** Longest wait before a retry; a longer Retry-After is not waited for. Default 8 s. */
  maxRetryDelayMs?: number;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Sent as X-Request-ID (1-128 visible ASCII characters); a UUID when absent. */
  requestId?: string;
  signal?: AbortSignal;
  /** Overrides the client's completion path for this call. */
  path?: string;
  headers?: Record<string, string>;
}

/** Error types as the gateway names them, plus what can only happen on the client's side. */
export type HapaxErrorType =
  | 'ValidationError'
  | 'AuthenticationError'
  | 'RateLimitError'
  | 'ProcessingError'
  | 'InternalError'
  | 'NotFoundError'
  | 'ConnectionError'
  | 'TimeoutError';

export interface HapaxErrorInit {
  status: number;
  type: HapaxErrorType | string;
  requestId?: string;
  details?: Record<string, unknown>;
  retryAfter?: number;
  cause?: unknown;
}

export class HapaxError extends Error {
  /** HTTP status; 0 when no answer arrived (connection failure, timeout). */
  readonly status: number;
  readonly type: string;
  /** The X-Request-ID of the failed call: quote it when you look for it in the gateway's logs. */
  readonly requestId: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds the gateway asked us to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;
  constructor(message: string, init: HapaxErrorInit) {
    super(message, { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.type = init.type;
    this.requestId = init.requestId;
    this.details = init.details;
    this.retryAfter = init.retryAfter;
  }
}

export class ValidationError extends HapaxError {}
export class AuthenticationError extends HapaxError {}
export class RateLimitError extends HapaxError {}
export class ProcessingError extends HapaxError {}
export class InternalError extends HapaxError {}
export class ConnectionError extends HapaxError {}
export class TimeoutError extends HapaxError {}

const ERROR_CLASSES: Record<string, new (message: string, init: HapaxErrorInit) => HapaxError> = {
  ValidationError,
  NotFoundError: ValidationError,
  AuthenticationError,
  RateLimitError,
  ProcessingError,
  InternalError,
};

function classFor(type: string, status: number) {
  return (
    ERROR_CLASSES[type] ??
    (status === 401 || status === 403 ? AuthenticationError : status === 429 ? RateLimitError : status >= 500 ? ProcessingError : ValidationError)
  );
}

/** Retry-After in seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

async function errorFrom(response: Response, requestId: string): Promise<HapaxError> {
  const text = await response.text().catch(() => '');
  let body: { error?: { type?: string; message?: string; request_id?: string; details?: Record<string, unknown> } } | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = body?.error;
  const status = response.status;
  const type = error?.type ?? (status === 429 ? 'RateLimitError' : status >= 500 ? 'ProcessingError' : 'ValidationError');
  const Class = classFor(type, status);
  return new Class(error?.message ?? `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`, {
    status,
    type,
    requestId: error?.request_id ?? response.headers.get('x-request-id') ?? requestId,
    details: error?.details,
    retryAfter: parseRetryAfter(response.headers.get('retry-after')),
  });
}

const RETRY_STATUSES = new Set([429, 503]);

export class HapaxClient {
  private readonly baseURL: string;
  private readonly options: Required<Pick<ClientOptions, 'path' | 'timeoutMs' | 'maxRetries' | 'initialRetryDelayMs' | 'maxRetryDelayMs'>> & ClientOptions;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions) {
    if (!options?.baseURL) throw new TypeError('baseURL is required, e.g. http://localhost:8080');
    this.baseURL = options.baseURL.replace(/\/+$/, '');
    this.options = { path: '/v1/completions', timeoutMs: 30_000, maxRetries: 2, initialRetryDelayMs: 500, maxRetryDelayMs: 8_000, ...options };
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** One completion. */
  async completion(request: CompletionRequest, call: CallOptions = {}): Promise<CompletionResponse> {
    const { response, requestId, finished } = await this.send('POST', call.path ?? this.options.path, { ...request, stream: false }, call, false);
    try {
      return (await response.json()) as CompletionResponse;
    } catch (error) {
      throw new ProcessingError('the gateway sent an answer that is not JSON', { status: response.status, type: 'ProcessingError', requestId, cause: error });
    } finally {
      finished();
    }
  }

  /**
   * A streamed completion: `for await (const event of client.stream({input}))`. Text arrives as `delta`
   * events; the last event is `done`, with the whole completion and the token usage.
   */
  async *stream(request: CompletionRequest, call: CallOptions = {}): AsyncGenerator<StreamEvent, void, undefined> {
    const { response, requestId, finished } = await this.send('POST', call.path ?? this.options.path, { ...request, stream: true }, call, true);
    try {
      if (!response.body) throw new ProcessingError('the gateway sent an empty stream', { status: response.status, type: 'ProcessingError', requestId });
      let sawDone = false;
      for await (const data of sseData(response.body)) {
        let event: { type?: string; error?: { type?: string; message?: string; request_id?: string; code?: number; details?: Record<string, unknown> } };
        try {
          event = JSON.parse(data);
        } catch (error) {
          throw new ProcessingError('the gateway sent a stream event that is not JSON', { status: response.status, type: 'ProcessingError', requestId, cause: error });
        }
        if (event.type === 'error') {
          const e = event.error ?? {};
          const status = typeof e.code === 'number' ? e.code : 502;
          const type = e.type ?? 'ProcessingError';
          const Class = classFor(type, status);
          throw new Class(e.message ?? 'the stream failed', { status, type, requestId: e.request_id ?? requestId, details: e.details });
        }
        if (event.type === 'delta' || event.type === 'done') {
          if (event.type === 'done') sawDone = true;
          yield event as StreamEvent;
          if (sawDone) return;
        }
      }
      if (!sawDone) throw new ProcessingError('the stream ended before its done event', { status: response.status, type: 'ProcessingError', requestId });
    } finally {
      finished();
    }
  }

  /** The gateway's health report; `status.global` is false when some route or provider is unavailable. */
  async health(call: Omit<CallOptions, 'path'> = {}): Promise<HealthReport> {
    const { response, finished } = await this.send('GET', '/health', undefined, call, false, new Set([200, 503]), 0);
    try {
      return (await response.json()) as HealthReport;
    } finally {
      finished();
    }
  }

  /**
   * Sends with retries. Resolves with a response whose status is accepted; `finished` must be called when
   * the body has been read (it clears the timer and detaches from the caller's signal).
   */
  private async send(
    method: string,
    path: string,
    body: unknown,
    call: CallOptions,
    streaming: boolean,
    accepted: ReadonlySet<number> = new Set([200]),
    maxRetries = this.options.maxRetries,
  ): Promise<{ response: Response; requestId: string; finished: () => void }> {
    const requestId = call.requestId ?? crypto.randomUUID();
    const headers: Record<string, string> = { accept: streaming ? 'text/event-stream' : 'application/json', ...this.options.headers, ...call.headers, 'x-request-id': requestId };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey) headers['x-api-key'] = this.options.apiKey;
    const url = `${this.baseURL}${path.startsWith('/') ? path : `/${path}`}`;

    for (let attempt = 0; ; attempt++) {
      call.signal?.throwIfAborted();
      const controller = new AbortController();
      const onAbort = () => controller.abort(call.signal?.reason);
      call.signal?.addEventListener('abort', onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new Error('timeout'));
      }, this.options.timeoutMs);
      const finished = () => {
        clearTimeout(timer);
        call.signal?.removeEventListener('abort', onAbort);
      };
      let response: Response;
      try {
        response = await this.fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: controller.signal });
      } catch (error) {
        finished();
        if (call.signal?.aborted) throw call.signal.reason;
        if (timedOut) throw new TimeoutError(`no answer from ${url} within ${this.options.timeoutMs} ms`, { status: 0, type: 'TimeoutError', requestId, cause: error });
        throw new ConnectionError(`could not reach ${url}: ${(error as Error).message}`, { status: 0, type: 'ConnectionError', requestId, cause: error });
      }
      // A stream's timeout covers its start only: a long answer is not a slow gateway.
      if (streaming) clearTimeout(timer);
      if (accepted.has(response.status)) return { response, requestId, finished };
      let error: HapaxError;
      try {
        error = await errorFrom(response, requestId);
      } finally {
        finished();
      }
      if (!RETRY_STATUSES.has(response.status) || attempt >= maxRetries) throw error;
      const backoff = Math.min(this.options.maxRetryDelayMs, this.options.initialRetryDelayMs * 2 ** attempt);
      const delayMs = error.retryAfter !== undefined ? error.retryAfter * 1000 : backoff / 2 + Math.random() * (backoff / 2);
      if (delayMs > this.options.maxRetryDelayMs) throw error;
      await sleep(delayMs, call.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The `data` of each Server-Sent Event (multi-line data joined with \n); comments and other fields are skipped. */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
        if (!done && newline === buffer.length - 1 && buffer[newline] === '\r') break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
        }
      }
      if (done) {
        if (data.length > 0) yield data.join('\n');
        return;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export default HapaxClient;
