/**
 * Live resilience state per provider: circuit breaker, health, retry policy and concurrency queue.
 * It outlives a Runtime. A reload keeps a provider's breaker and health as long as it still points at the
 * same endpoint (type and base_url), with the new thresholds applied to them: rotating a key, changing a
 * timeout or the breaker settings neither forgets an open breaker nor resets health. A provider moved to
 * another endpoint is another upstream and starts fresh. The queue is kept while its limits are unchanged;
 * the retry policy holds no state and is always the new one.
 */
import type { Logger } from 'pino';
import type { HapaxConfig, ProviderConfig } from '../config/schema.ts';
import type { Metrics } from '../observability/metrics.ts';
import { BREAKER_STATE_VALUE, CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { ProviderHealth, type HealthChangeCause } from '../resilience/provider-health.ts';
import type { BreakerState } from '../resilience/circuit-breaker.ts';
import { Backoff } from '../resilience/retry.ts';
import { FairQueue } from './fair-queue.ts';

export interface ProviderState {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  readonly health: ProviderHealth;
  readonly backoff: Backoff;
  /** How many extra rounds this provider may be tried within one request. */
  readonly maxRetries: number;
  /** Present when the provider has `max_concurrency`. */
  readonly queue?: FairQueue;
  /** Streams: an attempt with no first event within this fails over (first_token_timeout). */
  readonly firstTokenTimeoutMs?: number;
}

interface Entry {
  /** The upstream the breaker and health judge: a change means another provider. */
  endpoint: string;
  breaker: CircuitBreaker;
  health: ProviderHealth;
  queueLimits?: string;
  queue?: FairQueue;
}

export class ProviderStates {
  private entries = new Map<string, Entry>();
  private readonly metrics: Metrics;
  private readonly logger?: Logger;
  /** Of the config last built: what the transition log lines say about the next try. */
  private timing: { breakerOpenMs: number; breakerThreshold: number; healthIntervalMs?: number } = { breakerOpenMs: 0, breakerThreshold: 0 };

  /** `logger` gets one line per breaker transition and health change (warn when worse, info when better). */
  constructor(metrics: Metrics, logger?: Logger) {
    this.metrics = metrics;
    this.logger = logger;
  }

  /** States for a config: breaker, health and queue carried over where the provider allows it (see above). */
  build(config: HapaxConfig): ReadonlyMap<string, ProviderState> {
    this.timing = {
      breakerOpenMs: config.circuit_breaker.timeout,
      breakerThreshold: config.circuit_breaker.failure_threshold,
      healthIntervalMs: config.health_check.enabled ? config.health_check.interval : undefined,
    };
    const next = new Map<string, Entry>();
    const out = new Map<string, ProviderState>();
    for (const [name, provider] of Object.entries(config.providers)) {
      const entry = this.carryOver(name, provider, config, this.entries.get(name));
      next.set(name, entry);
      const retry = { ...config.retry, ...provider.retry };
      out.set(name, { name, breaker: entry.breaker, health: entry.health, backoff: Backoff.fromConfig(retry), maxRetries: retry.max_retries, queue: entry.queue, firstTokenTimeoutMs: provider.first_token_timeout });
    }
    for (const [name] of this.entries) {
      if (!next.has(name)) {
        this.metrics.breakerState.remove({ provider: name });
        this.metrics.providerHealthy.remove({ provider: name });
      }
    }
    this.entries = next;
    return out;
  }

  private carryOver(name: string, provider: ProviderConfig, config: HapaxConfig, previous: Entry | undefined): Entry {
    const endpoint = JSON.stringify([provider.type, provider.base_url ?? null]);
    let breaker: CircuitBreaker;
    let health: ProviderHealth;
    if (previous?.endpoint === endpoint) {
      ({ breaker, health } = previous);
      breaker.reconfigure(breakerOptions(config));
      health.setFailureThreshold(config.health_check.failure_threshold);
    } else {
      breaker = this.newBreaker(name, config);
      health = this.newHealth(name, config);
    }
    const queueLimits = provider.max_concurrency ? JSON.stringify([provider.max_concurrency, config.queue.max_size, config.queue.timeout]) : undefined;
    // Requests already waiting in a queue whose limits changed are served by it; new ones use the new queue.
    const queue = !queueLimits ? undefined : previous?.queueLimits === queueLimits ? previous.queue : this.newQueue(name, provider.max_concurrency as number, config);
    return { endpoint, breaker, health, queueLimits, queue };
  }

  private newBreaker(name: string, config: HapaxConfig): CircuitBreaker {
    const metrics = this.metrics;
    metrics.breakerState.set({ provider: name }, 0);
    return new CircuitBreaker({
      ...breakerOptions(config),
      onStateChange: (from, to) => {
        metrics.breakerState.set({ provider: name }, BREAKER_STATE_VALUE[to]);
        this.logBreaker(name, from, to);
      },
    });
  }

  private logBreaker(provider: string, from: BreakerState, to: BreakerState): void {
    if (!this.logger) return;
    if (to === 'open') {
      const retryInMs = this.timing.breakerOpenMs;
      const reason = from === 'half_open' ? 'the trial request failed' : `${this.timing.breakerThreshold} consecutive failed requests`;
      const retryAt = new Date(Date.now() + retryInMs).toISOString();
      this.logger.warn(
        { provider, breaker: 'open', from, reason, retry_at: retryAt, retry_in_ms: retryInMs },
        `provider ${provider}: circuit breaker open (${reason}); requests skip it until ${retryAt}, then one trial request`,
      );
    } else if (to === 'half_open') {
      this.logger.info({ provider, breaker: 'half_open', from }, `provider ${provider}: circuit breaker half-open; the next request is a trial`);
    } else {
      this.logger.info({ provider, breaker: 'closed', from }, `provider ${provider}: circuit breaker closed; the trial request succeeded`);
    }
  }


  private newHealth(name: string, config: HapaxConfig): ProviderHealth {
    const metrics = this.metrics;
    metrics.providerHealthy.set({ provider: name }, 1);
    return new ProviderHealth(name, {
      failureThreshold: config.health_check.failure_threshold,
      onHealthChange: (_name, healthy, cause) => {
        metrics.providerHealthy.set({ provider: name }, healthy ? 1 : 0);
        this.logHealth(name, healthy, cause);
      },
    });
  }

  private logHealth(provider: string, healthy: boolean, cause: HealthChangeCause): void {
    if (!this.logger) return;
    const by = cause.source === 'probe' ? 'health check' : 'live requests';
    if (healthy) {
      this.logger.info({ provider, healthy: true, source: cause.source }, `provider ${provider} is healthy again (${by})`);
      return;
    }
    const reason = cause.reason ?? `${cause.consecutiveFails} consecutive failed request${cause.consecutiveFails === 1 ? '' : 's'}`;
    const interval = this.timing.healthIntervalMs;
    const retryAt = interval !== undefined ? new Date(Date.now() + interval).toISOString() : undefined;
    this.logger.warn(
      { provider, healthy: false, source: cause.source, reason, ...(retryAt ? { retry_at: retryAt, retry_in_ms: interval } : {}) },
      `provider ${provider} is unhealthy (${by}: ${reason}); ${retryAt ? `next health check at ${retryAt}` : 'health checks are off: the next request that reaches it decides'}; requests go to the next provider meanwhile`,
    );
  }

  private newQueue(name: string, maxConcurrency: number, config: HapaxConfig): FairQueue {
    const metrics = this.metrics;
    return new FairQueue({
      name,
      maxConcurrency,
      maxSize: config.queue.max_size,
      timeoutMs: config.queue.timeout,
      onWait: (_key, waitedMs) => metrics.queueWait.observe({ provider: name }, waitedMs / 1000),
    });
  }
}

function breakerOptions(config: HapaxConfig) {
  const cb = config.circuit_breaker;
  return { failureThreshold: cb.failure_threshold, timeoutMs: cb.timeout, halfOpenMaxRequests: cb.max_requests, intervalMs: cb.interval };
}
