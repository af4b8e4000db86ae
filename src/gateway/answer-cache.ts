/**
 * The response cache as dispatching uses it: identical requests answered from it first (whole or replayed as a
 * stream, the lossless lane's own frames only to a request that asked the same way), and answers kept once
 * they are whole, streams once they have ended cleanly.
 */
import type { Metrics } from '../observability/metrics.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { AnswerCollector, answerEvents } from '../core/answer.ts';
import type { CanonicalRequest, CanonicalResponse } from '../core/canonical.ts';
import { laneOf, type ChatStreamEvent } from '../core/lossless.ts';
import { readRelayed } from '../providers/relay-dialects.ts';
import type { DispatchContext, DispatchResult, OpenStream } from './attempts.ts';
import type { CachedAnswer, ResponseCache } from './response-cache.ts';

export class AnswerCache {
  private readonly cache: ResponseCache;
  private readonly metrics: Metrics;

  constructor(cache: ResponseCache, metrics: Metrics) {
    this.cache = cache;
    this.metrics = metrics;
  }

  keyOf(client: string, request: CanonicalRequest): string {
    return this.cache.key(client, request);
  }

  /** A whole answer from the cache, unless the client asked for a fresh one. */
  async whole(key: string, request: CanonicalRequest, ctx: DispatchContext): Promise<DispatchResult<CanonicalResponse> | undefined> {
    const hit = ctx.cache === false ? undefined : await this.cache.get(key);
    return hit && this.fromCache(hit, replayable(hit.response, request));
  }

  /** A cached answer replayed as a stream, unless the client asked for a fresh one. */
  async stream(key: string, request: CanonicalRequest, ctx: DispatchContext): Promise<DispatchResult<OpenStream> | undefined> {
    const hit = ctx.cache === false ? undefined : await this.cache.get(key);
    if (!hit) return undefined;
    const events = answerEvents(replayable(hit.response, request));
    return this.fromCache(hit, { first: events[0], rest: replay(events) });
  }

  private fromCache<T>(hit: CachedAnswer, value: T): DispatchResult<T> {
    this.metrics.cacheHits.inc();
    return { value, target: { provider: hit.provider, model: hit.model }, attempts: 0, cached: true };
  }

  /**
   * Keeps an answer for identical requests to come; the target's own key is not part of it. A relayed answer
   * is also read into text and tool calls, so a request that asks another way can be answered from it.
   */
  keep(key: string, response: CanonicalResponse, target: ModelTarget): void {
    let kept = response;
    if (response.relayed) {
      try {
        kept = readRelayed(response);
      } catch {
        return; // an answer that cannot be read back is not worth keeping
      }
    }
    this.cache.set(key, { response: kept, provider: target.provider, model: target.model });
  }

  /** The stream as opened, kept once it has ended cleanly. */
  keptAtEnd(opened: DispatchResult<OpenStream>, key: string): DispatchResult<OpenStream> {
    const { first, rest } = opened.value;
    return { ...opened, value: { first, rest: this.keepAtEnd(first, rest, key, opened.target) } };
  }

  /** Passes a stream through and keeps the answer it adds up to, once it has ended cleanly. */
  private async *keepAtEnd(first: ChatStreamEvent, rest: AsyncIterator<ChatStreamEvent>, key: string, target: ModelTarget): AsyncGenerator<ChatStreamEvent> {
    const collector = new AnswerCollector(target.model);
    collector.add(first);
    // A resumed stream is two answers spliced for this client: not one to serve again.
    let resumed = false;
    try {
      for (let next = await rest.next(); !next.done; next = await rest.next()) {
        if (next.value.type === 'resumed') resumed = true;
        collector.add(next.value);
        yield next.value;
      }
    } finally {
      await rest.return?.();
    }
    const response = collector.answer();
    if (response && !resumed) this.keep(key, response, target);
  }
}

/**
 * A cached answer as this request may get it: the provider's own relayed text only for a request of the same
 * lane that asked for it the same way (whole or streamed, the same stream options); else the answer it was read
 * into, for the client's own encoder.
 */
export function replayable(response: CanonicalResponse, request: CanonicalRequest): CanonicalResponse {
  const relayed = response.relayed;
  if (!relayed) return response;
  const lossless = request.lossless;
  const kept = request.stream ? relayed.frames : relayed.body;
  if (kept !== undefined && lossless?.dialect === relayed.dialect && laneOf(lossless).delivery === relayed.delivery) return response;
  const { relayed: _relayed, ...read } = response;
  return read;
}

async function* replay(events: readonly ChatStreamEvent[]): AsyncGenerator<ChatStreamEvent> {
  for (let i = 1; i < events.length; i++) yield events[i];
}

