/** Starts a gateway from a loaded config; used by `hapax serve` and by the tests. */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import type { LoadedConfig } from '../config/load.ts';
import { ProviderStates } from '../gateway/provider-state.ts';
import { Runtime } from '../gateway/runtime.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { buildApp, type RuntimeHolder } from './app.ts';
import { messagesHandler } from './routes/anthropic.ts';
import { ollamaHandlers } from './routes/ollama.ts';

export interface Gateway {
  app: FastifyInstance;
  holder: RuntimeHolder;
  logger: Logger;
  metrics: Metrics;
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface StartOptions {
  loaded: LoadedConfig;
  port?: number;
  host?: string;
  logDestination?: DestinationStream;
}

export async function startGateway(opts: StartOptions): Promise<Gateway> {
  const { config } = opts.loaded;
  const logger = createLogger(config.logging, opts.logDestination);
  for (const warning of opts.loaded.warnings) logger.warn({ source: opts.loaded.source }, warning);
  const metrics = new Metrics(routeLabelNames(config));
  const states = new ProviderStates(metrics);
  const holder: RuntimeHolder = { current: new Runtime(opts.loaded, { metrics, states }) };
  await holder.current.start();
  const app = await buildApp({ holder, logger, metrics, handlers: { messages: messagesHandler, ...ollamaHandlers } });
  const host = opts.host ?? config.server.host;
  await app.listen({ port: opts.port ?? config.server.port, host });
  const port = (app.server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    app,
    holder,
    logger,
    metrics,
    port,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
    async close() {
      await app.close();
      await holder.current.close();
    },
  };
}

/** Label names for route metrics_labels: the union over the configured routes. */
function routeLabelNames(config: LoadedConfig['config']): string[] {
  const names = new Set<string>();
  for (const route of config.routes ?? []) for (const name of Object.keys(route.metrics_labels ?? {})) names.add(name);
  return [...names].sort();
}
