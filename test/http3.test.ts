/**
 * HTTP/3 (server.http3) with real clients nobody here wrote: Debian's gtlsclient (ngtcp2 + nghttp3) and
 * Bun's fetch with `protocol: 'http3'`. The listener is found the way a browser finds it: from the
 * Alt-Svc header of a response over TCP.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFieldSection, encodeFieldSection, huffmanDecode, QpackError } from '../src/server/http3/qpack.ts';
import { ensureSelfSigned } from '../src/server/tls.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUN_CLIENT = join(ROOT, 'test/helpers/bun-h3-client.mjs');
/** npm links Bun's binary into .bin; the platform package holds it when the link is a placeholder. */
const BUN = [join(ROOT, 'node_modules/.bin/bun'), join(ROOT, 'node_modules/@oven/bun-linux-x64/bin/bun')].find((p) => existsSync(p) && readFileSync(p).subarray(0, 4).toString('latin1') === '\x7fELF') ?? 'bun';
const KEY = 'hk-http3-test-key-0123456789';

interface H3Exchange {
  stream: number;
  status: number;
  headers: Record<string, string>;
}

/** Runs gtlsclient; its exit code is 0 even when the handshake fails, so callers assert on what it printed. */
function gtlsclient(port: number, paths: string[], extra: string[] = []): Promise<{ exchanges: H3Exchange[]; output: string }> {
  const urls = paths.map((p) => `https://127.0.0.1:${port}${p}`);
  const args = ['--exit-on-all-streams-close', '--no-quic-dump', '--no-http-dump', '--timeout=5s', ...extra, '127.0.0.1', String(port), ...urls];
  return new Promise((resolve) => {
    execFile('gtlsclient', args, { timeout: 20_000, maxBuffer: 64 * 1024 * 1024 }, (_error, stdout, stderr) => {
      const output = stdout + stderr;
      const byStream = new Map<number, H3Exchange>();
      for (const line of output.split('\n')) {
        const match = /^http: stream 0x([0-9a-f]+) \[(:?[^:]+): (.*)\]$/.exec(line);
        if (!match) continue;
        const stream = parseInt(match[1], 16);
        const exchange = byStream.get(stream) ?? { stream, status: 0, headers: {} };
        if (match[2] === ':status') exchange.status = Number(match[3]);
        else exchange.headers[match[2]] = match[3];
        byStream.set(stream, exchange);
      }
      resolve({ exchanges: [...byStream.values()], output });
    });
  });
}

interface BunResult {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  bodyLength?: number;
  chunks?: { t: number; bytes: number }[];
  error?: string;
  message?: string;
}

interface BunStep {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  bigBody?: { prefix: string; fill: string; count: number; suffix: string };
  abortAfterFirstChunk?: boolean;
}

function bunFetch(base: string, steps: BunStep[]): Promise<BunResult[]> {
  return new Promise((resolve, reject) => {
    execFile(BUN, [BUN_CLIENT, base, JSON.stringify(steps)], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`bun failed: ${error.message}\n${stderr}`));
      resolve(stdout.trim().split('\n').map((line) => JSON.parse(line) as BunResult));
    });
  });
}

const chat = (content: string, stream = false) => JSON.stringify({ model: '', stream, messages: [{ role: 'user', content }] });
const auth = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };

describe('HTTP/3 listener (server.http3)', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let ca: Buffer;
  let dir: string;
  let h3Port: number;
  let h3Base: string;
  let altSvc: string | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hapax-h3-'));
    const cert = await ensureSelfSigned(dir);
    ca = readFileSync(cert.certFile);
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
server:
  tls: {cert_file: "${cert.certFile}", key_file: "${cert.keyFile}"}
  http3: {enabled: true, port: 0, enable_0rtt: true, idle_timeout: 2s}
providers:
  primary: {type: openai, base_url: "${upstream.url}", api_key: sk-up, model: gpt-4o-mini}
auth:
  enabled: true
  keys: [{name: tester, key: ${KEY}}]
rate_limit: {requests_per_minute: 1000}
`);
    // Discover HTTP/3 as a browser does: from Alt-Svc on a TCP response.
    altSvc = await new Promise<string | undefined>((resolve, reject) => {
      https
        .get(`${gateway.url.replace(/^http:/, 'https:')}/health`, { ca }, (res) => {
          res.resume();
          resolve(res.headers['alt-svc']);
        })
        .on('error', reject);
    });
    h3Port = Number(/h3=":(\d+)"/.exec(altSvc ?? '')?.[1]);
    h3Base = `https://127.0.0.1:${h3Port}`;
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('is advertised on TCP responses with Alt-Svc', () => {
    expect(altSvc).toMatch(/^h3=":\d+"; ma=86400$/);
    expect(h3Port).toBeGreaterThan(0);
  });

  it('is advertised on streamed TCP answers too (they are written past the onSend hooks)', async () => {
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const request = https.request(`${gateway.url.replace(/^http:/, 'https:')}/v1/chat/completions`, { method: 'POST', ca, headers: { 'content-type': 'application/json', 'x-api-key': KEY } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.headers));
      });
      request.once('error', reject);
      request.end(JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: 'stream over tcp' }] }));
    });
    expect(headers['content-type']).toMatch(/^text\/event-stream/);
    expect(headers['alt-svc']).toBe(altSvc);
  });

  it('answers GET /health to gtlsclient through the same hooks as TCP', async () => {
    const { exchanges, output } = await gtlsclient(h3Port, ['/health'], ['--download', dir]);
    expect(exchanges, output.slice(-2000)).toHaveLength(1);
    const [health] = exchanges;
    expect(health.status).toBe(200);
    expect(health.headers['content-type']).toMatch(/^application\/json/);
    expect(health.headers['alt-svc']).toBeUndefined(); // only TCP responses advertise HTTP/3
    expect(JSON.parse(readFileSync(join(dir, 'health'), 'utf8')).status).toBeTruthy();
    // The request id hook ran and the request was logged like any other.
    const id = health.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => gateway.logs.find((l) => l.msg === 'request' && l.request_id === id)?.status).toBe(200);
  });

  it('answers 50 requests on one gtlsclient connection', async () => {
    const { exchanges, output } = await gtlsclient(h3Port, ['/health'], ['-n', '50']);
    expect(exchanges.length, output.slice(-2000)).toBe(50);
    expect(exchanges.every((e) => e.status === 200)).toBe(true);
    expect(new Set(exchanges.map((e) => e.headers['x-request-id'])).size).toBe(50);
    // One QUIC connection: one handshake.
    expect(output.match(/Negotiated ALPN is h3/g)).toHaveLength(1);
  });

  it('serves a chat completion to Bun fetch over HTTP/3, with auth and rate-limit headers', async () => {
    const [denied, ok] = await bunFetch(h3Base, [
      { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chat('no key') },
      { method: 'POST', path: '/v1/chat/completions', headers: auth, body: chat('hello over h3') },
    ]);
    expect(denied.status, denied.message).toBe(401);
    expect(ok.status, ok.message).toBe(200);
    expect(JSON.parse(ok.body!).choices[0].message.content).toBe('[primary] hello over h3');
    expect(ok.headers!['x-hapax-provider']).toBe('primary');
    expect(ok.headers!['x-ratelimit-limit']).toBe('1000');
    expect(Number(ok.headers!['x-ratelimit-remaining'])).toBeLessThan(1000);
    expect(upstream.requests.at(-1)?.body.messages[0].content).toBe('hello over h3');
  });

  it('streams SSE over HTTP/3 chunk by chunk, not buffered', async () => {
    upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 80 });
    const [result] = await bunFetch(h3Base, [{ method: 'POST', path: '/v1/chat/completions', headers: auth, body: chat('one two three four five', true) }]);
    expect(result.status, result.message).toBe(200);
    expect(result.headers!['content-type']).toMatch(/^text\/event-stream/);
    const chunks = result.chunks!;
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.at(-1)!.t - chunks[0].t).toBeGreaterThan(240);
    const text = result.body!
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '')
      .join('');
    expect(text).toBe('[primary] one two three four five');
    expect(result.body).toContain('data: [DONE]');
  });

  it('takes a 1 MB request body over HTTP/3 and refuses a 2 MB one with 413, connection intact', async () => {
    const fill = 'abcdefghij';
    const big = (count: number) => ({ prefix: '{"model":"","messages":[{"role":"user","content":"', fill, count, suffix: '"}]}' });
    const [result, tooBig, after] = await bunFetch(h3Base, [
      { method: 'POST', path: '/v1/chat/completions', headers: auth, bigBody: big(100_000) },
      { method: 'POST', path: '/v1/chat/completions', headers: auth, bigBody: big(200_000) },
      { method: 'POST', path: '/v1/chat/completions', headers: auth, body: chat('still here') },
    ]);
    expect(result.status, result.message ?? result.body?.slice(0, 300)).toBe(200);
    expect(upstream.requests.at(-2)?.body.messages[0].content.length).toBe(1_000_000);
    expect(result.bodyLength).toBeGreaterThan(1_000_000);
    expect(tooBig.status, tooBig.message).toBe(413);
    expect(after.status, after.message).toBe(200);
    expect(JSON.parse(after.body!).choices[0].message.content).toBe('[primary] still here');
  });

  // A stream longer than the idle timeout (2s here): 40 words, one every 100 ms.
  const longAnswer = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');

  it('stops the upstream stream when the HTTP/3 client aborts mid-stream and goes away', async () => {
    upstream.reset();
    upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 100 });
    // Bun's abort sends no RESET_STREAM/STOP_SENDING; its process then exits without CONNECTION_CLOSE.
    const [result] = await bunFetch(h3Base, [{ method: 'POST', path: '/v1/chat/completions', headers: auth, body: chat(longAnswer, true), abortAfterFirstChunk: true }]);
    expect(result.status, result.message).toBe(200);
    expect(result.chunks).toHaveLength(1);
    await expect.poll(() => upstream.aborted, { timeout: 6000 }).toBe(1);
    const requestId = result.headers?.['x-request-id'];
    expect(requestId).toBeTruthy();
    const linesOf = () => gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId);
    await expect.poll(() => linesOf().length, { timeout: 5000 }).toBe(1);
    expect(linesOf()[0]?.status).toBe(200);
  });

  it('stops the upstream stream when the HTTP/3 client vanishes (killed, no goodbye)', async () => {
    upstream.reset();
    upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 100 });
    const steps = [{ method: 'POST', path: '/v1/chat/completions', headers: auth, body: chat(longAnswer, true), hangAfterFirstChunk: true }];
    const child = spawn(BUN, [BUN_CLIENT, h3Base, JSON.stringify(steps)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('"first":true')) resolve();
      });
      child.on('exit', () => reject(new Error('the Bun client exited before the first chunk')));
    });
    child.kill('SIGKILL');
    // No CONNECTION_CLOSE ever arrives: the idle timeout (2s here) ends the connection and the request.
    await expect.poll(() => upstream.aborted, { timeout: 6000 }).toBe(1);
  });

  it('accepts idempotent requests in 0-RTT early data and answers 425 to the others', async () => {
    const session = join(dir, 'session.pem');
    const params = join(dir, 'transport-params.pem');
    const body = join(dir, 'body.json');
    writeFileSync(body, chat('in early data'));
    // First connection: full handshake; the client keeps the session ticket and transport parameters.
    const first = await gtlsclient(h3Port, ['/health'], ['--session-file', session, '--tp-file', params]);
    expect(first.exchanges[0]?.status, first.output.slice(-2000)).toBe(200);
    expect(existsSync(session)).toBe(true);
    // Resumed: the request goes out in 0-RTT.
    const before = upstream.requests.length;
    const post = await gtlsclient(h3Port, ['/v1/chat/completions'], ['--session-file', session, '--tp-file', params, '-m', 'POST', '-d', body]);
    expect(post.output).toMatch(/type=0RTT/); // the request left in a 0-RTT packet
    expect(post.exchanges[0]?.status, post.output.slice(-3000)).toBe(425);
    expect(post.exchanges[0]?.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/); // the spec's error answer, with its id
    expect(upstream.requests.length).toBe(before); // never reached a provider
    const get = await gtlsclient(h3Port, ['/health'], ['--session-file', session, '--tp-file', params]);
    expect(get.output).toMatch(/type=0RTT/); // this one too left in early data, and was served
    expect(get.exchanges[0]?.status, get.output.slice(-2000)).toBe(200);
    await expect.poll(() => gateway.logs.some((l) => l.status === 425 && l.method === 'POST')).toBe(true);
  });
});

describe('chat completions to gtlsclient over HTTP/3', () => {
  // gtlsclient cannot set request headers: no key and no content-type, so this gateway runs without auth
  // and reads a header-less body as JSON (as over TCP).
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let dir: string;
  let h3Port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hapax-h3-chat-'));
    const cert = await ensureSelfSigned(dir);
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
server:
  tls: {cert_file: "${cert.certFile}", key_file: "${cert.keyFile}"}
  http3: {enabled: true}
providers:
  primary: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini}
`);
    // Without a port of its own, the QUIC listener takes the TCP listener's port number (on UDP).
    h3Port = Number((gateway.app.server.address() as { port: number }).port);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it.each([false, true])('completes a chat request (stream: %s) with the answer from the provider', async (stream) => {
    const out = mkdtempSync(join(dir, 'out-'));
    const body = join(dir, `chat-${stream}.json`);
    writeFileSync(body, chat('over quic', stream));
    const { exchanges, output } = await gtlsclient(h3Port, ['/v1/chat/completions'], ['-m', 'POST', '-d', body, '--download', out]);
    expect(exchanges[0]?.status, output.slice(-2000)).toBe(200);
    expect(exchanges[0].headers['x-hapax-provider']).toBe('primary');
    const text = readFileSync(join(out, 'completions'), 'utf8');
    if (!stream) {
      expect(JSON.parse(text).choices[0].message.content).toBe('[primary] over quic');
      return;
    }
    expect(exchanges[0].headers['content-type']).toMatch(/^text\/event-stream/);
    const frames = text.split('\n\n').filter((f) => f.startsWith('data: '));
    expect(frames.at(-1)).toBe('data: [DONE]');
    const content = frames.slice(0, -1).map((f) => JSON.parse(f.slice(6)).choices[0]?.delta?.content ?? '').join('');
    expect(content).toBe('[primary] over quic');
  });
});

describe('QPACK with a zero-capacity dynamic table', () => {
  it('decodes Huffman strings (RFC 7541 C.4 examples)', () => {
    expect(huffmanDecode(Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex'))).toBe('www.example.com');
    expect(huffmanDecode(Buffer.from('a8eb10649cbf', 'hex'))).toBe('no-cache');
    expect(huffmanDecode(Buffer.from('25a849e95ba97d7f', 'hex'))).toBe('custom-key');
    expect(huffmanDecode(Buffer.from('25a849e95bb8e8b4bf', 'hex'))).toBe('custom-value');
    expect(() => huffmanDecode(Buffer.from('f1e3c2e5f23a6ba0ab90f400', 'hex'))).toThrow(QpackError); // padding not all ones
  });

  it('round-trips a response field section and uses static references', () => {
    const fields: [string, string][] = [
      [':status', '200'],
      ['content-type', 'application/json'],
      ['x-request-id', 'abc'],
      ['alt-svc', 'h3=":443"'],
    ];
    const block = encodeFieldSection(fields);
    expect(decodeFieldSection(block)).toEqual(fields);
    expect(block[2]).toBe(0xc0 | 25); // :status 200 is static entry 25
  });

  it('decodes a request with Huffman literals as clients send it', () => {
    // :method GET (17), :scheme https (23), :path with a Huffman value, a literal name with a Huffman value.
    const block = Buffer.concat([
      Buffer.from([0x00, 0x00, 0xc0 | 17, 0xc0 | 23]),
      Buffer.from([0x51, 0x80 | 12]), // literal, static name :path (1), Huffman value of 12 bytes
      Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex'),
      Buffer.from([0x23]), // literal name of 3 bytes
      Buffer.from('x-k'),
      Buffer.from([0x80 | 6]), // Huffman value of 6 bytes
      Buffer.from('a8eb10649cbf', 'hex'),
    ]);
    expect(decodeFieldSection(block)).toEqual([
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', 'www.example.com'],
      ['x-k', 'no-cache'],
    ]);
  });

  it('refuses dynamic table references', () => {
    expect(() => decodeFieldSection(Buffer.from([0x01, 0x00, 0x80]))).toThrow(QpackError);
    expect(() => decodeFieldSection(Buffer.from([0x00, 0x00, 0x80]))).toThrow(/dynamic/);
    expect(() => decodeFieldSection(Buffer.from([0x00, 0x00, 0x10]))).toThrow(/post-base/);
  });
});

describe('HTTP/3 configuration', () => {
  it('refuses to start HTTP/3 without a certificate, naming the keys to set', async () => {
    await expect(startTestGateway('server: {http3: {enabled: true, port: 0}}\nproviders: {mock: {type: mock, model: mock}}\n')).rejects.toThrow(/server\.http3.*tls_cert_file/);
  });
});
