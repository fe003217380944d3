/**
 * Reviewer reference (session 19): BlockPointSearch as it was before commit cf96e60 (every key
 * compared with the target from byte 0, no touchLines), copied verbatim but for the import paths
 * and this comment. The new search must answer exactly as this one does, on good and bad blocks.
 */
/**
 * Point lookups inside one data block (docs/formats/sstable.md#block-format): the read path's
 * version of BlockIterator.seekGE, kept separate because a get needs much less than an iterator.
 *
 * It finds the first entry whose internal key is >= a target and reports only that entry: its key
 * (rebuilt in one reusable buffer) and where its value lies in the block. No iterator state is kept
 * for a next step, no view of the key or value is created, and the restart array is read directly,
 * which makes a cached lookup's block search about twice as fast as the iterator's.
 *
 * Like BlockIterator it trusts nothing: every length and restart point is bounds-checked, a bad
 * block raises CORRUPTION (never a RangeError or an endless loop; every step moves forward).
 */
import { corruption } from '../../src/base/errors.js';
import { compareInternalKeyRanges, TRAILER_BYTES } from '../../src/base/internal-key.js';
import { getFixed32, getVarint } from '../../src/util/coding.js';
import { lzErrorMessage, type LzPrefixDecoder } from '../../src/sstable/lz-codec.js';

const RESTART_BYTES = 4;
/** Longest entry header: three varints of up to 5 bytes. */
const ENTRY_HEADER_BYTES_MAX = 15;

export class BlockPointSearch {
  /** The key of the entry found last: keyBuffer[0, keyLength). Valid until the next seekGE. */
  keyBuffer: Buffer = Buffer.allocUnsafeSlow(64);
  keyLength = 0;
  /** The found entry's value: block[valueStart, valueEnd) of the block searched last. */
  valueStart = 0;
  valueEnd = 0;

  /**
   * Finds the first entry of `block` (read from `path` at `blockOffset`) whose key is >= `target`
   * (an internal key that is not a view of keyBuffer). Returns false if every key is below it.
   * Throws CORRUPTION if the block is malformed.
   */
  seekGE(block: Buffer, target: Buffer, path: string, blockOffset: number): boolean {
    const n = block.length;
    if (n < RESTART_BYTES) throw corruption(path, blockOffset, 'block too small for its restart count');
    const count = getFixed32(block, n - RESTART_BYTES);
    if (count === 0 || count > (n - RESTART_BYTES) / RESTART_BYTES) {
      throw corruption(path, blockOffset + n - RESTART_BYTES, 'bad block restart count');
    }
    const limit = n - RESTART_BYTES - count * RESTART_BYTES;
    const targetLength = target.length;
    // The last restart point whose key is < target (or 0). Keys at restart points are stored whole.
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      const at = restartPoint(block, limit, mid, path, blockOffset);
      if (this.compareRestartKey(block, at, limit, target, path, blockOffset) < 0) lo = mid;
      else hi = mid - 1;
    }
    // Scan forward from there: the answer is in this restart region or is the next region's first.
    let off = restartPoint(block, limit, lo, path, blockOffset);
    let keyLength = 0;
    let key = this.keyBuffer;
    while (off < limit) {
      let p = decodeEntryHeader(block, off, limit, path, blockOffset);
      const shared = headerShared;
      const unshared = headerUnshared;
      const valueLength = headerValueLength;
      if (shared > keyLength) throw corruption(path, blockOffset + off, 'block entry shares more than the previous key');
      if (p + unshared + valueLength > limit) throw corruption(path, blockOffset + off, 'block entry overruns the block');
      const length = shared + unshared;
      if (length < TRAILER_BYTES) throw corruption(path, blockOffset + off, 'block key shorter than an internal key trailer');
      if (length > key.length) key = this.grow(length, keyLength);
      for (let i = 0; i < unshared; i++) key[shared + i] = block[p + i] as number;
      keyLength = length;
      p += unshared;
      if (compareInternalKeyRanges(key, 0, length, target, 0, targetLength) >= 0) {
        this.keyLength = length;
        this.valueStart = p;
        this.valueEnd = p + valueLength;
        return true;
      }
      off = p + valueLength;
    }
    this.keyLength = 0;
    return false;
  }

  /**
   * seekGE for a compressed block that `decoder` is decoding into `block` (from offset 0): decodes
   * only as far as the entry it finds. Without the restart array (the block's end) it scans from
   * the first entry; the restart array announces itself, because its first point is 0, which reads
   * as an entry with an empty key (no real entry has one). Throws CORRUPTION if the block is
   * malformed or does not decode.
   */
  seekGEInPrefix(decoder: LzPrefixDecoder, block: Buffer, target: Buffer, path: string, blockOffset: number): boolean {
    const total = decoder.length;
    // Entries end before the restart array: its count and at least one point.
    const limit = total - 2 * RESTART_BYTES;
    if (limit < 0) throw corruption(path, blockOffset, 'block too small for its restart count');
    const targetLength = target.length;
    let available = decoder.decoded;
    let keyLength = 0;
    let key = this.keyBuffer;
    let off = 0;
    while (off < limit) {
      if (available < off + ENTRY_HEADER_BYTES_MAX && available < total) available = extendOrFail(decoder, off + ENTRY_HEADER_BYTES_MAX, path, blockOffset);
      const end = available < limit ? available : limit;
      let p = decodeEntryHeader(block, off, end, path, blockOffset);
      const shared = headerShared;
      const unshared = headerUnshared;
      const valueLength = headerValueLength;
      if (shared === 0 && unshared === 0) break; // the restart array: every key is below target
      if (shared > keyLength) throw corruption(path, blockOffset + off, 'block entry shares more than the previous key');
      const next = p + unshared + valueLength;
      if (next > limit) throw corruption(path, blockOffset + off, 'block entry overruns the block');
      if (available < next) available = extendOrFail(decoder, next, path, blockOffset);
      const length = shared + unshared;
      if (length < TRAILER_BYTES) throw corruption(path, blockOffset + off, 'block key shorter than an internal key trailer');
      if (length > key.length) key = this.grow(length, keyLength);
      for (let i = 0; i < unshared; i++) key[shared + i] = block[p + i] as number;
      keyLength = length;
      p += unshared;
      if (compareInternalKeyRanges(key, 0, length, target, 0, targetLength) >= 0) {
        this.keyLength = length;
        this.valueStart = p;
        this.valueEnd = p + valueLength;
        return true;
      }
      off = next;
    }
    this.keyLength = 0;
    return false;
  }

  /** Compares the whole key stored at restart point offset `at` with target, in place. */
  private compareRestartKey(block: Buffer, at: number, limit: number, target: Buffer, path: string, blockOffset: number): number {
    let unshared: number;
    let keyStart: number;
    const b1 = at + 1 < limit ? (block[at + 1] as number) : 0x80;
    const b2 = at + 2 < limit ? (block[at + 2] as number) : 0x80;
    if (block[at] === 0 && (b1 | b2) < 0x80) {
      unshared = b1;
      keyStart = at + 3;
    } else {
      let d = getVarint(block, at, limit);
      if (d.next < 0 || d.value !== 0) throw corruption(path, blockOffset + at, 'bad restart entry');
      d = getVarint(block, d.next, limit);
      if (d.next < 0) throw corruption(path, blockOffset + at, 'bad restart entry');
      unshared = d.value;
      d = getVarint(block, d.next, limit);
      if (d.next < 0) throw corruption(path, blockOffset + at, 'bad restart entry');
      keyStart = d.next;
    }
    if (unshared < TRAILER_BYTES || keyStart + unshared > limit) throw corruption(path, blockOffset + at, 'bad restart key');
    return compareInternalKeyRanges(block, keyStart, keyStart + unshared, target, 0, target.length);
  }

  private grow(minBytes: number, keep: number): Buffer {
    const grown = Buffer.allocUnsafeSlow(Math.max(minBytes, 2 * this.keyBuffer.length));
    for (let i = 0; i < keep; i++) grown[i] = this.keyBuffer[i] as number;
    this.keyBuffer = grown;
    return grown;
  }
}

/** Offset of restart point i (< count, so its 4 bytes lie in the restart array); at most `limit`. */
function restartPoint(block: Buffer, limit: number, i: number, path: string, blockOffset: number): number {
  const at = limit + i * RESTART_BYTES;
  const off = getFixed32(block, at);
  if (off > limit) throw corruption(path, blockOffset + at, 'bad restart point');
  return off;
}

/** Decodes until `bytes` of the block are final (or all of it); returns how many are. */
function extendOrFail(decoder: LzPrefixDecoder, bytes: number, path: string, blockOffset: number): number {
  const n = decoder.extend(bytes);
  if (n < 0) throw corruption(path, blockOffset, lzErrorMessage(n));
  return n;
}

/**
 * The fields decodeEntryHeader read last (searches are synchronous and never re-enter; importers
 * see them as live bindings).
 */
export let headerShared = 0;
export let headerUnshared = 0;
export let headerValueLength = 0;

/**
 * Reads the entry header (shared, unshared, value length: varints) at `off`, within `limit`, into
 * the header* variables; returns the offset after it. Throws CORRUPTION if it is malformed.
 */
export function decodeEntryHeader(block: Buffer, off: number, limit: number, path: string, blockOffset: number): number {
  const shared = block[off] as number;
  const unshared = off + 1 < limit ? (block[off + 1] as number) : 0x80;
  const valueLength = off + 2 < limit ? (block[off + 2] as number) : 0x80;
  if ((shared | unshared | valueLength) < 0x80) {
    headerShared = shared;
    headerUnshared = unshared;
    headerValueLength = valueLength;
    return off + 3;
  }
  let d = getVarint(block, off, limit);
  headerShared = d.value;
  d = getVarint(block, d.next < 0 ? limit : d.next, limit);
  headerUnshared = d.value;
  d = getVarint(block, d.next < 0 ? limit : d.next, limit);
  headerValueLength = d.value;
  if (d.next < 0) throw corruption(path, blockOffset + off, 'bad block entry header');
  return d.next;
}

