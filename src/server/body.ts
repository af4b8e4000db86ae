/**
 * The JSON body parser: decodes a compressed body (content-encoding.ts), enforces the route's own size
 * limit on the decoded bytes (413 naming it, the decoder stopped at once), bounds the time the body may
 * take to arrive (`server.read_timeout`, 408), refuses bytes that are not UTF-8, and reports where
 * malformed JSON broke. Registered once; reads the limit from the route spec.
 */
import { isUtf8 } from 'node:buffer';
import { constants as http2Constants, type Http2Stream } from 'node:http2';
import type { Readable, Transform } from 'node:stream';
import type { FastifyContentTypeParser, FastifyInstance, FastifyRequest } from 'fastify';

import { GatewayError, validationError } from '../core/errors.ts';
import { corruptBody, decodersFor } from './content-encoding.ts';

export interface BodyOptions {
  /** The route's decoded-size limit in bytes. */
  limitFor: (request: FastifyRequest) => number;
  /** How long the whole body may take to arrive once the headers are in (0: no bound). */
  readTimeoutMs: number;
  /** Called when a body misses that bound (before the 408 goes out). */
  onReadTimeout?: () => void;
}

/** The charset parameter of a content-type other than the plain `application/json` most clients send. */
function charsetOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined || contentType === 'application/json') return undefined;
  return /charset=([^;\s]+)/i.exec(contentType)?.[1]?.toLowerCase();
}

export function registerJsonParser(app: FastifyInstance, options: BodyOptions): void {
  app.removeAllContentTypeParsers();
  const parseJson: FastifyContentTypeParser = (request, payload, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset && charset !== 'utf-8' && charset !== 'utf8') {
      done(new GatewayError(`unsupported charset ${charset}: send UTF-8 JSON`, { status: 415, type: 'ValidationError', details: { field: 'content-type' } }));
      return;
    }
    let decoders: Array<() => Transform>;
    try {
      decoders = decodersFor(request.headers['content-encoding']);
    } catch (error) {
      done(error as GatewayError);
      return;
    }
    const limit = options.limitFor(request);
    // A compressed body is at least about as large as its limit when its wire size passes it.
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      done(tooLarge(limit));
      return;
    }
    readBody(request, payload as Readable, decoders, limit, options, (error, bytes) => {
      if (error) return done(error);
      if (bytes.length === 0) {
        // DELETE and friends may carry a content-type with no body; only a POST needs one.
        if (request.method !== 'POST') return done(null, undefined);
        done(validationError('request body is empty: send a JSON object', '(body)'));
        return;
      }
      if (!isUtf8(bytes)) {
        done(validationError('request body is not valid UTF-8', '(body)'));
        return;
      }
      try {
        // A leading byte-order mark is allowed (as TextDecoder and the JSON RFC's parsers allow it) and skipped.
        const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
        const text = bytes.toString('utf8', start);
        const parsed: unknown = JSON.parse(text);
        // Kept for the lossless lane, which can send the client's own text upstream unchanged.
        if (request.hapax) request.hapax.rawBody = text;
        done(null, parsed);
      } catch (error) {
        done(validationError(`malformed JSON: ${(error as Error).message}`, '(body)'));
      }
    });
  };
  app.addContentTypeParser('application/json', parseJson);
  // A body sent with no content-type at all (clients that cannot set headers, such as some HTTP/3 test
  // clients) is read as JSON; any other content-type is refused with 415.
  app.addContentTypeParser('*', (request, payload, done) => {
    if (request.headers['content-type'] === undefined) return parseJson(request, payload, done);
    done(new GatewayError('content-type must be application/json', { status: 415, type: 'ValidationError', details: { field: 'content-type' } }));
  });
}

/**
 * Reads the body through its decoders (piped, not pipeline(): stopping a decoder must not destroy the
 * request, or no error could be answered), counting decoded bytes against the limit.
 */
function readBody(
  request: FastifyRequest,
  payload: Readable,
  decoders: Array<() => Transform>,
  limit: number,
  options: BodyOptions,
  finish: (error: Error | null, bytes: Buffer) => void,
): void {
  const stages = decoders.map((make) => make());
  let source: Readable = payload;
  for (const stage of stages) source = source.pipe(stage);
  const chunks: Buffer[] = [];
  let size = 0;
  let wireSize = 0;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;

  const fail = (error: Error): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (stages.length > 0) {
      payload.unpipe(stages[0]);
      for (const stage of stages) stage.destroy();
    }
    // The rest of the body is read and dropped, so that the answer can still go out on this connection.
    payload.resume();
    finish(error, EMPTY);
  };

  if (options.readTimeoutMs > 0) {
    // Counted from the moment the headers were in (the request's start), so auth and limits count too.
    const startedAt = request.hapax?.startedAt ?? Date.now();
    const left = Math.max(0, startedAt + options.readTimeoutMs - Date.now());
    timer = setTimeout(() => {
      options.onReadTimeout?.();
      fail(readTimeout(options.readTimeoutMs));
    }, left);
  }
  if (stages.length > 0) {
    payload.on('data', (chunk: Buffer) => {
      wireSize += chunk.length;
      if (wireSize > limit) fail(tooLarge(limit));
    });
    const header = request.headers['content-encoding'] as string;
    for (const stage of stages) stage.on('error', (error) => fail(corruptBody(header, error)));
  }
  source.on('data', (chunk: Buffer) => {
    if (settled) return;
    size += chunk.length;
    // Checked per decoded chunk (16 KiB at most from zlib): a decompression bomb stops here.
    if (size > limit) return fail(tooLarge(limit));
    chunks.push(chunk);
  });
  payload.on('error', (error) => fail(error));
  source.on('end', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    finish(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
  });
}

const EMPTY = Buffer.alloc(0);

function tooLarge(limit: number): GatewayError {
  return new GatewayError(`request body exceeds the limit of ${limit} bytes`, { status: 413, type: 'ValidationError', details: { limit_bytes: limit } });
}

function readTimeout(ms: number): GatewayError {
  return new GatewayError(`request body did not arrive within ${ms} ms`, { status: 408, type: 'ValidationError', details: { phase: 'body', timeout_ms: ms } });
}

/**
 * After a 408 the client is still sending (slowly): the connection (HTTP/1.1; Fastify already answers
 * body errors with `Connection: close`) or the stream (HTTP/2, HTTP/3) is closed once the answer is out,
 * with a second's grace for the client to read it, instead of draining the rest of the body.
 */
export function closeAfterAnswer(request: FastifyRequest): void {
  // Counted from now, not from 'finish': an HTTP/2 response emits 'finish' only once its stream closes.
  setTimeout(() => {
    // HTTP/2: RST_STREAM with NO_ERROR ("stop sending", the answer is complete); destroying the
    // compatibility request object leaves its stream open.
    const stream = (request.raw as { stream?: Http2Stream }).stream;
    if (stream) stream.close(http2Constants.NGHTTP2_NO_ERROR);
    else request.raw.destroy();
  }, 1000).unref();
}
