/**
 * An HTTP/3 server on one UDP socket: QUIC from quiche (the prebuilt binding, see quiche.ts), HTTP/3
 * framing and QPACK here. Each request stream becomes an Http3Request / Http3Response pair handed to `onRequest` (Fastify's router), so every transport shares one handler.
 *
 * Connections are found by destination connection id. A new connection is registered under both the id
 * the server chose and the id the client picked for its first flight, so a first flight that spans
 * several UDP datagrams reaches one connection.
 */
import { createHmac, randomBytes } from 'node:crypto';
import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { PacketType, quiche, Shutdown, type Config, type Connection, type Host } from './quiche.ts';
import { Http3Request, Http3Response, type Peer, type StreamSink } from './bridge.ts';
import { FrameReader, FrameType, H3Error, Settings, StreamType, frame, readVarint, varint, type Frame } from './frames.ts';
import { QpackError, decodeFieldSection, encodeFieldSection } from './qpack.ts';
import { GatewayError } from '../../core/errors.ts';
import { errorBody, requestIdFrom } from '../errors.ts';

export interface Http3ServerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  idleTimeoutMs: number;
  maxBidiStreams: number;
  maxUniStreams: number;
  maxStreamWindow?: number;
  maxConnectionWindow?: number;
  enableEarlyData: boolean;
  /** Accept every method in early data (unsafe: a replayed POST runs twice). */
  allowEarlyDataReplay: boolean;
  maxFieldSectionSize: number;
  udpReceiveBufferSize?: number;
  onRequest(req: Http3Request, res: Http3Response): void;
  /** A non-idempotent request that arrived in 0-RTT data; it was answered 425 here. */
  onTooEarly?(req: Http3Request): void;
  onError?(error: unknown, where: string): void;
}

/** RFC 9110 9.2.2: methods whose repetition has the same effect as one request. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const DATAGRAM = quiche.MAX_DATAGRAM_SIZE;
const RECV_CHUNK = 64 * 1024;

const hex = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
const isClientBidi = (id: number) => (id & 0x3) === 0;
const isClientUni = (id: number) => (id & 0x3) === 2;

function errorCode(error: unknown, kind: 'StreamStopped' | 'StreamReset'): number | undefined {
  const match = new RegExp(`${kind}\\((\\d+)\\)`).exec(error instanceof Error ? error.message : String(error));
  return match ? Number(match[1]) : undefined;
}

interface Pending {
  buf: Buffer;
  fin: boolean;
  done?: (error?: Error | null) => void;
}

class RequestStream implements StreamSink {
  req?: Http3Request;
  res?: Http3Response;
  readonly reader: FrameReader;
  readonly out: Pending[] = [];
  /** RESET_STREAM sent or received, or the connection is gone: nothing more goes out. */
  closed = false;
  finSent = false;
  finReceived = false;
  readonly id: number;
  readonly owner: H3Connection;

  constructor(id: number, owner: H3Connection) {
    this.id = id;
    this.owner = owner;
    this.reader = new FrameReader(
      (f) => owner.onRequestFrame(this, f),
      (chunk) => {
        if (!this.req) throw Object.assign(new Error('DATA before HEADERS'), { h3: H3Error.FRAME_UNEXPECTED });
        if (!this.req.destroyed) this.req.push(chunk);
      },
    );
  }

  sendHeaders(fields: [string, string][]): void {
    this.enqueue(frame(FrameType.HEADERS, encodeFieldSection(fields)), false);
  }

  sendData(chunk: Buffer, done: (error?: Error | null) => void): void {
    this.enqueue(frame(FrameType.DATA, chunk), false, done);
  }

  finish(done: (error?: Error | null) => void): void {
    this.enqueue(Buffer.alloc(0), true, done);
  }

  reset(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.failPending(new Error('stream reset'));
    const { conn } = this.owner;
    try {
      if (!this.finSent) conn.streamShutdown(this.id, Shutdown.Write, code);
    } catch {
      /* already gone */
    }
    try {
      if (!this.finReceived) conn.streamShutdown(this.id, Shutdown.Read, code);
    } catch {
      /* already gone */
    }
    this.owner.schedule();
  }

  private enqueue(buf: Buffer, fin: boolean, done?: (error?: Error | null) => void): void {
    if (this.closed) {
      done?.(new Error('stream closed'));
      return;
    }
    this.out.push({ buf, fin, done });
    this.owner.schedule();
  }

  failPending(error: Error): void {
    for (const item of this.out.splice(0)) item.done?.(error);
  }

  /** Hands queued bytes to QUIC as far as flow control allows. */
  pump(): void {
    const { conn } = this.owner;
    while (this.out.length && !this.closed) {
      const item = this.out[0];
      let written: number | null;
      try {
        written = conn.streamSend(this.id, item.buf, item.fin);
      } catch (error) {
        // STOP_SENDING from the client: it no longer wants this response.
        this.closed = true;
        this.failPending(new Error(`stream stopped (${errorCode(error, 'StreamStopped') ?? 'unknown'})`));
        this.res?.destroy();
        return;
      }
      if (written === null) return; // no capacity until the peer grants more
      if (written < item.buf.length) {
        item.buf = item.buf.subarray(written);
        return;
      }
      this.out.shift();
      if (item.fin) this.finSent = true;
      item.done?.();
    }
    if (this.finSent) {
      // The response is complete: a request body still arriving is not needed (RFC 9114 4.1.2).
      if (!this.finReceived) {
        try {
          conn.streamShutdown(this.id, Shutdown.Read, H3Error.NO_ERROR);
        } catch {
          /* already finished */
        }
        if (this.req && !this.req.complete && !this.req.destroyed) this.req.destroy();
      }
      this.owner.forget(this.id);
    }
  }
}

class H3Connection {
  readonly streams = new Map<number, RequestStream>();
  /** Request streams already answered and forgotten. */
  private readonly done = new Set<number>();
  private readonly uni = new Map<number, { type?: number; buf: Buffer; reader?: FrameReader }>();
  private timer?: NodeJS.Timeout;
  private scheduled = false;
  private controlOpen = false;
  private highestRequest = -4;
  /** Requests on streams at or above this id are refused (GOAWAY was sent). */
  private goawayId?: number;
  private readonly recvBuf = Buffer.allocUnsafe(RECV_CHUNK);
  closed = false;
  readonly conn: Connection;
  readonly ids: string[];
  readonly peer: Peer;
  private readonly server: Http3Server;

  constructor(conn: Connection, ids: string[], peer: Peer, server: Http3Server) {
    this.conn = conn;
    this.ids = ids;
    this.peer = peer;
    this.server = server;
  }

  /** Flushes packets on the next turn of the event loop, so several writes share datagrams. */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  afterRecv(): void {
    if (!this.controlOpen && (this.conn.isEstablished() || this.conn.isInEarlyData())) this.openControlStreams();
    for (const id of this.conn.readable()) this.read(id);
    this.flush();
  }

  private openControlStreams(): void {
    this.controlOpen = true;
    const settings = Buffer.concat([
      varint(Settings.QPACK_MAX_TABLE_CAPACITY),
      varint(0),
      varint(Settings.QPACK_BLOCKED_STREAMS),
      varint(0),
      varint(Settings.MAX_FIELD_SECTION_SIZE),
      varint(this.server.options.maxFieldSectionSize),
    ]);
    try {
      this.conn.streamSend(3, Buffer.concat([varint(StreamType.CONTROL), frame(FrameType.SETTINGS, settings)]), false);
      this.conn.streamSend(7, varint(StreamType.QPACK_ENCODER), false);
      this.conn.streamSend(11, varint(StreamType.QPACK_DECODER), false);
    } catch (error) {
      this.server.options.onError?.(error, 'open control streams');
    }
  }

  private read(id: number): void {
    for (;;) {
      let result: [number, boolean] | null;
      try {
        result = this.conn.streamRecv(id, this.recvBuf);
      } catch (error) {
        const code = errorCode(error, 'StreamReset');
        if (code !== undefined) this.onReset(id);
        return;
      }
      if (result === null) return;
      const [length, fin] = result;
      const data = Buffer.from(this.recvBuf.subarray(0, length));
      try {
        if (isClientBidi(id)) this.onRequestBytes(id, data, fin);
        else if (isClientUni(id)) this.onUniBytes(id, data);
      } catch (error) {
        const code = (error as { h3?: number }).h3 ?? (error instanceof QpackError ? error.code : H3Error.GENERAL_PROTOCOL_ERROR);
        this.fail(code, error instanceof Error ? error.message : String(error));
        return;
      }
      if (fin) return;
    }
  }

  private onRequestBytes(id: number, data: Buffer, fin: boolean): void {
    let stream = this.streams.get(id);
    if (!stream) {
      if (this.done.has(id)) return; // answered already; late body bytes are dropped
      if (this.goawayId !== undefined && id >= this.goawayId) {
        const refused = new RequestStream(id, this);
        refused.reset(H3Error.REQUEST_REJECTED);
        return;
      }
      stream = new RequestStream(id, this);
      this.streams.set(id, stream);
      this.highestRequest = Math.max(this.highestRequest, id);
    }
    if (stream.closed) return;
    if (data.length) stream.reader.push(data);
    if (fin) {
      stream.finReceived = true;
      if (!stream.req || !stream.reader.atBoundary) {
        stream.reset(H3Error.REQUEST_INCOMPLETE);
        stream.res?.destroy();
        return;
      }
      stream.req.finishBody();
    }
  }

  onRequestFrame(stream: RequestStream, f: Frame): void {
    switch (f.type) {
      case FrameType.HEADERS:
        if (stream.req) return; // trailers: accepted and ignored
        this.startRequest(stream, decodeFieldSection(f.payload, this.server.options.maxFieldSectionSize));
        return;
      case FrameType.SETTINGS:
      case FrameType.GOAWAY:
      case FrameType.MAX_PUSH_ID:
      case FrameType.CANCEL_PUSH:
      case FrameType.PUSH_PROMISE:
        throw Object.assign(new Error(`frame 0x${f.type.toString(16)} on a request stream`), { h3: H3Error.FRAME_UNEXPECTED });
      default:
        return; // unknown and reserved frame types are ignored (RFC 9114 9)
    }
  }

  private startRequest(stream: RequestStream, fields: [string, string][]): void {
    const early = this.conn.isInEarlyData();
    const req = new Http3Request(fields, this.peer, early);
    const res = new Http3Response(req, stream);
    stream.req = req;
    stream.res = res;
    const scheme = fields.find(([n]) => n === ':scheme')?.[1];
    if (!req.method || !req.url || (req.method !== 'CONNECT' && !scheme)) {
      stream.reset(H3Error.MESSAGE_ERROR);
      return;
    }
    const { options } = this.server;
    if (early && !options.allowEarlyDataReplay && !IDEMPOTENT.has(req.method)) {
      // RFC 8470: the request may be a replay; the client retries it after the handshake.
      options.onTooEarly?.(req);
      const tooEarly = new GatewayError(`${req.method} is not accepted in TLS early data (0-RTT); retry after the handshake`, { status: 425, type: 'ProcessingError' });
      answerError(res, tooEarly, req.headers['x-request-id']);
      req.resume();
      return;
    }
    try {
      options.onRequest(req, res);
    } catch (error) {
      options.onError?.(error, 'request handler');
      if (!res.headersSent) answerError(res, new GatewayError('internal error', { status: 500, type: 'InternalError' }), req.headers['x-request-id']);
      else res.destroy();
    }
  }

  private onReset(id: number): void {
    const stream = this.streams.get(id);
    if (stream) {
      stream.finReceived = true;
      stream.closed = true;
      stream.failPending(new Error('stream reset by the client'));
      if (stream.res && !stream.res.writableFinished) stream.res.destroy();
      else stream.req?.abort();
      try {
        this.conn.streamShutdown(id, Shutdown.Write, H3Error.REQUEST_CANCELLED);
      } catch {
        /* already finished */
      }
      this.forget(id);
    }
  }

  private onUniBytes(id: number, data: Buffer): void {
    let state = this.uni.get(id);
    if (!state) {
      state = { buf: Buffer.alloc(0) };
      this.uni.set(id, state);
    }
    if (state.type === undefined) {
      state.buf = Buffer.concat([state.buf, data]);
      const type = readVarint(state.buf, 0);
      if (!type) return;
      state.type = type.value;
      data = state.buf.subarray(type.next);
      state.buf = Buffer.alloc(0);
      if (state.type === StreamType.CONTROL) {
        state.reader = new FrameReader(
          (f) => this.onControlFrame(f),
          () => {
            throw Object.assign(new Error('DATA on the control stream'), { h3: H3Error.FRAME_UNEXPECTED });
          },
        );
      } else if (state.type === StreamType.PUSH) {
        throw Object.assign(new Error('push stream from a client'), { h3: H3Error.STREAM_CREATION_ERROR });
      }
    }
    // QPACK encoder/decoder streams carry nothing a zero-capacity table needs; unknown types are skipped.
    state.reader?.push(data);
  }

  private onControlFrame(f: Frame): void {
    if (f.type === FrameType.DATA || f.type === FrameType.HEADERS || f.type === FrameType.PUSH_PROMISE) {
      throw Object.assign(new Error('request frame on the control stream'), { h3: H3Error.FRAME_UNEXPECTED });
    }
    // SETTINGS: nothing the client can set changes what this server sends. GOAWAY: the client is
    // leaving; its open requests finish as usual.
  }

  /** Sends GOAWAY: requests already started finish, later streams are refused. */
  goaway(): void {
    if (this.goawayId !== undefined || this.closed) return;
    this.goawayId = this.highestRequest + 4;
    if (this.controlOpen) {
      try {
        this.conn.streamSend(3, frame(FrameType.GOAWAY, varint(this.goawayId)), false);
      } catch {
        /* control stream unavailable: closing will tell the client */
      }
    }
    this.schedule();
  }

  get busy(): boolean {
    for (const stream of this.streams.values()) if (stream.res && !stream.res.writableFinished && !stream.closed) return true;
    return false;
  }

  forget(id: number): void {
    this.streams.delete(id);
    this.done.add(id);
  }

  /** A connection error: close with an HTTP/3 application error code. */
  fail(code: number, reason: string): void {
    try {
      this.conn.close(true, code, Buffer.from(reason.slice(0, 100)));
    } catch {
      /* already closing */
    }
    this.flush();
  }

  close(code: number = H3Error.NO_ERROR): void {
    try {
      this.conn.close(true, code, Buffer.alloc(0));
    } catch {
      /* already closing */
    }
    this.flush();
  }

  flush(): void {
    if (this.closed) return;
    for (const stream of this.streams.values()) if (stream.out.length) stream.pump();
    for (;;) {
      const out = Buffer.allocUnsafe(DATAGRAM);
      let sent: ReturnType<Connection['send']>;
      try {
        sent = this.conn.send(out);
      } catch (error) {
        this.server.options.onError?.(error, 'send');
        break;
      }
      if (sent === null) break;
      const [length, info] = sent;
      this.server.sendPacket(out.subarray(0, length), info.to);
    }
    clearTimeout(this.timer);
    if (this.conn.isClosed()) {
      this.teardown();
      return;
    }
    const timeout = this.conn.timeout();
    if (timeout !== null) {
      this.timer = setTimeout(() => {
        this.conn.onTimeout();
        this.flush();
      }, timeout);
      this.timer.unref();
    }
  }

  /** The connection is gone (closed, timed out, or the server stopped): abort what it was doing. */
  teardown(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const stream of this.streams.values()) {
      stream.closed = true;
      stream.failPending(new Error('connection closed'));
      if (stream.res && !stream.res.writableFinished) stream.res.destroy();
      else stream.req?.abort();
    }
    this.streams.clear();
    this.server.removeConnection(this);
  }
}

export class Http3Server {
  private readonly config: Config;
  private readonly socket: dgram.Socket;
  private readonly connections = new Map<string, H3Connection>();
  private readonly cidKey = randomBytes(32);
  private local: Host = { host: '127.0.0.1', port: 0 };
  private draining = false;
  private socketClosed = false;
  private idle?: () => void;
  readonly options: Http3ServerOptions;

  constructor(options: Http3ServerOptions) {
    this.options = options;
    const config = new quiche.Config();
    config.loadCertChainFromPemFile(options.certFile);
    config.loadPrivKeyFromPemFile(options.keyFile);
    config.setApplicationProtos(['h3']);
    config.setMaxIdleTimeout(options.idleTimeoutMs);
    config.setMaxRecvUdpPayloadSize(DATAGRAM);
    config.setMaxSendUdpPayloadSize(DATAGRAM);
    const streamWindow = options.maxStreamWindow ?? 1024 * 1024;
    const connectionWindow = options.maxConnectionWindow ?? 16 * 1024 * 1024;
    config.setInitialMaxData(connectionWindow);
    config.setInitialMaxStreamDataBidiRemote(streamWindow);
    config.setInitialMaxStreamDataBidiLocal(streamWindow);
    config.setInitialMaxStreamDataUni(streamWindow);
    config.setMaxStreamWindow(Math.max(streamWindow, 6 * 1024 * 1024));
    config.setMaxConnectionWindow(Math.max(connectionWindow, 24 * 1024 * 1024));
    config.setInitialMaxStreamsBidi(options.maxBidiStreams);
    config.setInitialMaxStreamsUni(options.maxUniStreams);
    config.setDisableActiveMigration(true);
    if (options.enableEarlyData) config.enableEarlyData();
    this.config = config;
    // Cluster workers each bind their own socket on the shared port (SO_REUSEPORT): the kernel keeps a
    // client's datagrams on one worker, where its QUIC connection lives.
    this.socket = dgram.createSocket({
      type: options.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: options.udpReceiveBufferSize,
      reusePort: cluster.isWorker,
    });
    this.socket.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
    this.socket.on('error', (error) => options.onError?.(error, 'socket'));
  }

  async listen(): Promise<{ address: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind({ port: this.options.port, address: this.options.host, exclusive: cluster.isWorker }, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    const address = this.socket.address();
    this.local = { host: address.address, port: address.port };
    return { address: address.address, port: address.port };
  }

  /** Connection ids are derived from the client's first id, so a repeated Initial maps to one id. */
  private connectionId(clientDcid: Uint8Array): Buffer {
    return createHmac('sha256', this.cidKey).update(clientDcid).digest().subarray(0, quiche.MAX_CONN_ID_LEN);
  }

  private onPacket(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let header: ReturnType<typeof quiche.Header.fromSlice>;
    try {
      header = quiche.Header.fromSlice(msg, quiche.MAX_CONN_ID_LEN);
    } catch {
      return; // not QUIC
    }
    const from: Host = { host: rinfo.address, port: rinfo.port };
    let connection = this.connections.get(hex(header.dcid));
    if (!connection) {
      if (header.ty !== PacketType.Initial) return;
      if (!quiche.versionIsSupported(header.version)) {
        const out = Buffer.alloc(DATAGRAM);
        const length = quiche.negotiateVersion(header.scid, header.dcid, out);
        this.sendPacket(out.subarray(0, length), from);
        return;
      }
      if (this.draining || msg.length < quiche.MIN_CLIENT_INITIAL_LEN) return;
      const scid = this.connectionId(header.dcid);
      let conn: Connection;
      try {
        conn = quiche.Connection.accept(scid, null, this.local, from, this.config);
      } catch (error) {
        this.options.onError?.(error, 'accept');
        return;
      }
      const ids = [hex(scid), hex(header.dcid)];
      const peer: Peer = { remoteAddress: rinfo.address, remotePort: rinfo.port, localAddress: this.local.host, localPort: this.local.port };
      connection = new H3Connection(conn, ids, peer, this);
      for (const id of ids) this.connections.set(id, connection);
    }
    try {
      connection.conn.recv(msg, { from, to: this.local });
    } catch {
      // quiche dropped the packet (undecryptable, duplicate, ...); the connection carries on
    }
    connection.afterRecv();
  }

  sendPacket(packet: Buffer, to: Host): void {
    if (this.socketClosed) return;
    this.socket.send(packet, to.port, to.host, (error) => {
      if (error) this.options.onError?.(error, 'send');
    });
  }

  removeConnection(connection: H3Connection): void {
    for (const id of connection.ids) if (this.connections.get(id) === connection) this.connections.delete(id);
    if (this.connections.size === 0) this.idle?.();
  }

  private uniqueConnections(): H3Connection[] {
    return [...new Set(this.connections.values())];
  }

  /** Stops taking new connections and requests (GOAWAY); requests in flight carry on. */
  drain(): void {
    this.draining = true;
    for (const connection of this.uniqueConnections()) connection.goaway();
  }

  /** Waits up to `graceMs` for requests in flight, then closes every connection and the socket. */
  async close(graceMs = 10_000): Promise<void> {
    this.drain();
    const deadline = Date.now() + graceMs;
    while (this.uniqueConnections().some((c) => c.busy) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const open = this.uniqueConnections();
    if (open.length) {
      const gone = new Promise<void>((resolve) => (this.idle = resolve));
      for (const connection of open) connection.close();
      // Closing connections wait out the draining period; do not hold shutdown for it.
      await Promise.race([gone, new Promise((r) => setTimeout(r, 200))]);
    }
    for (const connection of this.uniqueConnections()) connection.teardown();
    this.socketClosed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

/** An answer given by the transport itself, before or instead of the router: still the spec's error JSON. */
function answerError(res: Http3Response, error: GatewayError, requestIdHeader: string | string[] | undefined): void {
  const requestId = requestIdFrom(requestIdHeader);
  const body = JSON.stringify(errorBody(error, requestId, 'hapax'));
  res.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'x-request-id': requestId });
  res.end(body);
}
