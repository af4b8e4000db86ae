/** Health endpoints: /health, /v1/health, /health/{route}, /health/provider/{name}. */
import { GatewayError } from '../../providers/errors.ts';
import type { Handler } from '../context.ts';

export const healthHandler: Handler = async (request, reply, state) => {
  const { runtime } = state;
  const path = request.url.split('?', 1)[0];
  const services: Record<string, 'healthy' | 'unhealthy'> = {};
  for (const route of runtime.routes.values()) services[route.path] = 'healthy';
  if (path.startsWith('/health/provider/')) {
    const name = decodeURIComponent(path.slice('/health/provider/'.length));
    if (!runtime.adapters.has(name)) throw new GatewayError(`unknown provider ${name}`, { status: 404, type: 'ValidationError' });
    return { healthy: true };
  }
  if (path.startsWith('/health/')) {
    const routePath = '/' + decodeURIComponent(path.slice('/health/'.length));
    if (!runtime.routes.has(routePath)) throw new GatewayError(`unknown route ${routePath}`, { status: 404, type: 'ValidationError' });
    return { status: services[routePath] };
  }
  const providers: Record<string, { healthy: boolean }> = {};
  for (const name of runtime.adapters.keys()) providers[name] = { healthy: true };
  reply.code(200);
  return { status: { global: true }, services, providers };
};
