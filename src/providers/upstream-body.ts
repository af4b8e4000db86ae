/**
 * The two ways the gateway reads an upstream answer, both on undici's dispatch API: no Readable, no
 * request-API wrapper, one handler object per request.
 *
 * - `collect`: the whole body at once, for JSON answers (a few hundred bytes, parsed in one go).
 * - `openBody`: the head as soon as it arrives, then the body as an async iterator of chunks, for streams.
 *   Chunks wait in a short queue; when it fills, the socket is paused until the reader catches up.
 *
 * The signal aborts the request at any point; an aborted or failed request rejects with undici's error.
 */
import type { Dispatcher, Pool } from 'undici';

export type UpstreamHeaders = Record<string, string | string[] | undefined>;

export interface CollectedResponse {
  statusCode: number;
  headers: UpstreamHeaders;
  body: Buffer;
}

export interface StreamedResponse {
  statusCode: number;
  headers: UpstreamHeaders;
  body: AsyncIterableIterator<Buffer>;
}

/** Chunks a stream may queue before its socket is paused (SSE chunks are small; this is a few hundred KB at most). */
const QUEUE_HIGH = 64;
const QUEUE_LOW = 16;

export function collect(pool: Pool, options: Dispatcher.DispatchOptions, signal: AbortSignal): Promise<CollectedResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const abort = new AbortLink(signal);
    let statusCode = 0;
    let headers: UpstreamHeaders = {};
    const chunks: Buffer[] = [];
    pool.dispatch(options, {
      onRequestStart: (controller) => abort.attach(controller),
      // Called again after a 1xx: the last head is the answer's.
      onResponseStart(_controller, status, responseHeaders) {
        statusCode = status;
        headers = responseHeaders;
      },
      onResponseData(_controller, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        abort.detach();
        resolve({ statusCode, headers, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) });
      },
      onResponseError(_controller, error) {
        abort.detach();
        reject(error);
      },
    });
  });
}

/** Resolves with the head once it arrives; the caller must read the body to its end or call `return()` on it. */
export function openBody(pool: Pool, options: Dispatcher.DispatchOptions, signal: AbortSignal): Promise<StreamedResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const abort = new AbortLink(signal);
    const body = new BodyChunks(abort);
    let started = false;
    pool.dispatch(options, {
      onRequestStart: (controller) => abort.attach(controller),
      onResponseStart(_controller, status, headers) {
        if (status < 200) return; // 1xx: the answer's head is still to come
        started = true;
        resolve({ statusCode: status, headers, body });
      },
      onResponseData(_controller, chunk) {
        body.push(chunk);
      },
      onResponseEnd() {
        abort.detach();
        body.end();
      },
      onResponseError(_controller, error) {
        abort.detach();
        if (started) body.fail(error);
        else reject(error);
      },
    });
  });
}

/** Forwards an AbortSignal to the request's dispatch controller, whenever each of them comes. */
class AbortLink {
  private readonly signal: AbortSignal;
  controller: Dispatcher.DispatchController | undefined;
  private readonly onAbort = () => this.controller?.abort(this.signal.reason);

  constructor(signal: AbortSignal) {
    this.signal = signal;
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  attach(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal.aborted) controller.abort(this.signal.reason);
  }

  detach(): void {
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** A streamed body: chunks in arrival order, then the end or the error that cut it. */
class BodyChunks implements AsyncIterableIterator<Buffer> {
  private readonly link: AbortLink;
  private readonly queue: Buffer[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;
  private waiting: { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: unknown) => void } | undefined;

  constructor(link: AbortLink) {
    this.link = link;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }

  push(chunk: Buffer): void {
    if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = undefined;
      resolve({ value: chunk, done: false });
      return;
    }
    this.queue.push(chunk);
    if (this.queue.length >= QUEUE_HIGH) this.link.controller?.pause();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: unknown): void {
    this.failure = { error };
    this.ended = true;
    this.wake();
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.queue.length > 0) {
      const value = this.queue.shift() as Buffer;
      const controller = this.link.controller;
      if (controller?.paused && this.queue.length <= QUEUE_LOW) controller.resume();
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** The reader stopped early: abort the rest of the answer (its connection cannot be reused mid-body). */
  return(): Promise<IteratorResult<Buffer>> {
    if (!this.ended) {
      this.ended = true;
      this.queue.length = 0;
      this.link.detach();
      this.link.controller?.abort(new DOMException('the reader stopped before the body ended', 'AbortError'));
    }
    return Promise.resolve(DONE);
  }

  private wake(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    if (this.failure) waiting.reject(this.failure.error);
    else waiting.resolve(DONE);
  }
}
