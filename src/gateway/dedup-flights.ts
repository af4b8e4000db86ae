/**
 * Identical requests in flight share one upstream call: whole answers through a SingleFlight, streams through
 * a StreamFlight that fans the one upstream stream out to every caller. The flight key rule lives here.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { CanonicalRequest, CanonicalResponse } from '../core/canonical.ts';
import { UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent } from '../core/lossless.ts';
import type { DispatchResult, OpenStream } from './attempts.ts';
import { flightKeyOf as losslessFlightKey } from '../core/lossless.ts';
import { flightKey, SingleFlight, StreamFlight } from './singleflight.ts';

export class DedupFlights {
  private readonly unary: SingleFlight<DispatchResult<CanonicalResponse>>;
  private readonly streams: StreamFlight<ChatStreamEvent | DispatchResult<null>>;

  constructor(metrics: Metrics) {
    const onFlightDone = (_key: string, callers: number) => {
      if (callers > 1) metrics.deduplicated.inc(callers - 1);
    };
    this.unary = new SingleFlight({ onFlightDone });
    this.streams = new StreamFlight({ onFlightDone });
  }

  /**
   * What identical requests in flight share. The cache key, when there is one, already names this client's
   * request (no second serialization); on the lossless lane the whole body is the key, delivery fields included,
   * since a relayed stream is the provider's own frames for that exact request.
   */
  keyOf(client: string, request: CanonicalRequest, cacheKey: string | undefined): string {
    if (request.lossless) return losslessFlightKey(client, request.lossless);
    return cacheKey ?? flightKey(client, request);
  }

  /** A whole answer, shared with an identical request in flight (`shared` for every caller but the one that ran it). */
  async complete(key: string, run: (signal: AbortSignal) => Promise<DispatchResult<CanonicalResponse>>, signal: AbortSignal): Promise<DispatchResult<CanonicalResponse>> {
    let mine = false;
    const result = await this.unary.do(key, (flightSignal) => ((mine = true), run(flightSignal)), signal);
    return mine ? result : { ...result, shared: true };
  }

  /** A stream, shared with identical streams in flight: the flight's first item says who serves it. */
  async stream(key: string, open: (signal: AbortSignal) => Promise<DispatchResult<OpenStream>>, signal: AbortSignal): Promise<DispatchResult<OpenStream>> {
    let mine = false;
    const events = this.streams.join(key, (flightSignal) => ((mine = true), flightSource(open(flightSignal))), signal);
    const head = await events.next();
    const meta = head.value as DispatchResult<null>;
    const first = await events.next();
    if (first.done) throw new UpstreamError(meta.target.provider, 'protocol', `${meta.target.provider} sent an empty stream`);
    return { target: meta.target, attempts: meta.attempts, shared: !mine, value: { first: first.value as ChatStreamEvent, rest: events as AsyncIterator<ChatStreamEvent> } };
  }
}

/** A shared stream's items: who serves it, then its events (see headThenRest). */
function flightSource(opening: Promise<DispatchResult<OpenStream>>): AsyncIterable<ChatStreamEvent | DispatchResult<null>> {
  // Its failure reaches whoever reads the flight; never an unhandled rejection if nobody does.
  opening.catch(() => undefined);
  return { [Symbol.asyncIterator]: () => headThenRest(opening) };
}

/**
 * Who serves the stream (for every caller's headers), its first event, then the upstream's own iterator
 * as is: no generator in between, so no promise of ours per event.
 */
function headThenRest(opening: Promise<DispatchResult<OpenStream>>): AsyncIterator<ChatStreamEvent | DispatchResult<null>> {
  let opened: DispatchResult<OpenStream> | undefined;
  let firstSent = false;
  return {
    next: () => {
      if (!opened) {
        return opening.then((result) => {
          opened = result;
          return { value: { target: result.target, attempts: result.attempts, value: null }, done: false };
        });
      }
      if (firstSent) return opened.value.rest.next();
      firstSent = true;
      return Promise.resolve({ value: opened.value.first, done: false });
    },
    return: async () => {
      await opened?.value.rest.return?.();
      return { done: true, value: undefined };
    },
  };
}

