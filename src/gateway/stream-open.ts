/**
 * Opening a stream: an attempt is a success for the walk once the upstream's first event is in (failover is
 * free until then), within first_token_timeout when one applies; the request deadline stops applying once the
 * stream runs. The attempt itself is settled when the stream ends (settlement.ts).
 */
import type { Metrics } from '../observability/metrics.ts';
import type { AttemptContext, ModelTarget } from '../providers/adapter.ts';
import type { CanonicalRequest } from '../core/canonical.ts';
import { isDeadline, UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent } from '../core/lossless.ts';
import type { Attempt, DispatchContext, OpenStream } from './attempts.ts';
import type { ProviderState } from './provider-state.ts';
import { settleAtEnd } from './settlement.ts';

/** The attempt that opens `request` as a stream on one target: its first event, then the rest, settled at the end. */
export function openingAttempt(request: CanonicalRequest, ctx: DispatchContext, metrics: Metrics, stateOf: (target: ModelTarget) => ProviderState): Attempt<OpenStream> {
  return async (adapter, target, c, settlement) => {
    const started = performance.now();
    const stallMs = ctx.firstTokenTimeoutMs ?? stateOf(target).firstTokenTimeoutMs;
    const stall = stallMs === undefined ? undefined : new FirstTokenWatch(c, target, stallMs);
    const upstream = adapter.chatStream(request, target, stall ? stall.ctx : c)[Symbol.asyncIterator]();
    let first: IteratorResult<ChatStreamEvent>;
    try {
      first = await upstream.next();
    } catch (error) {
      throw stall?.explain(error) ?? error;
    } finally {
      stall?.done();
    }
    if (first.done) throw new UpstreamError(target.provider, 'protocol', `${target.provider} sent an empty stream`);
    const firstTokenMs = performance.now() - started;
    metrics.timeToFirstToken.observe({ provider: target.provider }, firstTokenMs / 1000);
    return { first: first.value, rest: settleAtEnd(upstream, target, settlement, firstTokenMs) };
  };
}

/**
 * first_token_timeout for one attempt: its own abort signal under the request's, fired when no first event
 * came in time, so the upstream request is cancelled and the walk moves on before the client saw a byte.
 */
class FirstTokenWatch {
  readonly ctx: AttemptContext;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly target: ModelTarget;
  private readonly ms: number;
  private fired = false;

  constructor(outer: AttemptContext, target: ModelTarget, ms: number) {
    this.target = target;
    this.ms = ms;
    this.ctx = { ...outer, signal: AbortSignal.any([outer.signal, this.controller.signal]) };
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error('first_token_timeout'));
    }, ms);
  }

  /** The stall, said as such, when this watch is what ended the attempt. */
  explain(error: unknown): UpstreamError | undefined {
    if (!this.fired) return undefined;
    const provider = this.target.provider;
    return new UpstreamError(provider, 'timeout', `${provider} sent no first token within ${this.ms} ms (first_token_timeout)`, { cause: error });
  }

  done(): void {
    clearTimeout(this.timer);
  }
}

/**
 * The signal a stream runs under: the client's, except that once the first event is in, the request
 * deadline no longer applies (a long answer is not a slow provider; the provider's own `timeout` still
 * bounds each silence). A client that leaves mid-stream still stops it: the route closes the stream, which
 * returns the iterators down to the upstream request.
 */
export class StreamLifetime {
  private readonly controller = new AbortController();
  private running = false;
  readonly signal = this.controller.signal;

  constructor(outer: AbortSignal) {
    if (outer.aborted) this.controller.abort(outer.reason);
    else outer.addEventListener('abort', () => (!this.running || !isDeadline(outer.reason)) && this.controller.abort(outer.reason), { once: true });
  }

  started(): void {
    this.running = true;
  }
}

