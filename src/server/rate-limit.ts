/**
 * Per-client request rate limits with rate-limiter-flexible: requests per minute (with an optional burst
 * allowance on top). Tokens per minute are reserved before the request and settled after it, on the
 * state store's quota ledger (quota-admission.ts). Counters live in the Runtime's state store: this process, or Redis shared by a fleet.
 * Limiters are built once per store and distinct setting and then kept, so a config reload that keeps
 * a limit (and its `state`) keeps its counters, and a request never builds one.
 */
// Single files, not the index with every backend: see src/types/deep-imports.d.ts.
import BurstyRateLimiter from 'rate-limiter-flexible/lib/BurstyRateLimiter.js';
import rateLimiterCluster from 'rate-limiter-flexible/lib/RateLimiterCluster.js';
import RateLimiterRes from 'rate-limiter-flexible/lib/RateLimiterRes.js';

const { RateLimiterCluster } = rateLimiterCluster;
import { GatewayError } from '../core/errors.ts';
import type { RateLimitSettings } from '../state/keys.ts';
import type { Limiter, LimiterSpec, StateStore } from '../state/store.ts';

const WINDOW_SECONDS = 60;

export interface LimitVerdict {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

type Consumer = Pick<Limiter, 'consume'>;

export interface RateLimitsOptions {
  /**
   * In a `server.workers` worker: keep the counters in the cluster primary (RateLimiterCluster; the
   * primary runs RateLimiterClusterMaster), so a limit holds across all workers on the machine.
   * A Redis state store already shares counters across machines and takes precedence.
   */
  cluster?: boolean;
}

interface StoreLimiters {
  requests: Map<string, Consumer>;
}

export class RateLimits {
  private readonly byStore = new WeakMap<StateStore, StoreLimiters>();
  private readonly cluster: boolean;

  constructor(opts: RateLimitsOptions = {}) {
    this.cluster = opts.cluster ?? false;
  }

  /** A counter in the store, or in the cluster primary (prefixes name the same counter in every worker). */
  private counter(store: StateStore, spec: LimiterSpec): Limiter {
    if (this.cluster && store.kind === 'memory') {
      return new RateLimiterCluster({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds, timeoutMs: 5_000 });
    }
    return store.limiter(spec);
  }

  private limiters(store: StateStore): StoreLimiters {
    let limiters = this.byStore.get(store);
    if (!limiters) this.byStore.set(store, (limiters = { requests: new Map() }));
    return limiters;
  }

  private requests(store: StateStore, settings: RateLimitSettings, scope: string): Consumer {
    const id = `${scope}|${settings.requests_per_minute}|${settings.burst ?? 0}`;
    const built = this.limiters(store).requests;
    let limiter = built.get(id);
    if (!limiter) {
      const main = this.counter(store, { keyPrefix: `rpm:${id}`, points: settings.requests_per_minute as number, durationSeconds: WINDOW_SECONDS });
      limiter = settings.burst ? new BurstyRateLimiter(main, this.counter(store, { keyPrefix: `burst:${id}`, points: settings.burst, durationSeconds: WINDOW_SECONDS })) : main;
      built.set(id, limiter);
    }
    return limiter;
  }

  /**
   * Counts one request for `client` under `settings`; throws a 429 RateLimitError when over, or a 503
   * when the shared counters are out of reach and `state.on_failure` is closed.
   */
  async admit(store: StateStore, client: string, settings: RateLimitSettings, scope: string): Promise<LimitVerdict | undefined> {
    let verdict: LimitVerdict | undefined;
    if (settings.requests_per_minute) {
      const limit = settings.requests_per_minute + (settings.burst ?? 0);
      verdict = toVerdict(await consume(this.requests(store, settings, scope), client, 1, limit, 'requests per minute'), limit);
    }
    return verdict;
  }
}

async function consume(limiter: Consumer, client: string, points: number, limit: number, what: string): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(client, points);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) throw limitError(what, limit, rejection.msBeforeNext);
    throw rejection;
  }
}

function toVerdict(res: RateLimiterRes, limit: number): LimitVerdict {
  return { limit, remaining: Math.max(0, res.remainingPoints), resetSeconds: Math.ceil(res.msBeforeNext / 1000) };
}

function limitError(what: string, limit: number, msBeforeNext: number): GatewayError {
  const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  const error = new GatewayError(`rate limit exceeded: ${limit} ${what}`, {
    status: 429,
    type: 'RateLimitError',
    details: { limit, window_seconds: WINDOW_SECONDS, retry_after_seconds: retryAfterSeconds },
    retryAfterSeconds,
  });
  return Object.assign(error, { verdict: { limit, remaining: 0, resetSeconds: retryAfterSeconds } satisfies LimitVerdict });
}
