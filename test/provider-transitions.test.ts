/**
 * An operator watching the log sees a provider go bad and come back: breaker transitions and health
 * changes are log lines (warn when worse, info when better) with the provider, the reason and when it is
 * tried again, read here from a running gateway.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const ask = (gateway: TestGateway) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hi' }] });

const linesAbout = (gateway: TestGateway, provider: string) => gateway.logs.filter((line) => line.provider === provider && (line.breaker !== undefined || line.healthy !== undefined));

async function eventually(check: () => void, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

describe('provider health and breaker transitions in the log', () => {
  const setup = useStarted({
    alpha: () => startFakeOpenAI({ name: 'alpha' }),
    beta: () => startFakeOpenAI({ name: 'beta' }),
  }).and({
    gateway: ({ alpha, beta }) =>
      startTestGateway(`
providers:
  alpha: {type: openai, base_url: "${alpha.url}", api_key: sk-alpha, model: gpt-4o-mini}
  beta: {type: openai, base_url: "${beta.url}", api_key: sk-beta, model: gpt-4o-mini}
provider_preference: [alpha, beta]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 2, timeout: 300ms}
`),
  });

  it('warns when alpha fails (unhealthy, then breaker open with its retry time) and says so at info when it recovers', async () => {
    const { alpha, gateway } = setup;
    alpha.fault = { kind: 'status', status: 500 };
    await ask(gateway);
    const openedBefore = Date.now();
    await ask(gateway);
    const [unhealthy, opened] = linesAbout(gateway, 'alpha');
    expect(unhealthy).toMatchObject({
      level: 40,
      provider: 'alpha',
      healthy: false,
      source: 'traffic',
      reason: '1 consecutive failed request',
      msg: 'provider alpha is unhealthy (live requests: 1 consecutive failed request); health checks are off: the next request that reaches it decides; requests go to the next provider meanwhile',
    });
    expect(opened).toMatchObject({ level: 40, provider: 'alpha', breaker: 'open', from: 'closed', reason: '2 consecutive failed requests', retry_in_ms: 300 });
    const retryAt = Date.parse(opened.retry_at as string);
    expect(retryAt).toBeGreaterThanOrEqual(openedBefore + 300 - 50);
    expect(retryAt).toBeLessThanOrEqual(Date.now() + 300);
    expect(opened.msg).toBe(`provider alpha: circuit breaker open (2 consecutive failed requests); requests skip it until ${opened.retry_at}, then one trial request`);

    alpha.fault = null;
    await new Promise((resolve) => setTimeout(resolve, 350));
    await ask(gateway);
    await eventually(() =>
      expect(linesAbout(gateway, 'alpha').slice(2).map((line) => [line.level, line.msg])).toEqual([
        [30, 'provider alpha: circuit breaker half-open; the next request is a trial'],
        [30, 'provider alpha: circuit breaker closed; the trial request succeeded'],
        [30, 'provider alpha is healthy again (live requests)'],
      ]),
    );
    expect(linesAbout(gateway, 'beta')).toEqual([]);
  });
});

describe('the health check at start', () => {
  it('marks a dead primary unhealthy before the first request, saying why and when it checks again', async () => {
    const gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-dead, model: gpt-4o-mini}
  backup: {type: mock}
health_check: {enabled: true, interval: 1m, timeout: 2s}
`);
    try {
      await eventually(() => expect(linesAbout(gateway, 'primary')).toHaveLength(1));
      const [line] = linesAbout(gateway, 'primary');
      expect(line).toMatchObject({ level: 40, healthy: false, source: 'probe', retry_in_ms: 60_000 });
      expect(String(line.reason)).toMatch(/ECONNREFUSED|connect|refused/i);
      expect(line.msg).toBe(`provider primary is unhealthy (health check: ${line.reason}); next health check at ${line.retry_at}; requests go to the next provider meanwhile`);
      expect(linesAbout(gateway, 'backup')).toEqual([]);
    } finally {
      await gateway.close();
    }
  });
});
