/**
 * Endpoints for whoever runs Hapax (load balancers, Kubernetes, operators), not for API clients:
 * - GET /health/ready: 200 while serving, 503 once draining for shutdown. Providers being down does not
 *   make an instance unready: every instance would see the same providers, and pulling them all
 *   from the load balancer would turn a provider outage into a full outage.
 * - GET /health/live: 200 whenever the process answers at all (liveness must not depend on providers).
 * - POST /admin/reload: reload the config file now; protected by admin.key.
 * Registered as named Fastify routes, so they win over the catch-all and are not in the config's route table.
 */
import type { FastifyInstance } from 'fastify';
import { presentedKey } from '../auth.ts';
import type { ReloadOutcome } from '../reload.ts';
import { checkAdmin } from './admin.ts';

export interface Lifecycle {
  /** Set once shutdown starts; readiness answers 503 from then on. */
  draining: boolean;
}

export interface OpsOptions {
  lifecycle: Lifecycle;
  reload: () => Promise<ReloadOutcome>;
}

export function registerOpsRoutes(app: FastifyInstance, opts: OpsOptions): void {
  app.get('/health/ready', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    if (opts.lifecycle.draining) {
      reply.code(503);
      return { status: 'draining' };
    }
    return { status: 'ready' };
  });

  app.get('/health/live', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'alive' };
  });

  app.post('/admin/reload', async (request, reply) => {
    checkAdmin(request.hapax.runtime.config.admin.key, presentedKey(request));
    const outcome = await opts.reload();
    // 422: the file is there but invalid (the running config stays); 409: nothing could be reloaded.
    reply.code(outcome.ok ? 200 : outcome.problems ? 422 : 409);
    return outcome;
  });
}
