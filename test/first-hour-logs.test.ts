/**
 * Log lines and cache behaviour a new operator reads in the first hour, from a running gateway: bodies
 * are logged for model traffic only (never the /metrics page), the health of one provider or route is
 * named by its path template rather than "unmatched", and `Cache-Control: no-cache` gets a fresh answer
 * that is then kept, as documented in docs/api.md.
 */
import { describe, expect, it } from 'vitest';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const requestLines = (logs: Record<string, unknown>[]) => logs.filter((line) => line.msg === 'request');

describe('request log lines of operational routes', () => {
  const setup = useStarted({
    gateway: () =>
      startTestGateway(`
providers:
  mock: {type: mock}
logging: {log_bodies: true}
cache: {enabled: true}
`),
  });

  it('logs the bodies of model requests, never the metrics page', async () => {
    expect((await fetch(`${setup.gateway.url}/metrics`)).status).toBe(200);
    const answer = await fetch(`${setup.gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"log me"}' });
    expect(answer.status).toBe(200);
    await setup.gateway.logger.flush();
    const lines = requestLines(setup.gateway.logs);
    const metrics = lines.find((line) => line.route === '/metrics');
    expect(metrics).toBeDefined();
    expect(metrics).not.toHaveProperty('response_body');
    expect(metrics).not.toHaveProperty('request_body');
    const model = lines.find((line) => line.route === '/v1/completions');
    expect(model).toMatchObject({ request_body: { input: 'log me' } });
    expect(String(model?.response_body)).toContain('You said: log me');
  });

  it('names the health of one provider or one route by its path template', async () => {
    expect((await fetch(`${setup.gateway.url}/health/provider/mock`)).status).toBe(200);
    expect((await fetch(`${setup.gateway.url}/health/v1/completions`)).status).toBe(200);
    const lines = requestLines(setup.gateway.logs);
    expect(lines.find((line) => line.route === '/health/provider/{provider}')).toMatchObject({ status: 200 });
    expect(lines.find((line) => line.route === '/health/{route}')).toMatchObject({ status: 200 });
    expect(lines.filter((line) => line.route === 'unmatched' && line.status === 200)).toEqual([]);
  });

  it('Cache-Control: no-cache is answered fresh, and that answer is kept for the next request', async () => {
    const ask = (headers: Record<string, string> = {}) =>
      fetch(`${setup.gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"input":"cache me"}' });
    expect((await ask()).headers.get('x-hapax-cache')).toBeNull();
    expect((await ask()).headers.get('x-hapax-cache')).toBe('hit');
    const fresh = await ask({ 'cache-control': 'no-cache' });
    expect(fresh.headers.get('x-hapax-cache')).toBeNull();
    expect(fresh.headers.get('x-hapax-provider')).toBe('mock');
    const after = await ask();
    expect(after.headers.get('x-hapax-cache')).toBe('hit');
    expect(after.headers.get('x-request-id')).not.toBe(fresh.headers.get('x-request-id'));
  });
});
