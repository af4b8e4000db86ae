/**
 * State in Redis (`state.redis_url`): rate-limit counters, managed keys, usage counters and cached
 * responses are shared by every instance that points at the same Redis and key prefix.
 *
 * A dead or hung Redis never holds a request: commands fail at once while disconnected (no offline
 * queue), time out after COMMAND_TIMEOUT_MS when Redis stops answering, and are never re-sent after a
 * reconnect (a re-sent INCR would count twice). The client reconnects by itself; `on_failure` decides
 * what requests get meanwhile.
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { StateHealth, type FailurePolicy } from './health.ts';
import { RedisCache } from './redis-cache.ts';
import { RedisKeyStore } from './redis-keys.ts';
import { redisLimiter } from './redis-limiter.ts';
import { RedisQuota } from './redis-quota.ts';
import { RedisUsage } from './redis-usage.ts';
import type { CacheStore, KeyStore, Limiter, LimiterSpec, StateStore } from './store.ts';

const COMMAND_TIMEOUT_MS = 500;
const CONNECT_TIMEOUT_MS = 2_000;
/** ioredis is loaded only when a config asks for Redis: most gateways never pay its start-up cost. */
function loadRedisClient(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis;
}

/** Reconnect quickly at first, then once a second: a returning Redis is used again within about a second. */
const reconnectDelay = (attempt: number): number => Math.min(attempt * 100, 1_000);
/** How often an instance that saw a failure checks whether Redis answers again. */
const PROBE_MS = 1_000;

export interface RedisStoreOptions {
  url: string;
  prefix: string;
  policy: FailurePolicy;
  logger?: Logger;
  metrics?: Metrics;
}

export class RedisStore implements StateStore {
  readonly kind = 'redis' as const;
  readonly policy: FailurePolicy;
  readonly health: StateHealth;
  readonly usage: RedisUsage;
  readonly quota: RedisQuota;
  private readonly client: Redis;
  private readonly prefix: string;
  private keyStore?: RedisKeyStore;
  private started?: Promise<void>;
  private probe?: NodeJS.Timeout;
  private closing = false;

  constructor(opts: RedisStoreOptions) {
    this.policy = opts.policy;
    this.prefix = opts.prefix;
    this.health = new StateHealth({ policy: opts.policy, logger: opts.logger, metrics: opts.metrics });
    this.client = new (loadRedisClient())(opts.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: reconnectDelay,
    });
    // Connection errors repeat on every reconnect attempt: counted each time, logged once per outage.
    this.client.on('error', (error: Error) => this.health.failed('connection', error));
    this.client.on('close', () => {
      if (!this.closing) this.health.failed('connection', new Error('connection closed'));
    });
    this.client.on('ready', () => this.health.recovered());
    this.usage = new RedisUsage(this.client, this.prefix, this.health);
    this.quota = new RedisQuota(this.client, this.prefix, opts.policy, this.health);
  }

  get available(): boolean {
    return this.health.available && this.client.status === 'ready';
  }

  keys(): KeyStore {
    return (this.keyStore ??= new RedisKeyStore(this.client, this.prefix, this.health));
  }

  limiter(spec: LimiterSpec): Limiter {
    return redisLimiter(this.client, this.prefix, spec, this.policy, this.health);
  }

  /** `maxEntries` is not used: Redis bounds its own memory (maxmemory and an LRU eviction policy). */
  cache<T>(namespace: string, _opts: { maxEntries: number }): CacheStore<T> {
    return new RedisCache<T>(this.client, `${this.prefix}cache:${namespace}:`, this.health);
  }

  /** Connects once; an unreachable Redis is logged and retried in the background, never thrown. */
  start(): Promise<void> {
    this.started ??= this.connect();
    return this.started;
  }

  private async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (error) {
      this.health.failed('connection', error);
    }
    // A command timeout leaves the connection "ready" with no event when Redis answers again: ask it.
    this.probe = setInterval(() => {
      if (this.health.available || this.client.status !== 'ready') return;
      this.client.ping().then(
        () => this.health.recovered(),
        () => undefined,
      );
    }, PROBE_MS);
    this.probe.unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.probe);
    await this.started;
    const connected = this.client.status === 'ready';
    await this.usage.close(connected);
    if (connected) await this.client.quit().catch(() => undefined);
    this.client.disconnect();
  }
}
