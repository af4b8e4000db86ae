/**
 * Hot reload: read and validate the config file, build a new Runtime beside the running one, start it,
 * swap it in, and retire the old one once its last request has ended. A file that does not validate
 * changes nothing: the running config keeps serving and the problems are logged by key path.
 *
 * Triggers: the file changing (the directory is watched, so editors that save by rename and
 * Kubernetes ConfigMap symlink swaps are seen; events are debounced and an unchanged file is skipped),
 * SIGHUP, and POST /admin/reload. Reloads run one at a time; requests arriving meanwhile share one
 * follow-up reload that reads the newest file.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.ts';
import { loadConfigFile } from '../config/load.ts';
import type { HapaxConfig } from '../config/schema.ts';
import { Runtime, type GatewayShared } from '../gateway/runtime.ts';
import { routeLabelNames } from '../observability/metrics.ts';
import type { RuntimeHolder } from './app.ts';

export type ReloadTrigger = 'file' | 'signal' | 'admin' | 'cluster';

export interface ReloadOutcome {
  ok: boolean;
  /** The file read, or why there is none. */
  source: string;
  /** The watched file was saved with the same content: nothing was rebuilt. */
  unchanged?: boolean;
  /** One line per problem (`key.path: what is wrong`) when the file did not validate. */
  problems?: string[];
  /** Any other failure (e.g. the new Runtime could not start). */
  error?: string;
  providers?: string[];
  /** Settings that only a restart applies, when the new file changes them. */
  restartRequired?: string[];
}

export interface ReloaderOptions {
  /** The config file; undefined when serving the built-in default (nothing to reload). */
  file: string | undefined;
  holder: RuntimeHolder;
  /** What every Runtime of the gateway shares (metrics, provider states, state stores). */
  shared: GatewayShared;
  logger: Logger;
  /** Quiet time after the last file event before reading the file. */
  debounceMs?: number;
}

/** Settings read once at startup (listen socket, Fastify options, process layout, logger sinks). */
const RESTART_ONLY: ReadonlyArray<[string, (c: HapaxConfig) => unknown]> = [
  ['server.host', (c) => c.server.host],
  ['server.port', (c) => c.server.port],
  ['server.workers', (c) => c.server.workers],
  ['server.max_header_bytes', (c) => c.server.max_header_bytes],
  ['server.tls', (c) => c.server.tls],
  ['server.http3', (c) => c.server.http3],
  ['logging.format', (c) => c.logging.format],
];

/** The restart-only settings of a config, by key path: what a running gateway keeps until it restarts. */
export function restartOnlyValues(config: HapaxConfig): Record<string, unknown> {
  return Object.fromEntries(RESTART_ONLY.map(([key, read]) => [key, read(config)]));
}

export class Reloader {
  private readonly opts: ReloaderOptions;
  private readonly file?: string;
  private chain: Promise<unknown> = Promise.resolve();
  private queued?: Promise<ReloadOutcome>;
  /** What the queued reload answers to: an explicit trigger wins over a file event (it rebuilds even if unchanged). */
  private queuedTrigger: ReloadTrigger = 'file';
  private watcher?: FSWatcher;
  private debounce?: NodeJS.Timeout;
  /** Text of the file as last read, so a save without changes (or an unrelated event) costs nothing. */
  private lastText?: string;
  /** Replaced Runtimes still serving their last requests. */
  private readonly retiring = new Set<Runtime>();
  private closed = false;

  constructor(opts: ReloaderOptions) {
    this.opts = opts;
    this.file = opts.file === undefined ? undefined : resolve(opts.file);
  }

  /** Reloads now (or right after the reload in progress); resolves with what happened. Never rejects. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (this.queued) {
      if (trigger !== 'file') this.queuedTrigger = trigger;
      return this.queued;
    }
    this.queuedTrigger = trigger;
    const queued = this.chain.then(() => {
      this.queued = undefined;
      return this.run(this.queuedTrigger);
    });
    this.queued = queued;
    this.chain = queued.catch(() => undefined);
    return queued;
  }

  /** Watches the file's directory; events within debounceMs of each other cause one read. */
  async watch(): Promise<void> {
    if (!this.file || this.watcher || this.closed) return;
    const file = this.file;
    this.lastText = await readFile(file, 'utf8').catch(() => undefined);
    const name = basename(file);
    this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      // The file itself, or a ConfigMap's update (it swaps a `..data` symlink, not the file's own name).
      if (changed !== null && changed !== name && !String(changed).startsWith('..')) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload('file'), this.opts.debounceMs ?? 200);
    });
    this.watcher.on('error', (error) => this.opts.logger.warn({ err: error, config: file }, 'config watch failed; reload with SIGHUP or POST /admin/reload'));
  }

  /**
   * Stops watching and waits for a reload in progress. Call once the server has stopped serving:
   * Runtimes still retiring are closed now, whatever requests they think they still have.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
    await this.chain;
    await Promise.all([...this.retiring].map((runtime) => runtime.close().catch(() => undefined)));
  }

  private async run(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { logger, holder } = this.opts;
    const { metrics } = this.opts.shared;
    const file = this.file;
    if (!file) {
      logger.warn({ trigger }, 'config reload: serving the built-in default, there is no file to reload');
      return { ok: false, source: '(built-in default)', error: 'no config file: hapax was started without one' };
    }
    if (this.closed) return { ok: false, source: file, error: 'shutting down' };
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (trigger === 'file' && text !== undefined && text === this.lastText) return { ok: true, source: file, unchanged: true };
    if (text !== undefined) this.lastText = text;

    const started = performance.now();
    let next: Runtime | undefined;
    try {
      const loaded = await loadConfigFile(file);
      for (const warning of loaded.warnings) logger.warn({ source: file }, warning);
      next = new Runtime(loaded, this.opts.shared);
      await next.start();
    } catch (error) {
      void next?.close().catch(() => undefined);
      metrics.configReloads.inc({ result: 'failure' });
      if (error instanceof ConfigError) {
        // Problems name key paths, never values (the loader guarantees it), so they are safe to log.
        logger.error({ trigger, source: file, problems: error.problems }, 'config reload rejected; the running config stays');
        return { ok: false, source: file, problems: error.problems };
      }
      const message = error instanceof Error ? error.message : String(error);
      logger.error({ trigger, source: file, err: error }, 'config reload failed; the running config stays');
      return { ok: false, source: file, error: message };
    }

    const previous = holder.current;
    holder.current = next;
    this.retire(previous);
    metrics.configReloads.inc({ result: 'success' });

    const restartRequired = RESTART_ONLY.filter(([, get]) => JSON.stringify(get(previous.config)) !== JSON.stringify(get(next.config))).map(([key]) => key);
    if (restartRequired.length > 0) logger.warn({ settings: restartRequired }, 'config reload: these settings take effect after a restart');
    const newLabels = this.newMetricLabels(next.config);
    if (newLabels.length > 0) logger.warn({ labels: newLabels }, 'config reload: new metrics_labels names take effect after a restart');
    // The log level is the one logging setting that can change live.
    if (logger.level !== next.config.logging.level) logger.level = next.config.logging.level;

    const providers = [...next.adapters.keys()];
    logger.info(
      { trigger, source: file, providers, routes: next.routes.size, duration_ms: Math.round(performance.now() - started), previous_in_flight: previous.inFlight },
      'config reloaded',
    );
    return { ok: true, source: file, providers, restartRequired: restartRequired.length > 0 ? restartRequired : undefined };
  }

  /** The old Runtime serves its requests in flight to the end, then closes its pools. */
  private retire(runtime: Runtime): void {
    this.retiring.add(runtime);
    void runtime
      .retire()
      .catch((error: unknown) => this.opts.logger.warn({ err: error }, 'closing the previous config failed'))
      .finally(() => this.retiring.delete(runtime));
  }

  private newMetricLabels(config: HapaxConfig): string[] {
    const known = new Set(this.opts.shared.metrics.routeLabelNames);
    return routeLabelNames(config).filter((name) => !known.has(name));
  }
}
