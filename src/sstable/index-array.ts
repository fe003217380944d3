/**
 * A table's index block decoded once, at open, into flat arrays: the separator keys concatenated in
 * one buffer, and each data block's offset and size in typed arrays. A point lookup then finds its
 * data block with a plain binary search over byte ranges — no varint decoding, no prefix
 * reassembly, no block-iterator state — which halves the CPU of a cached lookup.
 *
 * Decoding also validates the index (every handle decodes and lies in the data area, after the
 * previous one; the count matches the meta block), so a bad index is CORRUPTION at open.
 */
import { corruption } from '../base/errors.js';
import { compareInternalKeyViews } from '../base/internal-key.js';
import { KeyProbe, viewOf } from '../base/key-probe.js';
import { assert } from '../util/assert.js';
import { BlockIterator } from './block-iterator.js';
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

  private constructor(count: number, keys: Buffer, keyOffsets: Int32Array, offsets: Float64Array, sizes: Int32Array) {
    this.count = count;
    this.keysView = viewOf(keys);
    this.keyOffsets = keyOffsets;
    this.blockOffsets = offsets;
    this.blockSizes = sizes;
  }

  /**
   * Decodes and checks `index` (read from `path` at `indexOffset`). Data blocks must end by
   * `dataEndOffset`; there must be `expectedCount` of them.
   */
  static decode(index: Buffer, path: string, indexOffset: number, dataEndOffset: number, expectedCount: number): IndexArray {
    const it = new BlockIterator(index, path, indexOffset);
    const handle: BlockHandle = { offset: 0, sizeBytes: 0 };
    const offsets = new Float64Array(expectedCount);
    const sizes = new Int32Array(expectedCount);
    const keyOffsets = new Int32Array(expectedCount + 1);
    let keys = Buffer.allocUnsafe(Math.max(64, expectedCount * 24));
    let keyBytes = 0;
    let count = 0;
    let previousEnd = 0;
    for (it.first(); it.valid(); it.next()) {
      getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), handle, path, indexOffset);
      const end = handle.offset + handle.sizeBytes + BLOCK_TRAILER_BYTES;
      if (count >= expectedCount || handle.offset < previousEnd || end > dataEndOffset) {
        throw corruption(path, indexOffset, `index entry ${count} points outside the data area or past the block count`);
      }
      const key = it.key();
      if (keyBytes + key.length > keys.length) {
        const grown = Buffer.allocUnsafe(Math.max(keys.length * 2, keyBytes + key.length));
        keys.copy(grown, 0, 0, keyBytes);
        keys = grown;
      }
      key.copy(keys, keyBytes);
      keyOffsets[count] = keyBytes;
      keyBytes += key.length;
      offsets[count] = handle.offset;
      sizes[count] = handle.sizeBytes;
      previousEnd = end;
      count++;
    }
    it.close();
    if (count !== expectedCount) {
      throw corruption(path, indexOffset, `index has ${count} blocks, meta block says ${expectedCount}`);
    }
    keyOffsets[count] = keyBytes;
    return new IndexArray(count, keys.subarray(0, keyBytes), keyOffsets, offsets, sizes);
  }

  /** Index of the first block whose separator key is >= `target` (internal order), or `count`. */
  findGE(target: Buffer): number {
    let lo = 0;
    let hi = this.count;
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
