/**
 * Per-client rate limits with rate-limiter-flexible: requests per minute (with an optional burst
 * allowance on top) and tokens per minute (counted from real usage after each answer, streams
 * included). Limiters are kept per distinct setting for the life of the process, so a config reload
 * that keeps a limit keeps its counters.
 */
import { BurstyRateLimiter, RateLimiterCluster, RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { GatewayError } from '../providers/errors.ts';
import type { RateLimitSettings } from '../state/keys.ts';

const WINDOW_SECONDS = 60;

export interface LimitVerdict {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

type Consumer = Pick<RateLimiterAbstract, 'consume'>;

export interface RateLimitsOptions {
  /**
   * In a `server.workers` worker: keep the counters in the cluster primary (RateLimiterCluster; the
   * primary runs RateLimiterClusterMaster), so a limit holds across all workers on the machine.
   */
  cluster?: boolean;
}

type Counter = Pick<RateLimiterAbstract, 'consume' | 'get' | 'penalty'>;

export class RateLimits {
  private readonly requestLimiters = new Map<string, Consumer>();
  private readonly tokenLimiters = new Map<number, Counter>();
  private readonly cluster: boolean;

  constructor(opts: RateLimitsOptions = {}) {
    this.cluster = opts.cluster ?? false;
  }

  /** A counter in this process, or in the cluster primary (prefixes name the same counter in every worker). */
  private counter(opts: { keyPrefix: string; points: number; duration: number }): RateLimiterAbstract {
    return this.cluster ? new RateLimiterCluster({ ...opts, timeoutMs: 5_000 }) : new RateLimiterMemory(opts);
  }

  private requests(settings: RateLimitSettings, scope: string): Consumer {
    const id = `${scope}|${settings.requests_per_minute}|${settings.burst ?? 0}`;
    let limiter = this.requestLimiters.get(id);
    if (!limiter) {
      const main = this.counter({ keyPrefix: `rpm:${id}`, points: settings.requests_per_minute as number, duration: WINDOW_SECONDS });
      limiter = settings.burst
        ? new BurstyRateLimiter(main, this.counter({ keyPrefix: `burst:${id}`, points: settings.burst, duration: WINDOW_SECONDS }))
        : main;
      this.requestLimiters.set(id, limiter);
    }
    return limiter;
  }

  private tokens(perMinute: number): Counter {
    let limiter = this.tokenLimiters.get(perMinute);
    if (!limiter) {
      limiter = this.counter({ keyPrefix: `tpm:${perMinute}`, points: perMinute, duration: WINDOW_SECONDS });
      this.tokenLimiters.set(perMinute, limiter);
    }
    return limiter;
  }

  /** Counts one request for `client` under `settings`; throws a 429 RateLimitError when over. */
  async admit(client: string, settings: RateLimitSettings, scope: string): Promise<LimitVerdict | undefined> {
    let verdict: LimitVerdict | undefined;
    if (settings.requests_per_minute) {
      const limit = settings.requests_per_minute + (settings.burst ?? 0);
      verdict = toVerdict(await consume(this.requests(settings, scope), client, 1, limit, 'requests per minute'), limit);
    }
    if (settings.tokens_per_minute) {
      // Tokens are charged after the answer; a client whose budget is spent waits for the window.
      const used = await this.tokens(settings.tokens_per_minute).get(`${scope}|${client}`);
      if (used && used.consumedPoints >= settings.tokens_per_minute) throw limitError('tokens per minute', settings.tokens_per_minute, used.msBeforeNext);
    }
    return verdict;
  }

  /** Charges the tokens a finished request really used. */
  async chargeTokens(client: string, settings: RateLimitSettings, scope: string, tokens: number): Promise<void> {
    if (!settings.tokens_per_minute || tokens <= 0) return;
    await this.tokens(settings.tokens_per_minute).penalty(`${scope}|${client}`, tokens);
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
