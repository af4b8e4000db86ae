/**
 * The upstream body readers on undici's dispatch API, against a plain node:http server: whole bodies,
 * streamed bodies read slowly (backpressure), a reader that stops early, a body cut mid-way, and aborts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, openBody } from '../src/providers/upstream-body.ts';

let server: http.Server;
let pool: Pool;
let closedEarly = 0;
/** Times the /many handler found the socket full and had to wait for 'drain'. */
let drains = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) closedEarly++;
    });
    if (req.url === '/json') return void res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '3' }).end('{"ok":true}');
    if (req.url === '/many') {
      // 2,000 chunks of 1 KB, as fast as the socket takes them.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const more = () => {
        while (i < 2000) {
          const line = `${String(i++).padStart(5, '0')}${'.'.repeat(1018)}\n`;
          if (!res.write(line)) {
            drains++;
            return void res.once('drain', more);
          }
        }
        res.end();
      };
      return more();
    }
    if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('tick\n'), 5);
      return void res.on('close', () => clearInterval(timer));
    }
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part\n');
      return void setTimeout(() => res.socket?.destroy(), 20);
    }
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 2000);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 4 });
});

afterAll(async () => {
  await pool.close();
  await new Promise((resolve) => server.close(resolve));
});

const get = (path: string) => ({ method: 'GET' as const, path });

describe('collect', () => {
  it('returns status, headers and the whole body', async () => {
    const response = await collect(pool, get('/json'), new AbortController().signal);
    expect(response.statusCode).toBe(200);
    expect(response.headers['retry-after']).toBe('3');
    expect(JSON.parse(response.body.toString())).toEqual({ ok: true });
  });

  it('rejects when the signal aborts, before or during the request', async () => {
    const before = new AbortController();
    before.abort(new Error('gone before'));
    await expect(collect(pool, get('/json'), before.signal)).rejects.toThrow('gone before');
    const during = new AbortController();
    setTimeout(() => during.abort(new Error('gone during')), 50);
    await expect(collect(pool, get('/slow'), during.signal)).rejects.toThrow();
  });
});

describe('openBody', () => {
  it('delivers every chunk in order to a slow reader, pausing the socket in between', async () => {
    drains = 0;
    const response = await openBody(pool, get('/many'), new AbortController().signal);
    expect(response.statusCode).toBe(200);
    let text = '';
    let reads = 0;
    for await (const chunk of response.body) {
      text += chunk.toString();
      if (++reads % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(2000);
    // The reader's pauses reached the server: it had to wait for the socket (2 MB is more than the buffers hold).
    expect(drains).toBeGreaterThan(0);
    expect(lines.every((line, i) => line.startsWith(String(i).padStart(5, '0')))).toBe(true);
  });

  it('aborts the rest of the answer when the reader stops early', async () => {
    const before = closedEarly;
    const response = await openBody(pool, get('/endless'), new AbortController().signal);
    for await (const chunk of response.body) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await expect.poll(() => closedEarly, { timeout: 2000 }).toBe(before + 1);
  });

  it('rejects the next read when the body is cut after its head', async () => {
    const response = await openBody(pool, get('/cut'), new AbortController().signal);
    const first = await response.body.next();
    expect(String(first.value)).toBe('first part\n');
    await expect(response.body.next()).rejects.toThrow();
  });

  it('rejects a read in progress when the signal aborts mid-body', async () => {
    const controller = new AbortController();
    const response = await openBody(pool, get('/cut'), controller.signal);
    await response.body.next();
    const pending = response.body.next();
    controller.abort(new Error('client left'));
    await expect(pending).rejects.toThrow('client left');
  });
});
