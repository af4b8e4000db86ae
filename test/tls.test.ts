/**
 * server.tls: HTTPS on the TCP port with HTTP/2 and HTTP/1.1 chosen by ALPN, driven by real clients:
 * the official OpenAI SDK over an undici HTTP/2 agent, node:http2 and node:https.
 */
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, mkdtempSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Agent, buildConnector } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSelfSigned } from '../src/server/tls.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';

/** An undici agent that offers h2 and trusts the test certificate, recording the protocol ALPN chose. */
function h2Agent(ca: Buffer, protocols: string[]): Agent {
  const connector = buildConnector({ ca, allowH2: true });
  return new Agent({
    allowH2: true,
    connect: (options, callback) =>
      connector(options, (error, socket) => {
        if (socket) protocols.push((socket as TLSSocket).alpnProtocol || 'none');
        // undici's callback overloads want (null, socket) or (error, null).
        if (error) callback(error, null);
        else callback(null, socket!);
      }),
  });
}

interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
  chunks: number;
}

function h2Request(session: http2.ClientHttp2Session, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': init.method ?? 'GET', ':path': path, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers });
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    let chunks = 0;
    stream.setEncoding('utf8');
    stream.on('response', (h) => (headers = h));
    stream.on('data', (chunk: string) => {
      body += chunk;
      chunks++;
    });
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body, chunks }));
    stream.on('error', reject);
    stream.end(init.body);
  });
}

describe('HTTPS with HTTP/2 and HTTP/1.1 on the TCP port (server.tls)', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let ca: Buffer;
  let url: string;
  let certDir: string;

  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'hapax-tls-'));
    const cert = await ensureSelfSigned(certDir);
    ca = readFileSync(cert.certFile);
    upstream = await startFakeOpenAI({ name: 'primary' });
    gateway = await startTestGateway(`
server:
  tls: {cert_file: "${cert.certFile}", key_file: "${cert.keyFile}"}
providers:
  primary: {type: openai, base_url: "${upstream.url}", api_key: sk-up, model: gpt-4o-mini}
rate_limit: {requests_per_minute: 1000}
`);
    url = gateway.url.replace(/^http:/, 'https:');
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('makes a usable local certificate for localhost, 127.0.0.1 and ::1, and reuses it', async () => {
    const first = await ensureSelfSigned(certDir);
    expect(first.created).toBe(false);
    const cert = new X509Certificate(ca);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.fingerprint256).toBe(first.fingerprint);
    expect(Date.parse(cert.validTo) - Date.now()).toBeGreaterThan(80 * 24 * 3600 * 1000);
  });

  it('serves the official OpenAI SDK over HTTP/2, JSON and streams', async () => {
    const protocols: string[] = [];
    const dispatcher = h2Agent(ca, protocols);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, fetchOptions: { dispatcher } as OpenAI['fetchOptions'] });
    try {
      const { data, response } = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hello over h2' }] }).withResponse();
      expect(data.choices[0].message.content).toBe('[primary] hello over h2');
      expect(response.headers.get('x-hapax-provider')).toBe('primary');
      expect(response.headers.get('x-ratelimit-limit')).toBe('1000');
      expect(response.headers.get('alt-svc')).toBeNull(); // no HTTP/3 listener configured

      const stream = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'one two three four' }], stream: true });
      const pieces: string[] = [];
      for await (const chunk of stream) if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
      expect(pieces.length).toBeGreaterThan(1);
      expect(pieces.join('')).toBe('[primary] one two three four');
      // Both requests shared one HTTP/2 connection.
      expect(protocols).toEqual(['h2']);
    } finally {
      await dispatcher.close();
    }
  });

  it('streams SSE over HTTP/2 frame by frame, not buffered', async () => {
    upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 60 });
    const session = http2.connect(url, { ca });
    try {
      const started = Date.now();
      const arrivals: number[] = [];
      const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      stream.end(JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: 'a b c d e' }] }));
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      for await (const _chunk of stream) arrivals.push(Date.now() - started);
      expect(status).toBe(200);
      expect(arrivals.length).toBeGreaterThan(3);
      // The first frame arrived long before the last: tokens are not held back.
      expect(arrivals.at(-1)! - arrivals[0]).toBeGreaterThan(150);
      expect(session.alpnProtocol).toBe('h2');
    } finally {
      session.close();
    }
  });

  it('answers 50 requests on one HTTP/2 connection, with request ids, health and errors', async () => {
    const session = http2.connect(url, { ca });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h2Request(session, i % 2 ? '/health' : '/v1/models')));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(new Set(results.map((r) => r.headers['x-request-id'])).size).toBe(50);
      const missing = await h2Request(session, '/nope');
      expect(missing.status).toBe(404);
      expect(JSON.parse(missing.body).error).toBeTruthy();
      const bad = await h2Request(session, '/v1/chat/completions', { method: 'POST', body: '{"messages": 3}' });
      expect(bad.status).toBe(400);
    } finally {
      session.close();
    }
  });

  it('takes a 1 MB request body over HTTP/2 up to the route limit and refuses a bigger one', async () => {
    const session = http2.connect(url, { ca });
    try {
      const text = 'x'.repeat(1_000_000);
      const ok = await h2Request(session, '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: '', messages: [{ role: 'user', content: text.slice(0, 1_048_000) }] }) });
      expect(ok.status).toBe(200);
      const big = await h2Request(session, '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: '', messages: [{ role: 'user', content: text + text }] }) });
      expect(big.status).toBe(413);
    } finally {
      session.close();
    }
  });

  it('still speaks HTTP/1.1 over TLS to clients that do not offer h2', async () => {
    const result = await new Promise<{ status: number; alpn: string | false; body: string }>((resolve, reject) => {
      const req = https.get(`${url}/health`, { ca }, (res) => {
        let body = '';
        const alpn = (res.socket as TLSSocket).alpnProtocol ?? false;
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, alpn, body }));
      });
      req.on('error', reject);
    });
    expect(result.status).toBe(200);
    expect(result.alpn).toBe(false);
    expect(JSON.parse(result.body).status).toBeTruthy();
  });

  it('stops the upstream stream when an HTTP/2 client cancels mid-stream', async () => {
    upstream.reset();
    upstream.queueFaults({ kind: 'slowStream', chunkDelayMs: 200 });
    const session = http2.connect(url, { ca });
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      stream.end(JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: 'many words to stream slowly here' }] }));
      const requestId = await new Promise<string>((resolve) => stream.once('response', (headers) => resolve(String(headers['x-request-id']))));
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await expect.poll(() => upstream.aborted, { timeout: 5000 }).toBe(1);
      // This stream's own line, once, with the 200 that went out before the cancel.
      const linesOf = () => gateway.logs.filter((l) => l.msg === 'request' && l.request_id === requestId);
      await expect.poll(() => linesOf().length, { timeout: 5000 }).toBe(1);
      expect(linesOf()[0]).toMatchObject({ status: 200, route: '/v1/chat/completions' });
    } finally {
      session.close();
    }
  });
});

describe('hapax serve --self-signed --http3', () => {
  it('serves HTTPS, HTTP/2 and HTTP/3 in one step with a certificate it made', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const cwd = mkdtempSync(join(tmpdir(), 'hapax-selfsigned-'));
    // Node 24 runs the TypeScript sources as they are (type stripping): no build needed for this test.
    const child = spawn(join(root, 'node_modules/.bin/node'), [join(root, 'src/cli.ts'), 'serve', '--self-signed', '--http3', '-p', '0', '--host', '127.0.0.1'], {
      cwd,
      env: { ...process.env, HAPAX_CONFIG: '', OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      const url = await new Promise<string>((resolve, reject) => {
        let pending = '';
        child.stdout.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk).split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) if (line.includes('"hapax listening"')) resolve(JSON.parse(line).url);
        });
        child.once('exit', (code) => reject(new Error(`hapax serve exited with ${code}: ${stderr}`)));
      });
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(stderr).toContain('self-signed certificate for localhost: .hapax/tls/localhost.crt');
      const ca = readFileSync(join(cwd, '.hapax/tls/localhost.crt'));
      const session = http2.connect(url, { ca });
      const health = await h2Request(session, '/health');
      session.close();
      expect(health.status).toBe(200);
      const port = new URL(url).port;
      expect(health.headers['alt-svc']).toBe(`h3=":${port}"; ma=86400`);
      const h3 = await new Promise<string>((resolve) =>
        execFile('gtlsclient', ['--exit-on-all-streams-close', '--no-quic-dump', '--no-http-dump', '127.0.0.1', port, `https://127.0.0.1:${port}/v1/models`], { timeout: 15_000 }, (_e, out, err) => resolve(out + err)),
      );
      expect(h3).toContain('[:status: 200]');
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
    }
  }, 40_000);
});

describe('an HTTP/2 client that stops reading a stream, then cancels it', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  let ca: Buffer;
  let url: string;

  beforeAll(async () => {
    const certDir = mkdtempSync(join(tmpdir(), 'hapax-tls-slow-'));
    const cert = await ensureSelfSigned(certDir);
    ca = readFileSync(cert.certFile);
    // A long answer: its frames fill the HTTP/2 flow-control window of a client that does not read.
    upstream = await startFakeOpenAI({ name: 'long', reply: () => 'token '.repeat(20_000) });
    gateway = await startTestGateway(`
server:
  tls: {cert_file: "${cert.certFile}", key_file: "${cert.keyFile}"}
providers:
  long: {type: openai, base_url: "${upstream.url}", model: gpt-4o-mini, max_concurrency: 1}
queue: {timeout: 2s}
`);
    url = gateway.url.replace(/^http:/, 'https:');
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it("gives the provider's only concurrency slot back, so the next request is served", async () => {
    const session = http2.connect(url, { ca });
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      stream.end(JSON.stringify({ model: '', stream: true, messages: [{ role: 'user', content: 'a long one' }] }));
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      stream.pause(); // stop reading: the gateway's writes back up and it waits for 'drain'
      await new Promise((resolve) => setTimeout(resolve, 300));
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.close();
    }
    // The slot is free again: a request now does not wait out the queue timeout (503) but is answered.
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, fetchOptions: { dispatcher: h2Agent(ca, []) } as never });
    const started = Date.now();
    const answer = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'next' }] });
    expect(answer.choices[0].message.content).toContain('token');
    expect(Date.now() - started).toBeLessThan(1500);
    await expect.poll(() => gateway.logs.filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions').length, { timeout: 3000 }).toBe(2);
  }, 20_000);
});
