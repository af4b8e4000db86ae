/**
 * `server.workers: N | auto`: N worker processes serve one port (node:cluster; the primary accepts
 * connections and hands them to the workers in turn). The primary serves no HTTP itself; it
 * - forks the workers and restarts one that dies (with a growing delay if they keep dying),
 * - keeps the in-memory rate-limit counters for all of them (RateLimiterClusterMaster; the workers' memory
 *   store uses RateLimiterCluster), so a limit holds across the machine's workers,
 * - answers /metrics for all of them: any worker asked for /metrics asks the primary, which collects
 *   every worker's registry and sums them (prom-client's AggregatorRegistry),
 * - passes SIGHUP and POST /admin/reload on to every worker, and SIGTERM/SIGINT (each drains, then exits).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
// A single file, not the index with every backend: see src/types/deep-imports.d.ts.
import rateLimiterCluster from 'rate-limiter-flexible/lib/RateLimiterCluster.js';
import type { LoadedConfig } from './config/load.ts';
import type { HapaxConfig } from './config/schema.ts';
import type { Handler } from './server/context.ts';
import { RateLimits } from './server/rate-limit.ts';
import { handleSignals } from './server/shutdown.ts';
import { startGateway, type Gateway } from './server/start.ts';

/** How many processes `server.workers` asks for; 1 means no cluster at all. */
export function workerCount(setting: HapaxConfig['server']['workers']): number {
  if (setting === 'auto') return availableParallelism();
  return setting ?? 1;
}

/** IPC between the primary and its workers; the `hapax` field keeps them apart from prom-client's and rate-limiter-flexible's. */
type ToPrimary = { hapax: 'listening'; url: string } | { hapax: 'metrics'; id: number } | { hapax: 'reload-others' };
type ToWorker = { hapax: 'metrics'; id: number; text?: string; error?: string } | { hapax: 'reload' };

const isMessage = <T extends { hapax: string }>(value: unknown): value is T =>
  typeof value === 'object' && value !== null && typeof (value as { hapax?: unknown }).hapax === 'string';

export interface PrimaryOptions {
  loaded: LoadedConfig;
  workers: number;
  logger: Logger;
  /** Once every worker listens (after the 'hapax listening' line): the CLI's banner. */
  onListening?: (url: string) => void;
}

/** Runs the primary until its workers have stopped; the process then exits (0 when all drained cleanly). */
export function runPrimary(opts: PrimaryOptions): void {
  const { logger, workers } = opts;
  const shutdownTimeoutMs = opts.loaded.config.server.shutdown_timeout;
  new rateLimiterCluster.RateLimiterClusterMaster();
  const aggregator = new AggregatorRegistry();
  const listening = new Set<number>();
  let announced = false;
  let stopping = false;
  let exitCode = 0;
  /** Exit times of recent crashes, for the restart delay. */
  const crashes: number[] = [];

  const fork = () => cluster.fork();

  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isMessage<ToPrimary>(message)) return;
    switch (message.hapax) {
      case 'listening':
        listening.add(worker.id);
        if (!announced && listening.size >= workers) {
          announced = true;
          logger.info({ url: message.url, config: opts.loaded.source, workers, providers: Object.keys(opts.loaded.config.providers) }, 'hapax listening');
          opts.onListening?.(message.url);
        }
        return;
      case 'metrics':
        aggregator.clusterMetrics().then(
          (text) => send(worker, { hapax: 'metrics', id: message.id, text }),
          (error: unknown) => send(worker, { hapax: 'metrics', id: message.id, error: error instanceof Error ? error.message : String(error) }),
        );
        return;
      case 'reload-others':
        for (const other of Object.values(cluster.workers ?? {})) if (other && other.id !== worker.id) send(other, { hapax: 'reload' });
        return;
    }
  });

  cluster.on('exit', (worker, code, signal) => {
    const wasListening = listening.delete(worker.id);
    if (stopping) {
      if (code !== 0 && exitCode === 0) exitCode = 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info({ exit_code: exitCode }, 'all workers stopped');
        process.exit(exitCode);
      }
      return;
    }
    if (!announced && !wasListening) {
      // A worker that cannot even start (port taken, bad certificate) will not start on a retry either.
      logger.error({ worker: worker.id, code, signal }, 'a worker failed to start; stopping');
      exitCode = code && code > 0 ? code : 1;
      stopAll('SIGTERM');
      return;
    }
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && crashes[0] < now - 60_000) crashes.shift();
    // 0.1 s, 0.2 s, 0.4 s ... up to 30 s while workers keep dying within a minute of each other.
    const delayMs = Math.min(30_000, 100 * 2 ** (crashes.length - 1));
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, restart_in_ms: delayMs }, 'worker died; starting a new one');
    setTimeout(() => {
      if (!stopping) fork();
    }, delayMs);
  });

  const stopAll = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
  };

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: stopping workers without waiting');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    logger.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, 'shutting down');
    setTimeout(() => {
      logger.error({ shutdown_timeout_ms: shutdownTimeoutMs }, 'workers did not stop in time; killing them');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
      process.exit(1);
    }, shutdownTimeoutMs + 10_000).unref();
    stopAll('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (stopping) return;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });

  logger.info({ workers, pid: process.pid }, 'starting workers');
  for (let i = 0; i < workers; i++) fork();
}

function send(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send(message);
}

export interface WorkerOptions {
  loaded: LoadedConfig;
  configFile?: string;
  port?: number;
  host?: string;
}

/** Starts this worker's gateway, wired to the primary for metrics, rate limits and reloads. */
export async function runWorker(opts: WorkerOptions): Promise<Gateway> {
  const worker = cluster.worker as Worker;
  const pendingMetrics = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  const fromPrimary = (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return;
    if (message.hapax === 'metrics') {
      const pending = pendingMetrics.get(message.id);
      pendingMetrics.delete(message.id);
      if (message.text !== undefined) pending?.resolve(message.text);
      else pending?.reject(new Error(`metrics from the primary: ${message.error ?? 'no answer'}`));
    } else if (message.hapax === 'reload') {
      void gateway?.reload('cluster');
    }
  };
  process.on('message', fromPrimary);

  // Installs prom-client's worker side (it answers the primary's collection requests).
  const aggregator = new AggregatorRegistry();
  const clusterMetrics: Handler = async (_request, reply) => {
    const id = nextId++;
    const text = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingMetrics.delete(id);
        reject(new Error('metrics from the primary: timed out'));
      }, 10_000);
      pendingMetrics.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      process.send?.({ hapax: 'metrics', id } satisfies ToPrimary);
    });
    reply.header('content-type', aggregator.contentType);
    return text;
  };

  let gateway: Gateway | undefined;
  gateway = await startGateway({
    loaded: opts.loaded,
    configFile: opts.configFile,
    port: opts.port,
    host: opts.host,
    logBindings: { worker: worker.id, pid: process.pid },
    rateLimits: new RateLimits({ cluster: true }),
    handlers: { metrics: clusterMetrics },
    onAdminReload: () => process.send?.({ hapax: 'reload-others' } satisfies ToPrimary),
  });
  const { metrics } = gateway;
  AggregatorRegistry.setRegistries([metrics.registry]);
  handleSignals(gateway, { onRepeat: 'ignore', shutdownTimeoutMs: opts.loaded.config.server.shutdown_timeout });
  process.send?.({ hapax: 'listening', url: gateway.url } satisfies ToPrimary);
  return gateway;
}
