/**
 * The resilience layer seen from a client: failover, retries within the deadline, circuit breakers,
 * health checks, 429 avoidance, deduplication, fair queues and client disconnects, all through the real
 * HTTP interface with the official SDK against fake providers.
 */
import http from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Fault, FakeProvider } from './fakes/common.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startSwitch } from './helpers/network-switch.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { metricValue } from './helpers/metrics.ts';
import { ask, sdk, streamText } from './helpers/openai.ts';
import { fakeOpenAIs, useStarted } from './helpers/started.ts';

/** Chat requests the fake received from client traffic (health probes carry their own request id). */
const traffic = (fake: FakeProvider) => fake.requests.filter((r) => r.path.endsWith('/chat/completions') && r.headers['x-request-id'] !== 'health-check');

const metric = (gateway: TestGateway, name: string, labels = '') => metricValue(gateway.url, `${name}${labels}`);

/** Which provider answered, and after how many attempts, as the gateway's response headers say. */
const servedBy = (answer: { response: Response }) => answer.response.headers.get('x-hapax-provider');
const attemptCount = (answer: { response: Response }) => answer.response.headers.get('x-hapax-attempts');

async function providerHealth(gateway: TestGateway, name: string) {
  const response = await fetch(`${gateway.url}/health/provider/${name}`);
  return { status: response.status, body: (await response.json()) as { healthy: boolean; circuit_breaker: string; consecutive_fails: number } };
}

/** Waits until the provider's health report shows `expected` (probes and breaker timeouts run on their own clock). */
async function untilHealth(gateway: TestGateway, name: string, expected: Partial<{ healthy: boolean; circuit_breaker: string }>) {
  await vi.waitFor(async () => expect((await providerHealth(gateway, name)).body).toMatchObject(expected), { timeout: 3000, interval: 50 });
}

/** Waits until the fake saw `count` of its requests given up by the gateway. */
const untilAborted = (fake: FakeProvider, count: number) => vi.waitFor(() => expect(fake.aborted).toBe(count), { timeout: 2000, interval: 10 });

/** A raw POST whose status, headers and JSON body the test reads directly. */
async function post(gateway: TestGateway, path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({ model: '', messages: [{ role: 'user', content }], ...extra });

/** Gateway YAML with a primary and a backup OpenAI provider, the primary preferred, then `rest`. */
const primaryThenBackup = (primary: { url: string }, backup: { url: string }, rest: string) => `
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
${rest}`;

describe('failover: no client-visible error while any provider is healthy', () => {
  const fakes = useStarted(fakeOpenAIs('primary', 'backup'));
  afterEach(() => {
    fakes.primary.reset();
    fakes.backup.reset();
  });
  // A fresh gateway per test: each starts with closed breakers and no rate-limit memory. (Its afterEach,
  // registered later, runs first: the gateway closes before the fakes are reset.)
  const fresh = useStarted(
    {
      gateway: () =>
        startTestGateway(`
providers:
  primary: {type: openai, base_url: "${fakes.primary.url}", model: gpt-4o-mini, timeout: 300ms}
  backup: {type: openai, base_url: "${fakes.backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
retry: {max_retries: 1, initial_delay: 10ms, max_delay: 20ms}
`),
    },
    'each',
  ).and({ client: ({ gateway }) => sdk(gateway) });

  const faults: Array<[string, Fault]> = [
    ['a 500', { kind: 'status', status: 500 }],
    ['a 503', { kind: 'status', status: 503 }],
    ['a connection reset', { kind: 'reset' }],
    ['a hang past the provider timeout', { kind: 'hang' }],
    ['a 429 with retry-after', { kind: 'status', status: 429, headers: { 'retry-after': '30' } }],
    ['a body cut in half', { kind: 'cut', afterChunks: 0 }],
  ];

  it.each(faults)('answers from the backup when the primary fails with %s', async (_name, fault) => {
    fakes.primary.fault = fault;
    const answer = await ask(fresh.client, 'are you there');
    expect(answer.data.choices[0].message.content).toBe('[backup] are you there');
    expect(servedBy(answer)).toBe('backup');
    expect(attemptCount(answer)).toBe('2');
    expect(traffic(fakes.primary)).toHaveLength(1);
  });

  it.each(faults)('fails a stream over before its first byte when the primary fails with %s', async (_name, fault) => {
    fakes.primary.fault = fault;
    const streamed = await streamText(fresh.client, 'one two three');
    expect(streamed.text).toBe('[backup] one two three');
    expect(streamed.finish).toBe('stop');
    expect(servedBy(streamed)).toBe('backup');
    expect(traffic(fakes.primary)).toHaveLength(1);
  });

  it('leaves a provider that answered 429 alone until its retry-after has passed', async () => {
    fakes.primary.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    expect(servedBy(await ask(fresh.client, 'first'))).toBe('backup');
    const second = await ask(fresh.client, 'second');
    expect(servedBy(second)).toBe('backup');
    expect(attemptCount(second)).toBe('1');
    expect(traffic(fakes.primary)).toHaveLength(1);
    // Once the second has passed, traffic goes back to the primary.
    await vi.waitFor(async () => expect(servedBy(await ask(fresh.client, 'third'))).toBe('primary'), { timeout: 5000, interval: 200 });
  });

  it('retries a provider after a backoff when every provider failed the first round', async () => {
    fakes.primary.queueFaults({ kind: 'status', status: 500 });
    fakes.backup.queueFaults({ kind: 'reset' });
    const answer = await ask(fresh.client, 'second round');
    expect(answer.data.choices[0].message.content).toBe('[primary] second round');
    expect(attemptCount(answer)).toBe('3');
  });

  it('answers 503 ProcessingError with what each provider said, and Retry-After, when every provider fails', async () => {
    fakes.primary.fault = { kind: 'status', status: 500 };
    fakes.backup.fault = { kind: 'status', status: 429, headers: { 'retry-after': '7' } };
    const { status, headers, body } = await post(fresh.gateway, '/v1/chat/completions', chatBody('anyone'));
    expect(status).toBe(503);
    expect(headers.get('retry-after')).toBe('7');
    expect(body.error.type).toBe('ProcessingError');
    const attempts = body.error.details.attempts as Array<{ provider: string; kind: string; status?: number }>;
    expect(attempts).toContainEqual(expect.objectContaining({ provider: 'primary', kind: 'server', status: 500 }));
    expect(attempts).toContainEqual(expect.objectContaining({ provider: 'backup', kind: 'rate_limited', status: 429 }));
    // The rate-limited backup is not retried within its retry-after; the primary gets its second round.
    expect(traffic(fakes.backup)).toHaveLength(1);
    expect(traffic(fakes.primary)).toHaveLength(2);
  });

  it('does not pass a client error on to the next provider', async () => {
    fakes.primary.queueFaults({ kind: 'status', status: 400 });
    const { status, body } = await post(fresh.gateway, '/v1/chat/completions', chatBody('bad'));
    expect(status).toBe(400);
    expect(body.error.type).toBe('ValidationError');
    expect(traffic(fakes.backup)).toHaveLength(0);
  });
});

describe('three providers, two of them broken in different ways', () => {
  const setup = useStarted(fakeOpenAIs('a', 'b', 'c')).and({
    gateway: ({ a, b, c }) =>
      startTestGateway(`
providers:
  a: {type: openai, base_url: "${a.url}", model: gpt-4o-mini, timeout: 200ms}
  b: {type: openai, base_url: "${b.url}", model: gpt-4o-mini, timeout: 200ms}
  c: {type: openai, base_url: "${c.url}", model: gpt-4o-mini}
provider_preference: [a, b, c]
`),
  });

  it('keeps answering every request from the one that works', async () => {
    setup.a.fault = { kind: 'hang' };
    setup.b.fault = { kind: 'reset' };
    const client = sdk(setup.gateway);
    for (let i = 0; i < 5; i++) {
      const { data } = await ask(client, `request ${i}`);
      expect(data.choices[0].message.content).toBe(`[c] request ${i}`);
    }
  });
});

describe("a provider's own retry settings", () => {
  const setup = useStarted(fakeOpenAIs('flaky', 'steady')).and({
    gateway: ({ flaky, steady }) =>
      startTestGateway(`
retry: {max_retries: 0}
providers:
  flaky:
    type: openai
    base_url: "${flaky.url}"
    model: gpt-4o-mini
    retry: {max_retries: 2, initial_delay: 300ms, max_delay: 300ms}
  steady: {type: openai, base_url: "${steady.url}", model: gpt-4o-mini}
provider_preference: [flaky]
`),
  });

  it('give it more rounds than the global retry, after its own backoff', async () => {
    setup.flaky.queueFaults({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const started = performance.now();
    const answer = await ask(sdk(setup.gateway), 'third time lucky');
    expect(answer.data.choices[0].message.content).toBe('[flaky] third time lucky');
    expect(attemptCount(answer)).toBe('3');
    expect(traffic(setup.flaky)).toHaveLength(3);
    // Full jitter: each of the two waits is drawn from [0, 300 ms]; they happened, within that bound.
    expect(performance.now() - started).toBeLessThan(3000);
    expect(traffic(setup.steady)).toHaveLength(0);
  });
});

describe('circuit breaker', () => {
  const setup = useStarted(fakeOpenAIs('primary', 'backup'))
    .and({ gateway: ({ primary, backup }) => startTestGateway(primaryThenBackup(primary, backup, 'circuit_breaker: {failure_threshold: 3, timeout: 1s}')) })
    .and({ client: ({ gateway }) => sdk(gateway) });

  it('opens after N failures, skips the provider without a call while open, half-opens after its timeout and closes on success', async () => {
    const { primary, gateway, client } = setup;
    primary.fault = { kind: 'status', status: 500 };
    for (let i = 0; i < 3; i++) {
      expect((await providerHealth(gateway, 'primary')).body.circuit_breaker).toBe('closed');
      expect(servedBy(await ask(client, `failing ${i}`))).toBe('backup');
    }
    expect(traffic(primary)).toHaveLength(3);
    const open = await providerHealth(gateway, 'primary');
    expect(open.status).toBe(503);
    expect(open.body.circuit_breaker).toBe('open');
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(2);
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="backup"}')).toBe(0);

    // Open: the primary is skipped without a network call.
    const skipped = await ask(client, 'while open');
    expect(servedBy(skipped)).toBe('backup');
    expect(attemptCount(skipped)).toBe('1');
    expect(traffic(primary)).toHaveLength(3);

    // After the breaker's timeout it admits a trial; the primary has recovered, so the trial closes it.
    primary.fault = null;
    await untilHealth(gateway, 'primary', { circuit_breaker: 'half_open' });
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(1);
    const trial = await ask(client, 'trial');
    expect(servedBy(trial)).toBe('primary');
    expect(trial.data.choices[0].message.content).toBe('[primary] trial');
    const closed = await providerHealth(gateway, 'primary');
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ circuit_breaker: 'closed', healthy: true });
    expect(await metric(gateway, 'circuit_breaker_state', '{provider="primary"}')).toBe(0);
    expect(servedBy(await ask(client, 'after'))).toBe('primary');
  });

  it('gives the provider closest to half-open an early trial when every breaker is open', async () => {
    const { primary, backup } = setup;
    // Breakers that stay open for a minute: an answer now can only come from the early trial.
    const patient = await startTestGateway(primaryThenBackup(primary, backup, 'circuit_breaker: {failure_threshold: 3, timeout: 60s}\nretry: {max_retries: 0}'));
    try {
      primary.fault = { kind: 'status', status: 500 };
      backup.fault = { kind: 'status', status: 500 };
      for (let i = 0; i < 3; i++) await post(patient, '/v1/chat/completions', chatBody(`down ${i}`));
      expect((await providerHealth(patient, 'primary')).body.circuit_breaker).toBe('open');
      expect((await providerHealth(patient, 'backup')).body.circuit_breaker).toBe('open');
      primary.fault = null;
      backup.fault = null;
      // Both opened on the same requests, the primary a moment earlier: it is the one closest to half-open.
      const answer = await ask(sdk(patient), 'anyone back');
      expect(answer.data.choices[0].message.content).toBe('[primary] anyone back');
      expect(attemptCount(answer)).toBe('1');
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
  // Completion probes go through the chat endpoint, where the fakes apply their faults.
  const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
    gateway: ({ primary, backup }) => startTestGateway(primaryThenBackup(primary, backup, 'health_check: {interval: 200ms, timeout: 300ms, probe: completion}')),
  });

  it('marks a dead primary unhealthy, routes around it, and sends traffic back once it recovers', async () => {
    const { primary, gateway } = setup;
    const client = sdk(gateway);
    expect(servedBy(await ask(client, 'before'))).toBe('primary');
    primary.fault = { kind: 'hang' };
    await untilHealth(gateway, 'primary', { healthy: false });
    expect((await providerHealth(gateway, 'primary')).status).toBe(503);
    expect(await metric(gateway, 'hapax_provider_healthy', '{provider="primary"}')).toBe(0);
    const sent = traffic(primary).length;
    const during = await ask(client, 'during');
    expect(servedBy(during)).toBe('backup');
    expect(attemptCount(during)).toBe('1');
    expect(traffic(primary)).toHaveLength(sent);

    primary.fault = null;
    await untilHealth(gateway, 'primary', { healthy: true });
    expect(servedBy(await ask(client, 'after'))).toBe('primary');
    expect(await metric(gateway, 'hapax_provider_healthy', '{provider="primary"}')).toBe(1);
  });

  it('with the default list-models probe: a primary that goes off the network is routed around until it is back', async () => {
    const line = await startSwitch(setup.primary);
    const probed = await startTestGateway(primaryThenBackup(line, setup.backup, 'health_check: {interval: 200ms, timeout: 100ms}'));
    try {
      const client = sdk(probed);
      expect(servedBy(await ask(client, 'before'))).toBe('primary');
      line.off();
      await untilHealth(probed, 'primary', { healthy: false });
      const during = await ask(client, 'during');
      expect(servedBy(during)).toBe('backup');
      expect(attemptCount(during)).toBe('1');
      line.on();
      await untilHealth(probed, 'primary', { healthy: true });
      expect(servedBy(await ask(client, 'after'))).toBe('primary');
    } finally {
      await probed.close();
      await line.close();
    }
  });
});

describe('deduplication', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'primary' }) })
    .and({
      gateway: ({ upstream }) =>
        startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
routes:
  - {path: /nodedup/v1/chat/completions, handler: chat, dedup: false}
`),
    })
    .and({ client: ({ gateway }) => sdk(gateway) });
  afterEach(() => setup.upstream.reset());

  it('answers 50 concurrent identical requests with exactly one upstream call', async () => {
    const { upstream, gateway, client } = setup;
    upstream.fault = { kind: 'delay', ms: 1500 };
    const before = (await metric(gateway, 'hapax_deduplicated_requests_total')) ?? 0;
    const answers = await Promise.all(Array.from({ length: 50 }, () => ask(client, 'the same question')));
    expect(traffic(upstream)).toHaveLength(1);
    for (const { data } of answers) expect(data.choices[0].message.content).toBe('[primary] the same question');
    expect(await metric(gateway, 'hapax_deduplicated_requests_total')).toBe(before + 49);
  });

  it('sends 50 concurrent requests that differ by one character upstream separately, each getting its own answer', async () => {
    setup.upstream.fault = { kind: 'delay', ms: 300 };
    const questions = Array.from({ length: 50 }, (_, i) => `question ${String.fromCharCode(48 + i)}`);
    const answers = await Promise.all(questions.map((q) => ask(setup.client, q)));
    expect(traffic(setup.upstream)).toHaveLength(50);
    answers.forEach(({ data }, i) => expect(data.choices[0].message.content).toBe(`[primary] ${questions[i]}`));
  });

  it('gives every concurrent identical stream the whole stream from one upstream call', async () => {
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 100 };
    const streams = await Promise.all(Array.from({ length: 10 }, () => streamText(setup.client, 'one two three four five')));
    expect(traffic(setup.upstream)).toHaveLength(1);
    for (const { text, finish } of streams) {
      expect(text).toBe('[primary] one two three four five');
      expect(finish).toBe('stop');
    }
  });

  it('lets Cache-Control: no-cache opt out of sharing', async () => {
    setup.upstream.fault = { kind: 'delay', ms: 300 };
    await Promise.all(Array.from({ length: 5 }, () => ask(setup.client, 'fresh please', { headers: { 'Cache-Control': 'no-cache' } })));
    expect(traffic(setup.upstream)).toHaveLength(5);
  });

  it('does not share on a route with dedup: false', async () => {
    setup.upstream.fault = { kind: 'delay', ms: 300 };
    const own = sdk(setup.gateway, '/nodedup/v1');
    await Promise.all(Array.from({ length: 5 }, () => ask(own, 'not shared')));
    expect(traffic(setup.upstream)).toHaveLength(5);
  });
});

/** One fake behind a gateway that lets one request at a time through to it and does not retry; `rest` is more YAML. */
const useOneAtATime = (rest: string) =>
  useStarted({ upstream: () => startFakeOpenAI({ name: 'primary' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, max_concurrency: 1}
retry: {max_retries: 0}
${rest}`),
  });

describe('fair queues at a provider max_concurrency', () => {
  const setup = useOneAtATime(`
auth:
  enabled: true
  keys:
    - {name: flooder, key: key-of-the-flooder}
    - {name: polite, key: key-of-the-polite-one}
queue: {max_size: 40}
`);
  afterEach(() => setup.upstream.reset());

  it('serves another key before most of a flooding key’s queued requests', async () => {
    const { upstream, gateway } = setup;
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
  const setup = useOneAtATime('queue: {max_size: 2}\n');

  it('answers 503 with Retry-After once the queue is full', async () => {
    setup.upstream.fault = { kind: 'delay', ms: 1000 };
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => post(setup.gateway, '/v1/chat/completions', chatBody(`queued ${i}`))));
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
  const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
    gateway: ({ primary, backup }) =>
      startTestGateway(
        primaryThenBackup(
          primary,
          backup,
          `circuit_breaker: {failure_threshold: 1000}
routes:
  - {path: /short/v1/chat/completions, handler: chat, timeout: 300ms}
`,
        ),
      ),
  });
  afterEach(() => {
    setup.primary.reset();
    setup.backup.reset();
  });

  it('aborts the upstream request when the SDK call is aborted', async () => {
    const { primary, backup, gateway } = setup;
    primary.fault = { kind: 'hang' };
    const controller = new AbortController();
    const call = ask(sdk(gateway), 'never mind', { signal: controller.signal });
    await vi.waitFor(() => expect(primary.inFlight).toBe(1), { timeout: 3000, interval: 10 });
    controller.abort();
    await expect(call).rejects.toThrow();
    await untilAborted(primary, 1);
    expect(backup.requests).toHaveLength(0);
  });

  it('aborts the upstream stream when the client connection is destroyed mid-stream', async () => {
    const { primary, backup, gateway } = setup;
    primary.fault = { kind: 'slowStream', chunkDelayMs: 200 };
    const url = new URL(`${gateway.url}/v1/chat/completions`);
    const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
    request.end(JSON.stringify(chatBody('one two three four five six seven', { stream: true })));
    const response = await new Promise<http.IncomingMessage>((resolve) => request.once('response', resolve));
    expect(response.statusCode).toBe(200);
    await new Promise((resolve) => response.once('data', resolve));
    const requestId = response.headers['x-request-id'];
    request.destroy();
    await untilAborted(primary, 1);
    expect(backup.requests).toHaveLength(0);
    // The cut stream still leaves its one log line (status 200 went out), and only one.
    await vi.waitFor(() => expect(gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId)).toHaveLength(1), { timeout: 2000, interval: 10 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId)).toMatchObject([{ status: 200, provider: 'primary' }]);
  });

  it('stops retrying at the route deadline and answers 504 with a bounded number of attempts', async () => {
    const { primary, backup, gateway } = setup;
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
    await untilAborted(primary, 1);
  });

  it('does not cut a stream that started within the deadline but runs past it', async () => {
    setup.primary.fault = { kind: 'slowStream', chunkDelayMs: 80 };
    const { text, finish } = await streamText(sdk(setup.gateway, '/short/v1'), 'one two three four five six seven eight');
    expect(text).toBe('[primary] one two three four five six seven eight');
    expect(finish).toBe('stop');
  });
});
