/**
 * What the console shows, kept in memory by one gateway process:
 * - a per-second ring (the last five minutes) of finished requests: count, 5xx, 4xx and a bounded sample of
 *   latencies, from which request rate and latency percentiles are computed;
 * - the last requests, and tokens per key (by name; 'anonymous' without one), per route and per route
 *   label (e.g. department=marketing), fed by the server's onResponse hook;
 * - an event log (failovers, breaker transitions, health flips, reloads) found by sampling the Runtime's
 *   provider states and the failover counter once a second.
 * Tokens and cost are counted as the metrics count them: a deduplicated or cached answer spent its tokens
 * on the request that called upstream. Nothing here is shared between processes: each instance shows its
 * own traffic.
 */
import { formatDuration } from '../config/duration.ts';
import { configSchema, duration, type HapaxConfig } from '../config/schema.ts';
import { mapLeaves } from '../config/schema-walk.ts';
import type { Runtime } from '../gateway/runtime.ts';
import type { Metrics } from '../observability/metrics.ts';
import { MASK, maskUrl, redactSecrets } from '../observability/redact.ts';

export interface RuntimeSource {
  readonly current: Runtime;
  /** Restart-only settings as the process runs them, and as the file had them at start. */
  readonly running?: { values: Record<string, unknown>; atStart: Record<string, unknown> };
}

/** One finished request, as the onResponse hook saw it. */
export interface RequestRecord {
  /** Epoch ms when the response ended. */
  at: number;
  requestId: string;
  method: string;
  route: string;
  status: number;
  latencyMs: number;
  /** Key name, or 'anonymous' when the request had none. */
  client: string;
  /** The key's name when one was accepted. */
  key?: string;
  /** HTTP/1.1, HTTP/2 or HTTP/3. */
  protocol?: string;
  provider?: string;
  model?: string;
  attempts?: number;
  inputTokens?: number;
  outputTokens?: number;
  /** US dollars (config pricing over the shipped table); absent when the model has no price. */
  costUsd?: number;
  /** The answer had tokens but its model no price: its cost is unknown, not zero. */
  unpriced?: boolean;
  labels: Readonly<Record<string, string>>;
}

export interface ConsoleEvent {
  at: number;
  kind: 'failover' | 'breaker' | 'health' | 'reload';
  provider?: string;
  /** Failovers: how many happened since the previous sample. */
  count?: number;
  text: string;
}

interface Bucket {
  sec: number;
  count: number;
  errors: number;
  rejected: number;
  seen: number;
  latencies: number[];
}

interface UsageTotals {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  /** Answers whose model had no price (their cost_usd is missing). */
  unpriced_requests: number;
}

interface ProviderSample {
  at: number;
  total: number;
  failed: number;
}

const HISTORY_SECONDS = 300;
const SERIES_SECONDS = 120;
const WINDOW_SECONDS = 60;
const LATENCY_SAMPLES_PER_SECOND = 256;
const RECENT_REQUESTS = 50;
const EVENTS = 100;
/** Distinct clients/routes/labels tracked; the rest are summed under "(other)". */
const MAX_GROUPS = 200;

export interface FeedOptions {
  holder: RuntimeSource;
  metrics: Metrics;
  now?: () => number;
  sampleIntervalMs?: number;
}

export class ConsoleFeed {
  private readonly holder: RuntimeSource;
  private readonly metrics: Metrics;
  private readonly now: () => number;
  private readonly sampleIntervalMs: number;
  readonly startedAt: number;
  private readonly buckets: (Bucket | undefined)[] = new Array(HISTORY_SECONDS);
  private readonly recent: RequestRecord[] = [];
  private readonly events: ConsoleEvent[] = [];
  private readonly byClient = new Map<string, UsageTotals>();
  private readonly byRoute = new Map<string, UsageTotals>();
  private readonly byLabel = new Map<string, UsageTotals>();
  private readonly totals = { requests: 0, errors: 0, rejected: 0, cost_usd: 0, unpriced_requests: 0 };
  /** `provider/model` → answers without a price, for the console's flag. */
  private readonly unpricedModels = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  // What the previous sample saw, to turn state into events.
  private lastLoadedAt: number | undefined;
  private readonly lastProvider = new Map<string, { breaker: string; timesOpened: number; healthy: boolean }>();
  private readonly lastFailovers = new Map<string, number>();
  private readonly providerSamples = new Map<string, ProviderSample[]>();

  constructor(opts: FeedOptions) {
    this.holder = opts.holder;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
    this.sampleIntervalMs = opts.sampleIntervalMs ?? 1000;
    this.startedAt = this.now();
  }

  /** Samples once now, then every interval until stop(); the timer never keeps the process alive. */
  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.sampleIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  record(entry: RequestRecord): void {
    const sec = Math.floor(entry.at / 1000);
    const bucket = this.bucket(sec);
    bucket.count++;
    this.totals.requests++;
    const failed = entry.status >= 500;
    if (failed) {
      bucket.errors++;
      this.totals.errors++;
    } else if (entry.status >= 400) {
      bucket.rejected++;
      this.totals.rejected++;
    }
    // Reservoir sampling keeps a fair sample of a busy second's latencies in bounded memory.
    bucket.seen++;
    if (bucket.latencies.length < LATENCY_SAMPLES_PER_SECOND) bucket.latencies.push(entry.latencyMs);
    else {
      const slot = Math.floor(Math.random() * bucket.seen);
      if (slot < LATENCY_SAMPLES_PER_SECOND) bucket.latencies[slot] = entry.latencyMs;
    }
    this.totals.cost_usd += entry.costUsd ?? 0;
    if (entry.unpriced) {
      this.totals.unpriced_requests++;
      const id = `${entry.provider}/${entry.model}`;
      if (this.unpricedModels.has(id) || this.unpricedModels.size < MAX_GROUPS) this.unpricedModels.set(id, (this.unpricedModels.get(id) ?? 0) + 1);
    }
    this.recent.push(entry);
    if (this.recent.length > RECENT_REQUESTS) this.recent.shift();
    const add = (map: Map<string, UsageTotals>, key: string) => {
      const totals = group(map, key);
      totals.requests++;
      if (failed) totals.errors++;
      totals.input_tokens += entry.inputTokens ?? 0;
      totals.output_tokens += entry.outputTokens ?? 0;
      totals.cost_usd += entry.costUsd ?? 0;
      if (entry.unpriced) totals.unpriced_requests++;
    };
    // A request refused for its key (401) used nothing: it is no one's usage.
    if (entry.status !== 401) add(this.byClient, entry.client);
    add(this.byRoute, entry.route);
    for (const [name, value] of Object.entries(entry.labels)) add(this.byLabel, `${name}=${value}`);
  }

  private bucket(sec: number): Bucket {
    const index = sec % HISTORY_SECONDS;
    let bucket = this.buckets[index];
    if (!bucket || bucket.sec !== sec) {
      bucket = { sec, count: 0, errors: 0, rejected: 0, seen: 0, latencies: [] };
      this.buckets[index] = bucket;
    }
    return bucket;
  }

  private bucketAt(sec: number): Bucket | undefined {
    const bucket = this.buckets[sec % HISTORY_SECONDS];
    return bucket?.sec === sec ? bucket : undefined;
  }

  /** Looks at provider states and counters once, turning changes into events. */
  sample(): Promise<void> {
    this.sampling ??= this.sampleOnce().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  private async sampleOnce(): Promise<void> {
    const now = this.now();
    const runtime = this.holder.current;
    const loadedAt = runtime.loadedAt.getTime();
    if (this.lastLoadedAt !== undefined && loadedAt !== this.lastLoadedAt) {
      this.event({ at: now, kind: 'reload', text: `config reloaded from ${runtime.source}` });
    }
    this.lastLoadedAt = loadedAt;

    for (const [name, state] of runtime.providerStates) {
      const snapshot = state.breaker.snapshot();
      const healthy = state.health.healthy;
      const before = this.lastProvider.get(name);
      if (before) {
        if (snapshot.timesOpened > before.timesOpened && snapshot.state !== 'open') {
          this.event({ at: now, kind: 'breaker', provider: name, text: `${name}: breaker opened, now ${label(snapshot.state)}` });
        } else if (snapshot.state !== before.breaker) {
          this.event({ at: now, kind: 'breaker', provider: name, text: `${name}: breaker ${label(before.breaker)} → ${label(snapshot.state)}` });
        }
        if (healthy !== before.healthy) {
          this.event({ at: now, kind: 'health', provider: name, text: `${name}: ${healthy ? 'healthy again' : 'unhealthy'}` });
        }
      }
      this.lastProvider.set(name, { breaker: snapshot.state, timesOpened: snapshot.timesOpened, healthy });
    }
    for (const name of [...this.lastProvider.keys()]) if (!runtime.providerStates.has(name)) this.lastProvider.delete(name);

    const failovers = await this.metrics.failovers.get();
    for (const { labels, value } of failovers.values) {
      const key = `${labels.from}\u0000${labels.to}\u0000${labels.reason}`;
      const delta = value - (this.lastFailovers.get(key) ?? 0);
      this.lastFailovers.set(key, value);
      if (delta > 0) {
        this.event({
          at: now,
          kind: 'failover',
          provider: String(labels.from),
          count: delta,
          text: `${labels.from} → ${labels.to} (${labels.reason})${delta > 1 ? ` ×${delta}` : ''}`,
        });
      }
    }

    const attempts = await this.metrics.providerRequests.get();
    const counts = new Map<string, { total: number; failed: number }>();
    for (const { labels, value } of attempts.values) {
      const provider = String(labels.provider);
      const entry = counts.get(provider) ?? { total: 0, failed: 0 };
      entry.total += value;
      if (labels.outcome !== 'success') entry.failed += value;
      counts.set(provider, entry);
    }
    for (const name of runtime.providerStates.keys()) {
      const samples = this.providerSamples.get(name) ?? [];
      const count = counts.get(name) ?? { total: 0, failed: 0 };
      samples.push({ at: now, ...count });
      while (samples.length > 1 && samples[1].at <= now - WINDOW_SECONDS * 1000) samples.shift();
      this.providerSamples.set(name, samples);
    }
    for (const name of [...this.providerSamples.keys()]) if (!runtime.providerStates.has(name)) this.providerSamples.delete(name);
  }

  private event(event: ConsoleEvent): void {
    this.events.push(event);
    if (this.events.length > EVENTS) this.events.shift();
  }

  /** Everything the console page draws, as one JSON-ready object. */
  async snapshot() {
    const now = this.now();
    const runtime = this.holder.current;
    const nowSec = Math.floor(now / 1000);

    const series = { t: [] as number[], requests: [] as number[], errors: [] as number[], p50: [] as (number | null)[], p95: [] as (number | null)[], p99: [] as (number | null)[] };
    for (let sec = nowSec - SERIES_SECONDS; sec < nowSec; sec++) {
      const bucket = this.bucketAt(sec);
      const sorted = bucket ? [...bucket.latencies].sort((a, b) => a - b) : [];
      series.t.push(sec);
      series.requests.push(bucket?.count ?? 0);
      series.errors.push(bucket?.errors ?? 0);
      series.p50.push(percentile(sorted, 0.5));
      series.p95.push(percentile(sorted, 0.95));
      series.p99.push(percentile(sorted, 0.99));
    }

    const window = { requests: 0, errors: 0, rejected: 0, latencies: [] as number[] };
    for (let sec = nowSec - WINDOW_SECONDS + 1; sec <= nowSec; sec++) {
      const bucket = this.bucketAt(sec);
      if (!bucket) continue;
      window.requests += bucket.count;
      window.errors += bucket.errors;
      window.rejected += bucket.rejected;
      window.latencies.push(...bucket.latencies);
    }
    window.latencies.sort((a, b) => a - b);
    const windowSeconds = Math.min(WINDOW_SECONDS, Math.max(1, (now - this.startedAt) / 1000));

    const providers = [...runtime.providerStates].map(([name, state]) => {
      const config = runtime.config.providers[name];
      const breaker = state.breaker.snapshot();
      const health = state.health;
      const samples = this.providerSamples.get(name) ?? [];
      const first = samples[0];
      const last = samples.at(-1);
      const attempts = first && last ? last.total - first.total : 0;
      const failed = first && last ? last.failed - first.failed : 0;
      return {
        name,
        type: config?.type ?? 'unknown',
        model: config?.model ?? null,
        base_url: config?.base_url ? maskUrl(config.base_url, MASK) : null,
        healthy: health.healthy,
        breaker: breaker.state,
        consecutive_failures: breaker.consecutiveFailures,
        failure_threshold: breaker.failureThreshold,
        ms_until_half_open: breaker.msUntilHalfOpen,
        times_opened: breaker.timesOpened,
        // Null until the provider has answered once (a probe or a request): 0 ms would claim a measurement.
        latency_ms: health.ewmaMs === undefined ? null : Math.round(health.lastLatencyMs),
        latency_avg_ms: health.ewmaMs === undefined ? null : Math.round(health.ewmaMs),
        requests: health.requestCount,
        errors_since_healthy: health.errorCount,
        in_flight: health.inFlight,
        rate_limited: health.isRateLimited(),
        last_check: health.report().last_check,
        queue_depth: state.queue?.depth ?? 0,
        attempts_total: last?.total ?? 0,
        failures_total: last?.failed ?? 0,
        error_rate: attempts > 0 ? failed / attempts : null,
      };
    });

    return {
      now,
      started_at: new Date(this.startedAt).toISOString(),
      healthy_providers: providers.filter((p) => p.healthy && p.breaker !== 'open').length,
      providers,
      traffic: {
        window_seconds: Math.round(windowSeconds),
        requests: window.requests,
        errors: window.errors,
        rejected: window.rejected,
        requests_per_second: round(window.requests / windowSeconds, 3),
        error_rate: window.requests > 0 ? round(window.errors / window.requests, 4) : null,
        p50_ms: roundOrNull(percentile(window.latencies, 0.5)),
        p95_ms: roundOrNull(percentile(window.latencies, 0.95)),
        p99_ms: roundOrNull(percentile(window.latencies, 0.99)),
        totals: { requests: this.totals.requests, errors: this.totals.errors, rejected: this.totals.rejected },
        series,
      },
      events: [...this.events].reverse(),
      requests: [...this.recent].reverse().map((r) => ({
        at: r.at,
        request_id: r.requestId,
        method: r.method,
        route: r.route,
        status: r.status,
        latency_ms: round(r.latencyMs, 1),
        client: r.client,
        key: r.key ?? null,
        protocol: r.protocol ?? null,
        provider: r.provider ?? null,
        model: r.model ?? null,
        attempts: r.attempts ?? null,
      })),
      usage: {
        cost_usd: round(this.totals.cost_usd, 6),
        /** False once an answer came from a model without a price: cost_usd leaves those out (unknown, not zero). */
        priced: this.totals.unpriced_requests === 0,
        unpriced_requests: this.totals.unpriced_requests,
        unpriced_models: [...this.unpricedModels].map(([model, requests]) => ({ model, requests })),
        by_client: rows(this.byClient),
        by_route: rows(this.byRoute),
        by_label: rows(this.byLabel),
      },
      config: {
        source: runtime.source,
        loaded_at: runtime.loadedAt.toISOString(),
        warnings: [...runtime.warnings],
        ...effectiveConfig(runtime.config, this.holder.running),
      },
    };
  }
}

export type ConsoleState = Awaited<ReturnType<ConsoleFeed['snapshot']>>;

/**
 * The config as the gateway runs it: restart-only settings as in effect (a --host or --port flag, the port
 * bound for port 0), durations as a person writes them (30s, not 30000), secrets masked; and the
 * restart-only settings a reload changed, which wait for a restart.
 */
function effectiveConfig(config: HapaxConfig, running: RuntimeSource['running']) {
  const values = structuredClone(config) as unknown as Record<string, unknown>;
  const overridden: string[] = [];
  const pending: Array<{ key: string; running: unknown; file: unknown }> = [];
  for (const [key, value] of Object.entries(running?.values ?? {})) {
    const [section, name] = key.split('.');
    const target = values[section] as Record<string, unknown> | undefined;
    if (!target) continue;
    const inFile = target[name];
    if (JSON.stringify(inFile) !== JSON.stringify(running?.atStart[key])) pending.push({ key, running: value, file: inFile });
    else if (JSON.stringify(value) !== JSON.stringify(inFile)) overridden.push(key);
    target[name] = value;
  }
  const shown = mapLeaves(configSchema, redactSecrets(values, MASK), duration, (ms) => (typeof ms === 'number' ? formatDuration(ms) : ms));
  return {
    values: shown,
    /** Running values that differ from the file because a command-line flag (or port 0) set them. */
    overridden,
    pending_restart: pending.map((p) => ({ ...p, running: redactSecrets(p.running, MASK), file: redactSecrets(p.file, MASK) })),
  };
}

function group(map: Map<string, UsageTotals>, key: string): UsageTotals {
  let totals = map.get(key);
  if (!totals) {
    if (map.size >= MAX_GROUPS) key = '(other)';
    totals = map.get(key) ?? { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, unpriced_requests: 0 };
    map.set(key, totals);
  }
  return totals;
}

function rows(map: Map<string, UsageTotals>) {
  return [...map]
    .map(([name, totals]) => ({ name, ...totals, total_tokens: totals.input_tokens + totals.output_tokens, cost_usd: round(totals.cost_usd, 6) }))
    .sort((a, b) => b.total_tokens - a.total_tokens || b.requests - a.requests || a.name.localeCompare(b.name));
}

function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index];
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value, 1);
}

function label(state: string): string {
  return state.replace('_', '-');
}
