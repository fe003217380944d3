/**
 * Bloom filter over USER keys (not internal keys), one per table
 * (docs/formats/sstable.md#filter-block). A point lookup asks `mayContain` before touching the
 * index or any data block; a "no" is always right, a "yes" is wrong about 1% of the time at 10
 * bits/key.
 *
 * Two layouts, told apart by the last byte (both stay readable forever):
 *   - *cache-local* (written since 2026-11-26): bits[64 * lines] ++ byte(0x80 | k). A key's k
 *     probes all fall in one 64-byte line picked by its hash, so a lookup touches one cache line
 *     instead of k scattered ones (a table's filter is ~1 MiB: each scattered probe was a likely
 *     cache miss, paid by every point read for every table it checks). ~1.2% false positives at
 *     10 bits/key instead of ~1%.
 *   - *legacy*: bits[m / 8] ++ byte(k), k probes over the whole filter by double hashing
 *     (h, h + delta, h + 2*delta, ...) with delta a rotation of h.
 * Each key is hashed once (32-bit, murmur3-style). An empty filter (zero bytes) means "no
 * filter": every key may be present. The hash function and probe sequences reach disk: never
 * change them.
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
/** Cache-local layout: bytes per line (one x86/ARM cache line) and the marker bit in the last byte. */
const LINE_BYTES = 64;
const LINE_BITS = LINE_BYTES * 8;
const CACHE_LOCAL = 0x80;
/** Multiplier that steps the in-line probe hash (the golden ratio in 32 bits; odd, so a bijection). */
const PROBE_STEP = 0x9e3779b9;

/** Which layout a builder writes. Only tests still write the legacy one. */
export type BloomLayout = 'cache-local' | 'legacy';
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
  return avalanche32(h);
}

/** MurmurHash3's 32-bit finalizer: every input bit affects every output bit (unsigned result). */
export function avalanche32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hash arrays of finished builders, for the next builder in this thread (a thread builds tables one
 * after another; a flush and a merge may overlap in one worker, hence two). Without them each
 * table's array, doubled up to ~1 MiB for 200k keys, plus every smaller one it outgrew, was garbage
 * that a worker's small heap collected late: its malloc arena grew by megabytes per compaction.
 */
const SPARE_HASH_ARRAYS_MAX = 2;
/**
 * Larger arrays (tables of over 256k keys: 8 MiB of ~30-byte entries) are not kept: the spares and
 * the shared filter below stay with the thread for its life (at most ~3 MiB).
 */
const SPARE_HASH_ARRAY_LENGTH_MAX = 1 << 18;
const spareHashArrays: Uint32Array[] = [];
const NO_HASHES = new Uint32Array(0);
/** finishShared's output, reused (see there), for filters up to SHARED_FILTER_BYTES_MAX. */
let sharedFilter = Buffer.alloc(0);
const SHARED_FILTER_BYTES_MAX = 1024 * 1024;

/**
 * Collects key hashes for one table and lays out the filter at finish(). Stores one uint32 per key
 * in a grown array (taken from the spares of earlier builders when one is there): nothing is
 * allocated per key.
 */
export class BloomFilterBuilder {
  private hashes: Uint32Array = NO_HASHES;
  private count = 0;

  /** `bitsPerKey` 0 disables the filter (finish() returns an empty filter). */
  constructor(
    readonly bitsPerKey: number = BLOOM_BITS_PER_KEY_DEFAULT,
    readonly layout: BloomLayout = 'cache-local',
  ) {
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
    if (this.count === this.hashes.length) this.grow();
    this.hashes[this.count++] = bloomHash(buf, start, end);
  }

  /** A larger hash array: a spare if one is larger, else twice the size (at least 1024). */
  private grow(): void {
    const spare = spareHashArrays.pop();
    let grown: Uint32Array;
    if (spare !== undefined && spare.length > this.count) {
      grown = spare;
    } else {
      if (spare !== undefined) spareHashArrays.push(spare);
      grown = new Uint32Array(Math.max(1024, this.hashes.length * 2));
    }
    const count = this.count;
    grown.set(this.hashes.subarray(0, count));
    this.release();
    this.hashes = grown;
    this.count = count;
  }

  /**
   * Offers the hash array to the next builder and forgets the keys added. finish() calls it; call
   * it when a builder is abandoned, too (not required: an abandoned array is only garbage).
   */
  release(): void {
    const h = this.hashes;
    if (h !== NO_HASHES && h.length <= SPARE_HASH_ARRAY_LENGTH_MAX && spareHashArrays.length < SPARE_HASH_ARRAYS_MAX) {
      spareHashArrays.push(h);
    }
    this.hashes = NO_HASHES;
    this.count = 0;
  }

  /** Size finish() would return, for table size estimates. */
  estimatedSizeBytes(): number {
    if (this.bitsPerKey === 0) return 0;
    return this.filterBytes() + 1;
  }

  /** Bytes of filter bits (without the trailing k byte) for the keys added so far. */
  private filterBytes(): number {
    const bits = Math.max(BLOOM_BITS_MIN, this.count * this.bitsPerKey);
    return this.layout === 'cache-local' ? Math.ceil(bits / LINE_BITS) * LINE_BYTES : Math.ceil(bits / 8);
  }

  /** Builds the filter for all keys added so far (a fresh buffer) and resets the builder. */
  finish(): Buffer {
    return this.finishInto(Buffer.alloc(this.estimatedSizeBytes()));
  }

  /**
   * finish() into a buffer this module reuses: valid only until the next finishShared in this
   * thread, for a caller that copies it at once (TableBuilder stages it). Saves a filter-sized
   * allocation (~150 KiB per 8 MiB table) that was garbage as soon as it was copied.
   */
  finishShared(): Buffer {
    const bytes = this.estimatedSizeBytes();
    if (bytes > SHARED_FILTER_BYTES_MAX) return this.finish();
    if (sharedFilter.length < bytes) sharedFilter = Buffer.alloc(Math.min(SHARED_FILTER_BYTES_MAX, Math.max(bytes, 2 * sharedFilter.length)));
    const filter = sharedFilter.subarray(0, bytes);
    filter.fill(0);
    return this.finishInto(filter);
  }

  /** Lays the filter out in `filter` (zeroed, estimatedSizeBytes long); resets the builder. */
  private finishInto(filter: Buffer): Buffer {
    assert(filter.length === this.estimatedSizeBytes(), 'bloom size estimate disagrees');
    if (this.bitsPerKey === 0) return filter;
    const bytes = filter.length - 1;
    const k = bloomProbesFor(this.bitsPerKey);
    if (this.layout === 'cache-local') {
      filter[bytes] = CACHE_LOCAL | k;
      for (let i = 0; i < this.count; i++) addHashToFilter(filter, this.hashes[i] as number);
    } else {
      const bits = bytes * 8;
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
    }
    this.release();
    return filter;
  }
}

/**
 * An empty cache-local filter of about `bits` bits with `k` probes per key, to be filled key by key
 * with addHashToFilter (a memtable's filter, which grows with its writes). `reuse`, an old filter
 * of exactly that size, is cleared and returned instead of allocating.
 */
export function emptyFilter(bits: number, k: number, reuse: Buffer | null = null): Buffer {
  assert(k >= BLOOM_PROBES_MIN && k <= BLOOM_PROBES_MAX, 'bloom probe count out of range');
  const bytes = Math.ceil(Math.max(BLOOM_BITS_MIN, bits) / LINE_BITS) * LINE_BYTES;
  let filter: Buffer;
  if (reuse !== null && reuse.length === bytes + 1) {
    filter = reuse.fill(0);
  } else {
    filter = Buffer.alloc(bytes + 1);
  }
  filter[bytes] = CACHE_LOCAL | k;
  return filter;
}

/** Sets the probe bits of a key with bloomHash `h` in a cache-local filter (finish, emptyFilter). */
export function addHashToFilter(filter: Buffer, h: number): void {
  const bytes = filter.length - 1;
  const k = (filter[bytes] as number) & ~CACHE_LOCAL;
  const base = lineOf(h, bytes / LINE_BYTES) * LINE_BYTES;
  let g = h;
  for (let j = 0; j < k; j++) {
    g = Math.imul(g, PROBE_STEP);
    const bit = g >>> 23; // top 9 bits: 0..511
    filter[base + (bit >>> 3)] = (filter[base + (bit >>> 3)] as number) | (1 << (bit & 7));
  }
}

/** The line (of `lines`) a key with hash `h` uses: the high part of h * lines, so every line is used. */
function lineOf(h: number, lines: number): number {
  return Math.floor((h >>> 0) * lines / 4294967296);
}

/**
 * False only if `key[start, end)` was certainly not added to the filter. An empty filter, or one
 * whose probe count is outside [1, 30] or whose layout is unknown (a future encoding), answers true.
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
  const last = filter[bytes] as number;
  const k = last & ~CACHE_LOCAL;
  if (k < BLOOM_PROBES_MIN || k > BLOOM_PROBES_MAX) return true;
  if (last & CACHE_LOCAL) {
    if (bytes % LINE_BYTES !== 0) return true; // not a layout this version wrote
    const base = lineOf(hash, bytes / LINE_BYTES) * LINE_BYTES;
    let g = hash;
    for (let j = 0; j < k; j++) {
      g = Math.imul(g, PROBE_STEP);
      const bit = g >>> 23;
      if (((filter[base + (bit >>> 3)] as number) & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }
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
