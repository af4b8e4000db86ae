/**
 * State kept in this process: the default, with nothing to set up. Counters live as long as the
 * process; managed keys stay in the key file, which the CLI and other processes on the host can share.
 */
import { LRUCache } from 'lru-cache';
// A single file, not the index with every backend: see src/types/deep-imports.d.ts.
import RateLimiterMemory from 'rate-limiter-flexible/lib/RateLimiterMemory.js';
import type { Metrics } from '../observability/metrics.ts';
import { KeyFile } from './keys.ts';
import { MemoryQuota } from './quota.ts';
import type { CacheStore, KeyStore, Limiter, LimiterSpec, StateStore, UsageCounters, UsageDelta, UsageRow } from './store.ts';

export class MemoryUsage implements UsageCounters {
  private readonly rows = new Map<string, UsageRow>();

  async record(client: string, delta: UsageDelta): Promise<void> {
    let row = this.rows.get(client);
    if (!row) {
      row = { client, requests: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0 };
      this.rows.set(client, row);
    }
    row.requests += delta.requests ?? 0;
    row.input_tokens += delta.input_tokens ?? 0;
    row.output_tokens += delta.output_tokens ?? 0;
    row.total_tokens = row.input_tokens + row.output_tokens;
  }

  async read(): Promise<UsageRow[]> {
    return [...this.rows.values()].map((row) => ({ ...row }));
  }
}

export class MemoryCache<T extends {}> implements CacheStore<T> {
  private readonly lru: LRUCache<string, T>;

  constructor(maxEntries: number) {
    this.lru = new LRUCache<string, T>({ max: Math.max(1, maxEntries) });
  }

  async get(key: string): Promise<T | undefined> {
    return this.lru.get(key);
  }

  async set(key: string, value: T, ttlMs: number): Promise<void> {
    this.lru.set(key, value, { ttl: ttlMs });
  }

  async delete(key: string): Promise<boolean> {
    return this.lru.delete(key);
  }
}

export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  readonly policy = 'open' as const;
  readonly available = true;
  readonly usage = new MemoryUsage();
  readonly quota = new MemoryQuota();

  constructor(deps: { metrics?: Metrics } = {}) {
    // Nothing to lose touch with: say so, rather than leave the gauge at its initial 0.
    deps.metrics?.stateAvailable.set(1);
  }

  keys(keyFile: string): KeyStore {
    return new KeyFile(keyFile);
  }

  limiter(spec: LimiterSpec): Limiter {
    return new RateLimiterMemory({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds });
  }

  /** One cache per namespace and size, kept for the store's life: a config reload keeps cached answers. */
  private readonly caches = new Map<string, CacheStore<unknown>>();

  cache<T>(namespace: string, opts: { maxEntries: number }): CacheStore<T> {
    const id = `${namespace}|${opts.maxEntries}`;
    let cache = this.caches.get(id);
    if (!cache) {
      cache = new MemoryCache<{}>(opts.maxEntries) as CacheStore<unknown>;
      this.caches.set(id, cache);
    }
    return cache as CacheStore<T>;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}
