/**
 * Writes an upstream stream to the client as SSE (or NDJSON). The head is only sent once the first upstream
 * event has arrived (so failover stayed possible until then). A failure after that ends the stream with an
 * error frame in the client's dialect, never a silent truncation.
 *
 * Frames go straight to the response (the reply is hijacked once its headers are final): a Readable between
 * the events and the socket cost more per event than encoding it, and backpressure is one 'drain' away.
 * Fastify's onResponse hook still runs when the response finishes, so metrics and the log line are unchanged.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { OpenStream } from '../gateway/dispatch.ts';
import type { StreamEvent } from '../core/canonical.ts';
import type { ChatStreamEvent, ResumedStream } from '../core/lossless.ts';
import type { RequestState } from './context.ts';
import { clientFacingError } from '../gateway/dispatch.ts';
import { GatewayError, UpstreamError } from '../core/errors.ts';
import { observeStreamStart } from './observe.ts';

export interface StreamEncoding {
  encode(event: StreamEvent): string;
  /** The frame that tells this dialect's client the stream failed. */
  error(error: GatewayError): string;
  /** Defaults to SSE; NDJSON dialects (Ollama) set their own. */
  contentType?: string;
  /**
   * A resumed lossless stream: bring the encoder up to what the relayed frames said, writing nothing. Without
   * it the resume's canonical reading of them is encoded and dropped; dialects whose frames carry ids and
   * numbers of their own (Responses) take those over instead.
   */
  catchUp?(resumed: ResumedStream): void;
}

/**
 * What the frames are written to: Node's HTTP/1 and HTTP/2 responses, and the HTTP/3 bridge's. Whether the
 * client is gone comes from the request state, not the sink: HTTP/2 responses have no `destroyed`.
 */
interface FrameSink {
  readonly writableEnded: boolean;
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  write(chunk: string): boolean;
  end(): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

export function sendEventStream(reply: FastifyReply, stream: OpenStream, encoding: StreamEncoding): FastifyReply {
  const state = reply.request.hapax;
  reply.header('content-type', encoding.contentType ?? 'text/event-stream; charset=utf-8');
  reply.header('cache-control', 'no-cache');
  reply.header('x-accel-buffering', 'no');
  const keep = observeStreamStart(reply, state);
  state.writesOwnResponse = true;
  reply.hijack();
  const sink = reply.raw as unknown as FrameSink;
  sink.writeHead(200, reply.getHeaders() as OutgoingHttpHeaders);
  writeFrames(sink, stream, encoding, state, keep).catch((error: unknown) => reply.log.error({ err: error }, 'stream writer failed'));
  return reply;
}

async function writeFrames(sink: FrameSink, stream: OpenStream, encoding: StreamEncoding, state: RequestState, keep?: (frame: string) => void): Promise<void> {
  const { rest } = stream;
  let finished = false;
  /** Writes a frame; returns a promise only when the client has not taken what was queued (it settles on drain or close). */
  const send = (frame: string): Promise<void> | undefined => {
    keep?.(frame);
    return sink.write(frame) ? undefined : drained(sink, state);
  };
  // A lossless-lane stream is the provider's own frames: the canonical events beside them are for accounting only.
  let relayed = stream.first.type === 'relayed';
  const frameOf = (event: ChatStreamEvent): string => {
    if (event.type === 'relayed') {
      if (event.chars) state.streamedChars = (state.streamedChars ?? 0) + event.chars;
      return event.text;
    }
    if (event.type === 'resumed') {
      // Resumed (resume_streams): the rest is canonical. After relayed frames the encoder first catches up with
      // what they said, writing nothing (the client has it), so the rest continues the same message.
      if (relayed && encoding.catchUp) encoding.catchUp(event);
      else if (relayed) for (const prior of event.prior ?? []) encoding.encode(prior);
      relayed = false;
      return '';
    }
    return relayed ? '' : encoding.encode(event);
  };
  try {
    const first = frameOf(stream.first);
    // Awaited only when the client is slow to take frames: an `await` of nothing still costs a tick.
    let full = first ? send(first) : undefined;
    if (full) await full;
    for (let next = await rest.next(); !next.done; next = await rest.next()) {
      if (state.clientGone) return; // the client went away: `finally` stops the upstream
      if (next.value.type === 'usage') state.usage = next.value.usage;
      else if (next.value.type === 'text' || next.value.type === 'reasoning') state.streamedChars = (state.streamedChars ?? 0) + next.value.text.length;
      else if (next.value.type === 'tool_call_delta') state.streamedChars = (state.streamedChars ?? 0) + next.value.arguments.length;
      const frame = frameOf(next.value);
      full = frame ? send(frame) : undefined;
      if (full) await full;
    }
    finished = true;
  } catch (error) {
    if (error instanceof UpstreamError && error.kind === 'aborted') return;
    if (error instanceof UpstreamError && error.reportedToClient) {
      // The provider's own error event already went out in the client's dialect.
      state.errorType = clientFacingError([error]).type;
      state.streamFailed = true;
      return;
    }
    const failure = error instanceof GatewayError ? error : error instanceof UpstreamError ? clientFacingError([error]) : new GatewayError('stream failed', { status: 500, type: 'InternalError' });
    // The status (200) has gone out already: the log line and hapax_errors_total still record the failure.
    state.errorType = failure.type;
    state.streamFailed = true;
    if (!state.clientGone) send(encoding.error(failure));
  } finally {
    // The client went away (or we failed): stop the upstream so no tokens are spent for nobody.
    if (!finished) await rest.return?.().catch(() => undefined);
    if (!state.clientGone && !sink.writableEnded) sink.end();
  }
}

function drained(sink: FrameSink, state: RequestState): Promise<void> {
  // A closed response emits neither 'drain' nor 'close' again.
  if (state.clientGone) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.once('drain', done);
    sink.once('close', done);
  });
}
