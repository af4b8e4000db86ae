/**
 * Request bodies sent with `Content-Encoding`: gzip, deflate, br and zstd are decoded with node:zlib
 * (nothing to hand-write); an encoding outside that list is refused at once with 415 naming the list.
 * The size limit is the caller's business (body.ts counts the decoded bytes and stops the decoder).
 */
import { createBrotliDecompress, createGunzip, createInflate, createZstdDecompress } from 'node:zlib';
import type { Transform } from 'node:stream';
import { GatewayError } from '../core/errors.ts';

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  // HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2), which createInflate reads.
  deflate: createInflate,
  br: createBrotliDecompress,
  zstd: createZstdDecompress,
};

export const SUPPORTED_ENCODINGS = 'gzip, deflate, br, zstd';

/**
 * The decoders for a Content-Encoding header, in the order to apply them (the header lists the codings
 * in the order the sender applied them, so the last is undone first). Empty for none or `identity`.
 * Throws a 415 GatewayError for a coding it does not know.
 */
const NONE: Array<() => Transform> = [];

export function decodersFor(header: string | undefined): Array<() => Transform> {
  if (header === undefined || header === '' || header === 'identity') return NONE;
  const codings = header.toLowerCase().split(',').map((coding) => coding.trim()).filter((coding) => coding !== '' && coding !== 'identity');
  const decoders: Array<() => Transform> = [];
  for (let i = codings.length - 1; i >= 0; i--) {
    const decoder = DECODERS[codings[i]];
    if (!decoder) {
      throw new GatewayError(`unsupported content-encoding ${codings[i].slice(0, 40)}: send the body uncompressed or as ${SUPPORTED_ENCODINGS}`, {
        status: 415,
        type: 'ValidationError',
        details: { field: 'content-encoding', supported: SUPPORTED_ENCODINGS.split(', ') },
      });
    }
    decoders.push(decoder);
  }
  return decoders;
}

export function corruptBody(header: string, cause: unknown): GatewayError {
  return new GatewayError(`request body could not be decoded as ${header.slice(0, 40)}: ${(cause as Error).message}`, {
    status: 400,
    type: 'ValidationError',
    details: { field: 'content-encoding' },
  });
}
