/**
 * The lossless lane. When a client speaks the provider's own dialect (Anthropic Messages to an `anthropic`
 * provider, OpenAI Chat Completions to an `openai` one), its body goes upstream as the client wrote it, every
 * field intact, known to us or not; only `model` (when the route maps it), the credentials and what accounting
 * needs change. The provider's answer comes back the same way: the JSON text it sent, or its SSE events, each
 * one exactly as it arrived. Usage and the finish reason are read on the side for metrics, limits and cost.
 *
 * This module holds the lane's shapes and its SSE framing. Each dialect that has the lane supplies a
 * RelayDialect (what to send, how to read its answers); providers/relay.ts does the attempt for every dialect.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { CanonicalResponse, FinishReason, StreamEvent, Usage } from './canonical.ts';
import type { UpstreamFailureKind } from './errors.ts';

/** The client APIs that have a lossless lane, named after the wire format they share with a provider. */
export type WireDialect = 'anthropic_messages' | 'openai_chat' | 'openai_responses';

/** A client request as it came, for providers that speak its dialect. */
export interface LosslessRequest {
  readonly dialect: WireDialect;
  /** The client's parsed body. Never changed: each attempt sends a copy with its own model. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The body's text as the client sent it: sent as is when nothing in it changes (no copy, no serialization). */
  readonly raw?: string;
  /** The client's protocol headers that travel with the body (lower-case names), e.g. anthropic-beta. */
  readonly headers: Readonly<Record<string, string>>;
  /** The client's query string with its '?' (Claude Code sends `?beta=true`), or ''. */
  readonly query: string;
}

/** Which lane a relayed answer came through, and how its client asked for it to be delivered. */
export interface RelayLane {
  readonly dialect: WireDialect;
  /**
   * The request's delivery fields (stream, stream_options) as a string: a cached copy is given as it is only to a
   * request that asks the same way (an OpenAI usage chunk is there or not); others get it re-encoded.
   */
  readonly delivery: string;
}

/** Complete SSE events exactly as the provider sent them; `start` on the first says who answered. */
export interface RelayedFrames {
  type: 'relayed';
  text: string;
  lane: RelayLane;
  start?: { id: string; model: string };
  /** Characters of answer these frames carry (StreamReader.outputChars); absent for replays of a whole answer. */
  chars?: number;
}

/** A whole answer as the provider sent it: its JSON text, or the SSE events of a stream. */
export interface RelayedAnswer extends RelayLane {
  body?: string;
  frames?: string;
}

/**
 * What identical requests in flight share on this lane: the client, the dialect, the protocol headers, the query
 * and the whole body (its text when there is one: no serialization per request).
 */
export function flightKeyOf(client: string, request: LosslessRequest): string {
  return `${client}\n${request.dialect}\n${request.query}\n${JSON.stringify(request.headers)}\n${request.raw ?? JSON.stringify(request.body)}`;
}

export function laneOf(request: LosslessRequest): RelayLane {
  const { stream, stream_options } = request.body;
  return { dialect: request.dialect, delivery: JSON.stringify([stream === true, stream_options ?? null]) };
}

/**
 * A stream cut mid-way goes on from another attempt (resume_streams): every event after this one is canonical.
 * On the lossless lane `prior` is the canonical reading of the frames the client already got, so the client
 * dialect's encoder can be brought up to that point (without writing) and encode the rest.
 */
export interface ResumedStream {
  type: 'resumed';
  /** Who continues the answer. */
  provider: string;
  prior?: StreamEvent[];
  /** Lossless lane: the provider's frames the client got (encoders whose frames carry ids take them over). */
  frames?: string;
}

/** What a stream carries: canonical events (translated lane, and accounting on the lossless one), relayed frames, and resumes. */
export type ChatStreamEvent = StreamEvent | RelayedFrames | ResumedStream;

/** What accounting needs from a whole answer. */
export interface AnswerFacts {
  id: string;
  model: string;
  usage: Usage;
  finishReason: FinishReason;
}

/** What becomes of one upstream event's frame. */
export type FrameVerdict =
  /** Goes to the client, with every frame held before it. */
  | 'forward'
  /** Before the first forwarded frame, kept back (the stream can still fail over); after it, forwarded. */
  | 'hold'
  /** Read for accounting only (a usage chunk the client did not ask for). */
  | 'drop'
  /** The provider reported an error: `failure` says which. */
  | 'fail';

/** Reads one streamed answer's events on the side. One reader per stream. */
export interface StreamReader {
  /** Pushes the usage and finish events one upstream event implies into `out`, and judges its frame. */
  read(event: EventSourceMessage, out: StreamEvent[]): FrameVerdict;
  /** Set when read() returned 'fail'. */
  readonly failure?: { kind: UpstreamFailureKind; message?: string };
  /** The provider said the answer is complete (Anthropic's message_stop, OpenAI's [DONE] or a finish reason). */
  readonly complete: boolean;
  /** Who answered, once the stream said it. */
  readonly start?: { id: string; model: string };
  /**
   * Characters of answer text, reasoning and tool-call arguments read so far: the output estimate of a stream
   * whose usage never comes (cut, or a provider that sends none).
   */
  readonly outputChars: number;
}

export interface RelayDialect {
  readonly dialect: WireDialect;
  readonly path: string;
  /**
   * The body this attempt sends: the client's, with the target's model and what accounting needs; the client's
   * own text (a string) when neither changes anything.
   */
  upstreamBody(request: LosslessRequest, model: string): Record<string, unknown> | string;
  /** Accounting facts of a whole answer; undefined when the JSON is not an answer of this dialect. */
  readAnswer(json: unknown, fallbackModel: string): AnswerFacts | undefined;
  streamReader(request: LosslessRequest, model: string): StreamReader;
  /** A whole answer read into the canonical model (for the cache's other-format replays). */
  decodeAnswer(json: unknown, model: string): CanonicalResponse;
  /** A relayed stream's events read into canonical events. */
  decodeEvents(messages: readonly EventSourceMessage[], out: StreamEvent[]): void;
}

/**
 * Splits an SSE byte stream into complete events, each with its exact text and its parsed fields.
 * Written here because eventsource-parser (which still does the field parsing) gives no event's raw text, and
 * the lane must pass every event on exactly as it came. Events end at a blank line (LF LF or CRLF CRLF).
 */
export class SseFrames {
  private readonly decoder = new TextDecoder();
  private buffered = '';
  private parsed: EventSourceMessage | undefined;
  private readonly parser = createParser({ onEvent: (event) => (this.parsed = event) });

  /** Feeds one chunk; `each` gets every event it completes (a comment-only event has no message). */
  push(chunk: Buffer | string, each: (text: string, message: EventSourceMessage | undefined) => void): void {
    this.buffered += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let from = 0;
    for (let end = eventEnd(this.buffered, 0); end > 0; end = eventEnd(this.buffered, from)) {
      const text = this.buffered.slice(from, end);
      from = end;
      this.parsed = undefined;
      this.parser.feed(text);
      each(text, this.parsed);
    }
    if (from > 0) this.buffered = this.buffered.slice(from);
  }
}

/** The parsed events of relayed SSE text (the cache reads a kept stream with it). */
export function relayedEvents(frames: string): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  new SseFrames().push(frames, (_text, message) => message && events.push(message));
  return events;
}

/** The index just past the blank line that ends the event starting at `from`, or -1 when it is incomplete. */
function eventEnd(text: string, from: number): number {
  const lf = text.indexOf('\n\n', from);
  const crlf = text.indexOf('\r\n\r\n', from);
  if (crlf < 0) return lf < 0 ? -1 : lf + 2;
  return lf >= 0 && lf < crlf ? lf + 2 : crlf + 4;
}

