/**
 * HTTP/3 requests in the shape Fastify's router takes from node:http: a readable request (method, url,
 * headers, socket.remoteAddress, body stream) and a writable response (setHeader/writeHead/write/end,
 * 'finish' and 'close'). Fastify then runs the same hooks and handlers as for TCP, and a streamed reply
 * leaves as one HTTP/3 DATA frame per write.
 */
import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';

/** What the QUIC side offers one request stream. */
export interface StreamSink {
  sendHeaders(fields: [string, string][]): void;
  /** Queues a DATA frame; `done` runs once QUIC has taken all of it (backpressure). */
  sendData(chunk: Buffer, done: (error?: Error | null) => void): void;
  /** Ends the stream (FIN) once everything queued has been sent. */
  finish(done: (error?: Error | null) => void): void;
  /** Abandons the stream (RESET_STREAM / STOP_SENDING) with an HTTP/3 error code. */
  reset(code: number): void;
}

export interface Peer {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/** Stands in for the TCP socket: the peer's address, `encrypted` for the https scheme. */
class QuicSocketInfo extends EventEmitter {
  readonly encrypted = true;
  readonly remoteFamily: string;
  _meta: unknown = null;
  readonly peer: Peer;
  constructor(peer: Peer) {
    super();
    this.peer = peer;
    this.remoteFamily = peer.remoteAddress.includes(':') ? 'IPv6' : 'IPv4';
  }
  get remoteAddress(): string {
    return this.peer.remoteAddress;
  }
  get remotePort(): number {
    return this.peer.remotePort;
  }
  get localAddress(): string {
    return this.peer.localAddress;
  }
  get localPort(): number {
    return this.peer.localPort;
  }
  setTimeout(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  destroy(): this {
    return this;
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

export class Http3Request extends Readable {
  readonly httpVersion = '3.0';
  readonly httpVersionMajor = 3;
  readonly httpVersionMinor = 0;
  readonly method: string;
  url: string;
  readonly headers: Record<string, string | string[]> = {};
  readonly rawHeaders: string[] = [];
  readonly socket: QuicSocketInfo;
  aborted = false;
  complete = false;
  /** True when this request arrived in TLS early data (0-RTT). */
  readonly earlyData: boolean;

  constructor(fields: [string, string][], peer: Peer, earlyData: boolean) {
    super();
    this.socket = new QuicSocketInfo(peer);
    this.earlyData = earlyData;
    let method = '';
    let path = '';
    let authority = '';
    for (const [name, value] of fields) {
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      else if (name.startsWith(':')) continue;
      else {
        this.rawHeaders.push(name, value);
        const existing = this.headers[name];
        if (existing === undefined) this.headers[name] = value;
        else if (name === 'set-cookie') this.headers[name] = [...(Array.isArray(existing) ? existing : [existing]), value];
        else this.headers[name] = `${existing}${name === 'cookie' ? '; ' : ', '}${value}`;
      }
    }
    if (authority && this.headers.host === undefined) {
      this.headers.host = authority;
      this.rawHeaders.push('host', authority);
    }
    this.method = method;
    this.url = path;
  }

  override _read(): void {
    // Body bytes are pushed as QUIC delivers them; flow control bounds what is in flight.
  }

  /** The client reset the stream or the connection went away before the request ended. */
  abort(): void {
    if (this.complete || this.destroyed) {
      this.destroy();
      return;
    }
    this.aborted = true;
    this.emit('aborted');
    this.destroy();
  }

  /** Called once the body has ended (FIN). */
  finishBody(): void {
    this.complete = true;
    this.push(null);
  }

  setTimeout(): this {
    return this;
  }
}

export class Http3Response extends Writable {
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  sendDate = true;
  readonly req: Http3Request;
  private readonly fields = new Map<string, { name: string; value: number | string | string[] }>();
  private readonly sink: StreamSink;
  private readonly head: boolean;

  constructor(req: Http3Request, sink: StreamSink) {
    super({ decodeStrings: true });
    this.req = req;
    this.sink = sink;
    this.head = req.method === 'HEAD';
  }

  get socket(): QuicSocketInfo {
    return this.req.socket;
  }

  get finished(): boolean {
    return this.writableEnded;
  }

  setHeader(name: string, value: number | string | readonly string[]): this {
    this.fields.set(name.toLowerCase(), { name, value: Array.isArray(value) ? [...value] : (value as number | string) });
    return this;
  }

  appendHeader(name: string, value: string | readonly string[]): this {
    const key = name.toLowerCase();
    const current = this.fields.get(key)?.value;
    const list = current === undefined ? [] : Array.isArray(current) ? current : [String(current)];
    this.fields.set(key, { name, value: [...list, ...(Array.isArray(value) ? value : [value as string])] });
    return this;
  }

  getHeader(name: string): number | string | string[] | undefined {
    return this.fields.get(name.toLowerCase())?.value;
  }

  getHeaders(): Record<string, number | string | string[]> {
    const out: Record<string, number | string | string[]> = {};
    for (const [key, { value }] of this.fields) out[key] = value;
    return out;
  }

  getHeaderNames(): string[] {
    return [...this.fields.keys()];
  }

  hasHeader(name: string): boolean {
    return this.fields.has(name.toLowerCase());
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw Object.assign(new Error('Cannot remove headers after they are sent'), { code: 'ERR_HTTP_HEADERS_SENT' });
    this.fields.delete(name.toLowerCase());
  }

  writeHead(statusCode: number, reason?: string | Record<string, unknown> | unknown[], headers?: Record<string, unknown> | unknown[]): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    if (typeof reason !== 'string') headers = reason;
    this.statusCode = statusCode;
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(String(headers[i]), String(headers[i + 1]));
    } else if (headers) {
      for (const [name, value] of Object.entries(headers)) if (value !== undefined) this.setHeader(name, value as string);
    }
    this.flushHeaders();
    return this;
  }

  flushHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const fields: [string, string][] = [[':status', String(this.statusCode)]];
    if (this.sendDate && !this.fields.has('date')) fields.push(['date', new Date().toUTCString()]);
    for (const [key, { value }] of this.fields) {
      if (HOP_BY_HOP.has(key)) continue;
      if (Array.isArray(value)) for (const v of value) fields.push([key, String(v)]);
      else fields.push([key, String(value)]);
    }
    this.sink.sendHeaders(fields);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.flushHeaders();
    if (this.head || chunk.length === 0) return callback();
    this.sink.sendData(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flushHeaders();
    this.sink.finish(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Ended before the response was complete: tell the client this stream is abandoned.
    if (!this.writableFinished) this.sink.reset(0x10c);
    if (!this.req.destroyed) {
      if (this.writableFinished) this.req.destroy();
      else this.req.abort();
    }
    callback(error);
  }

  setTimeout(): this {
    return this;
  }

  writeContinue(): void {}
  writeEarlyHints(): void {}
  assignSocket(): void {}
  detachSocket(): void {}
}
