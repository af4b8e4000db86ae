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
  format: 'json' | 'text';
}

export function createLogger(opts: LoggerSettings, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: { service: 'hapax' },
    redact: { paths: REDACT_PATHS, censor: CENSOR },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.format === 'text') {
    // In-process pretty printing: text is for people at a terminal, not for the benchmark path.
    const colorize = !destination && process.stdout.isTTY;
    // pino-pretty is loaded only for text logs.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => pino.DestinationStream;
    return pino(options, pretty({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service', sync: true, destination: destination ?? 1 }));
  }
  return destination ? pino(options, destination) : pino(options);
}
