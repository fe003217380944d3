/**
 * The fixed-size footer at the end of every SSTable (docs/formats/sstable.md#footer). A reader
 * finds everything else from it. Layout (64 bytes, little-endian):
 *
 *   0   fixed64 filter block offset     8   fixed64 filter block size
 *   16  fixed64 meta block offset       24  fixed64 meta block size
 *   32  fixed64 index block offset      40  fixed64 index block size
 *   48  fixed32 format version (1, 2)   52  fixed32 masked CRC-32 of bytes [0, 52)
 *   56  magic "LTNGSST1" (8 bytes)
 *
 * The magic comes last so that a file can be identified from its final bytes; the version is
 * checked before the CRC so that a future layout is reported as unsupported, not as garbage.
 */
import { assert } from '../util/assert.js';
import { getFixed64, putFixed64 } from '../util/coding.js';
import { crc32Of, maskCrc, unmaskCrc } from '../util/crc.js';
import { corruption } from '../base/errors.js';
import { BLOCK_TRAILER_BYTES } from './block-trailer.js';
import type { BlockHandle } from './block-handle.js';

export const FOOTER_BYTES = 64;
/**
 * Table format versions. On disk: a new layout gets a new number; readers keep reading old ones.
 * Version 1: every block is stored raw. Version 2: the same layout, but data blocks may be stored
 * LZ-compressed (block trailer type 1). A writer uses version 2 only for a table that has at least
 * one compressed block, so tables without any stay readable by version-1-only readers, and such a
 * reader rejects a table with compressed blocks at open ("unsupported version") instead of failing
 * later, block by block, with checksum-valid blocks it calls corrupt.
 */
export const TABLE_FORMAT_VERSION_1 = 1;
export const TABLE_FORMAT_VERSION_2 = 2;
/** The newest version: readers accept 1 up to this. */
export const TABLE_FORMAT_VERSION = TABLE_FORMAT_VERSION_2;
export const TABLE_MAGIC = Buffer.from('LTNGSST1', 'latin1');

const VERSION_OFFSET = 48;
const CRC_OFFSET = 52;
const MAGIC_OFFSET = 56;

export interface Footer {
  filter: BlockHandle;
  meta: BlockHandle;
  index: BlockHandle;
  /** Table format version (TABLE_FORMAT_VERSION_1 or _2). */
  version: number;
}

/** Writes the footer into `buf` at `off`; returns the offset after it. */
export function putFooter(buf: Buffer, off: number, footer: Footer): number {
  assert(off + FOOTER_BYTES <= buf.length, 'no room for the footer');
  assert(footer.version >= TABLE_FORMAT_VERSION_1 && footer.version <= TABLE_FORMAT_VERSION, 'unknown table format version');
  putFixed64(buf, off, footer.filter.offset);
  putFixed64(buf, off + 8, footer.filter.sizeBytes);
  putFixed64(buf, off + 16, footer.meta.offset);
  putFixed64(buf, off + 24, footer.meta.sizeBytes);
  putFixed64(buf, off + 32, footer.index.offset);
  putFixed64(buf, off + 40, footer.index.sizeBytes);
  buf.writeUInt32LE(footer.version, off + VERSION_OFFSET);
  buf.writeUInt32LE(maskCrc(crc32Of(buf, off, off + CRC_OFFSET)), off + CRC_OFFSET);
  TABLE_MAGIC.copy(buf, off + MAGIC_OFFSET);
  return off + FOOTER_BYTES;
}

/**
 * Decodes and checks the footer held in `buf` (exactly FOOTER_BYTES), read from `filePath` at
 * `footerOffset` (= file size - FOOTER_BYTES). Checks magic, version, CRC, and that every handle
 * lies before the footer in the order filter < meta < index. Throws CORRUPTION otherwise.
 */
export function decodeFooter(buf: Buffer, filePath: string, footerOffset: number): Footer {
  assert(buf.length === FOOTER_BYTES, 'footer buffer has the wrong size');
  if (!buf.subarray(MAGIC_OFFSET).equals(TABLE_MAGIC)) {
    throw corruption(filePath, footerOffset + MAGIC_OFFSET, 'bad table magic (not an SSTable)');
  }
  const version = buf.readUInt32LE(VERSION_OFFSET);
  if (version < TABLE_FORMAT_VERSION_1 || version > TABLE_FORMAT_VERSION) {
    const what = `unsupported table format version ${version}`;
    throw corruption(filePath, footerOffset + VERSION_OFFSET, what);
  }
  if (unmaskCrc(buf.readUInt32LE(CRC_OFFSET)) !== crc32Of(buf, 0, CRC_OFFSET)) {
    throw corruption(filePath, footerOffset + CRC_OFFSET, 'footer checksum mismatch');
  }
  const footer: Footer = {
    filter: { offset: getFixed64(buf, 0), sizeBytes: getFixed64(buf, 8) },
    meta: { offset: getFixed64(buf, 16), sizeBytes: getFixed64(buf, 24) },
    index: { offset: getFixed64(buf, 32), sizeBytes: getFixed64(buf, 40) },
    version,
  };
  const filterEnd = footer.filter.offset + footer.filter.sizeBytes + BLOCK_TRAILER_BYTES;
  const metaEnd = footer.meta.offset + footer.meta.sizeBytes + BLOCK_TRAILER_BYTES;
  const indexEnd = footer.index.offset + footer.index.sizeBytes + BLOCK_TRAILER_BYTES;
  const ordered =
    filterEnd <= footer.meta.offset && metaEnd <= footer.index.offset && indexEnd === footerOffset;
  if (!ordered) throw corruption(filePath, footerOffset, 'footer block handles out of range');
  return footer;
}
