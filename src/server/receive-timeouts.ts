/**
 * Bounds on how long a client may take to send its request, so that slow or stalled clients cannot hold
 * sockets: `server.read_header_timeout` for the headers, `server.read_timeout` for the body once the
 * headers are in (the body's bound is kept by body.ts, which answers 408 in the route's dialect). They
 * bound receiving the request only: a long streamed answer is never cut by them.
 *
 * Plain HTTP/1.1 uses Node's own `headersTimeout` / `requestTimeout`. Node's HTTP/2 server applies
 * neither, not even to the HTTP/1.1 connections it accepts beside HTTP/2, so the TLS listener bounds
 * the handshake (`handshakeTimeout`) and the time until a connection's first request is in (below).
 */
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { STATUS_CODES } from 'node:http';
import type { HapaxConfig } from '../config/schema.ts';
import type { Metrics } from '../observability/metrics.ts';
import { GatewayError } from '../core/errors.ts';
import { errorBody, requestIdFrom } from './errors.ts';

type ServerConfig = HapaxConfig['server'];

/** Grace past the body's own bound before Node's backstop cuts a request nobody is reading. */
const BACKSTOP_GRACE_MS = 1000;

/** Options for node:http's createServer (and Fastify's `requestTimeout`, which Fastify sets on the server). */
export function receiveTimeouts(server: ServerConfig): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const headers = server.read_header_timeout;
  const body = server.read_timeout;
  // The body's bound is body.ts's; Node's whole-request timer is only a backstop for requests whose
  // body no parser reads. Node wants headersTimeout <= requestTimeout.
  const requestTimeout = body > 0 ? headers + body + BACKSTOP_GRACE_MS : 0;
  const shortest = Math.min(...[headers, body].filter((ms) => ms > 0), 4000);
  // Node checks the timers on this interval (30 s by default, which let slow headers live 90 s).
  return { headersTimeout: headers, requestTimeout, connectionsCheckingInterval: Math.max(100, Math.floor(shortest / 4)) };
}

/** A complete HTTP/1.1 error answer in the spec's error format, for a socket no request owns yet. */
function rawAnswer(status: number, message: string, details: Record<string, unknown>): string {
  const body = JSON.stringify(errorBody(new GatewayError(message, { status, type: 'ValidationError', details }), requestIdFrom(undefined), 'hapax'));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * Fastify's `clientErrorHandler`: Node reports here a request that timed out, whose headers are too large
 * or that does not parse. The client gets the spec's error JSON (Fastify's default has another shape)
 * when nothing was written to it yet; timeouts are counted by phase.
 */
export function clientErrorAnswer(metrics: Metrics): (error: NodeJS.ErrnoException, socket: Socket) => void {
  return (error, socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    // Node assigns a response to the socket once a request's headers are in.
    const response = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    let answer: string;
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const phase = response ? 'body' : 'headers';
      metrics.clientTimeouts.inc({ phase });
      answer = rawAnswer(408, phase === 'headers' ? 'request headers did not arrive in time' : 'request did not arrive in time', { phase });
    } else if (error.code === 'HPE_HEADER_OVERFLOW') {
      answer = rawAnswer(431, 'request headers are too large', { field: '(headers)' });
    } else {
      answer = rawAnswer(400, 'malformed HTTP request', { code: error.code });
    }
    answerAndClose(socket, response?.headersSent ? undefined : answer);
  };
}

/** Writes the answer (when there is one and the socket takes it), then closes once it is flushed. */
function answerAndClose(socket: Socket, answer: string | undefined): void {
  if (answer === undefined || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.write(answer, () => socket.destroy());
  // A client that reads nothing cannot keep the socket by stalling the flush.
  setTimeout(() => socket.destroy(), 1000).unref();
}

const firstRequestTimer = Symbol('hapax.firstRequestTimer');
type TimedSocket = TLSSocket & { [firstRequestTimer]?: NodeJS.Timeout };

/**
 * On the TLS listener (HTTP/2 with HTTP/1.1 beside it): a connection whose first request is not in
 * within `ms` of the handshake is closed (HTTP/1.1 gets a 408 first; HTTP/2 has no stream to answer on).
 * Later requests on a kept-alive connection are bounded by the idle timeouts only.
 */
export function boundFirstRequest(server: Server, ms: number, metrics: Metrics): void {
  if (ms <= 0) return;
  // tls.ts sets the same bound as the handshake timeout; a handshake cut by it counts as slow headers.
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => {
    if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') metrics.clientTimeouts.inc({ phase: 'headers' });
  });
  server.on('secureConnection', (socket: TimedSocket) => {
    const timer = setTimeout(() => {
      metrics.clientTimeouts.inc({ phase: 'headers' });
      answerAndClose(socket, socket.alpnProtocol === 'h2' ? undefined : rawAnswer(408, 'request headers did not arrive in time', { phase: 'headers' }));
    }, ms);
    timer.unref();
    socket[firstRequestTimer] = timer;
    socket.once('close', () => clearTimeout(timer));
  });
  // For HTTP/2, `request.socket` is a proxy that reads through to the TLS socket.
  server.on('request', (request: { socket: TimedSocket }) => {
    const timer = request.socket[firstRequestTimer];
    if (timer !== undefined) clearTimeout(timer);
  });
}
