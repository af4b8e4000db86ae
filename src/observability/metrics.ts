/**
 * Every Prometheus metric Hapax exports, defined in this one file.
 *
 * Cardinality is bounded: `endpoint` is the route pattern (never the raw path), `provider` is a
 * configured provider name, `model` a configured model name (anything else is "other"), and
 * `client` a key's name (never the key). Route `metrics_labels` (e.g. department) are added to the
 * request, token and cost series; their label names are the union over the config's routes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HapaxConfig } from '../config/schema.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export class Metrics {
  readonly registry = new Registry();
  /** Label names taken from routes' metrics_labels; fixed for the life of these metric objects. */
  readonly routeLabelNames: readonly string[];

  readonly httpRequests: Counter<string>;
  readonly httpDuration: Histogram<string>;
  readonly tokens: Counter<string>;
  readonly tokenDetails: Counter<string>;
  readonly cost: Counter<string>;

  /**
   * Requests in progress per endpoint, counted as plain numbers on the request path and read into the
   * gauge when it is scraped: two label-set lookups per request fewer.
   */
  private readonly activeByEndpoint = new Map<string, number>();
  readonly httpActive = new Gauge({
    name: 'hapax_http_active_requests',
    help: 'HTTP requests in progress by endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [endpoint, count] of this.activeByEndpoint) this.httpActive.set({ endpoint }, count);
    },
  });
  readonly errors = new Counter({
    name: 'hapax_errors_total',
    help: 'Errors answered to clients, by error type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly clientTimeouts = new Counter({
    name: 'hapax_client_timeouts_total',
    help: 'Requests cut because the client did not send them in time (server.read_header_timeout, server.read_timeout), by phase',
    labelNames: ['phase'] as const,
    registers: [this.registry],
  });
  readonly rateLimitHits = new Counter({
    name: 'hapax_rate_limit_hits_total',
    help: 'Requests refused by a rate limit, by client (key name or IP)',
    labelNames: ['client'] as const,
    registers: [this.registry],
  });
  readonly budgetWarnings = new Counter({
    name: 'hapax_budget_soft_limit_total',
    help: 'Budgets that passed their soft threshold (once per window), by scope (key, label, route), budget and window',
    labelNames: ['scope', 'budget', 'window'] as const,
    registers: [this.registry],
  });
  readonly budgetRefusals = new Counter({
    name: 'hapax_budget_refusals_total',
    help: 'Requests refused because their reservation did not fit a budget, by scope, budget and window',
    labelNames: ['scope', 'budget', 'window'] as const,
    registers: [this.registry],
  });
  readonly unmetered = new Counter({
    name: 'hapax_unmetered_requests_total',
    help: 'Answers that came with no usage from the provider and nothing to estimate it from, by provider',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly unpriced = new Counter({
    name: 'hapax_unpriced_requests_total',
    help: 'Answers whose model has no price (neither config pricing nor the shipped table): their tokens are counted, their cost is not, by provider and model',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  readonly breakerState = new Gauge({
    name: 'circuit_breaker_state',
    help: 'Circuit breaker state per provider: 0 closed, 1 half-open, 2 open',
    labelNames: ['provider'] as const,
    // Across server.workers the cluster's view is the worst worker's (summing states means nothing).
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly healthCheckDuration = new Histogram({
    name: 'hapax_health_check_duration_seconds',
    help: 'Duration of provider health checks',
    labelNames: ['provider'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly healthCheckErrors = new Counter({
    name: 'hapax_health_check_errors_total',
    help: 'Failed provider health checks',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly providerHealthy = new Gauge({
    name: 'hapax_provider_healthy',
    help: 'Whether a provider is healthy (1) or not (0)',
    labelNames: ['provider'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly deduplicated = new Counter({
    name: 'hapax_deduplicated_requests_total',
    help: 'Requests answered by sharing an identical in-flight request instead of calling upstream',
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: 'hapax_cache_hits_total',
    help: 'Requests answered from the response cache',
    registers: [this.registry],
  });
  readonly providerRequests = new Counter({
    name: 'hapax_provider_requests_total',
    help: 'Upstream attempts by provider and outcome (success or the failure kind)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly providerLatency = new Histogram({
    name: 'hapax_provider_request_duration_seconds',
    help: 'Upstream attempt duration by provider (to the full answer, or to the first token for streams)',
    labelNames: ['provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly timeToFirstToken = new Histogram({
    name: 'hapax_time_to_first_token_seconds',
    help: 'Time from request start to the first streamed event, by provider',
    labelNames: ['provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly failovers = new Counter({
    name: 'hapax_failovers_total',
    help: 'Moves from one provider to the next within a request',
    labelNames: ['from', 'to', 'reason'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'hapax_retries_total',
    help: 'Retries of the same provider after a retryable failure',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly hedges = new Counter({
    name: 'hapax_hedges_total',
    help: "Hedged requests (hedge_after): a second candidate started because the first had not answered in time, by that second candidate and which attempt won (first, hedge or neither)",
    labelNames: ['provider', 'winner'] as const,
    registers: [this.registry],
  });
  readonly streamResumes = new Counter({
    name: 'hapax_stream_resumes_total',
    help: 'Streams cut mid-way on a resume_streams route, by the provider that was cut and what became of it (resumed, failed: no candidate could continue, tool_call: cut inside a tool call, exhausted: too many resumes)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'hapax_queue_depth',
    help: 'Requests waiting for a provider concurrency slot',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  /** The current Runtime's upstream pools, read when scraped (see watchUpstreamPools). */
  private upstreamPools: () => ReadonlyArray<{ provider: string; queued: number; connected: number }> = () => [];
  readonly upstreamQueued = new Gauge({
    name: 'hapax_upstream_queued_requests',
    help: "Requests waiting for a connection to the provider's origin: every connection busy and the pool at the provider's max_connections",
    labelNames: ['provider'] as const,
    registers: [this.registry],
    collect: () => this.readUpstreamPools(),
  });
  readonly upstreamConnections = new Gauge({
    name: 'hapax_upstream_connections',
    help: "Open connections to the provider's origin (HTTP/1.1: one per request in flight; HTTP/2: many requests share one)",
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'hapax_queue_wait_seconds',
    help: 'Time spent waiting for a provider concurrency slot',
    labelNames: ['provider'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [this.registry],
  });
  readonly overhead = new Histogram({
    name: 'hapax_gateway_overhead_seconds',
    help: 'Time Hapax spent on a request that was not spent waiting on a provider',
    buckets: OVERHEAD_BUCKETS,
    registers: [this.registry],
  });
  readonly stateErrors = new Counter({
    name: 'hapax_state_errors_total',
    help: 'Failed operations on the shared state store (Redis), by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly stateAvailable = new Gauge({
    name: 'hapax_state_available',
    help: 'Whether the shared state store is reachable (1) or not (0); always 1 for in-memory state',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'hapax_config_reloads_total',
    help: 'Config reloads by result (success or failure)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(routeLabelNames: readonly string[] = []) {
    this.routeLabelNames = routeLabelNames;
    const extra = [...routeLabelNames];
    this.httpRequests = new Counter({
      name: 'hapax_http_requests_total',
      help: 'HTTP requests by endpoint (route pattern) and status',
      labelNames: ['endpoint', 'status', ...extra],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'hapax_http_request_duration_seconds',
      help: 'HTTP request duration in seconds, to the end of the response',
      labelNames: ['endpoint', ...extra],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.tokens = new Counter({
      name: 'hapax_tokens_total',
      help: 'Tokens processed by provider, model and type (prompt or completion); usage_source says whether the provider reported them or the gateway estimated them (a stream that gave none)',
      labelNames: ['provider', 'model', 'type', 'client', 'usage_source', ...extra],
      registers: [this.registry],
    });
    // A metric of its own, not more `type`s of hapax_tokens_total: these are parts of its counts, and sums over its types must stay true.
    this.tokenDetails = new Counter({
      name: 'hapax_token_details_total',
      help: 'Parts of hapax_tokens_total the provider reported: prompt tokens read from (cache_read) or written to (cache_write) its prompt cache, completion tokens spent reasoning (reasoning)',
      labelNames: ['provider', 'model', 'kind', 'client', ...extra],
      registers: [this.registry],
    });
    this.cost = new Counter({
      name: 'hapax_cost_usd_total',
      help: 'Estimated spend in US dollars from the pricing table, by provider and model',
      labelNames: ['provider', 'model', 'client', ...extra],
      registers: [this.registry],
    });
    collectDefaultMetrics({ register: this.registry, prefix: '' });
    // Gauges named like counters (promtool rejects them); nodejs_active_{handles,requests,resources} carry the same by type.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
  }

  /** Where the upstream pool gauges come from: the Runtime now serving (set when it starts). */
  watchUpstreamPools(source: () => ReadonlyArray<{ provider: string; queued: number; connected: number }>): void {
    this.upstreamPools = source;
  }

  private readUpstreamPools(): void {
    // Both gauges in one pass; reset first, so a provider a reload removed leaves no stale series.
    this.upstreamQueued.reset();
    this.upstreamConnections.reset();
    for (const { provider, queued, connected } of this.upstreamPools()) {
      this.upstreamQueued.set({ provider }, queued);
      this.upstreamConnections.set({ provider }, connected);
    }
  }

  /** A request to `endpoint` started; pair with requestEnded(). */
  requestStarted(endpoint: string): void {
    this.activeByEndpoint.set(endpoint, (this.activeByEndpoint.get(endpoint) ?? 0) + 1);
  }

  requestEnded(endpoint: string): void {
    this.activeByEndpoint.set(endpoint, (this.activeByEndpoint.get(endpoint) ?? 1) - 1);
  }
}

/** Label names for routes' metrics_labels: the union over the configured routes, sorted. */
export function routeLabelNames(config: Pick<HapaxConfig, 'routes'>): string[] {
  const names = new Set<string>();
  for (const route of config.routes ?? []) for (const name of Object.keys(route.metrics_labels ?? {})) names.add(name);
  return [...names].sort();
}
