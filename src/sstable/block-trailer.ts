/**
 * Every block on disk is followed by a 5-byte trailer (docs/formats/sstable.md#block-trailer):
 *
 *   byte 0     compression type (0 = none; 1 = LZ, data blocks of format version 2 tables only)
 *   bytes 1-4  fixed32 masked CRC-32 of the stored block bytes followed by the type byte
 *
 * Covering the type byte means a flipped type is caught as a checksum error, not misread. The CRC
 * covers the bytes as stored (compressed, for type 1), so damage is caught before decompressing.
 */
import { assert } from '../util/assert.js';
import { crc32Of, maskCrc, unmaskCrc } from '../util/crc.js';
import { corruption } from '../base/errors.js';

export const BLOCK_TRAILER_BYTES = 5;
/** Compression types. On disk: never renumber. Only NONE exists in format version 1. */
export const COMPRESSION_NONE = 0;
/** The block is `varint uncompressedLength ++ LZ sequences` (lz-codec.ts). Format version 2. */
export const COMPRESSION_LZ = 1;

/**
 * Writes the trailer for the block in `buf[start, start + sizeBytes)` right after it, with
 * compression type `type`. Returns the offset after the trailer.
 */
export function putBlockTrailer(buf: Buffer, start: number, sizeBytes: number, type: number = COMPRESSION_NONE): number {
  const typeOffset = start + sizeBytes;
  assert(typeOffset + BLOCK_TRAILER_BYTES <= buf.length, 'no room for the block trailer');
  assert(type === COMPRESSION_NONE || type === COMPRESSION_LZ, 'unknown block compression type');
  buf[typeOffset] = type;
  const crc = maskCrc(crc32Of(buf, start, typeOffset + 1));
  buf.writeUInt32LE(crc, typeOffset + 1);
  return typeOffset + BLOCK_TRAILER_BYTES;
}

/**
 * Checks the trailer of the block held in `buf[start, start + sizeBytes)` (trailer right after it)
 * and returns its compression type: COMPRESSION_NONE or COMPRESSION_LZ (the caller decides whether
 * that type is allowed for this block). The block was read from `filePath` at `fileOffset`.
 * Throws CORRUPTION on a checksum mismatch or an unknown compression type.
 */
export function checkBlockTrailer(
  buf: Buffer,
  start: number,
  sizeBytes: number,
  filePath: string,
  fileOffset: number,
): number {
  const typeOffset = start + sizeBytes;
  assert(buf.length >= typeOffset + BLOCK_TRAILER_BYTES, 'buffer lacks the block trailer');
  const expected = unmaskCrc(buf.readUInt32LE(typeOffset + 1));
  const actual = crc32Of(buf, start, typeOffset + 1);
  if (actual !== expected) throw corruption(filePath, fileOffset, 'block checksum mismatch');
  const type = buf[typeOffset] as number;
  if (type !== COMPRESSION_NONE && type !== COMPRESSION_LZ) {
    const what = `unsupported block compression type ${type}`;
    throw corruption(filePath, fileOffset + sizeBytes, what);
  }
  return type;
}
