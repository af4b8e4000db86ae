/**
 * QPACK (RFC 9204) as far as an HTTP/3 server needs it when it announces a dynamic table capacity of 0:
 * the static table, prefixed integers, string literals with Huffman decoding (RFC 7541 Appendix B), and
 * an encoder that writes static-table references and plain literals. A peer may then never reference
 * a dynamic table, so a field section decodes on its own, with no encoder/decoder stream state.
 */

export class QpackError extends Error {
  readonly code = 0x200; // QPACK_DECOMPRESSION_FAILED
}

/** RFC 9204 Appendix A, index 0-98. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':path', '/'],
  ['age', '0'],
  ['content-disposition', ''],
  ['content-length', '0'],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['referer', ''],
  ['set-cookie', ''],
  [':method', 'CONNECT'],
  [':method', 'DELETE'],
  [':method', 'GET'],
  [':method', 'HEAD'],
  [':method', 'OPTIONS'],
  [':method', 'POST'],
  [':method', 'PUT'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '103'],
  [':status', '200'],
  [':status', '304'],
  [':status', '404'],
  [':status', '503'],
  ['accept', '*/*'],
  ['accept', 'application/dns-message'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['accept-ranges', 'bytes'],
  ['access-control-allow-headers', 'cache-control'],
  ['access-control-allow-headers', 'content-type'],
  ['access-control-allow-origin', '*'],
  ['cache-control', 'max-age=0'],
  ['cache-control', 'max-age=2592000'],
  ['cache-control', 'max-age=604800'],
  ['cache-control', 'no-cache'],
  ['cache-control', 'no-store'],
  ['cache-control', 'public, max-age=31536000'],
  ['content-encoding', 'br'],
  ['content-encoding', 'gzip'],
  ['content-type', 'application/dns-message'],
  ['content-type', 'application/javascript'],
  ['content-type', 'application/json'],
  ['content-type', 'application/x-www-form-urlencoded'],
  ['content-type', 'image/gif'],
  ['content-type', 'image/jpeg'],
  ['content-type', 'image/png'],
  ['content-type', 'text/css'],
  ['content-type', 'text/html; charset=utf-8'],
  ['content-type', 'text/plain'],
  ['content-type', 'text/plain;charset=utf-8'],
  ['range', 'bytes=0-'],
  ['strict-transport-security', 'max-age=31536000'],
  ['strict-transport-security', 'max-age=31536000; includesubdomains'],
  ['strict-transport-security', 'max-age=31536000; includesubdomains; preload'],
  ['vary', 'accept-encoding'],
  ['vary', 'origin'],
  ['x-content-type-options', 'nosniff'],
  ['x-xss-protection', '1; mode=block'],
  [':status', '100'],
  [':status', '204'],
  [':status', '206'],
  [':status', '302'],
  [':status', '400'],
  [':status', '403'],
  [':status', '421'],
  [':status', '425'],
  [':status', '500'],
  ['accept-language', ''],
  ['access-control-allow-credentials', 'FALSE'],
  ['access-control-allow-credentials', 'TRUE'],
  ['access-control-allow-headers', '*'],
  ['access-control-allow-methods', 'get'],
  ['access-control-allow-methods', 'get, post, options'],
  ['access-control-allow-methods', 'options'],
  ['access-control-expose-headers', 'content-length'],
  ['access-control-request-headers', 'content-type'],
  ['access-control-request-method', 'get'],
  ['access-control-request-method', 'post'],
  ['alt-svc', 'clear'],
  ['authorization', ''],
  ['content-security-policy', "script-src 'none'; object-src 'none'; base-uri 'none'"],
  ['early-data', '1'],
  ['expect-ct', ''],
  ['forwarded', ''],
  ['if-range', ''],
  ['origin', ''],
  ['purpose', 'prefetch'],
  ['server', ''],
  ['timing-allow-origin', '*'],
  ['upgrade-insecure-requests', '1'],
  ['user-agent', ''],
  ['x-forwarded-for', ''],
  ['x-frame-options', 'deny'],
  ['x-frame-options', 'sameorigin'],
];

const EXACT = new Map<string, number>();
const BY_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], index) => {
  EXACT.set(`${name}\0${value}`, index);
  if (!BY_NAME.has(name)) BY_NAME.set(name, index);
});

// ---------------------------------------------------------------------------------------------------
// Huffman (RFC 7541 Appendix B). The code is canonical: codes follow from the bit lengths alone, in
// order of (length, symbol). One letter per symbol 0-256 (EOS): 'A' = 5 bits, 'B' = 6 bits, ...

const HUFFMAN_LENGTHS =
  'ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ';
const EOS = 256;

interface HuffmanNode {
  symbol?: number;
  zero?: HuffmanNode;
  one?: HuffmanNode;
}

const HUFFMAN_ROOT: HuffmanNode = buildHuffmanTree();

function buildHuffmanTree(): HuffmanNode {
  const lengths = [...HUFFMAN_LENGTHS].map((c) => c.charCodeAt(0) - 65 + 5);
  const order = lengths.map((_, symbol) => symbol).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const root: HuffmanNode = {};
  let code = 0n;
  let previous = lengths[order[0]];
  order.forEach((symbol, i) => {
    const length = lengths[symbol];
    if (i > 0) code = (code + 1n) << BigInt(length - previous);
    previous = length;
    let node = root;
    for (let bit = length - 1; bit >= 0; bit--) {
      const key = (code >> BigInt(bit)) & 1n ? 'one' : 'zero';
      node = node[key] ??= {};
    }
    node.symbol = symbol;
  });
  return root;
}

export function huffmanDecode(input: Uint8Array): string {
  const out: number[] = [];
  let node = HUFFMAN_ROOT;
  let pending = 0; // bits read since the last whole symbol
  let allOnes = true;
  for (const byte of input) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >> bit) & 1;
      const next = one ? node.one : node.zero;
      if (!next) throw new QpackError('invalid Huffman code');
      pending++;
      allOnes &&= one === 1;
      if (next.symbol !== undefined) {
        if (next.symbol === EOS) throw new QpackError('EOS in a Huffman string');
        out.push(next.symbol);
        node = HUFFMAN_ROOT;
        pending = 0;
        allOnes = true;
      } else node = next;
    }
  }
  // Padding: at most 7 bits, all ones (a prefix of EOS).
  if (pending > 7 || !allOnes) throw new QpackError('invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}

// ---------------------------------------------------------------------------------------------------
// Prefixed integers and string literals (RFC 7541 5.1, 5.2 as used by RFC 9204 4.1)

class Reader {
  offset = 0;
  readonly buf: Uint8Array;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  get done(): boolean {
    return this.offset >= this.buf.length;
  }

  peek(): number {
    if (this.done) throw new QpackError('truncated field section');
    return this.buf[this.offset];
  }

  integer(prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = this.peek() & max;
    this.offset++;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      const byte = this.peek();
      this.offset++;
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) break;
      shift += 7;
      if (shift > 49) throw new QpackError('integer too large');
    }
    return value;
  }

  /** A string literal whose H bit is the bit above the `prefixBits`-bit length. */
  string(prefixBits: number): string {
    const huffman = (this.peek() >> prefixBits) & 1;
    const length = this.integer(prefixBits);
    if (this.offset + length > this.buf.length) throw new QpackError('truncated string literal');
    const bytes = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return huffman ? huffmanDecode(bytes) : Buffer.from(bytes).toString('latin1');
  }
}

function staticEntry(index: number): readonly [string, string] {
  const entry = STATIC_TABLE[index];
  if (!entry) throw new QpackError(`static table index ${index} out of range`);
  return entry;
}

/**
 * Decodes one field section. Only static references and literals are accepted: the server announced
 * SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0, so a dynamic reference is a protocol error.
 */
export function decodeFieldSection(block: Uint8Array, maxSize = 64 * 1024): [string, string][] {
  const r = new Reader(block);
  const requiredInsertCount = r.integer(8);
  r.integer(7); // sign bit and delta base: meaningless without a dynamic table
  if (requiredInsertCount !== 0) throw new QpackError('dynamic table reference (capacity is 0)');
  const fields: [string, string][] = [];
  let size = 0;
  while (!r.done) {
    const first = r.peek();
    let name: string;
    let value: string;
    if (first & 0x80) {
      // Indexed field line: 1 T index(6)
      if (!(first & 0x40)) throw new QpackError('dynamic table reference');
      [name, value] = staticEntry(r.integer(6));
    } else if (first & 0x40) {
      // Literal with name reference: 0 1 N T index(4)
      if (!(first & 0x10)) throw new QpackError('dynamic table reference');
      name = staticEntry(r.integer(4))[0];
      value = r.string(7);
    } else if (first & 0x20) {
      // Literal with literal name: 0 0 1 N H length(3)
      name = r.string(3);
      value = r.string(7);
    } else {
      throw new QpackError('post-base reference (capacity is 0)');
    }
    size += name.length + value.length + 32;
    if (size > maxSize) throw new QpackError('field section too large');
    fields.push([name, value]);
  }
  return fields;
}

function writeInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  value -= max;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function writeString(out: number[], text: string, prefixBits: number, flags: number): void {
  const bytes = Buffer.from(text, 'latin1');
  writeInteger(out, bytes.length, prefixBits, flags); // H = 0: no Huffman on the way out
  for (const b of bytes) out.push(b);
}

/** Encodes a field section with static references where they match and plain literals otherwise. */
export function encodeFieldSection(fields: Iterable<readonly [string, string]>): Buffer {
  const out: number[] = [0, 0]; // Required Insert Count 0, Delta Base 0
  for (const [name, value] of fields) {
    const exact = EXACT.get(`${name}\0${value}`);
    if (exact !== undefined) {
      writeInteger(out, exact, 6, 0xc0);
      continue;
    }
    const byName = BY_NAME.get(name);
    if (byName !== undefined) {
      writeInteger(out, byName, 4, 0x50);
      writeString(out, value, 7, 0x00);
    } else {
      writeString(out, name, 3, 0x20);
      writeString(out, value, 7, 0x00);
    }
  }
  return Buffer.from(out);
}
