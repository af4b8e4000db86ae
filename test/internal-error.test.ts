import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { ProviderStates } from '../src/gateway/provider-state.ts';
import { ROUTE_DECLARATIONS } from '../src/server/client-apis.ts';
import { Runtime } from '../src/gateway/runtime.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { StateStores } from '../src/state/registry.ts';
import { buildApp } from '../src/server/app.ts';
import type { FastifyInstance } from 'fastify';

describe('a bug in a handler', () => {
  let app: FastifyInstance;
  let url: string;
  const logs: string[] = [];
  let runtime: Runtime;

  beforeAll(async () => {
    const metrics = new Metrics();
    runtime = new Runtime(parseConfig('providers:\n  mock: {type: mock}\nhealth_check: {enabled: false}\n'), { metrics, states: new ProviderStates(metrics), stores: new StateStores(metrics), routes: ROUTE_DECLARATIONS });
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (logs.push(String(chunk)), cb()) }));
    app = await buildApp({
      holder: { current: runtime },
      logger,
      metrics,
      handlers: {
        // Stands in for any unexpected exception inside a route.
        chat: async () => {
          throw new TypeError('boom at /srv/hapax/src/secret-internals.ts:42');
        },
      },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.close();
  });

  it('becomes a 500 InternalError with the request id and no internals, and the server keeps serving', async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'bug-1' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { type: 'InternalError', message: 'internal error', code: 500, request_id: 'bug-1' } });
    expect(text).not.toContain('secret-internals');
    // The details go to the log for whoever debugs it, tied to the request id.
    expect(logs.some((line) => line.includes('secret-internals') && line.includes('bug-1'))).toBe(true);
    const next = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"hi"}' });
    expect(next.status).toBe(200);
  });
});
