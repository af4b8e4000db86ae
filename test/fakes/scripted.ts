/**
 * A scripted upstream: answers each request with the next reply a test queued (status, headers, and a body
 * given whole or as chunks written one by one, optionally cut off), and records exactly what it received:
 * method, path with query, headers and the raw body text.
 *
 * For tests that compare bytes: the replies are canned wire text the test writes from a provider's API
 * reference (thinking blocks, signatures, fields no API version has yet), so what the client gets can be
 * compared with what the upstream sent, byte for byte.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ScriptedReply {
  status?: number;
  headers?: Record<string, string>;
  /** The body whole, or chunks written one after another (each flushed on its own). */
  body: string | string[];
  /** Destroy the connection after this many chunks instead of ending the body. */
  cutAfter?: number;
}

export interface ReceivedRequest {
  method: string;
  /** Path with its query string, as sent. */
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The raw body text. */
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
}

export interface ScriptedUpstream {
  url: string;
  received: ReceivedRequest[];
  /** Replies for the next requests, in order; when none is queued, `fallback` answers (404 by default). */
  queue(...replies: ScriptedReply[]): void;
  fallback: ScriptedReply;
  reset(): void;
  close(): Promise<void>;
}

export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  const sockets = new Set<Socket>();
  let replies: ScriptedReply[] = [];
  const upstream: ScriptedUpstream = {
    url: '',
    received: [],
    queue: (...more) => void replies.push(...more),
    fallback: { status: 404, headers: { 'content-type': 'application/json' }, body: '{"error":{"message":"nothing scripted"}}' },
    reset() {
      upstream.received.length = 0;
      replies = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    upstream.received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, text, json });
    const reply = replies.shift() ?? upstream.fallback;
    res.writeHead(reply.status ?? 200, reply.headers ?? { 'content-type': 'application/json' });
    const parts = typeof reply.body === 'string' ? [reply.body] : reply.body;
    for (let i = 0; i < parts.length; i++) {
      if (reply.cutAfter !== undefined && i >= reply.cutAfter) {
        res.socket?.destroy();
        return;
      }
      res.write(parts[i]);
      // Each chunk on its own: let it leave before the next one is written.
      if (parts.length > 1) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (reply.cutAfter !== undefined && reply.cutAfter <= parts.length) res.socket?.destroy();
    else res.end();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}
