import { join } from 'node:path';
import { Writable } from 'node:stream';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { redactSecrets } from '../src/observability/redact.ts';
import { startGateway, type Gateway } from '../src/server/start.ts';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { tempDir, useStarted } from './helpers/started.ts';

/** A gateway whose log output is kept as raw text, exactly as it would reach stdout. */
async function startLogged(yaml: string): Promise<Gateway & { raw: string[]; lines: () => Record<string, any>[] }> {
  if (!/^health_check:/m.test(yaml)) yaml += '\nhealth_check: {enabled: false}\n';
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) raw.push(line);
      callback();
    },
  });
  const gateway = await startGateway({ loaded: parseConfig(yaml, '(test)', {}), port: 0, host: '127.0.0.1', logDestination: destination });
  return Object.assign(gateway, { raw, lines: () => raw.map((line) => JSON.parse(line) as Record<string, any>) });
}

const requestLines = (gateway: { lines: () => Record<string, any>[] }) => gateway.lines().filter((line) => line.msg === 'request');
const ask = (text: string) => ({ model: '', messages: [{ role: 'user' as const, content: text }] });

const UPSTREAM_KEY = 'sk-alpha-upstream-secret-0123456789';
const BETA_KEY = 'sk-ant-api03-beta-upstream-secret-987654';
const CLIENT_KEY = 'hk-team-a-client-secret-000111';
const ADMIN_KEY = 'admin-secret-key-0123456789';
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('one JSON log line per request', () => {
  const setup = useStarted({
    dir: () => tempDir('hapax-logging-'),
    alpha: () => startFakeOpenAI({ name: 'alpha', apiKey: UPSTREAM_KEY }),
    beta: () => startFakeAnthropic({ name: 'beta', apiKey: BETA_KEY }),
  }).and({
    gateway: ({ dir, alpha, beta }) =>
      startLogged(`
providers:
  alpha: {type: openai, base_url: "${alpha.url}", api_key: "${UPSTREAM_KEY}", model: gpt-4o-mini}
  beta: {type: anthropic, base_url: "${beta.url}", api_key: "${BETA_KEY}", model: claude-3-5-haiku-latest, headers: {x-extra-token: extra-header-secret-42}}
provider_preference: [alpha, beta]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 100}
logging: {level: debug}
auth:
  enabled: true
  key_file: ${join(dir.path, 'keys.json')}
  keys: [{name: team-a, key: "${CLIENT_KEY}"}]
admin: {key: "${ADMIN_KEY}"}
pricing:
  gpt-4o-mini: {input: 0.15, output: 0.6}
  claude-3-5-haiku-latest: {input: 0.8, output: 4}
routes:
  - {path: /v1/marketing/chat/completions, handler: chat, metrics_labels: {department: marketing}}
`),
  });

  const client = (base = '/v1') => new OpenAI({ baseURL: `${setup.gateway.url}${base}`, apiKey: CLIENT_KEY, maxRetries: 0 });

  it('says who asked, who answered, what it took and what it cost, with the request id once', async () => {
    const before = setup.gateway.raw.length;
    const { data, response } = await client('/v1/marketing')
      .chat.completions.create(ask('what is new'), { headers: { traceparent: TRACEPARENT } })
      .withResponse();
    const id = response.headers.get('x-request-id');
    const raw = setup.gateway.raw.slice(before).filter((line) => line.includes('"msg":"request"'));
    expect(raw).toHaveLength(1);
    expect(raw[0].match(/"request_id":/g)).toHaveLength(1);
    const line = JSON.parse(raw[0]);
    const prompt = data.usage?.prompt_tokens ?? NaN;
    const completion = data.usage?.completion_tokens ?? NaN;
    expect(line).toMatchObject({
      level: 30,
      service: 'hapax',
      request_id: id,
      method: 'POST',
      route: '/v1/marketing/chat/completions',
      status: 200,
      key: 'team-a',
      provider: 'alpha',
      model: 'gpt-4o-mini',
      attempts: 1,
      tokens: { prompt, completion },
      traceparent: TRACEPARENT,
    });
    expect(line.cost_usd).toBeCloseTo((prompt * 0.15 + completion * 0.6) / 1e6, 15);
    expect(line.latency_ms).toBeGreaterThan(0);
    expect(line.overhead_ms).toBeGreaterThanOrEqual(0);
    // The header is set before the answer is written; the log line knows the whole response time.
    expect(response.headers.get('x-hapax-overhead-ms')).toMatch(/^\d+\.\d{2}$/);
    expect(Number(response.headers.get('x-hapax-overhead-ms'))).toBeLessThanOrEqual(line.overhead_ms);
    expect(line.failover).toBeUndefined();
    // The client's trace context went upstream unchanged.
    expect(setup.alpha.requests.at(-1)?.headers.traceparent).toBe(TRACEPARENT);
  });

  it('records the failover path: which providers failed, and how', async () => {
    setup.alpha.queueFaults({ kind: 'status', status: 500 });
    const anthropic = new Anthropic({ baseURL: setup.gateway.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    const { response } = await anthropic.messages.create({ model: 'alpha', max_tokens: 20, messages: [{ role: 'user', content: 'fail over please' }] }).withResponse();
    const line = requestLines(setup.gateway).find((l) => l.request_id === response.headers.get('x-request-id'));
    expect(line).toMatchObject({ route: '/v1/messages', status: 200, provider: 'beta', attempts: 2, failover: [{ provider: 'alpha', kind: 'server', status: 500 }] });
  });

  it('logs a failed request with its error type and every failed provider', async () => {
    setup.alpha.queueFaults({ kind: 'status', status: 503 });
    setup.beta.queueFaults({ kind: 'reset' });
    const error = await client()
      .chat.completions.create(ask('nobody home'))
      .then(() => undefined, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(error?.status).toBe(503);
    const line = requestLines(setup.gateway).find((l) => l.request_id === error?.headers?.get('x-request-id'));
    expect(line).toMatchObject({ status: 503, error: 'ProcessingError', attempts: 2, key: 'team-a' });
    expect(line?.failover.map((f: { provider: string; kind: string }) => `${f.provider}:${f.kind}`)).toEqual(['alpha:overloaded', 'beta:connect']);
    expect(line?.tokens).toBeUndefined();
  });

  it('never shows a client key, a provider key or an Authorization header, and no prompt by default', async () => {
    await client().chat.completions.create(ask('a very private prompt about penguins'));
    // A wrong provider key: the provider's 401 message is about our credentials.
    setup.alpha.queueFaults({ kind: 'status', status: 401, body: { error: { message: `Incorrect API key provided: ${UPSTREAM_KEY}`, type: 'invalid_request_error' } } });
    await client().chat.completions.create(ask('again'));
    await fetch(`${setup.gateway.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer hk-wrong-but-secret-key-777', 'content-type': 'application/json' }, body: '{}' });
    await fetch(`${setup.gateway.url}/admin/keys`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const all = setup.gateway.raw.join('\n');
    for (const secret of [CLIENT_KEY, UPSTREAM_KEY, BETA_KEY, ADMIN_KEY, 'hk-wrong-but-secret-key-777', 'extra-header-secret-42', 'Bearer']) {
      expect(all, secret).not.toContain(secret);
    }
    expect(all).not.toContain('penguins');
    expect(all).not.toContain('[alpha]'); // the fake's answers start with its name
  });

  it('dumps the config at debug level with every secret masked', () => {
    const dump = setup.gateway.lines().find((line) => line.msg === 'config loaded');
    expect(dump?.level).toBe(20);
    expect(dump?.config.providers.alpha).toMatchObject({ type: 'openai', api_key: '[redacted]', model: 'gpt-4o-mini' });
    expect(dump?.config.providers.beta.headers).toEqual({ 'x-extra-token': '[redacted]' });
    expect(dump?.config.auth.keys).toEqual([{ name: 'team-a', key: '[redacted]' }]);
    expect(dump?.config.admin.key).toBe('[redacted]');
    expect(dump?.config.pricing['gpt-4o-mini']).toEqual({ input: 0.15, output: 0.6 });
  });
});

describe('redactSecrets', () => {
  it('masks keys, credential headers and passwords in URLs at any depth', () => {
    const masked = redactSecrets({
      state: { redis_url: 'redis://user:hunter2@cache:6379/0' },
      tracing: { otlp_endpoint: 'https://collector:4318/v1/traces', headers: { Authorization: 'Basic abc', 'x-team': 'blue' } },
      nested: [{ deeper: { api_key: 'sk-1', apiKey: 'sk-2', password: 'p', name: 'kept' } }],
    });
    expect(masked).toEqual({
      state: { redis_url: 'redis://user:[redacted]@cache:6379/0' },
      // Every header value counts as a secret: extra headers are where credentials hide.
      tracing: { otlp_endpoint: 'https://collector:4318/v1/traces', headers: { Authorization: '[redacted]', 'x-team': '[redacted]' } },
      nested: [{ deeper: { api_key: '[redacted]', apiKey: '[redacted]', password: '[redacted]', name: 'kept' } }],
    });
  });
});

describe('logging settings', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'solo' }) });

  /** Runs `test` against a logged gateway of its own whose one provider, `solo`, is the shared fake; `rest` is more YAML. */
  async function withSoloGateway(rest: string, test: (gateway: Awaited<ReturnType<typeof startLogged>>, openai: OpenAI) => Promise<void>) {
    const gateway = await startLogged(`
providers:
  solo: {type: openai, base_url: "${setup.upstream.url}", model: gpt-4o-mini}
${rest}`);
    try {
      await test(gateway, new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }));
    } finally {
      await gateway.close();
    }
  }

  it('logs prompts and completions with log_bodies: true, whole answers and streams', async () => {
    await withSoloGateway('logging: {log_bodies: true}\n', async (gateway, openai) => {
      await openai.chat.completions.create(ask('tell me about walruses'));
      const stream = await openai.chat.completions.create({ ...ask('stream about otters'), stream: true });
      let streamed = '';
      for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
      const [whole, sse] = requestLines(gateway);
      expect(whole.request_body.messages).toEqual([{ role: 'user', content: 'tell me about walruses' }]);
      expect(JSON.parse(whole.response_body).choices[0].message.content).toBe('[solo] tell me about walruses');
      expect(sse.request_body.messages[0].content).toBe('stream about otters');
      expect(streamed).toBe('[solo] stream about otters');
      for (const word of ['[solo]', 'stream', 'about', 'otters']) expect(sse.response_body).toContain(word);
      expect(sse.response_body).toContain('data: [DONE]');
    });
  });

  it('honours logging.level: no request lines at warn', async () => {
    await withSoloGateway('logging: {level: warn}\nqueue: {state_path: /tmp/hapax-queue}\n', async (gateway, openai) => {
      await openai.chat.completions.create(ask('quiet'));
      expect(gateway.raw.filter((line) => line.includes('request'))).toEqual([]);
      // Warnings still go out (here: a config key Hapax accepts but does not act on).
      expect(gateway.raw.some((line) => line.includes('"level":40') && line.includes('queue.state_path'))).toBe(true);
    });
  });

  it('writes text for people with logging.format: text', async () => {
    await withSoloGateway('logging: {format: text}\n', async (gateway, openai) => {
      const { response } = await openai.chat.completions.create(ask('pretty')).withResponse();
      const text = gateway.raw.join('\n');
      expect(text).toMatch(/INFO.*: request/);
      expect(text).toContain(`request_id: "${response.headers.get('x-request-id')}"`);
      expect(text).toContain('provider: "solo"');
      expect(() => JSON.parse(gateway.raw[0])).toThrow();
    });
  });

  it('passes only a valid traceparent upstream', async () => {
    await withSoloGateway('', async (gateway, openai) => {
      await openai.chat.completions.create(ask('traced'), { headers: { traceparent: TRACEPARENT } });
      expect(setup.upstream.requests.at(-1)?.headers.traceparent).toBe(TRACEPARENT);
      await openai.chat.completions.create(ask('bad trace'), { headers: { traceparent: '00-not-a-trace-01' } });
      expect(setup.upstream.requests.at(-1)?.headers.traceparent).toBeUndefined();
      const [good, bad] = requestLines(gateway);
      expect(good.traceparent).toBe(TRACEPARENT);
      expect(bad.traceparent).toBeUndefined();
    });
  });
});
