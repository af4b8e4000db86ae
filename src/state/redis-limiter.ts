/**
 * Rate limiters whose counters live in Redis (one atomic INCR script per request, so a fleet shares
 * exact counts). When a Redis call fails, rate-limiter-flexible hands the call to the insurance limiter;
 * ours reports the failure and then follows `on_failure`: `open` counts in this process with the same
 * limit, `closed` refuses with 503.
 */
import type { Redis } from 'ioredis';
import type { RateLimiterRes } from 'rate-limiter-flexible';
// Single files, not the index with every backend (this module is loaded at start): see src/types/deep-imports.d.ts.
import RateLimiterCompatibleAbstract from 'rate-limiter-flexible/lib/RateLimiterCompatibleAbstract.js';
import RateLimiterMemory from 'rate-limiter-flexible/lib/RateLimiterMemory.js';
import RateLimiterRedis from 'rate-limiter-flexible/lib/RateLimiterRedis.js';
import { stateUnavailable, type FailurePolicy, type StateHealth } from './health.ts';
import type { Limiter, LimiterSpec } from './store.ts';

type Options = Record<string, unknown>;

/** Takes over while Redis cannot answer. Every call here means a Redis call just failed. */
class OutageLimiter extends RateLimiterCompatibleAbstract {
  override readonly keyPrefix: string;
  override blockDuration = 0;
  override execEvenly = false;
  private readonly local?: RateLimiterMemory;
  private readonly health: StateHealth;

  constructor(spec: LimiterSpec, policy: FailurePolicy, health: StateHealth) {
    super();
    this.keyPrefix = spec.keyPrefix;
    this.health = health;
    if (policy === 'open') this.local = new RateLimiterMemory({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds });
  }

  /** The local limiter, after noting the outage; closed policy: a 503. */
  private use(): RateLimiterMemory {
    this.health.failed('rate_limit');
    if (!this.local) throw stateUnavailable();
    return this.local;
  }

  override async consume(key: string | number, points?: number, options?: Options): Promise<RateLimiterRes> {
    return this.use().consume(key, points, options);
  }
  override async penalty(key: string | number, points?: number, options?: Options): Promise<RateLimiterRes> {
    return this.use().penalty(key, points, options);
  }
  override async reward(key: string | number, points?: number, options?: Options): Promise<RateLimiterRes> {
    return this.use().reward(key, points, options);
  }
  override async get(key: string | number, options?: Options): Promise<RateLimiterRes | null> {
    return this.use().get(key, options);
  }
  override async set(key: string | number, points: number, secDuration: number, options?: Options): Promise<RateLimiterRes> {
    return this.use().set(key, points, secDuration, options);
  }
  override async block(key: string | number, secDuration: number, options?: Options): Promise<RateLimiterRes> {
    return this.use().block(key, secDuration, options);
  }
  override async delete(key: string | number, options?: Options): Promise<boolean> {
    return this.use().delete(key, options);
  }
}

export function redisLimiter(client: Redis, prefix: string, spec: LimiterSpec, policy: FailurePolicy, health: StateHealth): Limiter {
  return new RateLimiterRedis({
    storeClient: client,
    keyPrefix: `${prefix}rl:${spec.keyPrefix}`,
    points: spec.points,
    duration: spec.durationSeconds,
    // Not connected: go straight to the outage limiter instead of trying a command.
    rejectIfRedisNotReady: true,
    insuranceLimiter: new OutageLimiter(spec, policy, health),
  });
}
