/** Every Prometheus metric Hapax exports, defined in this one file. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'hapax_http_requests_total',
    help: 'HTTP requests by endpoint (route pattern) and status',
    labelNames: ['endpoint', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'hapax_http_request_duration_seconds',
    help: 'HTTP request duration in seconds, to the end of the response',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly httpActive = new Gauge({
    name: 'hapax_http_active_requests',
    help: 'HTTP requests in progress by endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'hapax_errors_total',
    help: 'Errors answered to clients, by error type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly rateLimitHits = new Counter({
    name: 'hapax_rate_limit_hits_total',
    help: 'Requests refused by a rate limit, by client (key name or IP)',
    labelNames: ['client'] as const,
    registers: [this.registry],
  });
  readonly providerRequests = new Counter({
    name: 'hapax_provider_requests_total',
    help: 'Upstream attempts by provider and outcome',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
