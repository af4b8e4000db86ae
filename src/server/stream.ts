/**
 * Writes an upstream stream to the client as SSE. The head is only sent once the first upstream event
 * has arrived (so failover stayed possible until then). A failure after that ends the stream with an
 * error frame in the client's dialect, never a silent truncation.
 */
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { OpenStream } from '../gateway/dispatch.ts';
import type { StreamEvent } from '../providers/canonical.ts';
import type { RequestState } from './context.ts';
import { clientFacingError } from '../gateway/dispatch.ts';
import { GatewayError, UpstreamError } from '../providers/errors.ts';

export interface StreamEncoding {
  encode(event: StreamEvent): string;
  /** The frame that tells this dialect's client the stream failed. */
  error(error: GatewayError): string;
  /** Defaults to SSE; NDJSON dialects (Ollama) set their own. */
  contentType?: string;
}

export function sendEventStream(reply: FastifyReply, stream: OpenStream, encoding: StreamEncoding): FastifyReply {
  reply.header('content-type', encoding.contentType ?? 'text/event-stream; charset=utf-8');
  reply.header('cache-control', 'no-cache');
  reply.header('x-accel-buffering', 'no');
  return reply.send(Readable.from(frames(stream, encoding, reply.request.hapax), { objectMode: false }));
}

async function* frames(stream: OpenStream, encoding: StreamEncoding, state: RequestState): AsyncGenerator<string> {
  const { rest } = stream;
  let finished = false;
  try {
    const first = encoding.encode(stream.first);
    if (first) yield first;
    for (let next = await rest.next(); !next.done; next = await rest.next()) {
      if (next.value.type === 'usage') state.usage = next.value.usage;
      const frame = encoding.encode(next.value);
      if (frame) yield frame;
    }
    finished = true;
  } catch (error) {
    if (error instanceof UpstreamError && error.kind === 'aborted') return;
    const failure = error instanceof GatewayError ? error : error instanceof UpstreamError ? clientFacingError([error]) : new GatewayError('stream failed', { status: 500, type: 'InternalError' });
    // The status (200) has gone out already: the log line and hapax_errors_total still record the failure.
    state.errorType = failure.type;
    state.streamFailed = true;
    yield encoding.error(failure);
  } finally {
    // The client went away (or we failed): stop the upstream so no tokens are spent for nobody.
    if (!finished) await rest.return?.().catch(() => undefined);
  }
}
