/**
 * Live resilience state per provider: circuit breaker, health, retry policy and concurrency queue.
 * It outlives a Runtime: a config reload keeps the state of providers whose settings did not change,
 * so a reload neither forgets an open breaker nor resets health.
 */
import type { HapaxConfig, ProviderConfig } from '../config/schema.ts';
import type { Metrics } from '../observability/metrics.ts';
import { BREAKER_STATE_VALUE, CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { ProviderHealth } from '../resilience/provider-health.ts';
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
}

interface Entry {
  fingerprint: string;
  state: ProviderState;
}

export class ProviderStates {
  private entries = new Map<string, Entry>();
  private readonly metrics: Metrics;

  constructor(metrics: Metrics) {
    this.metrics = metrics;
  }

  /** States for a config: reused where a provider's settings are unchanged, new otherwise. */
  build(config: HapaxConfig): ReadonlyMap<string, ProviderState> {
    const next = new Map<string, Entry>();
    const out = new Map<string, ProviderState>();
    for (const [name, provider] of Object.entries(config.providers)) {
      const fingerprint = JSON.stringify([provider, config.circuit_breaker, config.health_check, config.retry, config.queue]);
      const previous = this.entries.get(name);
      const entry = previous?.fingerprint === fingerprint ? previous : { fingerprint, state: this.create(name, provider, config) };
      next.set(name, entry);
      out.set(name, entry.state);
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

  private create(name: string, provider: ProviderConfig, config: HapaxConfig): ProviderState {
    const cb = config.circuit_breaker;
    const metrics = this.metrics;
    metrics.breakerState.set({ provider: name }, 0);
    metrics.providerHealthy.set({ provider: name }, 1);
    const breaker = new CircuitBreaker({
      failureThreshold: cb.failure_threshold,
      timeoutMs: cb.timeout,
      halfOpenMaxRequests: cb.max_requests,
      intervalMs: cb.interval,
      onStateChange: (_from, to) => metrics.breakerState.set({ provider: name }, BREAKER_STATE_VALUE[to]),
    });
    const health = new ProviderHealth(name, {
      failureThreshold: config.health_check.failure_threshold,
      onHealthChange: (_name, healthy) => metrics.providerHealthy.set({ provider: name }, healthy ? 1 : 0),
    });
    const retry = { ...config.retry, ...provider.retry };
    const queue = provider.max_concurrency
      ? new FairQueue({
          name,
          maxConcurrency: provider.max_concurrency,
          maxSize: config.queue.max_size,
          timeoutMs: config.queue.timeout,
          onWait: (_key, waitedMs) => metrics.queueWait.observe({ provider: name }, waitedMs / 1000),
        })
      : undefined;
    return { name, breaker, health, backoff: Backoff.fromConfig(retry), maxRetries: retry.max_retries, queue };
  }
}
