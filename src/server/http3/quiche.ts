/**
 * quiche, Cloudflare's QUIC library, as the prebuilt N-API module published in `@matrixai/quic-linux-x64`.
 * Only the native module is used (none of @matrixai/quic's JavaScript layer), so Hapax depends on that
 * package alone and declares here the part of its surface the HTTP/3 server calls. The package is an
 * optional dependency: npm installs it on Linux x64 only, and anywhere else HTTP/3 refuses to start with
 * the reason instead of failing at install.
 */
import { createRequire } from 'node:module';

/** A UDP address as quiche takes and gives it. */
export interface Host {
  host: string;
  port: number;
}

export interface Config {
  loadCertChainFromPemFile(file: string): void;
  loadPrivKeyFromPemFile(file: string): void;
  setApplicationProtos(protos: string[]): void;
  setMaxIdleTimeout(ms: number): void;
  setMaxRecvUdpPayloadSize(size: number): void;
  setMaxSendUdpPayloadSize(size: number): void;
  setInitialMaxData(bytes: number): void;
  setInitialMaxStreamDataBidiLocal(bytes: number): void;
  setInitialMaxStreamDataBidiRemote(bytes: number): void;
  setInitialMaxStreamDataUni(bytes: number): void;
  setInitialMaxStreamsBidi(count: number): void;
  setInitialMaxStreamsUni(count: number): void;
  setMaxStreamWindow(bytes: number): void;
  setMaxConnectionWindow(bytes: number): void;
  setDisableActiveMigration(disable: boolean): void;
  enableEarlyData(): void;
}

export interface Connection {
  /** Feeds one received datagram; returns the bytes read. Throws on a fatal packet. */
  recv(data: Uint8Array, info: { from: Host; to: Host }): number;
  /** Writes the next outgoing packet into `data`: [length, where to], or null when there is nothing to send. */
  send(data: Uint8Array): [number, { from: Host; to: Host; at: object }] | null;
  /** Reads stream data into `data`: [length, fin], or null when nothing is readable. */
  streamRecv(streamId: number, data: Uint8Array): [number, boolean] | null;
  /** Queues stream data; returns how much was taken (flow control), or null when the stream is done. */
  streamSend(streamId: number, data: Uint8Array, fin: boolean): number | null;
  streamShutdown(streamId: number, direction: Shutdown, errorCode: number): void | null;
  /** The stream ids with data to read. */
  readable(): Iterable<number>;
  /** Milliseconds until onTimeout() is due, or null. */
  timeout(): number | null;
  onTimeout(): void;
  close(app: boolean, errorCode: number, reason: Uint8Array): void | null;
  isEstablished(): boolean;
  isInEarlyData(): boolean;
  isClosed(): boolean;
}

export interface Header {
  ty: PacketType;
  version: number;
  dcid: Uint8Array;
  scid: Uint8Array;
}

/** Which side of a stream streamShutdown() ends (quiche's `Shutdown`). */
export const Shutdown = { Read: 0, Write: 1 } as const;
export type Shutdown = (typeof Shutdown)[keyof typeof Shutdown];

/** Long-header packet types (quiche's `Type`); only Initial matters to a server accepting connections. */
export const PacketType = { Initial: 0 } as const;
export type PacketType = number;

interface QuicheBinding {
  Config: new () => Config;
  Connection: { accept(scid: Uint8Array, odcid: Uint8Array | null, local: Host, peer: Host, config: Config): Connection };
  Header: { fromSlice(data: Uint8Array, dcidLength: number): Header };
  versionIsSupported(version: number): boolean;
  /** Writes a version negotiation packet into `out`; returns its length. */
  negotiateVersion(scid: Uint8Array, dcid: Uint8Array, out: Uint8Array): number;
  MAX_CONN_ID_LEN: number;
  MAX_DATAGRAM_SIZE: number;
  MIN_CLIENT_INITIAL_LEN: number;
}

const BINDING = '@matrixai/quic-linux-x64';

/** Loads the binding; the error says why HTTP/3 cannot run here. */
function loadQuiche(): QuicheBinding {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`server.http3 needs the QUIC binding ${BINDING}, which exists for Linux x64 only (this is ${process.platform} ${process.arch})`);
  }
  try {
    return createRequire(import.meta.url)(BINDING) as QuicheBinding;
  } catch (error) {
    throw new Error(`server.http3 needs the QUIC binding ${BINDING}: ${(error as Error).message} (npm ci installs it on Linux x64)`, { cause: error });
  }
}

export const quiche = loadQuiche();
