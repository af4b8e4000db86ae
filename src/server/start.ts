/** Starts a gateway from a loaded config; used by `hapax serve` (one process or each worker) and by the tests. */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { ProviderStates } from '../gateway/provider-state.ts';
import { Runtime, type GatewayShared, type HandlerName } from '../gateway/runtime.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics, routeLabelNames } from '../observability/metrics.ts';
import { StateStores } from '../state/registry.ts';
import { redactSecrets } from '../observability/redact.ts';
import { buildApp, type RuntimeHolder } from './app.ts';
import { listenHttp3 } from './http3/index.ts';
import type { Handler } from './context.ts';
import type { RateLimits } from './rate-limit.ts';
import { Reloader, restartOnlyValues, type ReloadOutcome, type ReloadTrigger } from './reload.ts';
import { ROUTE_DECLARATIONS } from './client-apis.ts';
import { registerOpsRoutes, type Lifecycle } from './routes/ops.ts';
import { drainServer, type DrainResult } from './shutdown.ts';

export interface Gateway {
  app: FastifyInstance;
  holder: RuntimeHolder;
  logger: Logger;
  metrics: Metrics;
  url: string;
  port: number;
  lifecycle: Lifecycle;
  /** Re-reads the config file; the running config stays unless the new one validates and starts. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome>;
  /**
   * Graceful stop: readiness turns 503, the listener closes, requests and streams in flight run to their
   * end for up to timeoutMs (default `server.shutdown_timeout`), then the rest are cut and pools closed.
   */
  shutdown(timeoutMs?: number): Promise<DrainResult>;
  /** shutdown() with the configured timeout. */
  close(): Promise<void>;
}

export interface StartOptions {
  loaded: LoadedConfig;
  /** The file `loaded` came from: reloaded on SIGHUP-style triggers. Undefined: nothing to reload. */
  configFile?: string;
  /** Reload when configFile changes on disk (default: true when configFile is given). */
  watch?: boolean;
  port?: number;
  host?: string;
  logDestination?: DestinationStream;
  /** Fields added to every log line (e.g. the worker id under `server.workers`). */
  logBindings?: Record<string, unknown>;
  /** Rate-limit counters; by default in this process (a cluster worker passes counters kept by the primary). */
  rateLimits?: RateLimits;
  /** Handlers that replace the built-in ones by name (e.g. `metrics` answering for a whole cluster). */
  handlers?: Partial<Record<HandlerName, Handler>>;
  /** Called after POST /admin/reload reloaded this process (a cluster worker tells its siblings). */
  onAdminReload?: (outcome: ReloadOutcome) => void;
}

export async function startGateway(opts: StartOptions): Promise<Gateway> {
  const { config } = opts.loaded;
  const base = createLogger(config.logging, opts.logDestination);
  const logger = opts.logBindings ? base.child(opts.logBindings) : base;
  for (const warning of opts.loaded.warnings) logger.warn({ source: opts.loaded.source }, warning);
  // The effective config for debugging, with every key, password and credential header masked.
  if (logger.isLevelEnabled('debug')) logger.debug({ source: opts.loaded.source, config: redactSecrets(config) }, 'config loaded');
  // The OpenTelemetry packages load only when tracing is configured.
  const tracing = config.tracing?.otlp_endpoint ? await (await import('../observability/tracing.ts')).Tracing.create(config.tracing) : undefined;
  const metrics = new Metrics(routeLabelNames(config));
  // Breaker/health per provider and state stores outlive a reload: every Runtime of this gateway gets them.
  const shared: GatewayShared = { metrics, states: new ProviderStates(metrics, logger), stores: new StateStores(metrics, logger), routes: ROUTE_DECLARATIONS };
  const holder: RuntimeHolder = { current: new Runtime(opts.loaded, shared) };
  await holder.current.start();
  const reloader = new Reloader({ file: opts.configFile, holder, shared, logger });
  const lifecycle: Lifecycle = { draining: false };
  const app = await buildApp({
    holder,
    logger,
    metrics,
    tracing,
    rateLimits: opts.rateLimits,
    handlers: opts.handlers,
  });
  registerOpsRoutes(app, {
    lifecycle,
    reload: async () => {
      const outcome = await reloader.reload('admin');
      opts.onAdminReload?.(outcome);
      return outcome;
    },
  });
  const host = opts.host ?? config.server.host;
  try {
    await app.listen({ port: opts.port ?? config.server.port, host });
    await listenHttp3(app, config.server, host);
  } catch (error) {
    await holder.current.close();
    throw error;
  }
  // Request lines are batched; the lines that say the server is up go out now.
  base.flush();
  if (opts.configFile && opts.watch !== false) await reloader.watch();
  const port = (app.server.address() as AddressInfo).port;
  const atStart = restartOnlyValues(config);
  holder.running = { atStart, values: { ...atStart, 'server.host': host, 'server.port': port } };
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;

  let stopped: Promise<DrainResult> | undefined;
  const shutdown = (timeoutMs = holder.current.config.server.shutdown_timeout): Promise<DrainResult> => {
    stopped ??= (async () => {
      lifecycle.draining = true;
      logger.info({ in_flight: holder.current.inFlight, shutdown_timeout_ms: timeoutMs }, 'draining: finishing requests in flight');
      const result = await drainServer(app, timeoutMs);
      if (!result.drained) logger.warn({ shutdown_timeout_ms: timeoutMs, cut: result.cut }, 'shutdown timeout reached; cut the requests still running');
      // No request can hold a Runtime any more: close the current one and any still retiring.
      await reloader.close();
      await holder.current.close();
      await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'could not export the last spans'));
      return result;
    })();
    return stopped;
  };

  return {
    app,
    holder,
    logger,
    metrics,
    port,
    lifecycle,
    url: `${config.server.tls ? 'https' : 'http'}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
    reload: (trigger) => reloader.reload(trigger),
    shutdown,
    async close() {
      await shutdown();
    },
  };
}
