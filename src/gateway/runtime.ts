/**
 * A Runtime is everything built from one config: pools, adapters, model catalog, dispatcher and the
 * route table. It is built once per config load and swapped whole on reload; requests keep the one
 * they started with.
 */
import type { LoadedConfig } from '../config/load.ts';
import { listedModels, type HandlerName, type HapaxConfig, type RouteConfig } from '../config/schema.ts';
import type { ProviderAdapter } from '../providers/adapter.ts';
import type { RateLimitSettings } from '../state/keys.ts';
import { PoolRegistry } from '../providers/http.ts';
import { KeyService } from '../state/key-service.ts';
import type { StateLease, StateStores } from '../state/registry.ts';
import type { StateStore } from '../state/store.ts';
import { QuotaPlan } from './quotas.ts';
import { loadTokenizer } from './token-count.ts';
import { createAdapter } from '../providers/index.ts';
import { ModelCatalog, type RoutingPolicy } from './catalog.ts';
import type { Metrics } from '../observability/metrics.ts';
import { UsageMeter } from '../observability/usage.ts';
import { HealthChecker } from '../resilience/provider-health.ts';
import { Dispatcher } from './dispatch.ts';
import { ResponseCache, type CachedAnswer } from './response-cache.ts';
import type { ProviderState, ProviderStates } from './provider-state.ts';

export type { HandlerName };
/** The error body formats of the client APIs. */
export type ErrorDialect = 'hapax' | 'anthropic' | 'ollama';

export interface RouteSpec {
  path: string;
  handler: HandlerName;
  methods: ReadonlySet<string>;
  /** Value of the Allow header for 405 answers. */
  allow: string;
  timeoutMs: number;
  /** Stall limits of this route's streams, over the providers' own (undefined: the provider's). */
  firstTokenTimeoutMs?: number;
  streamIdleTimeoutMs?: number;
  /** Streams: hedge the first attempt after this long without a first event (hedge_after); undefined: never. */
  hedgeAfterMs?: number;
  /** Streams: continue a stream cut mid-way on the next candidate (resume_streams). */
  resumeStreams: boolean;
  maxBodySize: number;
  /** The providers this route can send to, in preference order: its pinned one, else its policy's. */
  providers: readonly string[];
  /** The route's preference tiers and their balancers. */
  routing: RoutingPolicy;
  metricsLabels: Readonly<Record<string, string>>;
  rateLimit?: RateLimitSettings;
  /** The route's own rate-limit counters are kept under this scope (built once, not per request). */
  rateLimitScope: string;
  /** Needs a client key when auth is on: the route's `auth`, never for health, for metrics per `metrics.auth`. */
  auth: boolean;
  /**
   * Health and metrics: probes and scrapes, not client traffic. They are not rate limited, counted in usage,
   * traced, or shown in the console.
   */
  operational: boolean;
  /** Healthy only while a provider it can use is. */
  usesProviders: boolean;
  /** The error body format of the route's client API. */
  errorDialect: ErrorDialect;
  dedup: boolean;
  /** Routes made from a provider's `models.<name>.endpoint`: always this provider/model. */
  pinnedModel?: string;
  /** Also serves the paths below its own (`/v1/responses/{id}`); the handler reads what follows. */
  subpaths: boolean;
}

/**
 * The route for a request path: the exact one, else the nearest route above it that serves its subpaths.
 * Exact paths stay one map lookup; only a miss walks up the path.
 */
export function findRoute(routes: ReadonlyMap<string, RouteSpec>, path: string): RouteSpec | undefined {
  const exact = routes.get(path);
  if (exact) return exact;
  for (let cut = path.lastIndexOf('/'); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
    const above = routes.get(path.slice(0, cut));
    if (above) return above.subpaths ? above : undefined;
  }
  return undefined;
}

/** Who presents a client key on a handler's routes when auth is on. */
export type KeyPolicy = 'required' | 'never' | 'metrics';

/** What the route table needs to know of a handler; declared once per handler by the client APIs (server/client-apis.ts). */
export interface RouteKind {
  methods: readonly string[];
  key: KeyPolicy;
  operational: boolean;
  usesProviders: boolean;
  errorDialect: ErrorDialect;
  subpaths?: boolean;
}

/** The client APIs' declarations as the route table reads them: the standard paths and every handler's kind. */
export interface RouteDeclarations {
  standard: ReadonlyArray<{ path: string; handler: HandlerName }>;
  kinds: Readonly<Record<HandlerName, RouteKind>>;
}

/** What every Runtime of one gateway shares: made once at start, handed to the Runtime of each reload. */
export interface GatewayShared {
  metrics: Metrics;
  /** Breaker, health and queue per provider, carried across reloads. */
  states: ProviderStates;
  /** State stores by `state` setting, kept while a Runtime holds them. */
  stores: StateStores;
  /** The client APIs' routes and handler kinds (server/client-apis.ts). */
  routes: RouteDeclarations;
}

export class Runtime {
  readonly config: HapaxConfig;
  readonly warnings: readonly string[];
  readonly source: string;
  readonly loadedAt = new Date();
  readonly pools = new PoolRegistry();
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly catalog: ModelCatalog;
  readonly dispatcher: Dispatcher;
  /** Breaker, health and queue per provider (carried over from the previous Runtime where unchanged). */
  readonly providerStates: ReadonlyMap<string, ProviderState>;
  private readonly healthChecker?: HealthChecker;
  readonly routes: ReadonlyMap<string, RouteSpec>;
  readonly keys: KeyService;
  /** Rate-limit counters, managed keys, usage and cache: in memory, or in Redis shared by a fleet. */
  readonly store: StateStore;
  private readonly stateLease: StateLease;
  /** @fastify/cors options for this config (CORS is off unless `cors` is configured). */
  readonly cors: CorsSettings;
  /** Token and cost accounting for this config: bounded model labels and the pricing table. */
  readonly usageMeter: UsageMeter;
  /** Tokens-per-minute limits and budgets: which counters a request reserves from. */
  readonly quotas: QuotaPlan;
  /** The gateway's metrics (shared by every Runtime). */
  readonly metrics: Metrics;

  constructor(loaded: LoadedConfig, shared: GatewayShared) {
    this.config = loaded.config;
    this.metrics = shared.metrics;
    this.warnings = loaded.warnings;
    this.source = loaded.source;
    const adapters = new Map<string, ProviderAdapter>();
    for (const [name, config] of Object.entries(this.config.providers)) {
      adapters.set(name, createAdapter({ name, config, pools: this.pools }));
    }
    this.adapters = adapters;
    this.catalog = new ModelCatalog(this.config);
    this.providerStates = shared.states.build(this.config);
    // The same store as the previous Runtime when `state` did not change: counters survive a reload.
    this.stateLease = shared.stores.acquire(this.config.state);
    this.store = this.stateLease.store;
    this.dispatcher = new Dispatcher({
      adapters,
      states: this.providerStates,
      metrics: shared.metrics,
      healthChecks: this.config.health_check.enabled,
      cache: this.responseCache(),
    });
    this.healthChecker = this.createHealthChecker(shared.metrics);
    this.routes = buildRoutes(this.config, this.catalog, shared.routes);
    this.cors = corsSettings(this.config);
    this.usageMeter = new UsageMeter(this.config);
    this.quotas = new QuotaPlan(this.config);
    // Reservations count input with the tokenizer: load it now rather than on the first limited request.
    if (this.quotas.anyConfigured) void loadTokenizer().catch(() => undefined);
    this.keys = new KeyService(this.config.auth.keys, this.store.keys(this.config.auth.key_file), this.store);
  }

  /** The response cache, when `cache.enabled`: in the state store, so Redis shares it across instances. */
  private responseCache(): ResponseCache | undefined {
    const { enabled, ttl, max_entries } = this.config.cache;
    return enabled ? new ResponseCache({ ttlMs: ttl, store: this.store.cache<CachedAnswer>('responses', { maxEntries: max_entries }) }) : undefined;
  }

  /** Work that needs I/O: loading managed keys, starting health checks. */
  async start(): Promise<void> {
    await this.store.start();
    if (this.config.auth.enabled) await this.keys.start();
    this.healthChecker?.start();
    // This Runtime is about to serve: the pool gauges read its pools from now on.
    this.metrics.watchUpstreamPools(() => this.pools.gauges());
  }

  /** Probes every provider: its list-models endpoint (no tokens spent), or a one-token completion. */
  private createHealthChecker(metrics: Metrics): HealthChecker | undefined {
    const settings = this.config.health_check;
    if (!settings.enabled) return undefined;
    const targets = [...this.adapters.values()].map((adapter) => {
      const target = this.catalog.resolve(adapter.name)[0];
      const probe =
        settings.probe === 'completion'
          ? async (signal: AbortSignal) => {
              await adapter.chat({ messages: [{ role: 'user', content: 'ping' }], stream: false, maxTokens: 1 }, target, { signal, requestId: 'health-check' });
            }
          : async (signal: AbortSignal) => {
              await adapter.listModels({ signal, requestId: 'health-check' });
            };
      return { name: adapter.name, health: (this.providerStates.get(adapter.name) as ProviderState).health, probe };
    });
    return new HealthChecker(targets, {
      intervalMs: settings.interval,
      timeoutMs: settings.timeout,
      onResult: (name, ok, durationMs) => {
        metrics.healthCheckDuration.observe({ provider: name }, durationMs / 1000);
        if (!ok) metrics.healthCheckErrors.inc({ provider: name });
        // The provider answers again: let traffic find out now rather than after the breaker's timeout.
        else this.providerStates.get(name)?.breaker.probeSucceeded();
      },
    });
  }

  /** Requests running on this Runtime; a retired Runtime closes its pools when this reaches 0. */
  private active = 0;
  private idleWaiters: Array<() => void> = [];

  /** A request started on this Runtime; pair every call with release(). */
  acquire(): void {
    this.active++;
  }

  release(): void {
    if (--this.active > 0) return;
    this.active = 0;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  get inFlight(): number {
    return this.active;
  }

  /** Resolves once no request holds this Runtime (at once when none does). */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Replaced by a newer Runtime: stop background work now (the new one probes the same providers),
   * close the pools once the last request that started here has ended.
   */
  async retire(): Promise<void> {
    this.healthChecker?.stop();
    this.keys.stop();
    await this.whenIdle();
    await this.close();
  }

  async close(): Promise<void> {
    this.healthChecker?.stop();
    this.keys.stop();
    await this.pools.close();
    await this.stateLease.release();
  }
}

function buildRoutes(config: HapaxConfig, catalog: ModelCatalog, declared: RouteDeclarations): Map<string, RouteSpec> {
  const routes = new Map<string, RouteSpec>();
  const make = (route: Partial<RouteConfig> & { path: string; handler: HandlerName }, pinnedModel?: string): RouteSpec => {
    const kind = declared.kinds[route.handler];
    const methods = route.methods?.length ? route.methods : [...kind.methods];
    // Routes without a preference or balancing of their own share the default policy (one rotation).
    const routing =
      route.provider_preference || route.load_balancing
        ? catalog.policy(route.provider_preference ?? config.provider_preference, route.load_balancing ?? config.load_balancing)
        : catalog.defaultPolicy;
    return {
      path: route.path,
      handler: route.handler,
      methods: new Set(methods),
      allow: methods.join(', '),
      timeoutMs: route.timeout ?? config.server.request_timeout,
      firstTokenTimeoutMs: route.first_token_timeout,
      streamIdleTimeoutMs: route.stream_idle_timeout,
      hedgeAfterMs: route.hedge_after,
      resumeStreams: route.resume_streams ?? false,
      maxBodySize: route.max_body_size ?? config.server.max_body_size,
      providers: pinnedModel ? [pinnedModel.slice(0, pinnedModel.indexOf('/'))] : routing.names,
      routing,
      metricsLabels: Object.freeze({ ...route.metrics_labels }),
      rateLimit: route.rate_limit,
      rateLimitScope: `route:${route.path}`,
      auth: kind.key === 'never' ? false : kind.key === 'metrics' ? config.metrics.auth && (route.auth ?? true) : (route.auth ?? true),
      operational: kind.operational,
      usesProviders: kind.usesProviders,
      errorDialect: kind.errorDialect,
      dedup: route.dedup ?? config.dedup.enabled,
      pinnedModel,
      subpaths: kind.subpaths === true,
    };
  };
  for (const route of declared.standard) routes.set(route.path, make(route));
  // GET /v1/models/{id}: the table has exact paths only, so one per listed model; each is the models route
  // (same auth scope, limits and metrics label) pinned to the model it shows.
  const shown = new Map<string, RouteSpec>();
  for (const [path, id] of catalog.retrievePaths()) {
    let spec = shown.get(id);
    if (!spec) shown.set(id, (spec = make({ path: '/v1/models', handler: 'models' }, id)));
    routes.set(path, spec);
  }
  // metrics.enabled / metrics.path move or drop the Prometheus endpoint.
  routes.delete('/metrics');
  if (config.metrics.enabled) routes.set(config.metrics.path, make({ path: config.metrics.path, handler: 'metrics' }));
  for (const [name, provider] of Object.entries(config.providers)) {
    for (const [model, entry] of listedModels(provider)) {
      if (entry?.endpoint) routes.set(entry.endpoint, make({ path: entry.endpoint, handler: 'completion' }, `${name}/${model}`));
    }
  }
  for (const route of config.routes ?? []) routes.set(route.path, make(route));
  return routes;
}

export interface CorsSettings {
  origin: boolean | string | string[];
  methods?: string[];
  allowedHeaders?: string[];
  exposedHeaders?: string[];
  credentials?: boolean;
  maxAge?: number;
}

/** Response headers a browser client may read. */
const EXPOSED_HEADERS = ['x-request-id', 'x-hapax-provider', 'x-hapax-attempts', 'x-hapax-cache', 'x-hapax-overhead-ms', 'x-hapax-dropped', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after'];

function corsSettings(config: HapaxConfig): CorsSettings {
  const cors = config.cors;
  if (!cors) return { origin: false };
  return {
    origin: cors.origins === '*' ? '*' : cors.origins,
    methods: cors.methods,
    allowedHeaders: cors.headers,
    exposedHeaders: EXPOSED_HEADERS,
    credentials: cors.credentials,
    maxAge: Math.round(cors.max_age / 1000),
  };
}
