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
import type { CacheStore, KeyStore, Limiter, LimiterSpec, StateStore, UsageCounters, UsageCounts, UsageEntry, UsageRange, UsageRecord } from './store.ts';
import { addCounts, dimensionsId, entryOf, inRange, USAGE_RETENTION_DAYS, zeroCounts } from './usage-rows.ts';

export class MemoryUsage implements UsageCounters {
  private readonly rows = new Map<string, UsageCounts>();
  private newestDay = '';

  async record(entry: UsageRecord): Promise<void> {
    const id = dimensionsId(entry);
    let counts = this.rows.get(id);
    if (!counts) {
      if (entry.day > this.newestDay) this.dropOldDays((this.newestDay = entry.day));
      this.rows.set(id, (counts = zeroCounts()));
    }
    addCounts(counts, entry);
  }

  async read(range?: UsageRange): Promise<UsageEntry[]> {
    const out: UsageEntry[] = [];
    for (const [id, counts] of this.rows) {
      const entry = entryOf(id, { ...counts });
      if (inRange(entry.day, range)) out.push(entry);
    }
    return out;
  }

  /** Once a day: forget days past the retention, so a long-lived process does not grow without bound. */
  private dropOldDays(today: string): void {
    const oldest = new Date(Date.parse(`${today}T00:00:00Z`) - USAGE_RETENTION_DAYS * 86_400_000).toISOString().slice(0, 10);
    for (const id of this.rows.keys()) if (id.slice(0, 10) < oldest) this.rows.delete(id);
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
