/**
 * The lossless lane. When a client speaks the provider's own dialect (Anthropic Messages to an `anthropic`
 * provider, OpenAI Chat Completions to an `openai` one), its body goes upstream as the client wrote it, every
 * field intact, known to us or not; only `model` (when the route maps it), the credentials and what accounting
 * needs change. The provider's answer comes back the same way: the JSON text it sent, or its SSE events, each
 * one exactly as it arrived. Usage and the finish reason are read on the side for metrics, limits and cost.
 *
 * An adapter that offers the lane supplies a RelayDialect (what to send, how to read its answers); the Relay
 * here does the rest for every dialect: the attempt, stream framing, holding the head back so failover stays
 * possible until the client has seen a byte, and mapping failures to UpstreamError.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { AttemptContext, ModelTarget } from './adapter.ts';
import type { CanonicalResponse, FinishReason, StreamEvent, Usage } from './canonical.ts';
import { UpstreamError, type UpstreamFailureKind } from './errors.ts';
import type { UpstreamClient } from './http.ts';

/** The client APIs that have a lossless lane, named after the wire format they share with a provider. */
export type WireDialect = 'anthropic_messages' | 'openai_chat';

/** A client request as it came, for providers that speak its dialect. */
export interface LosslessRequest {
  readonly dialect: WireDialect;
  /** The client's parsed body. Never changed: each attempt sends a copy with its own model. */
  readonly body: Readonly<Record<string, unknown>>;
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
}

/** A whole answer as the provider sent it: its JSON text, or the SSE events of a stream. */
export interface RelayedAnswer extends RelayLane {
  body?: string;
  frames?: string;
}

export function laneOf(request: LosslessRequest): RelayLane {
  const { stream, stream_options } = request.body;
  return { dialect: request.dialect, delivery: JSON.stringify([stream === true, stream_options ?? null]) };
}

/** What a stream carries: canonical events (translated lane, and accounting on the lossless one) and relayed frames. */
export type ChatStreamEvent = StreamEvent | RelayedFrames;

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
}

export interface RelayDialect {
  readonly dialect: WireDialect;
  readonly path: string;
  /** The body this attempt sends: the client's, with the target's model and what accounting needs. */
  upstreamBody(request: LosslessRequest, model: string): Record<string, unknown>;
  /** Accounting facts of a whole answer; undefined when the JSON is not an answer of this dialect. */
  readAnswer(json: unknown, fallbackModel: string): AnswerFacts | undefined;
  streamReader(request: LosslessRequest, model: string): StreamReader;
  /** The answer with its text and tool calls read from what was relayed (for the cache's other-format replays). */
  canonical(answer: CanonicalResponse, relayed: RelayedAnswer): CanonicalResponse;
}

/** How an adapter sends one lossless attempt: its path plus the client's query, and this attempt's headers. */
export interface RelayAttempt {
  request: LosslessRequest;
  target: ModelTarget;
  ctx: AttemptContext;
  headers: string[];
}

export class Relay {
  private readonly client: UpstreamClient;
  private readonly spec: RelayDialect;

  constructor(client: UpstreamClient, spec: RelayDialect) {
    this.client = client;
    this.spec = spec;
  }

  get dialect(): WireDialect {
    return this.spec.dialect;
  }

  /** A whole answer: its text as the provider sent it, with the facts accounting needs beside it. */
  async complete({ request, target, ctx, headers }: RelayAttempt): Promise<CanonicalResponse> {
    const body = this.spec.upstreamBody(request, target.model);
    const text = await this.client.text({ method: 'POST', path: this.spec.path + request.query, body, headers, signal: ctx.signal });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new UpstreamError(this.client.provider, 'protocol', `${this.client.provider} sent a body that is not JSON`, { cause: error });
    }
    const facts = this.spec.readAnswer(json, target.model);
    if (!facts) throw new UpstreamError(this.client.provider, 'protocol', `${this.client.provider} answered with something that is not a ${this.spec.dialect} answer`);
    return { ...facts, created: Math.floor(Date.now() / 1000), text: '', toolCalls: [], relayed: { ...laneOf(request), body: text } };
  }

  /**
   * A streamed answer: frames as they arrive (complete events only, so an error frame can always follow), with
   * the usage and finish events read from them. Frames the reader holds back (Anthropic's message_start,
   * pings) wait for the first real output: an overload reported right after them still fails over.
   */
  async *stream({ request, target, ctx, headers }: RelayAttempt): AsyncGenerator<ChatStreamEvent> {
    const provider = this.client.provider;
    const body = this.spec.upstreamBody(request, target.model);
    const response = await this.client.send({ method: 'POST', path: this.spec.path + request.query, body, headers, signal: ctx.signal, idleTimeoutMs: ctx.streamIdleTimeoutMs });
    const reader = this.spec.streamReader(request, target.model);
    const lane = laneOf(request);
    const frames = new SseFrames();
    const events: StreamEvent[] = [];
    let held = '';
    let started = false;
    try {
      for await (const chunk of response.body) {
        let out = '';
        let failed = false;
        frames.push(chunk, (text, message) => {
          if (failed) return;
          const verdict = message ? reader.read(message, events) : 'hold';
          if (verdict === 'fail') failed = true;
          if (verdict === 'drop') return;
          // Held frames wait only until the first forwarded one; after that every frame goes on at once.
          if (!started && verdict === 'hold') held += text;
          else if (verdict !== 'fail' || started) {
            out += held + text;
            held = '';
            started = true;
          }
        });
        if (out) yield relayed(out, lane, reader);
        for (const event of events) yield event;
        events.length = 0;
        if (failed) {
          const failure = reader.failure ?? { kind: 'server' as const };
          // Once frames went out, the provider's own error event reached the client: no second one from us.
          throw new UpstreamError(provider, failure.kind, `${provider} reported an error mid-stream`, { upstreamMessage: failure.message, reportedToClient: started });
        }
      }
    } catch (error) {
      throw this.client.transportError(error, ctx.signal);
    }
    if (!reader.complete) throw new UpstreamError(provider, 'protocol', `${provider} stream ended before it completed`);
    if (held) yield relayed(held, lane, reader);
  }
}

function relayed(text: string, lane: RelayLane, reader: StreamReader): RelayedFrames {
  return reader.start ? { type: 'relayed', text, lane, start: reader.start } : { type: 'relayed', text, lane };
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

/** Beta names (anthropic-beta, openai-beta) a provider's `betas` policy lets through, compiled once per config load. */
export class BetaPolicy {
  private readonly allow: RegExp | undefined;
  private readonly deny: RegExp | undefined;

  constructor(policy: { allow?: string[]; deny?: string[] } | undefined) {
    this.allow = policy?.allow ? globs(policy.allow) : undefined;
    this.deny = policy?.deny?.length ? globs(policy.deny) : undefined;
  }

  /** The header value with the names the policy refuses removed; undefined when none is left. */
  filter(value: string): string | undefined {
    if (!this.allow && !this.deny) return value;
    const kept = value
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '' && (!this.allow || this.allow.test(name)) && !this.deny?.test(name));
    return kept.length > 0 ? kept.join(',') : undefined;
  }
}

/** One anchored regex for a list of `*` globs. */
function globs(patterns: readonly string[]): RegExp {
  const alternatives = patterns.map((p) => p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'));
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}
