/**
 * A table's index block decoded once, at open, into flat arrays: the separator keys concatenated in
 * one buffer, and each data block's offset and size in typed arrays. A point lookup then finds its
 * data block with a plain binary search over byte ranges — no varint decoding, no prefix
 * reassembly, no block-iterator state — which halves the CPU of a cached lookup.
 *
 * The search first narrows by fingerprint (base/key-fingerprint.ts: 6 bytes of the user key after
 * the prefix all separators share, one Float64Array) and compares whole keys only where the
 * fingerprints tie: a search of a 15,000-block index touches a few cache lines, not 15 keys.
 *
 * Decoding also validates the index (every handle decodes and lies in the data area, after the
 * previous one; the count matches the meta block), so a bad index is CORRUPTION at open.
 */
import { corruption } from '../base/errors.js';
import { compareInternalKeyViews, TRAILER_BYTES } from '../base/internal-key.js';
import { commonPrefixLength, fingerprintOf } from '../base/key-fingerprint.js';
import { KeyProbe, viewOf } from '../base/key-probe.js';
import { assert } from '../util/assert.js';
import { getFixed32 } from '../util/coding.js';
import { decodeEntryHeader, headerShared, headerUnshared, headerValueLength } from './block-point-search.js';
import { getBlockHandle, type BlockHandle } from './block-handle.js';
import { BLOCK_TRAILER_BYTES } from './block-trailer.js';

/** The search key of findGE (searches are synchronous and never re-enter). */
const probe = new KeyProbe();

export class IndexArray {
  readonly count: number;
  /** The separator keys as a DataView: searches compare four bytes at a time. */
  private readonly keysView: DataView;
  /** keys of entry i are keys[keyOffsets[i], keyOffsets[i + 1]). */
  private readonly keyOffsets: Int32Array;
  readonly blockOffsets: Float64Array;
  readonly blockSizes: Int32Array;
  /** The user-key prefix every separator shares (a copy), and its length. */
  private readonly prefix: Buffer;
  /** fingerprints[i]: fingerprint of separator i's user key after the prefix (non-decreasing). */
  private readonly fingerprints: Float64Array;

  private constructor(count: number, keys: Buffer, keyOffsets: Int32Array, offsets: Float64Array, sizes: Int32Array) {
    this.count = count;
    this.keysView = viewOf(keys);
    this.keyOffsets = keyOffsets;
    this.blockOffsets = offsets;
    this.blockSizes = sizes;
    let prefixLength = 0;
    if (count > 0) {
      const lastStart = keyOffsets[count - 1] as number;
      prefixLength = commonPrefixLength(keys, 0, (keyOffsets[1] as number) - TRAILER_BYTES, keys, lastStart, (keyOffsets[count] as number) - TRAILER_BYTES);
    }
    this.prefix = Buffer.from(keys.subarray(0, prefixLength));
    this.fingerprints = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      this.fingerprints[i] = fingerprintOf(keys, keyOffsets[i] as number, (keyOffsets[i + 1] as number) - TRAILER_BYTES, prefixLength);
    }
  }

  /**
   * Decodes and checks `index` (read from `path` at `indexOffset`). Data blocks must end by
   * `dataEndOffset`; there must be `expectedCount` of them.
   */
  static decode(index: Buffer, path: string, indexOffset: number, dataEndOffset: number, expectedCount: number): IndexArray {
    return IndexArray.walk(index, path, indexOffset, dataEndOffset, expectedCount, true) as IndexArray;
  }

  /**
   * The checks of decode() without building the arrays, for a reader that only scans (compaction
   * inputs): a checksum-valid index that lost, repeated or reordered an entry (a writer bug) must
   * be CORRUPTION there too, not a merge that silently drops a data block.
   */
  static check(index: Buffer, path: string, indexOffset: number, dataEndOffset: number, expectedCount: number): void {
    IndexArray.walk(index, path, indexOffset, dataEndOffset, expectedCount, false);
  }

  /**
   * decode() and check(): reads the index entries in order and checks every handle (it decodes, lies
   * in the data area after the previous block, and there are exactly `expectedCount`). With `collect`
   * it also copies the keys straight into one buffer (no iterator, no view per key: a table open
   * decodes thousands, docs/formats/sstable.md#block-format) and returns the IndexArray; without,
   * it keeps nothing and returns null.
   */
  private static walk(index: Buffer, path: string, indexOffset: number, dataEndOffset: number, expectedCount: number, collect: boolean): IndexArray | null {
    const n = index.length;
    if (n < 4) throw corruption(path, indexOffset, 'index block too small for its restart count');
    const restartCount = getFixed32(index, n - 4);
    if (restartCount === 0 || restartCount > (n - 4) / 4) throw corruption(path, indexOffset + n - 4, 'bad index restart count');
    const limit = n - 4 - restartCount * 4;
    if (getFixed32(index, limit) !== 0) throw corruption(path, indexOffset + limit, 'bad index restart point');
    const handle: BlockHandle = { offset: 0, sizeBytes: 0 };
    const slots = collect ? expectedCount : 0;
    const offsets = new Float64Array(slots);
    const sizes = new Int32Array(slots);
    const keyOffsets = new Int32Array(slots + 1);
    let keys = Buffer.allocUnsafe(collect ? Math.max(64, expectedCount * 24) : 0);
    let keyBytes = 0;
    let count = 0;
    let previousEnd = 0;
    let previousStart = 0;
    let previousLength = 0;
    for (let off = 0; off < limit;) {
      const p = decodeEntryHeader(index, off, limit, path, indexOffset);
      const shared = headerShared;
      const unshared = headerUnshared;
      const valueEnd = p + unshared + headerValueLength;
      if (shared > previousLength) throw corruption(path, indexOffset + off, 'block entry shares more than the previous key');
      if (valueEnd > limit) throw corruption(path, indexOffset + off, 'block entry overruns the block');
      const keyLength = shared + unshared;
      if (keyLength < TRAILER_BYTES) throw corruption(path, indexOffset, `index entry ${count} has a key shorter than its trailer`);
      getBlockHandle(index, p + unshared, valueEnd, handle, path, indexOffset);
      const end = handle.offset + handle.sizeBytes + BLOCK_TRAILER_BYTES;
      if (count >= expectedCount || handle.offset < previousEnd || end > dataEndOffset) {
        throw corruption(path, indexOffset, `index entry ${count} points outside the data area or past the block count`);
      }
      if (collect) {
        if (keyBytes + keyLength > keys.length) {
          const grown = Buffer.allocUnsafe(Math.max(keys.length * 2, keyBytes + keyLength));
          keys.copy(grown, 0, 0, keyBytes);
          keys = grown;
        }
        // The key: the previous key's first `shared` bytes (just before it in `keys`), then its own.
        if (shared > 0) keys.copyWithin(keyBytes, previousStart, previousStart + shared);
        for (let i = 0; i < unshared; i++) keys[keyBytes + shared + i] = index[p + i] as number;
        keyOffsets[count] = keyBytes;
        previousStart = keyBytes;
        keyBytes += keyLength;
        offsets[count] = handle.offset;
        sizes[count] = handle.sizeBytes;
      }
      previousLength = keyLength;
      previousEnd = end;
      count++;
      off = valueEnd;
    }
    if (count !== expectedCount) {
      throw corruption(path, indexOffset, `index has ${count} blocks, meta block says ${expectedCount}`);
    }
    if (!collect) return null;
    keyOffsets[count] = keyBytes;
    return new IndexArray(count, keys.subarray(0, keyBytes), keyOffsets, offsets, sizes);
  }

  /** Separator key i (internal key), a view valid while this array lives. */
  keyAt(i: number): Buffer {
    assert(Number.isInteger(i) && i >= 0 && i < this.count, 'index entry out of range');
    const start = this.keyOffsets[i] as number;
    const v = this.keysView;
    return Buffer.from(v.buffer, v.byteOffset + start, (this.keyOffsets[i + 1] as number) - start);
  }

  /** Index of the first block whose separator key is >= `target` (internal order), or `count`. */
  findGE(target: Buffer): number {
    const userEnd = target.length - TRAILER_BYTES;
    assert(userEnd >= 0, 'findGE needs an internal key');
    // Targets outside the shared prefix sort before or after every separator.
    const prefix = this.prefix;
    const p = prefix.length;
    const n = userEnd < p ? userEnd : p;
    for (let i = 0; i < n; i++) {
      const d = (target[i] as number) - (prefix[i] as number);
      if (d !== 0) return d < 0 ? 0 : this.count;
    }
    if (userEnd < p) return 0;
    // [lo, hi): the separators whose fingerprint equals the target's. Those before sort below it,
    // those after above it; only the tie range needs whole-key comparisons.
    const fps = this.fingerprints;
    const tfp = fingerprintOf(target, 0, userEnd, p);
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((fps[mid] as number) < tfp) lo = mid + 1;
      else hi = mid;
    }
    hi = lo;
    let top = this.count;
    while (hi < top) {
      const mid = (hi + top) >>> 1;
      if ((fps[mid] as number) <= tfp) hi = mid + 1;
      else top = mid;
    }
    if (lo === hi) return lo;
    const keys = this.keysView;
    const ko = this.keyOffsets;
    probe.set(target);
    const t = probe.view;
    const tlen = target.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareInternalKeyViews(keys, ko[mid] as number, ko[mid + 1] as number, t, 0, tlen);
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    assert(lo >= 0 && lo <= this.count, 'index search out of range');
    return lo;
  }
}
