/**
 * `server.http3`: the QUIC listener beside the TCP one. Its requests go through the same Fastify
 * router (`app.routing`), so routes, hooks, streaming, metrics and logs are shared by every transport.
 * Once it serves, every TCP response advertises it with `Alt-Svc: h3=":PORT"`.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../../config/errors.ts';
import type { HapaxConfig } from '../../config/schema.ts';
import { attachListener } from '../tls.ts';

type ServerConfig = HapaxConfig['server'];

export interface Http3Listener {
  port: number;
  altSvc: string;
}

/**
 * Starts the HTTP/3 listener when `server.http3.enabled` (resolves to undefined otherwise). Call it once the
 * TCP listener is up; if the UDP port cannot be bound, the app is closed and the error names the port.
 */
export async function listenHttp3(app: FastifyInstance, server: ServerConfig, host: string): Promise<Http3Listener | undefined> {
  const h3 = server.http3;
  if (!h3?.enabled) return undefined;
  const certFile = h3.tls_cert_file ?? server.tls?.cert_file;
  const keyFile = h3.tls_key_file ?? server.tls?.key_file;
  if (!certFile || !keyFile) {
    throw new ConfigError('(http3)', ['server.http3: QUIC needs a certificate: set server.http3.tls_cert_file and tls_key_file, or server.tls (hapax serve --self-signed makes one)']);
  }
  // The native QUIC binding is only loaded when HTTP/3 is on.
  const { Http3Server } = await import('./server.ts');
  // Without a port of its own, HTTP/3 takes the TCP listener's port number (as bound: `-p 0` works too).
  const udpPort = h3.port ?? (app.server.address() as AddressInfo | null)?.port ?? server.port;
  const log = app.log;
  const listener = new Http3Server({
    host,
    port: udpPort,
    certFile,
    keyFile,
    idleTimeoutMs: h3.idle_timeout ?? 30_000,
    maxBidiStreams: h3.max_bi_streams_concurrent || 100,
    maxUniStreams: Math.max(h3.max_uni_streams_concurrent ?? 16, 3),
    maxStreamWindow: h3.max_stream_receive_window || undefined,
    maxConnectionWindow: h3.max_connection_receive_window || undefined,
    enableEarlyData: h3.enable_0rtt ?? false,
    allowEarlyDataReplay: h3.allow_0rtt_replay ?? false,
    maxFieldSectionSize: Math.max(server.max_header_bytes, 16_384),
    udpReceiveBufferSize: h3.udp_receive_buffer_size || undefined,
    onRequest: (req, res) => app.routing(req as never, res as never),
    onTooEarly: (req) => log.info({ method: req.method, route: req.url.split('?', 1)[0], status: 425, transport: 'h3' }, 'request in 0-RTT early data refused: not idempotent'),
    onError: (error, where) => log.warn({ err: error, where, transport: 'h3' }, 'http3 error'),
  });
  let port: number;
  try {
    ({ port } = await listener.listen());
  } catch (error) {
    // The TCP listener is already up: take it down with the app, so a failed start leaves nothing open.
    await app.close();
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`server.http3: cannot listen on udp ${host}:${udpPort}: ${code ?? String(error)}`, { cause: error });
  }
  const altSvc = `h3=":${port}"; ma=86400`;
  attachListener(app, {
    altSvc,
    drain: () => listener.drain(),
    close: (timeoutMs) => listener.close(timeoutMs),
  });
  log.info({ port, host, zero_rtt: h3.enable_0rtt ?? false }, 'http3 listening');
  return { port, altSvc };
}
