/**
 * Point lookups inside one data block (docs/formats/sstable.md#block-format): the read path's
 * version of BlockIterator.seekGE, kept separate because a get needs much less than an iterator.
 *
 * It finds the first entry whose internal key is >= a target and reports only that entry: its key
 * (rebuilt in one reusable buffer) and where its value lies in the block. No iterator state is kept
 * for a next step, no view of the key or value is created, and the restart array is read directly,
 * which makes a cached lookup's block search about twice as fast as the iterator's.
 *
 * Two things make the scan cheap (a random get over a cached block: search 0.9 → 0.57 µs):
 *   - it compares each key from where it can first differ from the target (compareKeyFrom), not
 *     from byte 0: neighbouring keys share long prefixes, and so did every compare with the target;
 *   - before searching a cached block, it reads one byte per 64-byte line (touchLines). The loads
 *     are independent, so the CPU overlaps their cache misses instead of meeting them one by one
 *     as the scan walks entry to entry.
 *
 * Like BlockIterator it trusts nothing: every length and restart point is bounds-checked, a bad
 * block raises CORRUPTION (never a RangeError or an endless loop; every step moves forward).
 */
import { corruption } from '../base/errors.js';
import { compareInternalKeyRanges, TRAILER_BYTES } from '../base/internal-key.js';
import { getFixed32, getVarint } from '../util/coding.js';
import { lzErrorMessage, type LzPrefixDecoder } from './lz-codec.js';

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
  /** What touchLines read (kept, so that its loads are not optimized away). */
  touched = 0;

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
    if (n <= TOUCH_BYTES_MAX) this.touched = touchLines(block, n);
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
    // User-key bytes the previous key shares with the target (compareKeyFrom).
    let matched = 0;
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
      const c = compareKeyFrom(key, length, target, targetLength, shared < matched ? shared : matched);
      matched = matchedBytes;
      if (c >= 0) {
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
    let matched = 0; // as in seekGE
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
      const c = compareKeyFrom(key, length, target, targetLength, shared < matched ? shared : matched);
      matched = matchedBytes;
      if (c >= 0) {
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

/** Blocks up to this size are touched before a search (touchLines); larger ones (big values) not. */
const TOUCH_BYTES_MAX = 8192;

/**
 * Reads one byte of every 64-byte line of `block[0, n)` and returns their sum. A software prefetch:
 * the loads do not depend on each other, so their cache misses overlap, where the search's own
 * loads (each entry's offset comes from decoding the one before) would wait for them one by one.
 * Measured on random gets over 117 MiB of cached 2 KiB blocks: 0.2 µs less per search.
 */
function touchLines(block: Buffer, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i += 64) sum += block[i] as number;
  return sum;
}

/** The user-key bytes the key and target compared last by compareKeyFrom share. */
let matchedBytes = 0;

/**
 * compareInternalKeyRanges(key[0, keyLength), target[0, targetLength)) for a key whose user-key
 * bytes before `from` are known to equal the target's; sets matchedBytes to the length of their
 * common user-key prefix.
 *
 * Why `from` is safe in a scan: the key buffer's first `shared` bytes are the previous key's, left
 * in place, and the previous key's first `matched` bytes were compared equal to the target's. So
 * the first min(shared, matched) bytes of the new key equal the target's: byte identity in the
 * buffer, which holds whatever the block says (sorted or not). The clamp only keeps `matched`
 * counting user-key bytes. Both keys are internal keys (at least TRAILER_BYTES long).
 */
function compareKeyFrom(key: Buffer, keyLength: number, target: Buffer, targetLength: number, from: number): number {
  const keyUser = keyLength - TRAILER_BYTES;
  const targetUser = targetLength - TRAILER_BYTES;
  const common = keyUser < targetUser ? keyUser : targetUser;
  let i = from < common ? from : common;
  while (i < common && key[i] === target[i]) i++;
  matchedBytes = i;
  if (i < common) return (key[i] as number) < (target[i] as number) ? -1 : 1;
  if (keyUser !== targetUser) return keyUser < targetUser ? -1 : 1;
  // Equal user keys: the larger trailer (newer sequence number) sorts first. High words first.
  const keyHigh = getFixed32(key, keyUser + 4);
  const targetHigh = getFixed32(target, targetUser + 4);
  if (keyHigh !== targetHigh) return keyHigh > targetHigh ? -1 : 1;
  const keyLow = getFixed32(key, keyUser);
  const targetLow = getFixed32(target, targetUser);
  return keyLow > targetLow ? -1 : keyLow < targetLow ? 1 : 0;
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

