/**
 * A block handle locates a block inside an SSTable: its file offset and its size in bytes, not
 * counting the 5-byte trailer that follows it (docs/formats/sstable.md#block-handles). Index block
 * values are handles encoded as two varints; the footer stores handles as fixed64 pairs.
 */
import { assert } from '../util/assert.js';
import { getVarint, putVarint } from '../util/coding.js';
import { corruption } from '../base/errors.js';

/** Two varints of a value below 2^53 take at most 8 bytes each (getVarint's limit). */
export const BLOCK_HANDLE_BYTES_MAX = 16;

export interface BlockHandle {
  offset: number;
  sizeBytes: number;
}

/** Encodes `offset, sizeBytes` as two varints at `off`; returns the offset after them. */
export function putBlockHandle(
  buf: Buffer,
  off: number,
  offset: number,
  sizeBytes: number,
): number {
  assert(offset >= 0 && sizeBytes >= 0, 'block handle fields must be non-negative');
  off = putVarint(buf, off, offset);
  return putVarint(buf, off, sizeBytes);
}

/**
 * Decodes a varint handle from `buf[start, end)` into `out` (no allocation). The handle must use
 * the whole range. Throws CORRUPTION naming `filePath` and `fileOffset` (where the range lives).
 */
export function getBlockHandle(
  buf: Buffer,
  start: number,
  end: number,
  out: BlockHandle,
  filePath: string,
  fileOffset: number,
): void {
  let d = getVarint(buf, start, end);
  if (d.next < 0) throw corruption(filePath, fileOffset, 'bad block handle offset');
  const offset = d.value;
  d = getVarint(buf, d.next, end);
  if (d.next !== end) throw corruption(filePath, fileOffset, 'bad block handle size');
  out.offset = offset;
  out.sizeBytes = d.value;
}
