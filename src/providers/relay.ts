/**
 * The lossless lane's attempt, for every dialect that has one: send the client's body with the target's model
 * and this attempt's headers, then pass the answer on as sent (JSON text, or complete SSE events) while its
 * RelayDialect reads usage and the finish reason on the side. Stream frames the dialect holds back wait for the
 * first real output, so failover stays possible until the client has seen a byte.
 */
import type { AttemptContext, ModelTarget } from './adapter.ts';
import type { CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { UpstreamError } from '../core/errors.ts';
import { laneOf, SseFrames, type ChatStreamEvent, type LosslessRequest, type RelayDialect, type RelayedFrames, type RelayLane, type StreamReader, type WireDialect } from '../core/lossless.ts';
import type { UpstreamClient } from './http.ts';

/** How an adapter sends one lossless attempt: its path plus the client's query, and this attempt's headers. */
export interface RelayAttempt {
  request: LosslessRequest;
  target: ModelTarget;
  ctx: AttemptContext;
  headers: string[];
  /** The path with its query, when the host's differs from the dialect's path plus the client's query (Azure). */
  path?: string;
}

/** One lossless attempt as it goes upstream. */
export interface RelaySend {
  path: string;
  body: unknown;
  headers: string[];
}

/**
 * How a provider carries a dialect's lossless attempt when its API is not the dialect's own (the clouds: the
 * model in the path, the version in the body, signed requests, another stream framing).
 */
export interface RelayTransport {
  /** This attempt's path, body and headers (signed, or with a fresh token). */
  prepare(attempt: { request: LosslessRequest; model: string; stream: boolean; headers: string[] }): Promise<RelaySend>;
  /** The streamed body as the dialect's SSE text, for a provider that frames its streams otherwise. */
  sse?(body: AsyncIterable<Buffer>): AsyncIterable<Buffer | string>;
}

export class Relay {
  private readonly client: UpstreamClient;
  private readonly spec: RelayDialect;
  private readonly transport?: RelayTransport;

  constructor(client: UpstreamClient, spec: RelayDialect, transport?: RelayTransport) {
    this.client = client;
    this.spec = spec;
    this.transport = transport;
  }

  /** The dialect's own request (at the adapter's path, when it gives one), or the transport's. */
  private prepare(request: LosslessRequest, model: string, stream: boolean, headers: string[], path: string | undefined): Promise<RelaySend> | RelaySend {
    if (this.transport) return this.transport.prepare({ request, model, stream, headers });
    return { path: path ?? this.spec.path + request.query, body: this.spec.upstreamBody(request, model), headers };
  }

  get dialect(): WireDialect {
    return this.spec.dialect;
  }

  /** A whole answer: its text as the provider sent it, with the facts accounting needs beside it. */
  async complete({ request, target, ctx, headers, path }: RelayAttempt): Promise<CanonicalResponse> {
    const sent = await this.prepare(request, target.model, false, headers, path);
    const text = await this.client.text({ method: 'POST', ...sent, signal: ctx.signal });
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
  async *stream({ request, target, ctx, headers, path }: RelayAttempt): AsyncGenerator<ChatStreamEvent> {
    const provider = this.client.provider;
    const sent = await this.prepare(request, target.model, true, headers, path);
    const response = await this.client.send({ method: 'POST', ...sent, signal: ctx.signal, idleTimeoutMs: ctx.streamIdleTimeoutMs });
    const reader = this.spec.streamReader(request, target.model);
    const lane = laneOf(request);
    const frames = new SseFrames();
    const events: StreamEvent[] = [];
    let held = '';
    let started = false;
    /** Answer characters already reported with forwarded frames. */
    let counted = 0;
    try {
      for await (const chunk of this.transport?.sse ? this.transport.sse(response.body) : response.body) {
        let out = '';
        let failed = false;
        frames.push(chunk, (text, message) => {
          if (failed) return;
          const verdict = message ? reader.read(message, events) : 'hold';
          if (verdict === 'fail') failed = true;
          if (verdict === 'drop') return;
          // Held frames wait only until the first forwarded one; after that every frame goes on at once.
          if (!started && verdict === 'hold') held += text;
          else if (verdict !== 'fail' || (started && !ctx.resumable)) {
            out += held + text;
            held = '';
            started = true;
          }
        });
        if (out) {
          yield relayed(out, lane, reader, reader.outputChars - counted);
          counted = reader.outputChars;
        }
        for (const event of events) yield event;
        events.length = 0;
        if (failed) {
          const failure = reader.failure ?? { kind: 'server' as const };
          // Once frames went out, the provider's own error event reached the client: no second one from us.
          throw new UpstreamError(provider, failure.kind, `${provider} reported an error mid-stream`, { upstreamMessage: failure.message, reportedToClient: started && !ctx.resumable });
        }
      }
    } catch (error) {
      throw this.client.transportError(error, ctx.signal);
    }
    if (!reader.complete) throw new UpstreamError(provider, 'protocol', `${provider} stream ended before it completed`);
    if (held) yield relayed(held, lane, reader, reader.outputChars - counted);
  }
}

function relayed(text: string, lane: RelayLane, reader: StreamReader, chars: number): RelayedFrames {
  return reader.start ? { type: 'relayed', text, lane, start: reader.start, chars } : { type: 'relayed', text, lane, chars };
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
