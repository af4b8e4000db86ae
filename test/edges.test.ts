import { describe, expect, it } from 'vitest';
import { useGateway } from './helpers/started.ts';

describe('HTTP edges: CORS, compression, methods, bodies', () => {
  const setup = useGateway(`
providers:
  mock: {type: mock, reply: "${'long answer '.repeat(200)}"}
cors: {origins: ["https://app.example"], credentials: true}
routes:
  - {path: /v1/small, handler: completion, max_body_size: 100}
`);

  const post = (path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${setup.gateway.url}${path}`, { method: 'POST', headers, body });

  it('answers a CORS preflight allowing X-API-Key, and exposes the request id', async () => {
    const res = await fetch(`${setup.gateway.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key,content-type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-headers')).toContain('x-api-key');
    const get = await fetch(`${setup.gateway.url}/v1/models`, { headers: { origin: 'https://app.example' } });
    expect(get.headers.get('access-control-expose-headers')).toContain('x-request-id');
    const other = await fetch(`${setup.gateway.url}/v1/models`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('compresses large JSON answers when the client accepts it', async () => {
    const res = await post('/v1/completions', JSON.stringify({ input: 'hi' }), { 'content-type': 'application/json', 'accept-encoding': 'br' });
    expect(res.headers.get('content-encoding')).toBe('br');
    expect(((await res.json()) as { completion: string }).completion).toContain('long answer');
  });

  it('gives a streamed answer the same CORS and gateway headers, uncompressed', async () => {
    const res = await post('/v1/chat/completions', JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: 'hi' }] }), {
      'content-type': 'application/json',
      origin: 'https://app.example',
      'accept-encoding': 'br, gzip',
      'x-request-id': 'cors-stream-1',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-expose-headers')).toContain('x-request-id');
    expect(res.headers.get('x-request-id')).toBe('cors-stream-1');
    expect(res.headers.get('x-hapax-provider')).toBe('mock');
    expect(res.headers.get('x-hapax-overhead-ms')).toMatch(/^\d+\.\d{2}$/);
    const text = await res.text();
    expect(text).toContain('answer');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('answers 405 with Allow for a wrong method and 404 in the error format for an unknown path', async () => {
    const wrong = await fetch(`${setup.gateway.url}/v1/chat/completions`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    const missing = await fetch(`${setup.gateway.url}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).toBe('ValidationError');
  });

  it('refuses non-JSON, bad charsets, malformed JSON, invalid UTF-8 and oversized bodies with clear errors', async () => {
    expect((await post('/v1/completions', 'input=hi', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await post('/v1/completions', '{}', { 'content-type': 'application/json; charset=latin1' })).status).toBe(415);
    const malformed = await post('/v1/completions', '{"input": "hi",}');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { message: string } }).error.message).toMatch(/malformed JSON.*position|column/i);
    const badUtf8 = await fetch(`${setup.gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) });
    expect(badUtf8.status).toBe(400);
    expect(((await badUtf8.json()) as { error: { message: string } }).error.message).toContain('not valid UTF-8');
    // A UTF-8 byte-order mark in front of the JSON is accepted, and a charset parameter spelled in capitals too.
    const withBom = await fetch(`${setup.gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json; charset=UTF-8' }, body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ input: 'hi' }))]) });
    expect(withBom.status).toBe(200);
    const big = await post('/v1/small', JSON.stringify({ input: 'x'.repeat(200) }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { message: string } }).error.message).toContain('100 bytes');
  });

  it('names the offending field in validation errors', async () => {
    const res = await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], temperature: 5 }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { type: string; details: { field: string }; request_id: string } };
    expect(body.error.type).toBe('ValidationError');
    expect(body.error.details.field).toBe('temperature');
    expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
  });
});

describe('URLs that do not decode', () => {
  const setup = useGateway('providers:\n  mock: {type: mock}\n');

  it('are answered in the error format with a request id', async () => {
    const res = await fetch(`${setup.gateway.url}/%zz`, { headers: { 'x-request-id': 'bad-url-1' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-request-id')).toBe('bad-url-1');
    expect(await res.json()).toMatchObject({ error: { type: 'ValidationError', code: 400, request_id: 'bad-url-1', details: { code: 'FST_ERR_BAD_URL' } } });
  });
});

describe('a body sent with no content-type', () => {
  const setup = useGateway('providers:\n  mock: {type: mock}\n');

  it('is read as JSON (clients that cannot set headers), while other content-types stay refused', async () => {
    const { request } = await import('node:http');
    const { port } = new URL(setup.gateway.url);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/completions', method: 'POST', headers: { 'content-length': '14' } }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end('{"input":"hi"}');
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).completion).toContain('hi');
    const plain = await fetch(`${setup.gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"input":"hi"}' });
    expect(plain.status).toBe(415);
  });
});

describe('the health of one route', () => {
  // `down` listens nowhere; its model has its own endpoint, pinned to it.
  const setup = useGateway(`
providers:
  up: {type: mock}
  down:
    type: openai
    base_url: "http://127.0.0.1:9"
    model: gpt-4o-mini
    models: {only-down: {endpoint: /v1/down-only}}
provider_preference: [up, down]
circuit_breaker: {failure_threshold: 1, timeout: 60s}
retry: {max_retries: 0}
`);

  it('follows the providers that route can use: a pinned route with its provider down is unhealthy, the others are not', async () => {
    expect((await fetch(`${setup.gateway.url}/health/v1/down-only`)).status).toBe(200);
    // The pinned provider is tried first and refuses the connection (its breaker opens); failover still answers.
    const served = await fetch(`${setup.gateway.url}/v1/down-only`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
    expect(served.status).toBe(200);
    expect(served.headers.get('x-hapax-attempts')).toBe('2');
    const pinned = await fetch(`${setup.gateway.url}/health/v1/down-only`);
    expect(pinned.status).toBe(503);
    expect(await pinned.json()).toEqual({ status: 'unhealthy' });
    // The chat route can still use `up`.
    const chat = await fetch(`${setup.gateway.url}/health/v1/chat/completions`);
    expect(chat.status).toBe(200);
    expect(await chat.json()).toEqual({ status: 'healthy' });
  });
});
