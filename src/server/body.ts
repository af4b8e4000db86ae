/**
 * The JSON body parser: enforces the route's own size limit (413 naming it), refuses bytes that are not
 * UTF-8, and reports where malformed JSON broke. Registered once; reads the limit from the route spec.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyContentTypeParser, FastifyInstance, FastifyRequest } from 'fastify';

import { GatewayError, validationError } from '../providers/errors.ts';

/** The charset parameter of a content-type other than the plain `application/json` most clients send. */
function charsetOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined || contentType === 'application/json') return undefined;
  return /charset=([^;\s]+)/i.exec(contentType)?.[1]?.toLowerCase();
}

export function registerJsonParser(app: FastifyInstance, limitFor: (request: FastifyRequest) => number): void {
  app.removeAllContentTypeParsers();
  const parseJson: FastifyContentTypeParser = (request, payload, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset && charset !== 'utf-8' && charset !== 'utf8') {
      done(new GatewayError(`unsupported charset ${charset}: send UTF-8 JSON`, { status: 415, type: 'ValidationError', details: { field: 'content-type' } }));
      return;
    }
    const limit = limitFor(request);
    const declared = Number(request.headers['content-length']);
    if (declared > limit) {
      done(tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    payload.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        payload.resume();
        done(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    payload.on('error', (error) => {
      if (!failed) {
        failed = true;
        done(error);
      }
    });
    payload.on('end', () => {
      if (failed) return;
      if (size === 0) {
        // DELETE and friends may carry a content-type with no body; only a POST needs one.
        if (request.method !== 'POST') return done(null, undefined);
        done(validationError('request body is empty: send a JSON object', '(body)'));
        return;
      }
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      if (!isUtf8(bytes)) {
        done(validationError('request body is not valid UTF-8', '(body)'));
        return;
      }
      try {
        // A leading byte-order mark is allowed (as TextDecoder and the JSON RFC's parsers allow it) and skipped.
        const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
        done(null, JSON.parse(bytes.toString('utf8', start)));
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

function tooLarge(limit: number): GatewayError {
  return new GatewayError(`request body exceeds the limit of ${limit} bytes`, { status: 413, type: 'ValidationError', details: { limit_bytes: limit } });
}
