/**
 * TLS on the TCP port: HTTPS with HTTP/2 and HTTP/1.1 chosen by ALPN (`server.tls`), plus the local
 * certificate behind `hapax serve --self-signed`. HTTP/3 (QUIC, UDP) lives in ./http3/ and is advertised
 * on every TCP response with `Alt-Svc` once its listener is up (registerTransports).
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../config/errors.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { HapaxConfig } from '../config/schema.ts';

type ServerConfig = HapaxConfig['server'];

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError('(tls)', [`${key}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
}

/** The certificate and key named by `server.tls`, read once at start (a reload does not change them). */
export function loadTls(server: ServerConfig): TlsMaterial | undefined {
  if (!server.tls) return undefined;
  const { cert_file: certFile, key_file: keyFile } = server.tls;
  return { cert: readPem(certFile, 'server.tls.cert_file'), key: readPem(keyFile, 'server.tls.key_file') };
}

/**
 * Fastify options for the TCP listener: with `server.tls`, an HTTP/2 server that also speaks HTTP/1.1
 * (ALPN picks; clients without ALPN get HTTP/1.1). Without it, nothing: plain HTTP/1.1 as before.
 */
export function tcpServerOptions(server: ServerConfig): Record<string, unknown> {
  const tls = loadTls(server);
  if (!tls) return {};
  return {
    http2: true,
    // Same idle limit for HTTP/2 sessions as for HTTP/1.1 keep-alive.
    http2SessionTimeout: 72_000,
    https: {
      allowHTTP1: true,
      cert: tls.cert,
      key: tls.key,
      minVersion: 'TLSv1.2',
      // A handshake trickled byte by byte is cut like slow headers (Node's default waits 120 s).
      ...(server.read_header_timeout > 0 ? { handshakeTimeout: server.read_header_timeout } : {}),
      settings: { maxHeaderListSize: server.max_header_bytes },
      maxHeaderSize: server.max_header_bytes,
    },
  };
}

/** True when the request arrived over QUIC (the HTTP/3 listener marks its requests with version 3). */
export function isHttp3(raw: { httpVersionMajor?: number }): boolean {
  return raw.httpVersionMajor === 3;
}

/** A listener started beside the TCP one (the HTTP/3 QUIC listener), owned by the Fastify app. */
export interface ExtraListener {
  /** The `Alt-Svc` value TCP responses carry while this listener serves, e.g. `h3=":8443"; ma=86400`. */
  altSvc?: string;
  /** Stops taking new requests (HTTP/3 GOAWAY); called when the app starts closing. */
  drain(): void;
  /** Waits for requests in flight up to `timeoutMs`, then closes every connection and the socket. */
  close(timeoutMs: number): Promise<void>;
}

const extraListeners = new WeakMap<object, ExtraListener[]>();
/** When a graceful stop must be over (epoch ms), set by drainServer: the extra listeners share its deadline. */
const closeDeadlines = new WeakMap<object, number>();
/** Without a drain deadline (a plain app.close()), requests in flight on extra listeners get this long. */
const DEFAULT_CLOSE_MS = 10_000;

export function setCloseDeadline(app: FastifyInstance, epochMs: number): void {
  closeDeadlines.set(app, epochMs);
}

export function attachListener(app: FastifyInstance, listener: ExtraListener): void {
  const list = extraListeners.get(app) ?? [];
  list.push(listener);
  extraListeners.set(app, list);
}

/**
 * Hooks for listeners attached after `listen()`: every response sent over TCP advertises HTTP/3 with
 * `Alt-Svc` once (and only while) the QUIC listener serves, and closing the app closes them too.
 */
export function registerTransports(app: FastifyInstance): void {
  // Set when the request arrives, not at send time: streams are written past Fastify's onSend hooks.
  app.addHook('onRequest', (request, reply, done) => {
    const listeners = extraListeners.get(app);
    if (listeners && !isHttp3(request.raw)) for (const listener of listeners) if (listener.altSvc) reply.header('alt-svc', listener.altSvc);
    done();
  });
  app.addHook('preClose', async () => {
    for (const listener of extraListeners.get(app) ?? []) listener.drain();
  });
  app.addHook('onClose', async () => {
    const list = extraListeners.get(app) ?? [];
    extraListeners.delete(app);
    const deadline = closeDeadlines.get(app);
    const timeoutMs = deadline === undefined ? DEFAULT_CLOSE_MS : Math.max(0, deadline - Date.now());
    await Promise.all(list.map((listener) => listener.close(timeoutMs)));
  });
}

// ---------------------------------------------------------------------------------------------------
// hapax serve --self-signed

export const SELF_SIGNED_DIR = join('.hapax', 'tls');
const VALID_DAYS = 90;
/** An existing certificate is reused while it has at least this long left. */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;

export interface SelfSigned {
  certFile: string;
  keyFile: string;
  /** SHA-256 fingerprint, as browsers and curl show it. */
  fingerprint: string;
  created: boolean;
}

function usable(certFile: string, keyFile: string): X509Certificate | undefined {
  try {
    readFileSync(keyFile);
    const cert = new X509Certificate(readFileSync(certFile));
    return Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS && cert.checkHost('localhost') ? cert : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A certificate for localhost, 127.0.0.1 and ::1 (ECDSA P-256, 90 days) in `.hapax/tls/`; an existing
 * one is reused until a week before it expires, so clients that trust it keep working across restarts.
 */
export async function ensureSelfSigned(dir: string = SELF_SIGNED_DIR): Promise<SelfSigned> {
  const certFile = join(dir, 'localhost.crt');
  const keyFile = join(dir, 'localhost.key');
  const existing = usable(certFile, keyFile);
  if (existing) return { certFile, keyFile, fingerprint: existing.fingerprint256, created: false };
  const { generate } = await import('selfsigned');
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'Hapax (self-signed)' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + VALID_DAYS * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { certFile, keyFile, fingerprint: new X509Certificate(pems.cert).fingerprint256, created: true };
}

/**
 * The loaded config with `server.tls` pointing at the given certificate (an HTTP/3 block that names no
 * certificate of its own uses it too).
 */
export function withCertificate(loaded: LoadedConfig, cert: { certFile: string; keyFile: string }): LoadedConfig {
  const server = { ...loaded.config.server, tls: { cert_file: cert.certFile, key_file: cert.keyFile } };
  return { ...loaded, config: { ...loaded.config, server } };
}

export interface ServeFlags {
  /** `--self-signed`: HTTPS (HTTP/2 and HTTP/1.1) with a local certificate from `.hapax/tls/`. */
  selfSigned?: boolean;
  /** `--http3`: also serve HTTP/3 over QUIC, on UDP at server.http3.port or the TCP port's number. */
  http3?: boolean;
}

/**
 * Applies `hapax serve --self-signed` / `--http3` to the loaded config, so a person can try HTTPS,
 * HTTP/2 and HTTP/3 in one step. Says on stderr which certificate is used and how to trust it.
 */
export async function applyServeFlags(loaded: LoadedConfig, flags: ServeFlags, say: (line: string) => void = () => {}): Promise<LoadedConfig> {
  let out = loaded;
  if (flags.selfSigned) {
    const cert = await ensureSelfSigned();
    out = withCertificate(out, cert);
    say(
      `${cert.created ? 'made' : 'using'} a self-signed certificate for localhost: ${cert.certFile} (SHA-256 ${cert.fingerprint}); ` +
        `trust it with e.g. curl --cacert ${cert.certFile}`,
    );
  }
  if (flags.http3) {
    const server = { ...out.config.server, http3: { ...out.config.server.http3, enabled: true } };
    out = { ...out, config: { ...out.config, server } };
  }
  return out;
}
