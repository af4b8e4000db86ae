/**
 * The resilience layer seen from a client: failover, retries within the deadline, circuit breakers,
 * health checks, 429 avoidance, deduplication, fair queues and client disconnects, all through the real
 * HTTP interface with the official SDK against fake providers.
 */
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Fault, FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startSwitch } from './helpers/network-switch.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { metricValue } from './helpers/metrics.ts';
import { ask, sdk, streamText } from './helpers/openai.ts';

/** Chat requests the fake received from client traffic (health probes carry their own request id). */
const traffic = (fake: FakeProvider) => fake.requests.filter((r) => r.path.endsWith('/chat/completions') && r.headers['x-request-id'] !== 'health-check');

const metric = (gateway: TestGateway, name: string, labels = '') => metricValue(gateway.url, `${name}${labels}`);

async function providerHealth(gateway: TestGateway, name: string) {
  const response = await fetch(`${gateway.url}/health/provider/${name}`);
  return { status: response.status, body: (await response.json()) as { healthy: boolean; circuit_breaker: string; consecutive_fails: number } };
}

/** A raw POST whose status, headers and JSON body the test reads directly. */
async function post(gateway: TestGateway, path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

/** A TCP hop in front of a fake that can be switched off (every connection refused and cut) and on again. */
const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({ model: '', messages: [{ role: 'user', content }], ...extra });

describe('failover: no client-visible error while any provider is healthy', () => {
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    primary = await startFakeOpenAI({ name: 'primary' });
    backup = await startFakeOpenAI({ name: 'backup' });
  });
  // A fresh gateway per test: each starts with closed breakers and no rate-limit memory.
  beforeEach(async () => {
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini, timeout: 300ms}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
retry: {max_retries: 1, initial_delay: 10ms, max_delay: 20ms}
`);
    client = sdk(gateway);
  });
  afterEach(async () => {
    await gateway.close();
    primary.reset();
    backup.reset();
  });
  afterAll(async () => {
    await primary.close();
    await backup.close();
  });

  const faults: Array<[string, Fault]> = [
    ['a 500', { kind: 'status', status: 500 }],
    ['a 503', { kind: 'status', status: 503 }],
    ['a connection reset', { kind: 'reset' }],
    ['a hang past the provider timeout', { kind: 'hang' }],
    ['a 429 with retry-after', { kind: 'status', status: 429, headers: { 'retry-after': '30' } }],
    ['a body cut in half', { kind: 'cut', afterChunks: 0 }],
  ];

  it.each(faults)('answers from the backup when the primary fails with %s', async (_name, fault) => {
    primary.fault = fault;
    const { data, response } = await ask(client, 'are you there');
    expect(data.choices[0].message.content).toBe('[backup] are you there');
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    expect(response.headers.get('x-hapax-attempts')).toBe('2');
    expect(traffic(primary)).toHaveLength(1);
  });

  it.each(faults)('fails a stream over before its first byte when the primary fails with %s', async (_name, fault) => {
    primary.fault = fault;
    const { text, finish, response } = await streamText(client, 'one two three');
    expect(text).toBe('[backup] one two three');
    expect(finish).toBe('stop');
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    expect(traffic(primary)).toHaveLength(1);
  });

  it('leaves a provider that answered 429 alone until its retry-after has passed', async () => {
    primary.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    expect((await ask(client, 'first')).response.headers.get('x-hapax-provider')).toBe('backup');
    const second = await ask(client, 'second');
    expect(second.response.headers.get('x-hapax-provider')).toBe('backup');
    expect(second.response.headers.get('x-hapax-attempts')).toBe('1');
    expect(traffic(primary)).toHaveLength(1);
    // Once the second has passed, traffic goes back to the primary.
    await vi.waitFor(async () => expect((await ask(client, 'third')).response.headers.get('x-hapax-provider')).toBe('primary'), { timeout: 5000, interval: 200 });
  });

  it('retries a provider after a backoff when every provider failed the first round', async () => {
    primary.queueFaults({ kind: 'status', status: 500 });
    backup.queueFaults({ kind: 'reset' });
    const { data, response } = await ask(client, 'second round');
    expect(data.choices[0].message.content).toBe('[primary] second round');
    expect(response.headers.get('x-hapax-attempts')).toBe('3');
  });

  it('answers 503 ProcessingError with what each provider said, and Retry-After, when every provider fails', async () => {
    primary.fault = { kind: 'status', status: 500 };
    backup.fault = { kind: 'status', status: 429, headers: { 'retry-after': '7' } };
    const { status, headers, body } = await post(gateway, '/v1/chat/completions', chatBody('anyone'));
    expect(status).toBe(503);
    expect(headers.get('retry-after')).toBe('7');
    expect(body.error.type).toBe('ProcessingError');
    const attempts = body.error.details.attempts as Array<{ provider: string; kind: string; status?: number }>;
    expect(attempts).toContainEqual(expect.objectContaining({ provider: 'primary', kind: 'server', status: 500 }));
    expect(attempts).toContainEqual(expect.objectContaining({ provider: 'backup', kind: 'rate_limited', status: 429 }));
    // The rate-limited backup is not retried within its retry-after; the primary gets its second round.
    expect(traffic(backup)).toHaveLength(1);
    expect(traffic(primary)).toHaveLength(2);
  });

  it('does not pass a client error on to the next provider', async () => {
    primary.queueFaults({ kind: 'status', status: 400 });
    const { status, body } = await post(gateway, '/v1/chat/completions', chatBody('bad'));
    expect(status).toBe(400);
    expect(body.error.type).toBe('ValidationError');
    expect(traffic(backup)).toHaveLength(0);
  });
});

describe('three providers, two of them broken in different ways', () => {
  let fakes: FakeProvider[];
  let gateway: TestGateway;

  beforeAll(async () => {
    fakes = await Promise.all(['a', 'b', 'c'].map((name) => startFakeOpenAI({ name })));
    gateway = await startTestGateway(`
providers:
  a: {type: openai, base_url: "${fakes[0].url}", model: gpt-4o-mini, timeout: 200ms}
  b: {type: openai, base_url: "${fakes[1].url}", model: gpt-4o-mini, timeout: 200ms}
  c: {type: openai, base_url: "${fakes[2].url}", model: gpt-4o-mini}
provider_preference: [a, b, c]
`);
  });
  afterAll(async () => {
    await gateway.close();
    await Promise.all(fakes.map((f) => f.close()));
  });

  it('keeps answering every request from the one that works', async () => {
    fakes[0].fault = { kind: 'hang' };
    fakes[1].fault = { kind: 'reset' };
    const client = sdk(gateway);
    for (let i = 0; i < 5; i++) {
      const { data } = await ask(client, `request ${i}`);
      expect(data.choices[0].message.content).toBe(`[c] request ${i}`);
    }
  });
});

describe("a provider's own retry settings", () => {
  let flaky: FakeProvider;
  let steady: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    flaky = await startFakeOpenAI({ name: 'flaky' });
    steady = await startFakeOpenAI({ name: 'steady' });
    gateway = await startTestGateway(`
retry: {max_retries: 0}
providers:
  flaky:
    type: openai
    base_url: "${flaky.url}"
    model: gpt-4o-mini
    retry: {max_retries: 2, initial_delay: 300ms, max_delay: 300ms}
  steady: {type: openai, base_url: "${steady.url}", model: gpt-4o-mini}
provider_preference: [flaky]
`);
  });
  afterAll(async () => {
    await gateway.close();
    await flaky.close();
    await steady.close();
  });

  it('give it more rounds than the global retry, after its own backoff', async () => {
    flaky.queueFaults({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const started = performance.now();
    const { data, response } = await ask(sdk(gateway), 'third time lucky');
    expect(data.choices[0].message.content).toBe('[flaky] third time lucky');
    expect(response.headers.get('x-hapax-attempts')).toBe('3');
    expect(traffic(flaky)).toHaveLength(3);
    // Full jitter: each of the two waits is drawn from [0, 300 ms]; they happened, within that bound.
    expect(performance.now() - started).toBeLessThan(3000);
    expect(traffic(steady)).toHaveLength(0);
  });
});

describe('circuit breaker', () => {
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    primary = await startFakeOpenAI({ name: 'primary' });
    backup = await startFakeOpenAI({ name: 'backup' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
circuit_breaker: {failure_threshold: 3, timeout: 1s}
`);
    client = sdk(gateway);
  });
  afterAll(async () => {
    await gateway.close();
    await primary.close();
    await backup.close();
  });

  it('opens after N failures, skips the provider without a call while open, half-opens after its timeout and closes on success', async () => {
    primary.fault = { kind: 'status', status: 500 };
    for (let i = 0; i < 3; i++) {
      expect((await providerHealth(gateway, 'primary')).body.circuit_breaker).toBe('closed');
      const { response } = await ask(client, `failing ${i}`);
      expect(response.headers.get('x-hapax-provider')).toBe('backup');
    }
    expect(traffic(primary)).toHaveLength(3);
    const open = await providerHealth(gateway, 'primary');
    expect(open.status).toBe(503);
    expect(open.body.circuit_breaker).toBe('open');
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(2);
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="backup"}')).toBe(0);

    // Open: the primary is skipped without a network call.
    const skipped = await ask(client, 'while open');
    expect(skipped.response.headers.get('x-hapax-provider')).toBe('backup');
    expect(skipped.response.headers.get('x-hapax-attempts')).toBe('1');
    expect(traffic(primary)).toHaveLength(3);

    // After the breaker's timeout it admits a trial; the primary has recovered, so the trial closes it.
    primary.fault = null;
    await vi.waitFor(async () => expect((await providerHealth(gateway, 'primary')).body.circuit_breaker).toBe('half_open'), { timeout: 3000, interval: 50 });
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(1);
    const trial = await ask(client, 'trial');
    expect(trial.response.headers.get('x-hapax-provider')).toBe('primary');
    expect(trial.data.choices[0].message.content).toBe('[primary] trial');
    const closed = await providerHealth(gateway, 'primary');
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ circuit_breaker: 'closed', healthy: true });
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(0);
    expect((await ask(client, 'after')).response.headers.get('x-hapax-provider')).toBe('primary');
  });

  it('gives the provider closest to half-open an early trial when every breaker is open', async () => {
    // Breakers that stay open for a minute: an answer now can only come from the early trial.
    const patient = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
circuit_breaker: {failure_threshold: 3, timeout: 60s}
retry: {max_retries: 0}
`);
    try {
      primary.fault = { kind: 'status', status: 500 };
      backup.fault = { kind: 'status', status: 500 };
      for (let i = 0; i < 3; i++) await post(patient, '/v1/chat/completions', chatBody(`down ${i}`));
      expect((await providerHealth(patient, 'primary')).body.circuit_breaker).toBe('open');
      expect((await providerHealth(patient, 'backup')).body.circuit_breaker).toBe('open');
      primary.fault = null;
      backup.fault = null;
      // Both opened on the same requests, the primary a moment earlier: it is the one closest to half-open.
      const { data, response } = await ask(sdk(patient), 'anyone back');
      expect(data.choices[0].message.content).toBe('[primary] anyone back');
      expect(response.headers.get('x-hapax-attempts')).toBe('1');
      expect((await providerHealth(patient, 'primary')).body.circuit_breaker).toBe('closed');
      expect((await providerHealth(patient, 'backup')).body.circuit_breaker).toBe('open');
    } finally {
      primary.fault = null;
      backup.fault = null;
      await patient.close();
    }
  });
});

describe('health checks', () => {
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    primary = await startFakeOpenAI({ name: 'primary' });
    backup = await startFakeOpenAI({ name: 'backup' });
    // Completion probes go through the chat endpoint, where the fakes apply their faults.
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
health_check: {interval: 200ms, timeout: 300ms, probe: completion}
`);
  });
  afterAll(async () => {
    await gateway.close();
    await primary.close();
    await backup.close();
  });

  it('marks a dead primary unhealthy, routes around it, and sends traffic back once it recovers', async () => {
    const client = sdk(gateway);
    expect((await ask(client, 'before')).response.headers.get('x-hapax-provider')).toBe('primary');
    primary.fault = { kind: 'hang' };
    await vi.waitFor(async () => expect((await providerHealth(gateway, 'primary')).body.healthy).toBe(false), { timeout: 3000, interval: 50 });
    expect((await providerHealth(gateway, 'primary')).status).toBe(503);
    expect(await metric(gateway, 'hapax_provider_healthy', '{provider="primary"}')).toBe(0);
    const sent = traffic(primary).length;
    const during = await ask(client, 'during');
    expect(during.response.headers.get('x-hapax-provider')).toBe('backup');
    expect(during.response.headers.get('x-hapax-attempts')).toBe('1');
    expect(traffic(primary)).toHaveLength(sent);

    primary.fault = null;
    await vi.waitFor(async () => expect((await providerHealth(gateway, 'primary')).body.healthy).toBe(true), { timeout: 3000, interval: 50 });
    expect((await ask(client, 'after')).response.headers.get('x-hapax-provider')).toBe('primary');
    expect(await metric(gateway, 'hapax_provider_healthy', '{provider="primary"}')).toBe(1);
  });

  it('with the default list-models probe: a primary that goes off the network is routed around until it is back', async () => {
    const line = await startSwitch(primary);
    const probed = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${line.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
health_check: {interval: 200ms, timeout: 100ms}
`);
    try {
      const client = sdk(probed);
      expect((await ask(client, 'before')).response.headers.get('x-hapax-provider')).toBe('primary');
      line.off();
      await vi.waitFor(async () => expect((await providerHealth(probed, 'primary')).body.healthy).toBe(false), { timeout: 3000, interval: 50 });
      const during = await ask(client, 'during');
      expect(during.response.headers.get('x-hapax-provider')).toBe('backup');
      expect(during.response.headers.get('x-hapax-attempts')).toBe('1');
      line.on();
      await vi.waitFor(async () => expect((await providerHealth(probed, 'primary')).body.healthy).toBe(true), { timeout: 3000, interval: 50 });
      expect((await ask(client, 'after')).response.headers.get('x-hapax-provider')).toBe('primary');
    } finally {
      await probed.close();
      await line.close();
    }
  });
});

describe('deduplication', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
routes:
  - {path: /nodedup/v1/chat/completions, handler: chat, dedup: false}
`);
    client = sdk(gateway);
  });
  afterEach(() => upstream.reset());
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('answers 50 concurrent identical requests with exactly one upstream call', async () => {
    upstream.fault = { kind: 'delay', ms: 1500 };
    const before = (await metric(gateway, 'hapax_deduplicated_requests_total')) ?? 0;
    const answers = await Promise.all(Array.from({ length: 50 }, () => ask(client, 'the same question')));
    expect(traffic(upstream)).toHaveLength(1);
    for (const { data } of answers) expect(data.choices[0].message.content).toBe('[primary] the same question');
    expect(await metric(gateway, 'hapax_deduplicated_requests_total')).toBe(before + 49);
  });

  it('sends 50 concurrent requests that differ by one character upstream separately, each getting its own answer', async () => {
    upstream.fault = { kind: 'delay', ms: 300 };
    const questions = Array.from({ length: 50 }, (_, i) => `question ${String.fromCharCode(48 + i)}`);
    const answers = await Promise.all(questions.map((q) => ask(client, q)));
    expect(traffic(upstream)).toHaveLength(50);
    answers.forEach(({ data }, i) => expect(data.choices[0].message.content).toBe(`[primary] ${questions[i]}`));
  });

  it('gives every concurrent identical stream the whole stream from one upstream call', async () => {
    upstream.fault = { kind: 'slowStream', chunkDelayMs: 100 };
    const streams = await Promise.all(Array.from({ length: 10 }, () => streamText(client, 'one two three four five')));
    expect(traffic(upstream)).toHaveLength(1);
    for (const { text, finish } of streams) {
      expect(text).toBe('[primary] one two three four five');
      expect(finish).toBe('stop');
    }
  });

  it('lets Cache-Control: no-cache opt out of sharing', async () => {
    upstream.fault = { kind: 'delay', ms: 300 };
    await Promise.all(Array.from({ length: 5 }, () => ask(client, 'fresh please', { headers: { 'Cache-Control': 'no-cache' } })));
    expect(traffic(upstream)).toHaveLength(5);
  });

  it('does not share on a route with dedup: false', async () => {
    upstream.fault = { kind: 'delay', ms: 300 };
    const own = sdk(gateway, '/nodedup/v1');
    await Promise.all(Array.from({ length: 5 }, () => ask(own, 'not shared')));
    expect(traffic(upstream)).toHaveLength(5);
  });
});

describe('fair queues at a provider max_concurrency', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, max_concurrency: 1}
auth:
  enabled: true
  keys:
    - {name: flooder, key: key-of-the-flooder}
    - {name: polite, key: key-of-the-polite-one}
retry: {max_retries: 0}
queue: {max_size: 40}
`);
  });
  afterEach(() => upstream.reset());
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('serves another key before most of a flooding key’s queued requests', async () => {
    upstream.fault = { kind: 'delay', ms: 40 };
    const flooder = sdk(gateway, '/v1', 'key-of-the-flooder');
    const polite = sdk(gateway, '/v1', 'key-of-the-polite-one');
    const finished: string[] = [];
    const flood = Array.from({ length: 30 }, (_, i) => ask(flooder, `flood ${i}`).then(() => finished.push(`A${i}`)));
    await vi.waitFor(async () => expect(await metric(gateway, 'hapax_queue_depth', '{provider="primary"}')).toBeGreaterThanOrEqual(20), { timeout: 5000, interval: 20 });
    await ask(polite, 'just one').then(() => finished.push('B'));
    await Promise.all(flood);
    const aheadOfB = finished.indexOf('B');
    expect(aheadOfB).toBeLessThan(10);
    expect(finished).toHaveLength(31);
  });
});

describe('queue overflow', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, max_concurrency: 1}
retry: {max_retries: 0}
queue: {max_size: 2}
`);
  });
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('answers 503 with Retry-After once the queue is full', async () => {
    upstream.fault = { kind: 'delay', ms: 1000 };
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => post(gateway, '/v1/chat/completions', chatBody(`queued ${i}`))));
    const refused = results.filter((r) => r.status === 503);
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(r.body.error.type).toBe('ProcessingError');
    }
  });
});

describe('client disconnects and deadlines', () => {
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gateway: TestGateway;

  beforeAll(async () => {
    primary = await startFakeOpenAI({ name: 'primary' });
    backup = await startFakeOpenAI({ name: 'backup' });
    gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
circuit_breaker: {failure_threshold: 1000}
routes:
  - {path: /short/v1/chat/completions, handler: chat, timeout: 300ms}
`);
  });
  afterEach(() => {
    primary.reset();
    backup.reset();
  });
  afterAll(async () => {
    await gateway.close();
    await primary.close();
    await backup.close();
  });

  it('aborts the upstream request when the SDK call is aborted', async () => {
    primary.fault = { kind: 'hang' };
    const controller = new AbortController();
    const call = ask(sdk(gateway), 'never mind', { signal: controller.signal });
    await vi.waitFor(() => expect(primary.inFlight).toBe(1), { timeout: 3000, interval: 10 });
    controller.abort();
    await expect(call).rejects.toThrow();
    await vi.waitFor(() => expect(primary.aborted).toBe(1), { timeout: 2000, interval: 10 });
    expect(backup.requests).toHaveLength(0);
  });

  it('aborts the upstream stream when the client connection is destroyed mid-stream', async () => {
    primary.fault = { kind: 'slowStream', chunkDelayMs: 200 };
    const url = new URL(`${gateway.url}/v1/chat/completions`);
    const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
    request.end(JSON.stringify(chatBody('one two three four five six seven', { stream: true })));
    const response = await new Promise<http.IncomingMessage>((resolve) => request.once('response', resolve));
    expect(response.statusCode).toBe(200);
    await new Promise((resolve) => response.once('data', resolve));
    const requestId = response.headers['x-request-id'];
    request.destroy();
    await vi.waitFor(() => expect(primary.aborted).toBe(1), { timeout: 2000, interval: 10 });
    expect(backup.requests).toHaveLength(0);
    // The cut stream still leaves its one log line (status 200 went out), and only one.
    await vi.waitFor(() => expect(gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId)).toHaveLength(1), { timeout: 2000, interval: 10 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId)).toMatchObject([{ status: 200, provider: 'primary' }]);
  });

  it('stops retrying at the route deadline and answers 504 with a bounded number of attempts', async () => {
    primary.fault = { kind: 'hang' };
    backup.fault = { kind: 'hang' };
    const started = Date.now();
    const { status, body } = await post(gateway, '/short/v1/chat/completions', chatBody('too slow'));
    expect(Date.now() - started).toBeLessThan(2000); // the route's 300 ms deadline, not the providers' timeouts
    expect(status).toBe(504);
    expect(body.error.type).toBe('ProcessingError');
    // The primary held the whole budget; nothing else was started after the deadline.
    expect(traffic(primary)).toHaveLength(1);
    expect(traffic(backup)).toHaveLength(0);
    await vi.waitFor(() => expect(primary.aborted).toBe(1), { timeout: 2000, interval: 10 });
  });

  it('does not cut a stream that started within the deadline but runs past it', async () => {
    primary.fault = { kind: 'slowStream', chunkDelayMs: 80 };
    const { text, finish } = await streamText(sdk(gateway, '/short/v1'), 'one two three four five six seven eight');
    expect(text).toBe('[primary] one two three four five six seven eight');
    expect(finish).toBe('stop');
  });
});
