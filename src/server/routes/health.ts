/**
 * Health endpoints, shaped as the API document shows them:
 * - GET /health and /v1/health: `status.global`, `services` per route, `providers` with their health.
 * - GET /health/{route}: one route (healthy while any provider it can use is available).
 * - GET /health/provider/{name}: one provider; 404 for an unknown one.
 * 200 when healthy, 503 otherwise.
 */
import type { RouteSpec, Runtime } from '../../gateway/runtime.ts';
import { GatewayError } from '../../providers/errors.ts';
import type { Handler } from '../context.ts';

const USES_PROVIDERS = new Set(['completion', 'advanced_completion', 'chat', 'messages', 'embeddings', 'ollama_chat', 'ollama_embed']);

function providerHealthy(runtime: Runtime, name: string): boolean {
  const state = runtime.providerStates.get(name);
  return state !== undefined && state.health.healthy && state.breaker.state !== 'open';
}

function routeHealthy(runtime: Runtime, route: RouteSpec): boolean {
  if (!USES_PROVIDERS.has(route.handler)) return true;
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
