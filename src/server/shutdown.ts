/**
 * Graceful shutdown: close the listener, let requests and streams in flight finish within a deadline,
 * then cut what is left. And the process signals that drive it (SIGTERM/SIGINT stop, SIGHUP reloads).
 */
import type { FastifyInstance } from 'fastify';
import { setCloseDeadline } from './tls.ts';
import type { Logger } from 'pino';
import type { ReloadOutcome, ReloadTrigger } from './reload.ts';

export interface DrainResult {
  /** Every request in flight finished before the deadline. */
  drained: boolean;
  /** Connections still open at the deadline, closed by force. */
  cut: number;
}

/** How often idle keep-alive sockets are closed while draining. */
const REAP_MS = 100;

interface ConnectionControl {
  closeIdleConnections?(): void;
  closeAllConnections?(): void;
  getConnections?(callback: (error: Error | null, count: number) => void): void;
}

/**
 * Stops accepting connections (Fastify answers 503 with `Connection: close` to requests that still
 * arrive on open keep-alive connections) and waits for the responses in flight. A keep-alive socket
 * whose response has just ended is idle and would hold close() open until keepAliveTimeout: such
 * sockets are closed as they appear.
 */
export async function drainServer(app: FastifyInstance, timeoutMs: number): Promise<DrainResult> {
  const server = app.server as unknown as ConnectionControl;
  const reaper = setInterval(() => server.closeIdleConnections?.(), REAP_MS);
  // Streams on other transports (HTTP/3) are drained against the same deadline, not one of their own.
  setCloseDeadline(app, Date.now() + timeoutMs);
  let deadline: NodeJS.Timeout | undefined;
  const closed = app.close().then(() => true);
  const timedOut = new Promise<false>((resolve) => (deadline = setTimeout(() => resolve(false), timeoutMs)));
  try {
    if (await Promise.race([closed, timedOut])) return { drained: true, cut: 0 };
    const cut = await new Promise<number>((resolve) => (server.getConnections ? server.getConnections((_error, count) => resolve(count)) : resolve(0)));
    server.closeAllConnections?.();
    await closed;
    return { drained: false, cut };
  } finally {
    clearInterval(reaper);
    clearTimeout(deadline);
  }
}

export interface Stoppable {
  logger: Logger;
  shutdown(timeoutMs?: number): Promise<DrainResult>;
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome>;
}

export interface SignalOptions {
  /**
   * A second SIGTERM/SIGINT: `exit` at once (a person pressing Ctrl-C twice), or `ignore` it (a
   * cluster worker, which gets the terminal's SIGINT and its primary's SIGTERM for the same stop).
   */
  onRepeat: 'exit' | 'ignore';
  /** Upper bound on the whole stop, past the drain deadline, should closing itself hang. */
  shutdownTimeoutMs: number;
}

/**
 * SIGTERM/SIGINT: drain, then exit 0 (1 when requests had to be cut at the deadline). SIGHUP: reload
 * the config file. Exit codes follow the CLI's: 0 clean, 1 could not stop cleanly.
 */
export function handleSignals(target: Stoppable, opts: SignalOptions): void {
  let stopping = false;
  // A log line must never keep the process from stopping (stdout may be a pipe whose reader is gone).
  const log = (write: () => void) => {
    try {
      write();
    } catch {
      // nowhere to write: stop anyway
    }
  };
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (opts.onRepeat === 'ignore') return;
      log(() => target.logger.warn({ signal }, 'second signal: exiting without waiting'));
      process.exit(1);
    }
    stopping = true;
    setTimeout(() => {
      log(() => target.logger.error({ shutdown_timeout_ms: opts.shutdownTimeoutMs }, 'shutdown did not complete; exiting'));
      process.exit(1);
    }, opts.shutdownTimeoutMs + 5_000).unref();
    log(() => target.logger.info({ signal }, 'shutting down'));
    target.shutdown().then(
      (result) => {
        log(() => target.logger.info({ drained: result.drained }, 'stopped'));
        process.exit(result.drained ? 0 : 1);
      },
      (error: unknown) => {
        log(() => target.logger.error({ err: error }, 'error while shutting down'));
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (!stopping) void target.reload('signal');
  });
}
