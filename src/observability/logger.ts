/** pino, configured once: JSON lines (or pretty text for people), secrets redacted everywhere. */
import pino, { type Logger } from 'pino';
import { createRequire } from 'node:module';
import { CENSOR } from './redact.ts';

/**
 * Where secrets can sit in a log line of known shape. Config dumps go through redactSecrets() first
 * (any depth); these paths are the safety net for request/header objects and error details.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'authorization',
  'api_key',
  'apiKey',
  '*.api_key',
  '*.*.api_key',
  '*.*.*.api_key',
  '*.apiKey',
  '*.*.apiKey',
  '*.key',
  '*.*.key',
];

export interface LoggerSettings {
  level: string;
  /** `auto`: text for a person when stdout is a terminal, JSON lines otherwise. */
  format: 'auto' | 'json' | 'text';
}

/** Whether log lines are pretty text: asked for, or `auto` on a terminal (never for a given destination). */
export function writesText(format: LoggerSettings['format'], destination?: unknown): boolean {
  return format === 'text' || (format === 'auto' && destination === undefined && process.stdout.isTTY === true);
}

let stampedSecond = Number.NaN;
let secondText = '';

/**
 * pino's isoTime formats a new Date for every line; this keeps the text up to the second and adds the
 * milliseconds, which is what changes between lines. Same output: `,"time":"2026-11-23T07:27:26.042Z"`.
 */
export function isoTimestamp(now = Date.now()): string {
  const ms = now % 1000;
  const second = now - ms;
  if (second !== stampedSecond) {
    stampedSecond = second;
    secondText = `,"time":"${new Date(second).toISOString().slice(0, 20)}`;
  }
  return `${secondText}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

export function createLogger(opts: LoggerSettings, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: { service: 'hapax' },
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    timestamp: isoTimestamp,
  };
  if (writesText(opts.format, destination)) {
    // In-process pretty printing: text is for people at a terminal, not for the benchmark path.
    const colorize = !destination && process.stdout.isTTY;
    // pino-pretty is loaded only for text logs.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => pino.DestinationStream;
    const stream = pretty({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service', sync: true, destination: destination ?? 1 });
    return pino(options, stream);
  }
  if (destination) return pino(options, destination);
  const stdout = batchedStdout();
  // Warnings and errors are not held back with the request lines.
  const logMethod = function (this: Logger, args: Parameters<pino.LogFn>, method: pino.LogFn, level: number): void {
    method.apply(this, args);
    if (level >= 40) stdout.flushNow();
  };
  return pino({ ...options, hooks: { logMethod } }, stdout.stream);
}

/**
 * Request lines leave stdout in batches of about 4 KB (a dozen lines) instead of one write each: every
 * write is a trip through libuv's thread pool and a wake-up of the event loop. A timer sends what is
 * waiting at least every 250 ms, warnings and errors go at once, and pino flushes the rest on exit.
 */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 250;

function batchedStdout(): { stream: pino.DestinationStream; flushNow: () => void } {
  const stream = pino.destination({ dest: 1, minLength: LOG_BATCH_BYTES, sync: false });
  // Without a callback: pino's logger.flush(cb) would add listeners and an fsync per call.
  const flushNow = () => {
    try {
      stream.flush();
    } catch {
      // closed at exit: nothing left to send
    }
  };
  setInterval(flushNow, LOG_FLUSH_MS).unref();
  return { stream, flushNow };
}

type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]];

/**
 * Stands in for the child logger Fastify makes for every request (bound to its request id) and makes the
 * real pino child only when something logs through it. A pino child costs microseconds up front (its
 * bindings are serialized and redacted) and most requests never use it: their one line has its own logger.
 */
export class LazyChildLogger {
  private readonly parent: Logger;
  private readonly bindings: pino.Bindings;
  private readonly options: pino.ChildLoggerOptions;
  private made: Logger | undefined;

  constructor(parent: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions) {
    this.parent = parent;
    this.bindings = bindings;
    this.options = options;
  }

  private get real(): Logger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real.level = level;
  }

  fatal(...args: LogArgs): void {
    this.log('fatal', args);
  }

  error(...args: LogArgs): void {
    this.log('error', args);
  }

  warn(...args: LogArgs): void {
    this.log('warn', args);
  }

  info(...args: LogArgs): void {
    this.log('info', args);
  }

  debug(...args: LogArgs): void {
    this.log('debug', args);
  }

  trace(...args: LogArgs): void {
    this.log('trace', args);
  }

  silent(): void {}

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.real.child(bindings, options);
  }

  /** A level the parent would drop is dropped without making the child (unless the child has its own level). */
  private log(level: pino.Level, args: LogArgs): void {
    if (!this.made && this.options.level === undefined && !this.parent.isLevelEnabled(level)) return;
    const logger = this.real;
    if (logger.isLevelEnabled(level)) (logger[level] as (...a: LogArgs) => void)(...args);
  }
}
