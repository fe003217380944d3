/**
 * Bloom filter over USER keys (not internal keys), one per table
 * (docs/formats/sstable.md#filter-block). A point lookup asks `mayContain` before touching the
 * index or any data block; a "no" is always right, a "yes" is wrong about 1% of the time at 10
 * bits/key.
 *
 *   filter = bits[m / 8] ++ byte(k)          (m = bit count, a multiple of 8; k = probes)
 *
 * Each key is hashed once (32-bit, murmur3-style) and the k probe positions are derived by double
 * hashing (h, h + delta, h + 2*delta, ...) with delta a rotation of h. An empty filter (zero bytes)
 * means "no filter": every key may be present. The hash function and probe sequence reach disk:
 * never change them within format version 1.
 */
import { assert } from '../util/assert.js';

export const BLOOM_BITS_PER_KEY_DEFAULT = 10;
/** More bits per key than this buys nothing measurable and wastes memory. */
export const BLOOM_BITS_PER_KEY_MAX = 64;
/** Probe count limits; the stored k byte is rejected (treated as "may contain") above the max. */
export const BLOOM_PROBES_MIN = 1;
export const BLOOM_PROBES_MAX = 30;
/** Tiny filters have a high false-positive rate; never use fewer bits than this. */
const BLOOM_BITS_MIN = 64;
const HASH_SEED = 0x5bd1e995;

/** k = round(bitsPerKey * ln 2), clamped to [1, 30]. */
export function bloomProbesFor(bitsPerKey: number): number {
  const k = Math.round(bitsPerKey * 0.69);
  return Math.min(BLOOM_PROBES_MAX, Math.max(BLOOM_PROBES_MIN, k));
}

/**
 * 32-bit hash of `buf[start, end)` (murmur3 x86_32 mixing, little-endian 4-byte blocks). Reads
 * bytes directly: no views, no allocation.
 */
export function bloomHash(buf: Uint8Array, start = 0, end = buf.length): number {
  let h = (HASH_SEED ^ (end - start)) >>> 0;
  let i = start;
  const blocksEnd = start + ((end - start) & ~3);
  for (; i < blocksEnd; i += 4) {
    let k =
      (buf[i] as number) |
      ((buf[i + 1] as number) << 8) |
      ((buf[i + 2] as number) << 16) |
      ((buf[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tailBytes = end - i;
  if (tailBytes > 0) {
    let tail = buf[i] as number;
    if (tailBytes > 1) tail |= (buf[i + 1] as number) << 8;
    if (tailBytes > 2) tail |= (buf[i + 2] as number) << 16;
    tail = Math.imul(tail, 0xcc9e2d51);
    tail = (tail << 15) | (tail >>> 17);
    tail = Math.imul(tail, 0x1b873593);
    h ^= tail;
  }
  // Final avalanche so that keys differing in one byte spread over all bits.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Collects key hashes for one table and lays out the filter at finish(). Stores one uint32 per key
 * in a grown array: nothing is allocated per key.
 */
export class BloomFilterBuilder {
  private hashes: Uint32Array = new Uint32Array(1024);
  private count = 0;

  /** `bitsPerKey` 0 disables the filter (finish() returns an empty filter). */
  constructor(readonly bitsPerKey: number = BLOOM_BITS_PER_KEY_DEFAULT) {
    assert(Number.isInteger(bitsPerKey), 'bloom bits per key must be an integer');
    assert(bitsPerKey >= 0, 'bloom bits per key must be non-negative');
    assert(bitsPerKey <= BLOOM_BITS_PER_KEY_MAX, 'bloom bits per key above maximum');
  }

  keyCount(): number {
    return this.count;
  }

  /** Adds the key `buf[start, end)`. */
  addKey(buf: Uint8Array, start = 0, end = buf.length): void {
    assert(start >= 0 && start <= end && end <= buf.length, 'bloom key range out of bounds');
    if (this.bitsPerKey === 0) return;
    if (this.count === this.hashes.length) {
      const grown = new Uint32Array(this.hashes.length * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    this.hashes[this.count++] = bloomHash(buf, start, end);
  }

  /** Size finish() would return, for table size estimates. */
  estimatedSizeBytes(): number {
    if (this.bitsPerKey === 0) return 0;
    return Math.ceil(Math.max(BLOOM_BITS_MIN, this.count * this.bitsPerKey) / 8) + 1;
  }

  /** Builds the filter for all keys added so far (a fresh buffer) and resets the builder. */
  finish(): Buffer {
    if (this.bitsPerKey === 0) return Buffer.alloc(0);
    const bytes = Math.ceil(Math.max(BLOOM_BITS_MIN, this.count * this.bitsPerKey) / 8);
    const bits = bytes * 8;
    const k = bloomProbesFor(this.bitsPerKey);
    const filter = Buffer.alloc(bytes + 1);
    for (let i = 0; i < this.count; i++) {
      let h = this.hashes[i] as number;
      const delta = ((h >>> 17) | (h << 15)) >>> 0;
      for (let j = 0; j < k; j++) {
        const bit = h % bits;
        filter[bit >>> 3] = (filter[bit >>> 3] as number) | (1 << (bit & 7));
        h = (h + delta) >>> 0;
      }
    }
    filter[bytes] = k;
    assert(filter.length === this.estimatedSizeBytes(), 'bloom size estimate disagrees');
    this.count = 0;
    return filter;
  }
}

/**
 * False only if `key[start, end)` was certainly not added to the filter. An empty filter, or one
 * whose probe count is outside [1, 30] (a future encoding), answers true.
 */
export function mayContain(filter: Buffer, key: Uint8Array, start = 0, end = key.length): boolean {
  return mayContainHash(filter, bloomHash(key, start, end));
}

/**
 * mayContain for a key whose bloomHash the caller already computed: a point read hashes its key
 * once and probes the filter of every table it visits.
 */
export function mayContainHash(filter: Buffer, hash: number): boolean {
  if (filter.length < 2) return true;
  const bytes = filter.length - 1;
  const k = filter[bytes] as number;
  if (k < BLOOM_PROBES_MIN || k > BLOOM_PROBES_MAX) return true;
  const bits = bytes * 8;
  let h = hash;
  const delta = ((h >>> 17) | (h << 15)) >>> 0;
  for (let j = 0; j < k; j++) {
    const bit = h % bits;
    if (((filter[bit >>> 3] as number) & (1 << (bit & 7))) === 0) return false;
    h = (h + delta) >>> 0;
  }
  return true;
}
