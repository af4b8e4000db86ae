import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { parseExposition, scrape, seriesOf, sumOf, valueOf, type Exposition } from './helpers/prometheus.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const ALPHA_MODEL = 'gpt-4o-mini';
const BETA_MODEL = 'claude-3-5-haiku-latest';
const PRICES = { alpha: { input: 0.15, output: 0.6 }, beta: { input: 0.8, output: 4 } } as const;
const KEYS = { a: 'hk-team-a-secret-0001', b: 'hk-team-b-secret-0002', limited: 'hk-limited-secret-0003' };
const ask = (text: string) => ({ model: '', messages: [{ role: 'user' as const, content: text }] });

/** Tokens each (provider, client, department) spent, as the clients saw them in `usage`. */
class Ledger {
  readonly rows = new Map<string, { provider: 'alpha' | 'beta'; client: string; department?: string; prompt: number; completion: number }>();
  add(provider: 'alpha' | 'beta', client: string, department: string | undefined, prompt: number, completion: number): void {
    const id = `${provider}|${client}|${department ?? ''}`;
    const row = this.rows.get(id) ?? { provider, client, department, prompt: 0, completion: 0 };
    row.prompt += prompt;
    row.completion += completion;
    this.rows.set(id, row);
  }
}

/** promtool from Debian's `prometheus` package (installed by .ci/run): it must be there, never skipped. */
function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool is required (Debian package prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('metrics after a scripted workload over routes, keys, providers and failures', () => {
  const setup = useStarted({
    dir: () => tempDir('hapax-metrics-'),
    alpha: () => startFakeOpenAI({ name: 'alpha', apiKey: 'sk-alpha-upstream-secret' }),
    beta: () => startFakeAnthropic({ name: 'beta', apiKey: 'sk-ant-beta-upstream-secret' }),
  }).and({
    gateway: ({ dir, alpha, beta }) =>
      startTestGateway(`
providers:
  alpha: {type: openai, base_url: "${alpha.url}", api_key: sk-alpha-upstream-secret, model: ${ALPHA_MODEL}}
  beta: {type: anthropic, base_url: "${beta.url}", api_key: sk-ant-beta-upstream-secret, model: ${BETA_MODEL}}
provider_preference: [alpha, beta]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 2}
# Probes off, and traffic failures alone do not mark a provider unhealthy: the order stays alpha, beta.
health_check: {enabled: false, failure_threshold: 5}
dedup: {enabled: false}
auth:
  enabled: true
  key_file: ${join(dir.path, 'keys.json')}
  keys:
    - {name: team-a, key: ${KEYS.a}}
    - {name: team-b, key: ${KEYS.b}}
    - {name: limited, key: ${KEYS.limited}, rate_limit: {requests_per_minute: 1}}
pricing:
  ${ALPHA_MODEL}: {input: ${PRICES.alpha.input}, output: ${PRICES.alpha.output}}
  beta/${BETA_MODEL}: {input: ${PRICES.beta.input}, output: ${PRICES.beta.output}}
routes:
  - {path: /v1/marketing/chat/completions, handler: chat, metrics_labels: {department: marketing}}
`),
  });
  let metricsText: string;
  let m: Exposition;
  const ledger = new Ledger();
  const overheadHeaders: (string | null)[] = [];

  const openai = (key: string, base = '/v1') => new OpenAI({ baseURL: `${setup.gateway.url}${base}`, apiKey: key, maxRetries: 0 });

  // The workload runs once, after the gateway has started (hooks run in the order they are registered).
  beforeAll(async () => {
    // 1. team-a: three answers from alpha on the standard route.
    for (const text of ['one', 'one two', 'one two three']) {
      const { data, response } = await openai(KEYS.a).chat.completions.create(ask(text)).withResponse();
      ledger.add('alpha', 'team-a', undefined, data.usage?.prompt_tokens ?? NaN, data.usage?.completion_tokens ?? NaN);
      overheadHeaders.push(response.headers.get('x-hapax-overhead-ms'));
    }
    // 2. team-b: two answers on the marketing route.
    for (const text of ['campaign ideas', 'a slogan please']) {
      const { data, response } = await openai(KEYS.b, '/v1/marketing').chat.completions.create(ask(text)).withResponse();
      ledger.add('alpha', 'team-b', 'marketing', data.usage?.prompt_tokens ?? NaN, data.usage?.completion_tokens ?? NaN);
      overheadHeaders.push(response.headers.get('x-hapax-overhead-ms'));
    }
    // 3. team-b: Anthropic's API, pinned to beta.
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: KEYS.b, maxRetries: 0 });
    const message = await anthropic.messages.create({ model: BETA_MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'hello beta' }] });
    ledger.add('beta', 'team-b', undefined, message.usage.input_tokens, message.usage.output_tokens);
    // 4. team-a: a stream on the marketing route, usage in the last chunk.
    const stream = await openai(KEYS.a, '/v1/marketing').chat.completions.create({ ...ask('stream these words'), stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) if (chunk.usage) ledger.add('alpha', 'team-a', 'marketing', chunk.usage.prompt_tokens, chunk.usage.completion_tokens);
    // 5. limited: one answer, then refused by its rate limit.
    const first = await openai(KEYS.limited).chat.completions.create(ask('only once'));
    ledger.add('alpha', 'limited', undefined, first.usage?.prompt_tokens ?? NaN, first.usage?.completion_tokens ?? NaN);
    await expect(openai(KEYS.limited).chat.completions.create(ask('twice'))).rejects.toMatchObject({ status: 429 });
    // 6. a key nobody issued.
    await expect(openai('hk-nobody-0000000000').chat.completions.create(ask('let me in'))).rejects.toMatchObject({ status: 401 });
    // 7. alpha fails (500): the answer comes from beta.
    setup.alpha.queueFaults({ kind: 'status', status: 500 });
    const { data: failedOver, response } = await openai(KEYS.a).chat.completions.create(ask('are you there')).withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('beta');
    ledger.add('beta', 'team-a', undefined, failedOver.usage?.prompt_tokens ?? NaN, failedOver.usage?.completion_tokens ?? NaN);
    overheadHeaders.push(response.headers.get('x-hapax-overhead-ms'));
    // 8. both fail: the client gets a 503.
    setup.alpha.queueFaults({ kind: 'status', status: 500 });
    setup.beta.queueFaults({ kind: 'status', status: 500 });
    await expect(openai(KEYS.a).chat.completions.create(ask('anyone'))).rejects.toMatchObject({ status: 503 });

    metricsText = await (await fetch(`${setup.gateway.url}/metrics`)).text();
    m = parseExposition(metricsText);
  });

  it('passes promtool check metrics on the real exposition', () => {
    const { status, output } = promtoolCheck(metricsText);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('counts requests by endpoint and status, with the route department label', () => {
    const chat = '/v1/chat/completions';
    expect(valueOf(m, 'hapax_http_requests_total', { endpoint: chat, status: '200' })).toBe(5);
    expect(valueOf(m, 'hapax_http_requests_total', { endpoint: chat, status: '429' })).toBe(1);
    expect(valueOf(m, 'hapax_http_requests_total', { endpoint: chat, status: '401' })).toBe(1);
    expect(valueOf(m, 'hapax_http_requests_total', { endpoint: chat, status: '503' })).toBe(1);
    expect(valueOf(m, 'hapax_http_requests_total', { endpoint: '/v1/messages', status: '200' })).toBe(1);
    const marketing = { endpoint: '/v1/marketing/chat/completions', department: 'marketing' };
    expect(valueOf(m, 'hapax_http_requests_total', { ...marketing, status: '200' })).toBe(3);
    expect(valueOf(m, 'hapax_http_request_duration_seconds_count', marketing)).toBe(3);
    expect(valueOf(m, 'hapax_http_request_duration_seconds_bucket', { ...marketing, le: '+Inf' })).toBe(3);
    expect(valueOf(m, 'hapax_http_request_duration_seconds_count', { endpoint: chat })).toBe(8);
    // Nothing is in flight once every answer is in, but the scrape itself.
    for (const series of seriesOf(m, 'hapax_http_active_requests')) expect(series.value).toBe(series.labels.endpoint === '/metrics' ? 1 : 0);
    expect(m.types.get('hapax_http_active_requests')).toBe('gauge');
  });

  it('counts errors by type and rate-limit hits by key name', () => {
    expect(valueOf(m, 'hapax_errors_total', { type: 'RateLimitError' })).toBe(1);
    expect(valueOf(m, 'hapax_errors_total', { type: 'AuthenticationError' })).toBe(1);
    expect(valueOf(m, 'hapax_errors_total', { type: 'ProcessingError' })).toBe(1);
    expect(sumOf(m, 'hapax_errors_total')).toBe(3);
    expect(valueOf(m, 'hapax_rate_limit_hits_total', { client: 'limited' })).toBe(1);
    expect(sumOf(m, 'hapax_rate_limit_hits_total')).toBe(1);
  });

  it('counts upstream attempts, latency, first tokens and failovers per provider', () => {
    expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'alpha', outcome: 'success' })).toBe(7);
    expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'alpha', outcome: 'server' })).toBe(2);
    expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'beta', outcome: 'success' })).toBe(2);
    expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'beta', outcome: 'server' })).toBe(1);
    expect(valueOf(m, 'hapax_provider_request_duration_seconds_count', { provider: 'alpha' })).toBe(7);
    expect(valueOf(m, 'hapax_provider_request_duration_seconds_count', { provider: 'beta' })).toBe(2);
    expect(valueOf(m, 'hapax_time_to_first_token_seconds_count', { provider: 'alpha' })).toBe(1);
    expect(valueOf(m, 'hapax_failovers_total', { from: 'alpha', to: 'beta', reason: 'server' })).toBe(2);
    expect(sumOf(m, 'hapax_failovers_total')).toBe(2);
    expect(sumOf(m, 'hapax_retries_total')).toBe(0);
  });

  it('shows breaker states and provider health', () => {
    // alpha failed twice in a row (threshold 2): open. beta failed once: still closed.
    expect(valueOf(m, 'circuit_breaker_state', { provider: 'alpha' })).toBe(2);
    expect(valueOf(m, 'circuit_breaker_state', { provider: 'beta' })).toBe(0);
    expect(valueOf(m, 'hapax_provider_healthy', { provider: 'alpha' })).toBe(1);
    expect(valueOf(m, 'hapax_provider_healthy', { provider: 'beta' })).toBe(1);
  });

  it('counts tokens and cost by provider, configured model, key name and department', () => {
    expect(ledger.rows.size).toBe(6);
    for (const row of ledger.rows.values()) {
      const labels = {
        provider: row.provider,
        model: row.provider === 'alpha' ? ALPHA_MODEL : BETA_MODEL,
        client: row.client,
        ...(row.department ? { department: row.department } : {}),
      };
      expect(row.prompt).toBeGreaterThan(0);
      // The fakes report usage on every answer and stream: the provider's own figures.
      expect(valueOf(m, 'hapax_tokens_total', { ...labels, usage_source: 'provider', type: 'prompt' })).toBe(row.prompt);
      expect(valueOf(m, 'hapax_tokens_total', { ...labels, usage_source: 'provider', type: 'completion' })).toBe(row.completion);
      const price = PRICES[row.provider];
      expect(valueOf(m, 'hapax_cost_usd_total', labels)).toBeCloseTo((row.prompt * price.input + row.completion * price.output) / 1e6, 12);
    }
    expect(seriesOf(m, 'hapax_tokens_total')).toHaveLength(12);
    expect(seriesOf(m, 'hapax_cost_usd_total')).toHaveLength(6);
    const marketingTokens = [...ledger.rows.values()].filter((r) => r.department === 'marketing').reduce((n, r) => n + r.prompt + r.completion, 0);
    expect(sumOf(m, 'hapax_tokens_total', { department: 'marketing' })).toBe(marketingTokens);
  });

  it('measures gateway overhead for every request that reached a provider, and says it in a header', () => {
    // 3 + 2 + 1 (messages) + 1 (stream) + 1 (limited) + 1 (failover) + 1 (all failed)
    expect(valueOf(m, 'hapax_gateway_overhead_seconds_count')).toBe(10);
    expect(overheadHeaders).toHaveLength(6);
    for (const header of overheadHeaders) {
      expect(header).toMatch(/^\d+\.\d{2}$/);
    }
  });

  it('exports the Node process metrics', () => {
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(seriesOf(m, name).length, name).toBeGreaterThan(0);
    }
  });
});

describe('dispatcher metrics: retries, queue, dedup, health checks', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'solo' }) });

  /**
   * Runs `test` against a gateway of its own whose one provider, `solo`, is the shared fake: the fake is reset
   * first and its fault cleared after, so each test counts only its own requests.
   */
  async function withSoloGateway(yaml: { provider?: string; rest?: string }, test: (gateway: TestGateway, client: OpenAI) => Promise<void>) {
    setup.upstream.reset();
    const gateway = await startTestGateway(`
providers:
  solo: {type: openai, base_url: "${setup.upstream.url}", model: ${ALPHA_MODEL}${yaml.provider ?? ''}}
${yaml.rest ?? ''}`);
    try {
      await test(gateway, new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }));
    } finally {
      setup.upstream.fault = null;
      await gateway.close();
    }
  }

  it('counts a retry of the same provider and its two outcomes', async () => {
    await withSoloGateway({ rest: 'retry: {max_retries: 1, initial_delay: 1ms, max_delay: 1ms}' }, async (gateway, client) => {
      setup.upstream.queueFaults({ kind: 'status', status: 500 });
      const { response } = await client.chat.completions.create(ask('again')).withResponse();
      expect(response.headers.get('x-hapax-attempts')).toBe('2');
      const m = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(m, 'hapax_retries_total', { provider: 'solo' })).toBe(1);
      expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'solo', outcome: 'server' })).toBe(1);
      expect(valueOf(m, 'hapax_provider_requests_total', { provider: 'solo', outcome: 'success' })).toBe(1);
      expect(sumOf(m, 'hapax_failovers_total')).toBe(0);
    });
  });

  it('records queue waits for a provider at its max_concurrency', async () => {
    await withSoloGateway({ provider: ', max_concurrency: 1' }, async (gateway, client) => {
      setup.upstream.fault = { kind: 'delay', ms: 100 };
      await Promise.all(['first', 'second', 'third'].map((text) => client.chat.completions.create(ask(text))));
      const m = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(m, 'hapax_queue_wait_seconds_count', { provider: 'solo' })).toBe(3);
      expect(valueOf(m, 'hapax_queue_depth', { provider: 'solo' })).toBe(0);
      expect(setup.upstream.requests).toHaveLength(3);
    });
  });

  it('counts deduplicated requests, and their tokens once', async () => {
    await withSoloGateway({}, async (gateway, client) => {
      setup.upstream.fault = { kind: 'delay', ms: 200 };
      const answers = await Promise.all([1, 2].map(() => client.chat.completions.create(ask('the same question')).withResponse()));
      expect(setup.upstream.requests).toHaveLength(1);
      // Only the request that called upstream has an overhead of its own.
      expect(answers.map((a) => a.response.headers.get('x-hapax-overhead-ms') !== null).sort()).toEqual([false, true]);
      const usage = answers[0].data.usage;
      const m = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(m, 'hapax_deduplicated_requests_total')).toBe(1);
      expect(valueOf(m, 'hapax_http_requests_total', { endpoint: '/v1/chat/completions', status: '200' })).toBe(2);
      expect(valueOf(m, 'hapax_tokens_total', { provider: 'solo', model: ALPHA_MODEL, client: 'anonymous', usage_source: 'provider', type: 'prompt' })).toBe(usage?.prompt_tokens);
      expect(valueOf(m, 'hapax_tokens_total', { provider: 'solo', model: ALPHA_MODEL, client: 'anonymous', usage_source: 'provider', type: 'completion' })).toBe(usage?.completion_tokens);
      expect(valueOf(m, 'hapax_gateway_overhead_seconds_count')).toBe(1);
    });
  });

  it('counts cache hits, and the tokens of a cached answer only once', async () => {
    await withSoloGateway({ rest: 'cache: {enabled: true}' }, async (gateway, client) => {
      const first = await client.chat.completions.create(ask('remember me')).withResponse();
      const second = await client.chat.completions.create(ask('remember me')).withResponse();
      expect(setup.upstream.requests).toHaveLength(1);
      expect(second.response.headers.get('x-hapax-overhead-ms')).toBeNull();
      const m = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(m, 'hapax_cache_hits_total')).toBe(1);
      expect(valueOf(m, 'hapax_tokens_total', { provider: 'solo', model: ALPHA_MODEL, client: 'anonymous', usage_source: 'provider', type: 'completion' })).toBe(first.data.usage?.completion_tokens);
      expect(valueOf(m, 'hapax_gateway_overhead_seconds_count')).toBe(1);
    });
  });

  it('labels a model the config does not name as "other"', async () => {
    await withSoloGateway({}, async (gateway, client) => {
      await client.chat.completions.create({ ...ask('hi'), model: 'solo/some-model-of-the-day' });
      const m = await scrape(`${gateway.url}/metrics`);
      expect(seriesOf(m, 'hapax_tokens_total').map((s) => s.labels.model)).toEqual(['other', 'other']);
      expect(seriesOf(m, 'hapax_cost_usd_total')).toHaveLength(0);
    });
  });

  it('times health checks and counts their failures', async () => {
    const gateway = await startTestGateway(`
providers:
  solo: {type: openai, base_url: "${setup.upstream.url}", model: ${ALPHA_MODEL}}
  gone: {type: openai, base_url: "http://127.0.0.1:1/v1", model: ${ALPHA_MODEL}}
health_check: {enabled: true, interval: 50ms, timeout: 1s}
`);
    try {
      let m = await scrape(`${gateway.url}/metrics`);
      while ((valueOf(m, 'hapax_health_check_errors_total', { provider: 'gone' }) ?? 0) < 2 || (valueOf(m, 'hapax_health_check_duration_seconds_count', { provider: 'solo' }) ?? 0) < 2) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        m = await scrape(`${gateway.url}/metrics`);
      }
      expect(valueOf(m, 'hapax_provider_healthy', { provider: 'gone' })).toBe(0);
      expect(valueOf(m, 'hapax_provider_healthy', { provider: 'solo' })).toBe(1);
      expect(valueOf(m, 'hapax_health_check_errors_total', { provider: 'solo' }) ?? 0).toBe(0);
      expect(valueOf(m, 'hapax_health_check_duration_seconds_count', { provider: 'gone' })).toBeGreaterThanOrEqual(2);
    } finally {
      await gateway.close();
    }
  });
});

describe('the /metrics endpoint', () => {
  /** Runs `test` against a mock gateway that requires the one client key `hk-ops-secret-000001`; `rest` is more YAML. */
  async function withOpsKeyGateway(rest: string, test: (gateway: TestGateway) => Promise<void>) {
    // The key file of runtime-issued keys goes to a directory of the test's own.
    const dir = await tempDir('hapax-metrics-keys-');
    const gateway = await startTestGateway(`
providers:
  mock: {type: mock}
auth:
  enabled: true
  key_file: ${join(dir.path, 'keys.json')}
  keys: [{name: ops, key: hk-ops-secret-000001}]
${rest}`);
    try {
      await test(gateway);
    } finally {
      await gateway.close();
      await dir.close();
    }
  }

  it('asks for a client key when metrics.auth is on', async () => {
    await withOpsKeyGateway('metrics: {auth: true}\n', async (gateway) => {
      expect((await fetch(`${gateway.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${gateway.url}/metrics`, { headers: { authorization: 'Bearer hk-wrong-0000000000' } })).status).toBe(401);
      const m = await scrape(`${gateway.url}/metrics`, { authorization: 'Bearer hk-ops-secret-000001' });
      expect(valueOf(m, 'hapax_errors_total', { type: 'AuthenticationError' })).toBe(2);
    });
  });

  it('is open without metrics.auth even when client keys are required', async () => {
    await withOpsKeyGateway('', async (gateway) => {
      const response = await fetch(`${gateway.url}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    });
  });

  it('moves to metrics.path, or goes away with metrics.enabled: false', async () => {
    const moved = await startTestGateway(`
providers:
  mock: {type: mock}
metrics: {path: /internal/metrics}
`);
    try {
      expect((await fetch(`${moved.url}/metrics`)).status).toBe(404);
      const m = await scrape(`${moved.url}/internal/metrics`);
      expect(valueOf(m, 'hapax_http_requests_total', { endpoint: 'unmatched', status: '404' })).toBe(1);
    } finally {
      await moved.close();
    }
    const off = await startTestGateway(`
providers:
  mock: {type: mock}
metrics: {enabled: false}
`);
    try {
      expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});

describe('hapax_http_active_requests', () => {
  it('shows a request while it is in flight, and none once it is answered', async () => {
    const upstream = await startFakeOpenAI({ name: 'slow' });
    const gateway = await startTestGateway(`
providers:
  slow: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
`);
    try {
      upstream.queueFaults({ kind: 'delay', ms: 600 }, { kind: 'delay', ms: 600 });
      // Two different prompts: identical ones would share one upstream call.
      const post = (text: string) => fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ask(text)) });
      const answers = [post('wait one'), post('wait two')];
      await expect.poll(() => upstream.requests.length, { timeout: 2000 }).toBe(2);
      const during = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(during, 'hapax_http_active_requests', { endpoint: '/v1/chat/completions' })).toBe(2);
      expect((await Promise.all(answers)).map((r) => r.status)).toEqual([200, 200]);
      const after = await scrape(`${gateway.url}/metrics`);
      expect(valueOf(after, 'hapax_http_active_requests', { endpoint: '/v1/chat/completions' })).toBe(0);
      expect(valueOf(after, 'hapax_http_active_requests', { endpoint: '/metrics' })).toBe(1);
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
