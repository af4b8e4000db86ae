/**
 * Health endpoints, shaped as the API document shows them:
 * - GET /health and /v1/health: `status.global`, `services` per route, `providers` with their health.
 * - GET /health/{route}: one route (healthy while any provider it can use is available).
 * - GET /health/provider/{name}: one provider; 404 for an unknown one.
 * 200 when healthy, 503 otherwise.
 */
import type { RouteSpec, Runtime } from '../../gateway/runtime.ts';
import { GatewayError } from '../../core/errors.ts';
import { defineApi } from '../client-api.ts';
import type { Handler } from '../context.ts';

function providerHealthy(runtime: Runtime, name: string): boolean {
  const state = runtime.providerStates.get(name);
  return state !== undefined && state.health.healthy && state.breaker.state !== 'open';
}

function routeHealthy(runtime: Runtime, route: RouteSpec): boolean {
  if (!route.usesProviders) return true;
  return route.providers.some((name) => providerHealthy(runtime, name));
}

export const healthHandler: Handler = async (request, reply, state) => {
  const { runtime } = state;
  const path = request.url.split('?', 1)[0].replace(/\/+$/, '');

  if (path.startsWith('/health/provider/')) {
    const name = decodeURIComponent(path.slice('/health/provider/'.length));
    const provider = runtime.providerStates.get(name);
    if (!provider) throw new GatewayError(`unknown provider ${name}`, { status: 404, type: 'ValidationError', details: { providers: [...runtime.providerStates.keys()] } });
    reply.code(providerHealthy(runtime, name) ? 200 : 503);
    return { ...provider.health.report(), circuit_breaker: provider.breaker.state };
  }

  if (path.startsWith('/health/')) {
    const routePath = '/' + decodeURIComponent(path.slice('/health/'.length));
    const route = runtime.routes.get(routePath);
    if (!route) throw new GatewayError(`unknown route ${routePath}`, { status: 404, type: 'ValidationError' });
    const healthy = routeHealthy(runtime, route);
    reply.code(healthy ? 200 : 503);
    return { status: healthy ? 'healthy' : 'unhealthy' };
  }

  const services: Record<string, 'healthy' | 'unhealthy'> = {};
  let global = true;
  for (const route of runtime.routes.values()) {
    const healthy = routeHealthy(runtime, route);
    services[route.path] = healthy ? 'healthy' : 'unhealthy';
    global &&= healthy;
  }
  const providers: Record<string, unknown> = {};
  for (const [name, provider] of runtime.providerStates) {
    providers[name] = { ...provider.health.report(), circuit_breaker: provider.breaker.state };
    global &&= providerHealthy(runtime, name);
  }
  reply.code(global ? 200 : 503);
  return { status: { global }, services, providers };
};

/** Prometheus' exposition of this process (the cluster primary serves the whole fleet's instead). */
const metricsHandler: Handler = async (_request, reply, state) => {
  const { registry } = state.runtime.metrics;
  reply.header('content-type', registry.contentType);
  return registry.metrics();
};

/** The operations endpoints that live in the route table (a config can move or add them): health and metrics. */
export const operationsApi = defineApi({
  name: 'operations',
  errorDialect: 'hapax',
  routes: [
    { path: '/health', handler: 'health' },
    { path: '/v1/health', handler: 'health', summary: 'Health of every route and provider (versioned path)' },
    { path: '/metrics', handler: 'metrics' },
  ],
  handlers: {
    health: {
      methods: ['GET'],
      key: 'never',
      operational: true,
      usesProviders: false,
      serve: healthHandler,
      openapi: {
        tag: 'Operations',
        summary: 'Health of every route and provider',
        responses: { 200: { description: 'every route and provider is available', json: 'HealthReport' }, 503: { description: 'some route or provider is not', json: 'HealthReport' } },
        errors: [],
      },
    },
    metrics: {
      methods: ['GET'],
      key: 'metrics',
      operational: true,
      usesProviders: false,
      serve: metricsHandler,
      openapi: {
        tag: 'Operations',
        summary: 'Prometheus metrics',
        description: 'The path is `metrics.path`; it needs a client key only when `metrics.auth` is true.',
        responses: { 200: { description: 'Prometheus text exposition format', text: 'text/plain' } },
        errors: [],
      },
    },
  },
});
