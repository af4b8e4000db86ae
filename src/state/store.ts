/**
 * The one interface behind which Hapax keeps state that several instances may share: rate-limit
 * counters, managed API keys, usage counters and cached responses. `memory.ts` keeps it in this process
 * (the default); `redis.ts` keeps it in Redis so a fleet behind a load balancer acts as one gateway.
 * Breaker and health state are deliberately not here: each instance judges providers from its own traffic.
 */
import type { RateLimiterAbstract, RateLimiterCompatibleAbstract } from 'rate-limiter-flexible';
import type { ApiKeyRecord, KeyChanges, NewKeyOptions } from './keys.ts';
import type { FailurePolicy } from './health.ts';
import type { QuotaLedger } from './quota.ts';

export interface LimiterSpec {
  /** Names the counter: the same prefix on every instance means one shared counter. */
  keyPrefix: string;
  points: number;
  durationSeconds: number;
}

export type Limiter = RateLimiterAbstract | RateLimiterCompatibleAbstract;

/** Managed API keys (created with the admin API or `hapax keys create`), stored as SHA-256 hashes. */
export interface KeyStore {
  /** Changes whenever any process creates or revokes a key; cheap enough to poll several times a second. */
  version(): Promise<string>;
  list(): Promise<ApiKeyRecord[]>;
  /** Throws KeyExistsError when an active key has this name. */
  create(opts: NewKeyOptions): Promise<{ key: string; record: ApiKeyRecord }>;
  /** False when no active key has this name. */
  revoke(name: string): Promise<boolean>;
  /** The active key of this name with new limits or budgets (its secret unchanged); undefined when there is none. Throws KeyOptionError. */
  update(name: string, changes: KeyChanges): Promise<ApiKeyRecord | undefined>;
}

/** What a request is reported under: the day it ended (budgets.time_zone), who sent it, where it went. */
export interface UsageDimensions {
  /** YYYY-MM-DD. */
  day: string;
  /** The key's name, or the client IP when auth is off. */
  key: string;
  /** The route's path. */
  route: string;
  /** The route's metrics_labels as `name=value` pairs joined by commas ('' without labels). */
  label: string;
  /** '' for a request that reached no provider (refused, failed before). */
  provider: string;
  /** The bounded model label ('other' for a name the config does not list). */
  model: string;
}

export const USAGE_MEASURES = ['requests', 'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'reasoning_tokens', 'cost_nano_usd', 'unpriced_requests'] as const;
export type UsageMeasure = (typeof USAGE_MEASURES)[number];
export type UsageCounts = Record<UsageMeasure, number>;

/** One request's share: its dimensions and whatever it adds (missing measures add nothing). */
export type UsageRecord = UsageDimensions & Partial<UsageCounts>;
/** A day's totals under one set of dimensions. */
export type UsageEntry = UsageDimensions & UsageCounts;

/** Days, inclusive, as YYYY-MM-DD; either end open when not given. */
export interface UsageRange {
  from?: string;
  to?: string;
}

/** Requests, tokens and spend by day, key, route, labels, provider and model (this process, or the Redis). */
export interface UsageCounters {
  record(entry: UsageRecord): Promise<void>;
  read(range?: UsageRange): Promise<UsageEntry[]>;
}

/** A string-keyed cache of serialisable values with a time to live. */
export interface CacheStore<T> {
  get(key: string): Promise<T | undefined>;
  set(key: string, value: T, ttlMs: number): Promise<void>;
  /** True when the key was there. */
  delete(key: string): Promise<boolean>;
}

export interface StateStore {
  readonly kind: 'memory' | 'redis';
  readonly policy: FailurePolicy;
  /** Whether shared state can be reached right now; always true in memory. */
  readonly available: boolean;
  readonly usage: UsageCounters;
  /** Reserve-then-settle counters: tokens per minute and budgets (see quota.ts). */
  readonly quota: QuotaLedger;
  /** Managed keys: the key file in memory mode, Redis in Redis mode (the file is then unused). */
  keys(keyFile: string): KeyStore;
  /** A new limiter; callers build one per distinct setting and keep it (see server/rate-limit.ts). */
  limiter(spec: LimiterSpec): Limiter;
  /** A cache in this store under `namespace` (e.g. "responses"). */
  cache<T>(namespace: string, opts: { maxEntries: number }): CacheStore<T>;
  /** Connects (Redis); never throws: an unreachable store follows `on_failure` until it comes back. */
  start(): Promise<void>;
  close(): Promise<void>;
}
