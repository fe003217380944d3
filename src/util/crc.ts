import { crc32 } from 'node:zlib';

/**
 * CRC-32 (zlib polynomial) of `buf[start, end)`. Stored CRCs are "masked" as LevelDB does, so that
 * a CRC computed over bytes that themselves contain a CRC does not degenerate.
 */
export function crc32Of(buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
}

/** Continue a CRC over more bytes. */
export function crc32Extend(crc: number, buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32(start === 0 && end === buf.length ? buf : buf.subarray(start, end), crc);
}

const MASK_DELTA = 0xa282ead8;

export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
