/**
 * Hostile clients, through real sockets: compressed request bodies of every encoding (and a decompression
 * bomb, an unknown encoding, a corrupt stream), slow headers, a slow body, a stalled body, and 300 slow
 * clients connected while normal clients keep being served. Timeouts in these configs are small (1-2 s);
 * time bounds are asserted generously: they show the bound holds, they are not a benchmark.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { brotliCompressSync, constants, deflateSync, gzipSync, zstdCompressSync, createBrotliCompress, createZstdCompress } from 'node:zlib';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { receiveTimeouts } from '../src/server/receive-timeouts.ts';
import { ensureSelfSigned } from '../src/server/tls.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { useStarted, tempDir } from './helpers/started.ts';

const ADMIN_KEY = 'hostile-admin-key-0123456789';
const ENCODERS: Record<string, (data: Buffer) => Buffer> = {
  gzip: (data) => gzipSync(data),
  deflate: (data) => deflateSync(data),
  br: (data) => brotliCompressSync(data),
  zstd: (data) => zstdCompressSync(data),
};

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
  ms: number;
}

/** One POST over a fresh connection, with exactly the bytes and headers given. */
function post(gateway: TestGateway, path: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${gateway.url}${path}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json, ms: performance.now() - started });
        });
      },
    );
    request.setTimeout(20_000, () => request.destroy(new Error('no answer within 20 s')));
    request.on('error', reject);
    request.end(body);
  });
}

/** What a raw socket saw until the server closed it: the bytes, and how long it stayed open. */
interface Ending {
  text: string;
  ms: number;
  status?: number;
  json?: any;
}

/**
 * A raw socket that sends `head` at once, then `drip` one byte per `everyMs` (or nothing more), and
 * waits for the server to close it (or `giveUpMs`).
 */
function dripClient(port: number, head: string, drip: string, everyMs: number, giveUpMs = 15_000, socketFactory?: () => net.Socket): Promise<Ending> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = socketFactory ? socketFactory() : net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const begin = () => {
      socket.write(head);
      if (drip.length === 0) return;
      timer = setInterval(() => {
        if (sent >= drip.length || socket.destroyed) return clearInterval(timer);
        socket.write(drip[sent++]);
      }, everyMs);
    };
    if (socketFactory) socket.once('secureConnect', begin);
    else socket.once('connect', begin);
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      const bodyStart = text.indexOf('\r\n\r\n');
      let json: unknown;
      try {
        json = bodyStart >= 0 ? JSON.parse(text.slice(bodyStart + 4)) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ text, ms: performance.now() - started, status: status ? Number(status) : undefined, json });
    });
  });
}

const chatBody = (content: string, extra: object = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });
const messagesBody = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content }] });
const ollamaBody = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', stream: false, messages: [{ role: 'user', content }] });

/** A fetch for the openai SDK that compresses each request body, as some SDK setups and proxies do. */
function compressingFetch(encoding: string): typeof fetch {
  return async (input, init) => {
    if (typeof init?.body !== 'string') return fetch(input, init);
    const headers = new Headers(init.headers);
    headers.set('content-encoding', encoding);
    return fetch(input, { ...init, headers, body: new Uint8Array(ENCODERS[encoding](Buffer.from(init.body))) });
  };
}

/** 1 GiB of zeros as a ~1 MB gzip: 16 gzip members of 64 MiB each, which a gzip reader reads as one body. */
function gzipBomb(): Buffer {
  const member = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
  return Buffer.concat(Array.from({ length: 16 }, () => member));
}

/** `size` bytes of zeros through a streaming compressor, without holding the zeros in memory. */
async function streamedBomb(compressor: NodeJS.ReadWriteStream, size: number): Promise<Buffer> {
  const block = Buffer.alloc(1024 * 1024);
  const source = Readable.from((function* () {
    for (let sent = 0; sent < size; sent += block.length) yield block;
  })());
  const out: Buffer[] = [];
  source.pipe(compressor as unknown as NodeJS.WritableStream);
  for await (const chunk of compressor as unknown as AsyncIterable<Buffer>) out.push(chunk);
  return Buffer.concat(out);
}

async function metricValue(gateway: TestGateway, phase: string): Promise<number> {
  const text = gateway.url.startsWith('https:') ? await gateway.metrics.registry.metrics() : await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`hapax_client_timeouts_total{phase="${phase}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Normal clients, 4 at a time, for `ms`: each latency, the failures, and a one-line summary. */
async function normalClients(client: OpenAI, ms: number) {
  const latencies: number[] = [];
  const failures: unknown[] = [];
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        try {
          const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'normal client' }] });
          if (answer.choices[0].message.content !== '[gpt] normal client') throw new Error(`unexpected answer ${answer.choices[0].message.content}`);
          latencies.push(performance.now() - started);
        } catch (error) {
          failures.push(error);
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor(latencies.length / 2)] ?? NaN;
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? NaN;
  const summary = `${latencies.length} requests, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms`;
  return { latencies, failures, p99, summary };
}

describe('receive timeouts from the config', () => {
  const server = (yaml: string) => parseConfig(`providers: {mock: {type: mock}}\n${yaml}`).config.server;

  it('defaults to 10 s for headers and 30 s for the body, with Node checking every second', () => {
    expect(server('')).toMatchObject({ read_header_timeout: 10_000, read_timeout: 30_000 });
    // Node's whole-request timer is a backstop past the body's own bound (kept by body.ts).
    expect(receiveTimeouts(server(''))).toEqual({ headersTimeout: 10_000, requestTimeout: 41_000, connectionsCheckingInterval: 1_000 });
  });

  it('turns a bound off with 0, and checks short bounds more often', () => {
    expect(receiveTimeouts(server('server: {read_header_timeout: 0, read_timeout: 0}'))).toEqual({ headersTimeout: 0, requestTimeout: 0, connectionsCheckingInterval: 1_000 });
    expect(receiveTimeouts(server('server: {read_header_timeout: 1s, read_timeout: 0}'))).toMatchObject({ headersTimeout: 1_000, requestTimeout: 0, connectionsCheckingInterval: 250 });
  });

  it('still applies the original Hapax read_timeout, without the "not applied" warning', () => {
    const loaded = parseConfig('providers: {mock: {type: mock}}\nserver: {read_timeout: 45s}\n');
    expect(loaded.config.server.read_timeout).toBe(45_000);
    expect(loaded.warnings.join('\n')).not.toContain('read_timeout');
  });
});

describe('compressed request bodies', () => {
  const setup = useStarted({ keyDir: () => tempDir('hapax-hostile-'), upstream: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ keyDir, upstream }) =>
      startTestGateway(`
server: {read_header_timeout: 2s, read_timeout: 5s}
providers:
  gpt: {type: openai, base_url: "${upstream.url}", api_key: sk-upstream, model: gpt-4o-mini}
admin: {key: ${ADMIN_KEY}}
auth: {key_file: "${join(keyDir.path, 'keys.json')}"}
retry: {max_retries: 0}
`),
  });
  afterEach(() => setup.upstream.reset());

  for (const encoding of Object.keys(ENCODERS)) {
    it(`decodes a ${encoding} body sent by the openai SDK`, async () => {
      const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0, fetch: compressingFetch(encoding) });
      const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello in ${encoding}` }] });
      expect(answer.choices[0].message.content).toBe(`[gpt] hello in ${encoding}`);
      // The upstream got the decoded request, uncompressed.
      expect(setup.upstream.requests.at(-1)?.body.messages[0].content).toBe(`hello in ${encoding}`);
    });

    it(`decodes a ${encoding} body on /v1/messages, /api/chat and /admin/keys`, async () => {
      const encode = ENCODERS[encoding];
      const headers = { 'content-encoding': encoding };
      const messages = await post(setup.gateway, '/v1/messages', encode(Buffer.from(messagesBody('from claude land'))), headers);
      expect(messages.status).toBe(200);
      expect(messages.json.content[0].text).toBe('[gpt] from claude land');
      const ollama = await post(setup.gateway, '/api/chat', encode(Buffer.from(ollamaBody('from ollama land'))), headers);
      expect(ollama.status).toBe(200);
      expect(ollama.json.message.content).toBe('[gpt] from ollama land');
      const key = await post(setup.gateway, '/admin/keys', encode(Buffer.from(JSON.stringify({ name: `key-${encoding}` }))), { ...headers, 'x-api-key': ADMIN_KEY });
      expect(key.status).toBe(201);
      expect(key.json.name).toBe(`key-${encoding}`);
    });
  }

  it('answers a compressed console sign-in form at once (not decoded: browsers never compress forms)', async () => {
    const form = gzipSync(`key=${ADMIN_KEY}`);
    const answer = await post(setup.gateway, '/console/login', form, { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' });
    expect(answer.status).toBe(401);
    expect(answer.ms).toBeLessThan(2_000);
  });

  it('undoes several codings in the reverse of the order they are listed', async () => {
    const body = brotliCompressSync(gzipSync(Buffer.from(chatBody('twice packed'))));
    const answer = await post(setup.gateway, '/v1/chat/completions', body, { 'content-encoding': 'gzip, br' });
    expect(answer.status).toBe(200);
    expect(answer.json.choices[0].message.content).toBe('[gpt] twice packed');
  });

  it('applies the body limit to the decoded size', async () => {
    const big = Buffer.from(chatBody('x'.repeat(1_200_000)));
    const packed = gzipSync(big);
    expect(packed.length).toBeLessThan(10_000);
    const answer = await post(setup.gateway, '/v1/chat/completions', packed, { 'content-encoding': 'gzip' });
    expect(answer.status).toBe(413);
    expect(answer.json.error).toMatchObject({ type: 'ValidationError', code: 413, details: { limit_bytes: 1_048_576 } });
    expect(setup.upstream.requests).toHaveLength(0);
  });

  it('refuses a 1 GiB gzip bomb with 413 quickly, without inflating it', async () => {
    const bomb = gzipBomb();
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    const answer = await post(setup.gateway, '/v1/chat/completions', bomb, { 'content-encoding': 'gzip' });
    expect(answer.status).toBe(413);
    expect(answer.json.error.code).toBe(413);
    const grown = (process.memoryUsage().heapUsed - heapBefore) / 1048576;
    console.log(`1 GiB gzip bomb (${(bomb.length / 1048576).toFixed(2)} MB on the wire): 413 after ${answer.ms.toFixed(0)} ms, heap ${grown >= 0 ? '+' : ''}${grown.toFixed(1)} MB`);
    // Inflating 1 GiB would take seconds and the memory of it; generous bounds.
    expect(answer.ms).toBeLessThan(3_000);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(128 * 1024 * 1024);
    // Anthropic's dialect for the same refusal.
    const claude = await post(setup.gateway, '/v1/messages', bomb, { 'content-encoding': 'gzip' });
    expect(claude.status).toBe(413);
    expect(claude.json).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
  });

  it('refuses brotli and zstd bombs with 413 too', async () => {
    const brotli = await streamedBomb(createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } }), 256 * 1024 * 1024);
    const zstd = await streamedBomb(createZstdCompress(), 256 * 1024 * 1024);
    for (const [encoding, bomb] of [['br', brotli], ['zstd', zstd]] as const) {
      const answer = await post(setup.gateway, '/api/chat', bomb, { 'content-encoding': encoding });
      expect(answer.status, encoding).toBe(413);
      // Ollama's error is a string.
      expect(answer.json.error).toMatch(/exceeds the limit of 1048576 bytes/);
      expect(answer.ms).toBeLessThan(3_000);
    }
  });

  it('refuses an unknown encoding at once with 415 naming the supported ones, in each dialect', async () => {
    const hapax = await post(setup.gateway, '/v1/chat/completions', chatBody('hi'), { 'content-encoding': 'compress' });
    expect(hapax.status).toBe(415);
    expect(hapax.json.error).toMatchObject({ type: 'ValidationError', code: 415, details: { field: 'content-encoding', supported: ['gzip', 'deflate', 'br', 'zstd'] } });
    expect(hapax.json.error.message).toContain('gzip, deflate, br, zstd');
    const claude = await post(setup.gateway, '/v1/messages', messagesBody('hi'), { 'content-encoding': 'lzma' });
    expect(claude.status).toBe(415);
    expect(claude.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(hapax.ms).toBeLessThan(2_000);
  });

  it('answers 400 for a corrupt or truncated stream', async () => {
    const garbage = await post(setup.gateway, '/v1/chat/completions', Buffer.from('this is not gzip at all'), { 'content-encoding': 'gzip' });
    expect(garbage.status).toBe(400);
    expect(garbage.json.error).toMatchObject({ type: 'ValidationError', code: 400, details: { field: 'content-encoding' } });
    const whole = brotliCompressSync(Buffer.from(chatBody('y'.repeat(5000))));
    const truncated = await post(setup.gateway, '/v1/chat/completions', whole.subarray(0, whole.length >> 1), { 'content-encoding': 'br' });
    expect(truncated.status).toBe(400);
    const zstdGarbage = await post(setup.gateway, '/admin/keys', Buffer.from('nope'), { 'content-encoding': 'zstd', 'x-api-key': ADMIN_KEY });
    expect(zstdGarbage.status).toBe(400);
    // Still serving.
    const fine = await post(setup.gateway, '/v1/chat/completions', gzipSync(chatBody('still here')), { 'content-encoding': 'gzip' });
    expect(fine.status).toBe(200);
  });
});

describe('slow and stalled clients on HTTP/1.1', () => {
  const setup = useStarted({ upstream: () => startFakeOpenAI({ name: 'gpt' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
server: {read_header_timeout: 1s, read_timeout: 2s}
providers:
  gpt: {type: openai, base_url: "${upstream.url}", api_key: sk-upstream, model: gpt-4o-mini}
retry: {max_retries: 0}
`),
  });
  afterEach(() => {
    setup.upstream.fault = null;
  });
  const HEAD = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';

  it('cuts headers sent at a byte per 200 ms with a 408 in the error format', async () => {
    const before = await metricValue(setup.gateway, 'headers');
    const ending = await dripClient(setup.gateway.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n', `X-Slow: ${'a'.repeat(200)}\r\n`, 200);
    expect(ending.ms).toBeLessThan(4_000);
    expect(ending.status).toBe(408);
    expect(ending.json.error).toMatchObject({ type: 'ValidationError', code: 408, details: { phase: 'headers' } });
    expect(await metricValue(setup.gateway, 'headers')).toBe(before + 1);
  });

  it('closes a connection that never sends a byte', async () => {
    const ending = await dripClient(setup.gateway.port, '', '', 0);
    expect(ending.ms).toBeLessThan(4_000);
  });

  it('cuts a body sent at a byte per 200 ms with a 408 in the error format', async () => {
    const before = await metricValue(setup.gateway, 'body');
    const ending = await dripClient(setup.gateway.port, HEAD, '{'.repeat(1000), 200);
    expect(ending.ms).toBeGreaterThan(1_500);
    expect(ending.ms).toBeLessThan(5_000);
    expect(ending.status).toBe(408);
    expect(ending.json.error).toMatchObject({ type: 'ValidationError', code: 408, details: { phase: 'body', timeout_ms: 2000 } });
    expect(await metricValue(setup.gateway, 'body')).toBe(before + 1);
  });

  it('cuts a body that stops after 2 of its 1,000 declared bytes, in the Anthropic shape on /v1/messages', async () => {
    const head = HEAD.replace('/v1/chat/completions', '/v1/messages');
    const ending = await dripClient(setup.gateway.port, `${head}{"`, '', 0);
    expect(ending.ms).toBeLessThan(5_000);
    expect(ending.status).toBe(408);
    expect(ending.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });

  it('does not cut a streamed answer that lasts longer than every receive timeout', async () => {
    // 12 words, one per 450 ms: over 5 s, past read_header_timeout + read_timeout + Node's backstop.
    setup.upstream.fault = { kind: 'slowStream', chunkDelayMs: 450 };
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const started = performance.now();
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'one two three four five six seven eight nine ten eleven twelve' }] });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(performance.now() - started).toBeGreaterThan(4_500);
    expect(text).toBe('[gpt] one two three four five six seven eight nine ten eleven twelve');
    expect(finish).toBe('stop');
  });

  it('keeps serving normal clients while 300 slow ones are connected, then cuts every slow one', async () => {
    // A gateway with longer bounds, so that the slow clients stay connected while the normal ones are measured.
    const gateway = await startTestGateway(`
server: {read_header_timeout: 4s, read_timeout: 4s}
providers:
  gpt: {type: openai, base_url: "${setup.upstream.url}", api_key: sk-upstream, model: gpt-4o-mini}
retry: {max_retries: 0}
`);
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      await normalClients(client, 300); // warm-up, not counted
      const alone = await normalClients(client, 1_000);
      const slow: Array<Promise<Ending>> = [];
      for (let i = 0; i < 300; i++) {
        slow.push(
          i % 3 === 0
            ? dripClient(gateway.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n', `X-Slow: ${'a'.repeat(100)}\r\n`, 500, 20_000)
            : i % 3 === 1
              ? dripClient(gateway.port, HEAD, '{'.repeat(1000), 500, 20_000)
              : dripClient(gateway.port, `${HEAD}{"`, '', 0, 20_000),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      // For as long as the slow ones are held (under the 4 s bounds).
      const beside = await normalClients(client, 2_500);
      console.log(`normal clients alone: ${alone.summary}; beside 300 slow ones: ${beside.summary}`);
      expect(alone.failures).toEqual([]);
      expect(beside.failures).toEqual([]);
      expect(beside.latencies.length).toBeGreaterThan(20);
      expect(beside.p99).toBeLessThan(1_000);
      const endings = await Promise.all(slow);
      // Every slow client was cut by the server within its bound (plus generous slack), none held to the test's give-up.
      const longest = Math.max(...endings.map((ending) => ending.ms));
      console.log(`300 slow clients cut after at most ${longest.toFixed(0)} ms; ${endings.filter((ending) => ending.status === 408).length} saw a 408`);
      expect(longest).toBeLessThan(10_000);
      expect(endings.filter((ending) => ending.status === 408).length).toBeGreaterThan(250);
      expect((await metricValue(gateway, 'headers')) + (await metricValue(gateway, 'body'))).toBe(300);
    } finally {
      await gateway.close();
    }
  }, 30_000);
});

describe('slow and stalled clients on the TLS listener (HTTP/2 and HTTP/1.1)', () => {
  const setup = useStarted({ certDir: () => tempDir('hapax-hostile-tls-'), upstream: () => startFakeOpenAI({ name: 'gpt' }) })
    .and({ cert: ({ certDir }) => ensureSelfSigned(certDir.path) })
    .and({
      gateway: ({ cert, upstream }) =>
        startTestGateway(`
server:
  read_header_timeout: 1s
  read_timeout: 2s
  tls: {cert_file: "${cert.certFile}", key_file: "${cert.keyFile}"}
providers:
  gpt: {type: openai, base_url: "${upstream.url}", api_key: sk-upstream, model: gpt-4o-mini}
retry: {max_retries: 0}
`),
    });
  const ca = () => readFileSync(setup.cert.certFile);
  const tlsSocket = (alpn: string) => () => tls.connect({ port: setup.gateway.port, host: '127.0.0.1', servername: 'localhost', ca: ca(), ALPNProtocols: [alpn] });

  it('cuts slow HTTP/1.1 headers over TLS with a 408', async () => {
    const ending = await dripClient(setup.gateway.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n', `X-Slow: ${'a'.repeat(100)}\r\n`, 200, 15_000, tlsSocket('http/1.1'));
    expect(ending.ms).toBeLessThan(4_000);
    expect(ending.status).toBe(408);
    expect(ending.json.error).toMatchObject({ code: 408, details: { phase: 'headers' } });
  });

  it('cuts a TLS handshake that never starts, and counts it', async () => {
    const before = await metricValue(setup.gateway, 'headers');
    const ending = await dripClient(setup.gateway.port, '', '', 0);
    expect(ending.ms).toBeLessThan(4_000);
    expect(await metricValue(setup.gateway, 'headers')).toBe(before + 1);
  });

  it('closes an HTTP/2 connection that sends no request', async () => {
    const ending = await dripClient(setup.gateway.port, '', '', 0, 15_000, tlsSocket('h2'));
    expect(ending.ms).toBeLessThan(4_000);
  });

  it('answers a stalled HTTP/2 body with 408, and a gzip body over HTTP/2 with the answer', async () => {
    const session = http2.connect(setup.gateway.url, { ca: ca(), servername: 'localhost' });
    try {
      const exchange = (headers: http2.OutgoingHttpHeaders, body: Buffer | undefined, end: boolean) =>
        new Promise<{ status: number; json: any; ms: number }>((resolve, reject) => {
          const started = performance.now();
          const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', ...headers });
          let status = 0;
          const chunks: Buffer[] = [];
          stream.on('response', (response) => (status = Number(response[':status'])));
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          // Resolved when the stream closes: for the stalled body, when the gateway resets it.
          stream.on('close', () => resolve({ status, json: JSON.parse(Buffer.concat(chunks).toString() || 'null'), ms: performance.now() - started }));
          stream.on('error', reject);
          if (body) stream.write(body);
          if (end) stream.end();
        });
      const stalled = await exchange({ 'content-length': '1000' }, Buffer.from('{"'), false);
      expect(stalled.status).toBe(408);
      expect(stalled.json.error).toMatchObject({ code: 408, details: { phase: 'body' } });
      // 2 s bound, then a second's grace to read the answer before the stream is reset.
      expect(stalled.ms).toBeLessThan(6_000);
      const packed = gzipSync(chatBody('over h2'));
      const fine = await exchange({ 'content-encoding': 'gzip', 'content-length': String(packed.length) }, packed, true);
      expect(fine.status).toBe(200);
      expect(fine.json.choices[0].message.content).toBe('[gpt] over h2');
    } finally {
      session.close();
    }
  });
});
