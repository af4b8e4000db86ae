/**
 * The TypeScript client (clients/ts) against a running Hapax: completions, streams, health, request ids,
 * retries of 429/503 that honour Retry-After, and typed errors.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  ConnectionError,
  HapaxClient,
  HapaxError,
  ProcessingError,
  RateLimitError,
  ValidationError,
  parseRetryAfter,
  type StreamEvent,
} from '../clients/ts/src/index.ts';
import { APP_KEY, useAuthGateway, useClientGateway } from './helpers/client-gateways.ts';

describe('TypeScript client against a running Hapax', () => {
  const setup = useClientGateway().and({ client: ({ gateway }) => new HapaxClient({ baseURL: gateway.url, initialRetryDelayMs: 50 }) });
  const chatRequests = () => setup.upstream.requests.filter((r) => r.path === '/v1/chat/completions');
  beforeEach(() => setup.upstream.reset());

  it('completes, sending X-Request-ID (its own UUID, or the one given)', async () => {
    const answer = await setup.client.completion({ input: 'What is the capital of France?' });
    expect(answer.completion).toBe('[solo] What is the capital of France?');
    expect(answer.provider).toBe('solo');
    expect(answer.model).toBe('gpt-4o-mini');
    expect(answer.finish_reason).toBe('stop');
    expect(answer.usage.total_tokens).toBe(answer.usage.prompt_tokens + answer.usage.completion_tokens);
    expect(answer.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(chatRequests()[0].headers['x-request-id']).toBe(answer.request_id);

    const mine = await setup.client.completion({ messages: [{ role: 'user', content: 'hi' }], model: 'solo' }, { requestId: 'order-12345' });
    expect(mine.request_id).toBe('order-12345');
    expect(mine.completion).toBe('[solo] hi');
  });

  it('streams deltas, then a done event with the whole completion and usage', async () => {
    const events: StreamEvent[] = [];
    for await (const event of setup.client.stream({ input: 'one two three four' }, { requestId: 'stream-1' })) events.push(event);
    const deltas = events.filter((e) => e.type === 'delta');
    expect(deltas.length).toBeGreaterThan(1);
    const done = events.at(-1);
    expect(done?.type).toBe('done');
    if (done?.type !== 'done') throw new Error('no done event');
    expect(deltas.map((e) => e.text).join('')).toBe('[solo] one two three four');
    expect(done.completion).toBe('[solo] one two three four');
    expect(done.request_id).toBe('stream-1');
    expect(done.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('reports health', async () => {
    const health = await setup.client.health();
    expect(health.status.global).toBe(true);
    expect(health.providers.solo).toMatchObject({ healthy: true, circuit_breaker: 'closed' });
    expect(health.services['/v1/completions']).toBe('healthy');
  });

  it('retries a 429 after the Retry-After the gateway sent, with the same request id', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const started = Date.now();
    const answer = await setup.client.completion({ input: 'after a rate limit' }, { requestId: 'retry-429' });
    expect(answer.completion).toBe('[solo] after a rate limit');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    const calls = chatRequests();
    expect(calls).toHaveLength(2);
    expect(calls.map((c) => c.headers['x-request-id'])).toEqual(['retry-429', 'retry-429']);
  });

  it('retries a 503 the same way, streams included', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 503, headers: { 'retry-after': '0' } });
    const answer = await setup.client.completion({ input: 'after an overload' });
    expect(answer.completion).toBe('[solo] after an overload');
    expect(chatRequests()).toHaveLength(2);

    setup.upstream.reset();
    setup.upstream.queueFaults({ kind: 'status', status: 503, headers: { 'retry-after': '0' } });
    let text = '';
    for await (const event of setup.client.stream({ input: 'streamed after an overload' })) if (event.type === 'delta') text += event.text;
    expect(text).toBe('[solo] streamed after an overload');
    expect(chatRequests()).toHaveLength(2);
  });

  it('gives up after maxRetries with a typed error carrying status, type and request id', async () => {
    setup.upstream.queueFaults(...Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 503, headers: { 'retry-after': '0' } })));
    const error = await setup.client.completion({ input: 'never' }, { requestId: 'gives-up' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessingError);
    expect(error).toBeInstanceOf(HapaxError);
    expect(error).toMatchObject({ status: 503, type: 'ProcessingError', requestId: 'gives-up', retryAfter: 0 });
    expect(chatRequests()).toHaveLength(3); // the first try and two retries
  });

  it('does not wait out a Retry-After longer than maxRetryDelayMs: the RateLimitError says how long', async () => {
    expect((await setup.client.completion({ input: 'first' }, { path: '/v1/limited/completions' })).completion).toBe('[solo] first');
    const started = Date.now();
    const error = await setup.client.completion({ input: 'second' }, { path: '/v1/limited/completions', requestId: 'limited' }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toBeInstanceOf(RateLimitError);
    const limited = error as RateLimitError;
    expect(limited.status).toBe(429);
    expect(limited.type).toBe('RateLimitError');
    expect(limited.requestId).toBe('limited');
    expect(limited.retryAfter).toBeGreaterThan(8);
  });

  it('does not retry what the caller must fix: ValidationError with details', async () => {
    const error = await setup.client.completion({}, { requestId: 'bad-1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ status: 400, type: 'ValidationError', requestId: 'bad-1', details: { field: 'messages' } });
    expect(chatRequests()).toHaveLength(0);
  });

  it('throws the error event of a stream that fails midway, after the text that did arrive', async () => {
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 2 });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const event of setup.client.stream({ input: 'this stream will be cut short by the provider' }, { requestId: 'cut-1' })) {
        if (event.type === 'delta') seen.push(event.text);
      }
    })().catch((e: unknown) => e);
    expect(seen.length).toBeGreaterThan(0);
    expect(error).toBeInstanceOf(HapaxError);
    expect((error as HapaxError).requestId).toBe('cut-1');
    expect((error as HapaxError).status).toBeGreaterThanOrEqual(500);
  });

  it('reports an unreachable gateway as a ConnectionError (status 0)', async () => {
    const dead = new HapaxClient({ baseURL: 'http://127.0.0.1:9', maxRetries: 0 });
    const error = await dead.completion({ input: 'x' }, { requestId: 'dead-1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ status: 0, type: 'ConnectionError', requestId: 'dead-1' });
  });

  it('parses Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('TypeScript client with auth on', () => {
  const setup = useAuthGateway();

  it('sends the API key, and raises AuthenticationError without it', async () => {
    const withKey = new HapaxClient({ baseURL: setup.gateway.url, apiKey: APP_KEY });
    expect((await withKey.completion({ input: 'hi' })).completion).toBe('hello from the mock');
    const error = await new HapaxClient({ baseURL: setup.gateway.url }).completion({ input: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toMatchObject({ status: 401, type: 'AuthenticationError' });
    expect((error as AuthenticationError).requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
