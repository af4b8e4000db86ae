/** What a config reload keeps of each provider's live state (breaker, health, queue) and what it renews. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { ProviderStates } from '../../src/gateway/provider-state.ts';
import { Metrics } from '../../src/observability/metrics.ts';

interface Knobs {
  baseUrl?: string;
  apiKey?: string;
  timeout?: string;
  breakerThreshold?: number;
  maxRetries?: number;
  queueSize?: number;
  withBackup?: boolean;
}

function config(knobs: Knobs = {}) {
  const text = `
health_check: {enabled: false, failure_threshold: 2}
circuit_breaker: {failure_threshold: ${knobs.breakerThreshold ?? 2}, timeout: 60s}
retry: {max_retries: ${knobs.maxRetries ?? 1}}
queue: {max_size: ${knobs.queueSize ?? 10}, timeout: 5s}
providers:
  main: {type: openai_compatible, base_url: "${knobs.baseUrl ?? 'http://127.0.0.1:9/v1'}", api_key: ${knobs.apiKey ?? 'sk-one'}, model: m, timeout: ${knobs.timeout ?? '60s'}, max_concurrency: 2}
${knobs.withBackup === false ? '' : '  backup: {type: mock}'}
`;
  return parseConfig(text).config;
}

/** A ProviderStates with `main` tripped open and marked unhealthy. */
function tripped() {
  const metrics = new Metrics();
  const states = new ProviderStates(metrics);
  const first = states.build(config());
  const main = first.get('main')!;
  for (let i = 0; i < 2; i++) main.breaker.tryAcquire()?.failure();
  main.health.recordFailure('probe');
  main.health.recordFailure('probe');
  expect(main.breaker.state).toBe('open');
  expect(main.health.healthy).toBe(false);
  return { metrics, states, main };
}

describe('ProviderStates across reloads', () => {
  it('keeps an open breaker and the health of a provider whose key, timeout and thresholds changed, with the new thresholds applied', () => {
    const { states, main } = tripped();
    const next = states.build(config({ apiKey: 'sk-two', timeout: '30s', breakerThreshold: 5, maxRetries: 3 })).get('main')!;
    expect(next.breaker).toBe(main.breaker);
    expect(next.breaker.state).toBe('open');
    expect(next.breaker.snapshot().failureThreshold).toBe(5);
    expect(next.health).toBe(main.health);
    expect(next.health.healthy).toBe(false);
    // The retry policy holds no state: the new one applies.
    expect(next.maxRetries).toBe(3);
    // Unchanged queue limits: the same queue (its waiters and slots carry on).
    expect(next.queue).toBe(main.queue);
  });

  it('starts fresh when the provider moves to another endpoint', () => {
    const { states, main } = tripped();
    const next = states.build(config({ baseUrl: 'http://127.0.0.1:10/v1' })).get('main')!;
    expect(next.breaker).not.toBe(main.breaker);
    expect(next.breaker.state).toBe('closed');
    expect(next.health.healthy).toBe(true);
  });

  it('gives a provider whose queue limits changed a new queue, keeping its breaker', () => {
    const { states, main } = tripped();
    const next = states.build(config({ queueSize: 20 })).get('main')!;
    expect(next.queue).toBeDefined();
    expect(next.queue).not.toBe(main.queue);
    expect(next.breaker).toBe(main.breaker);
  });

  it('drops the gauges of a provider the new config no longer has', async () => {
    const { metrics, states } = tripped();
    const series = async () => (await metrics.registry.getSingleMetric('circuit_breaker_state')!.get()).values.map((v) => v.labels.provider);
    expect(await series()).toEqual(expect.arrayContaining(['main', 'backup']));
    states.build(config({ withBackup: false }));
    expect(await series()).toEqual(['main']);
  });
});
