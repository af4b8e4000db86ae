/**
 * The optional response cache (`cache: {enabled, ttl, max_entries}`, off by default): a finished answer is
 * kept for `ttl` and given again to the same client for an identical request, streamed or not. Keyed like
 * dedup (client + canonical request) minus what only shapes delivery (the stream flag), so a streamed
 * request can be answered from a non-streamed one's answer and the other way round.
 *
 * Storage is the state store's CacheStore (get/set with a time to live): this process by default, Redis
 * when `state.redis_url` is set, so a fleet shares its answers. A store that fails reads as a miss and
 * drops the write: the cache never fails a request.
 */
import type { CanonicalRequest, CanonicalResponse } from '../core/canonical.ts';
import type { CacheStore } from '../state/store.ts';
import { stableKey } from './singleflight.ts';

/** What is kept: the answer and who gave it. Plain JSON, and never a credential. */
export interface CachedAnswer {
  response: CanonicalResponse;
  provider: string;
  model: string;
}

/** Request fields that only shape how the answer is delivered, not what it says. */
const DELIVERY_ONLY = { stream: undefined, includeUsage: undefined };

export interface ResponseCacheOptions {
  ttlMs: number;
  store: CacheStore<CachedAnswer>;
}

export class ResponseCache {
  private readonly ttlMs: number;
  private readonly store: CacheStore<CachedAnswer>;

  constructor(options: ResponseCacheOptions) {
    this.ttlMs = options.ttlMs;
    this.store = options.store;
  }

  /**
   * The key for this client's request, the same whether it streams or not: on the lossless lane, the client's
   * body (without stream and stream_options), protocol headers and query; otherwise the canonical request.
   */
  key(client: string, request: CanonicalRequest): string {
    const lossless = request.lossless;
    if (lossless) {
      const { stream: _stream, stream_options: _options, ...body } = lossless.body;
      return stableKey([client, lossless.dialect, body, lossless.headers, lossless.query]);
    }
    return stableKey([client, { ...request, ...DELIVERY_ONLY }]);
  }

  async get(key: string): Promise<CachedAnswer | undefined> {
    try {
      return await this.store.get(key);
    } catch {
      return undefined;
    }
  }

  /** Fire and forget: the client does not wait for the cache. */
  set(key: string, answer: CachedAnswer): void {
    try {
      this.store.set(key, answer, this.ttlMs).catch(() => undefined);
    } catch {
      // a store that throws synchronously is a store that did not keep the answer
    }
  }
}
