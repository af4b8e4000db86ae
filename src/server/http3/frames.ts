/** HTTP/3 wire pieces (RFC 9114): QUIC variable-length integers, frame and stream types, error codes. */

export const FrameType = {
  DATA: 0x00,
  HEADERS: 0x01,
  CANCEL_PUSH: 0x03,
  SETTINGS: 0x04,
  PUSH_PROMISE: 0x05,
  GOAWAY: 0x07,
  MAX_PUSH_ID: 0x0d,
} as const;

export const StreamType = { CONTROL: 0x00, PUSH: 0x01, QPACK_ENCODER: 0x02, QPACK_DECODER: 0x03 } as const;

export const Settings = {
  QPACK_MAX_TABLE_CAPACITY: 0x01,
  MAX_FIELD_SECTION_SIZE: 0x06,
  QPACK_BLOCKED_STREAMS: 0x07,
} as const;

export const H3Error = {
  NO_ERROR: 0x100,
  GENERAL_PROTOCOL_ERROR: 0x101,
  INTERNAL_ERROR: 0x102,
  STREAM_CREATION_ERROR: 0x103,
  CLOSED_CRITICAL_STREAM: 0x104,
  FRAME_UNEXPECTED: 0x105,
  FRAME_ERROR: 0x106,
  EXCESSIVE_LOAD: 0x107,
  ID_ERROR: 0x108,
  SETTINGS_ERROR: 0x109,
  MISSING_SETTINGS: 0x10a,
  REQUEST_REJECTED: 0x10b,
  REQUEST_CANCELLED: 0x10c,
  REQUEST_INCOMPLETE: 0x10d,
  MESSAGE_ERROR: 0x10e,
  VERSION_FALLBACK: 0x110,
} as const;

/** Reads a variable-length integer at `offset`; undefined when the buffer ends first. */
export function readVarint(buf: Uint8Array, offset: number): { value: number; next: number } | undefined {
  if (offset >= buf.length) return undefined;
  const first = buf[offset];
  const length = 1 << (first >> 6);
  if (offset + length > buf.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + buf[offset + i];
  return { value, next: offset + length };
}

export function varint(value: number): Buffer {
  if (value < 0x40) return Buffer.from([value]);
  if (value < 0x4000) return Buffer.from([0x40 | (value >> 8), value & 0xff]);
  if (value < 0x40000000) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    b[0] |= 0x80;
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(value));
  b[0] |= 0xc0;
  return b;
}

export function frame(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([varint(type), varint(payload.length), payload]);
}

/** A frame's header and payload once all of it has arrived. */
export interface Frame {
  type: number;
  payload: Buffer;
}

/**
 * Splits a stream's bytes into frames as they arrive. A frame larger than `maxFrame` is refused: DATA
 * frames are handed over in pieces instead (`onData`), so a large body never has to sit in one buffer.
 */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  /** Bytes of a DATA frame still to come, passed through as they arrive. */
  private dataLeft = 0;
  private readonly onFrame: (frame: Frame) => void;
  private readonly onData: (chunk: Buffer) => void;
  private readonly maxFrame: number;

  constructor(onFrame: (frame: Frame) => void, onData: (chunk: Buffer) => void, maxFrame = 256 * 1024) {
    this.onFrame = onFrame;
    this.onData = onData;
    this.maxFrame = maxFrame;
  }

  push(chunk: Buffer): void {
    let buf = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    for (;;) {
      if (this.dataLeft > 0) {
        if (buf.length === 0) break;
        const piece = buf.subarray(0, Math.min(this.dataLeft, buf.length));
        this.dataLeft -= piece.length;
        buf = buf.subarray(piece.length);
        this.onData(piece);
        continue;
      }
      const type = readVarint(buf, 0);
      if (!type) break;
      const length = readVarint(buf, type.next);
      if (!length) break;
      if (type.value === FrameType.DATA) {
        this.dataLeft = length.value;
        buf = buf.subarray(length.next);
        continue;
      }
      if (length.value > this.maxFrame) throw Object.assign(new Error('frame too large'), { h3: H3Error.EXCESSIVE_LOAD });
      const end = length.next + length.value;
      if (buf.length < end) break;
      this.onFrame({ type: type.value, payload: Buffer.from(buf.subarray(length.next, end)) });
      buf = buf.subarray(end);
    }
    this.buffered = Buffer.from(buf);
  }

  /** True when the stream ended cleanly between frames. */
  get atBoundary(): boolean {
    return this.buffered.length === 0 && this.dataLeft === 0;
  }
}
