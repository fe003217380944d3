/**
 * Cache of verified, uncompressed data blocks shared by all open tables, bounded in bytes.
 *
 * Replacement is a segmented LRU (SLRU), which is scan resistant: a block enters the *probation*
 * segment; a second hit promotes it to the *protected* segment (at most PROTECTED_SHARE of the
 * budget; its overflow is demoted back to probation). Eviction takes the least recently used
 * probation block first. A full scan touches each block once, so it only churns probation and
 * the hot set in protected survives it.
 *
 * Keyed by (file number, block offset) through an open-addressing hash index (linear probing,
 * deletion by shifting the probe run back, no tombstones), so a lookup builds no string and
 * allocates nothing. Recency lists are doubly linked through the entries (O(1) get, insert, evict),
 * and so is one list per file, so evicting a deleted file visits only that file's blocks.
 *
 * Admission (TinyLFU, as in Caffeine): with `admission` on, every get() counts the block in a
 * small count-min sketch of recent use (4 rows of 8-bit counters capped at 15, halved every
 * 10 x width counts, so old popularity fades). When the cache is full, a block is cached only if it
 * was used more often than the block it would evict; otherwise insert() returns it uncached. Blocks
 * read once no longer push out blocks that are read again, and a miss that is not admitted skips
 * the copy into a cold slot and the eviction. Measured: 500k uniform random gets over 1M entries
 * (~120 MiB of blocks) with a 32 MiB cache: 132k → 153k gets/s in the first pass, 144k → 168k in
 * a second pass over the same keys (hit rate 28% → 33%). The price: a new hot set gets in only after
 * a few lookups per block. Simulated (100-block cache, hot set of 80 blocks replaced by 80 new
 * ones): the first 2,000 lookups after the switch hit 70% instead of SLRU's 90%, the next 100%.
 * Caffeine's window LRU in front of the sketch would remove that; not done.
 *
 * Memory: blocks up to `slotBytes` live in fixed-size slots carved from a few large buffers that
 * the cache allocates once (lazily, up to its capacity) and reuses, so a miss costs a copy, not a
 * fresh ArrayBuffer (allocating one per miss, plus the GC work it causes, was ~20% of a random
 * read). A slot is charged its full size. Larger blocks (big values) get a buffer of their own.
 * An entry is an index into parallel typed arrays (key, length, charge, slot, list links), not an
 * object: an admitted block allocates nothing that outlives the call. With an object and a view
 * per entry (before), every admitted block left ~280 bytes for the young-generation GC to copy
 * and promote, which made V8 grow the young generation from 8 to 32 MiB during random reads
 * (~24 MiB of resident memory). get() and insert() therefore make a fresh view per call, which
 * dies young. Because slots are reused, a returned view is only valid until the next insert() or
 * evictFile() on this cache: callers use it at once or copy it.
 * Capacity 0 disables caching (every get misses, insert does nothing).
 */
import { assert, invariants } from '../util/assert.js';
import { copyBytes } from '../util/copy-bytes.js';
import { WeakSpares } from '../util/weak-spares.js';
import { avalanche32 } from './bloom-filter.js';

/** Share of the budget the protected segment may hold. */
const PROTECTED_SHARE = 0.8;

const PROBATION = 0;
const PROTECTED = 1;

/** Slots per slab buffer (one allocation serves this many cached blocks). */
const SLOTS_PER_SLAB = 64;
/** `slot` of an entry whose block has a buffer of its own. */
const NO_SLOT = -1;
/** No entry: an empty hash bucket, or the end of a list. */
const NONE = -1;
/** Entry arrays start this large and double when full. */
const INITIAL_ENTRIES = 64;

/** Slabs of released caches (closed databases), for the next cache in this thread to reuse. */
const spareSlabs = new WeakSpares<Buffer>(1024);

export interface BlockCacheStats {
  hits: number;
  misses: number;
  usedBytes: number;
  capacityBytes: number;
  entries: number;
  /** Bytes in the protected (hit at least twice) segment. */
  protectedBytes: number;
  /** Blocks not cached by admission: used less often than the block they would have evicted. */
  rejected: number;
}

export class BlockCache {
  // Entries are indices into these parallel arrays (see "Memory" in the file comment).
  private entryCapacity = 0;
  private fileOf: Float64Array = new Float64Array(0);
  private offsetOf: Float64Array = new Float64Array(0);
  /** The block's length (its view's length). */
  private lengthOf: Float64Array = new Float64Array(0);
  /** Bytes charged against the budget: the slot size, or the block's length. */
  private chargeOf: Float64Array = new Float64Array(0);
  /** blockHash of the entry's key (kept for the hash table's deletions and rebuilds). */
  private hashOf: Int32Array = new Int32Array(0);
  /** Links of the recency lists. */
  private prevOf: Int32Array = new Int32Array(0);
  private nextOf: Int32Array = new Int32Array(0);
  /** Links of the per-file lists (every entry of one file, in no particular order). */
  private filePrevOf: Int32Array = new Int32Array(0);
  private fileNextOf: Int32Array = new Int32Array(0);
  /** Slot index, or NO_SLOT (the block is in ownBlocks). */
  private slotOf: Int32Array = new Int32Array(0);
  private segmentOf: Uint8Array = new Uint8Array(0);
  /** Blocks too large for a slot, by entry (the only objects the cache keeps per block). */
  private ownBlocks: (Buffer | undefined)[] = [];
  /** Entries never used yet start here; freed ones are kept in freeEntries. */
  private entryHighWater = 0;
  private freeEntries: Int32Array = new Int32Array(0);
  private freeEntryCount = 0;
  private entryCount = 0;

  /** Open addressing with linear probing: entry index or NONE per bucket. */
  private buckets: Int32Array = new Int32Array(0);
  private bucketMask = 0;
  /**
   * First entry of each file with blocks cached (its list runs through fileNextOf): evictFile
   * visits only that file's entries, and a file with none cached costs one lookup.
   */
  private readonly fileHeads = new Map<number, number>();

  /** Recency lists per segment: head = most recently used. */
  private readonly heads = new Int32Array([NONE, NONE]);
  private readonly tails = new Int32Array([NONE, NONE]);
  private readonly segmentBytes = new Float64Array(2);

  private readonly protectedCapacityBytes: number;
  /** Access frequencies for admission; null when off. */
  private readonly sketch: FrequencySketch | null;
  private rejected = 0;
  private hits = 0;
  private misses = 0;

  /** Slab buffers, each holding SLOTS_PER_SLAB slots (the last may hold fewer). */
  private readonly slabs: Buffer[] = [];
  private slotCount = 0;
  /** Most slots the budget can ever hold. */
  private readonly maxSlots: number;
  /** Stack of free slot indices. */
  private freeSlots: number[] = [];
  /** Set by release(): caches nothing more. */
  private released = false;

  /**
   * `slotBytes` > 0 stores blocks up to that size in reusable slots (use a little more than the
   * tables' block size); 0 gives every block a buffer of its own.
   */
  constructor(
    readonly capacityBytes: number,
    readonly slotBytes = 0,
    /** Frequency-based admission when full (see the file comment); off: plain SLRU. */
    admission = false,
  ) {
    assert(Number.isSafeInteger(capacityBytes), 'cache capacity must be an integer');
    assert(capacityBytes >= 0, 'cache capacity must be non-negative');
    assert(Number.isSafeInteger(slotBytes) && slotBytes >= 0, 'slot size must be a non-negative integer');
    this.protectedCapacityBytes = Math.floor(capacityBytes * PROTECTED_SHARE);
    this.maxSlots = slotBytes === 0 ? 0 : Math.floor(capacityBytes / slotBytes);
    // Sized for the blocks the budget can hold (counting at least 1 KiB per block): 4 rows of about
    // twice that many byte counters (32 MiB of 2 KiB slots: 128 KiB).
    const blocks = Math.max(64, Math.floor(capacityBytes / Math.max(slotBytes, 1024)));
    this.sketch = admission && capacityBytes > 0 ? new FrequencySketch(blocks) : null;
  }

  private get usedBytes(): number {
    return (this.segmentBytes[PROBATION] as number) + (this.segmentBytes[PROTECTED] as number);
  }

  /** The cached block, marked most recently used (and promoted if in probation), or undefined. */
  get(fileNumber: number, offset: number): Buffer | undefined {
    const hash = blockHash(fileNumber, offset);
    this.sketch?.increment(hash);
    const entry = this.find(fileNumber, offset, hash);
    if (entry === NONE) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.segmentOf[entry] !== PROTECTED || this.heads[PROTECTED] !== entry) {
      this.unlink(entry);
      this.pushFront(PROTECTED, entry);
      this.demoteOverflow();
    }
    return this.blockOf(entry);
  }

  /**
   * Caches a copy of `block` in probation, replacing any block at the same key, evicting until the
   * budget holds. Returns the cached copy (a view valid until the next insert/evictFile), or
   * `block` itself if it is not cached (capacity 0, or larger than the whole budget).
   */
  insert(fileNumber: number, offset: number, block: Buffer): Buffer {
    assert(Number.isSafeInteger(fileNumber) && fileNumber >= 0, 'bad file number');
    assert(Number.isSafeInteger(offset) && offset >= 0, 'bad block offset');
    if (this.capacityBytes === 0 || this.released) return block;
    const length = block.length;
    const inSlot = this.fitsSlot(length);
    const charge = inSlot ? this.slotBytes : length;
    // A block larger than the whole budget would only flush everything else.
    if (charge > this.capacityBytes) return block;
    const hash = blockHash(fileNumber, offset);
    const existing = this.find(fileNumber, offset, hash);
    if (existing !== NONE) {
      this.remove(existing); // a replaced block was admitted before
    } else if (this.rejects(hash, charge)) {
      // Admission (TinyLFU): when the cache is full, a block used less often than the one it
      // would evict is not cached; the caller uses it once from `block`.
      this.rejected++;
      return block;
    }
    this.evictToBudget(this.capacityBytes - charge);
    const entry = this.takeEntry();
    let copy: Buffer;
    if (inSlot) {
      const slot = this.takeSlot();
      const slab = this.slabs[Math.floor(slot / SLOTS_PER_SLAB)] as Buffer;
      const start = (slot % SLOTS_PER_SLAB) * this.slotBytes;
      copyBytes(block, 0, length, slab, start);
      copy = slab.subarray(start, start + length);
      this.slotOf[entry] = slot;
    } else {
      copy = Buffer.allocUnsafeSlow(length);
      copyBytes(block, 0, length, copy, 0);
      this.slotOf[entry] = NO_SLOT;
      this.ownBlocks[entry] = copy;
    }
    this.fileOf[entry] = fileNumber;
    this.offsetOf[entry] = offset;
    this.lengthOf[entry] = length;
    this.chargeOf[entry] = charge;
    this.hashOf[entry] = hash;
    this.addToIndex(entry);
    this.linkToFile(entry, fileNumber);
    this.pushFront(PROBATION, entry);
    this.entryCount++;
    this.checkInvariants();
    return copy;
  }

  /**
   * Whether insert() would cache a block of `length` bytes at this key now (capacity, size and
   * admission as insert decides them). A reader asks before decoding a block it read, to skip
   * the work insert would have needed; a refusal counts as a rejection.
   */
  admits(fileNumber: number, offset: number, length: number): boolean {
    if (this.capacityBytes === 0 || this.released) return false;
    const charge = this.fitsSlot(length) ? this.slotBytes : length;
    if (charge > this.capacityBytes) return false;
    const hash = blockHash(fileNumber, offset);
    if (this.find(fileNumber, offset, hash) !== NONE) return true;
    if (!this.rejects(hash, charge)) return true;
    this.rejected++;
    return false;
  }

  /** True if a block of `length` bytes is stored in a slot (and charged the slot's size). */
  private fitsSlot(length: number): boolean {
    return length <= this.slotBytes && this.maxSlots > 0;
  }

  /** TinyLFU: full, and the block was used no more often than the one it would evict. */
  private rejects(hash: number, charge: number): boolean {
    if (this.sketch === null || this.usedBytes + charge <= this.capacityBytes) return false;
    const victim = this.victim();
    return victim !== NONE && this.sketch.estimate(hash) <= this.sketch.estimate(this.hashOf[victim] as number);
  }

  /** The entry eviction takes next: least recently used in probation, else in protected. */
  private victim(): number {
    const probation = this.tails[PROBATION] as number;
    return probation !== NONE ? probation : (this.tails[PROTECTED] as number);
  }

  /** A view of an entry's block (a fresh view per call: views handed out are not kept). */
  private blockOf(entry: number): Buffer {
    const slot = this.slotOf[entry] as number;
    if (slot === NO_SLOT) return this.ownBlocks[entry] as Buffer;
    const slab = this.slabs[Math.floor(slot / SLOTS_PER_SLAB)] as Buffer;
    const start = (slot % SLOTS_PER_SLAB) * this.slotBytes;
    return slab.subarray(start, start + (this.lengthOf[entry] as number));
  }

  /** The entry cached at (fileNumber, offset), or NONE. */
  private find(fileNumber: number, offset: number, hash: number): number {
    const buckets = this.buckets;
    const mask = this.bucketMask;
    if (buckets.length === 0) return NONE;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = buckets[i] as number;
      if (entry === NONE || (this.fileOf[entry] === fileNumber && this.offsetOf[entry] === offset)) return entry;
    }
  }

  private addToIndex(entry: number): void {
    const buckets = this.buckets;
    const mask = this.bucketMask;
    let i = (this.hashOf[entry] as number) & mask;
    while (buckets[i] !== NONE) i = (i + 1) & mask;
    buckets[i] = entry;
  }

  /** Removes an entry from the hash index, shifting later entries of its probe run back. */
  private removeFromIndex(entry: number): void {
    const buckets = this.buckets;
    const mask = this.bucketMask;
    let hole = (this.hashOf[entry] as number) & mask;
    while (buckets[hole] !== entry) {
      assert(buckets[hole] !== NONE, 'cache entry missing from its index');
      hole = (hole + 1) & mask;
    }
    for (let i = (hole + 1) & mask; ; i = (i + 1) & mask) {
      const moved = buckets[i] as number;
      if (moved === NONE) break;
      // `moved` may fill the hole unless its home bucket lies cyclically in (hole, i].
      const home = (this.hashOf[moved] as number) & mask;
      const homeAfterHole = hole <= i ? home > hole && home <= i : home > hole || home <= i;
      if (!homeAfterHole) {
        buckets[hole] = moved;
        hole = i;
      }
    }
    buckets[hole] = NONE;
  }

  /** A free entry index, growing the entry arrays and the index when all are in use. */
  private takeEntry(): number {
    if (this.freeEntryCount > 0) return this.freeEntries[--this.freeEntryCount] as number;
    if (this.entryHighWater === this.entryCapacity) this.growEntries();
    return this.entryHighWater++;
  }

  /** Doubles the entry arrays; the index keeps at least two buckets per entry. */
  private growEntries(): void {
    const capacity = Math.max(INITIAL_ENTRIES, this.entryCapacity * 2);
    const grownF64 = (a: Float64Array): Float64Array => {
      const b = new Float64Array(capacity);
      b.set(a);
      return b;
    };
    const grownI32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(capacity);
      b.set(a);
      return b;
    };
    this.fileOf = grownF64(this.fileOf);
    this.offsetOf = grownF64(this.offsetOf);
    this.lengthOf = grownF64(this.lengthOf);
    this.chargeOf = grownF64(this.chargeOf);
    this.hashOf = grownI32(this.hashOf);
    this.prevOf = grownI32(this.prevOf);
    this.filePrevOf = grownI32(this.filePrevOf);
    this.fileNextOf = grownI32(this.fileNextOf);
    this.nextOf = grownI32(this.nextOf);
    this.slotOf = grownI32(this.slotOf);
    this.freeEntries = new Int32Array(capacity);
    const segments = new Uint8Array(capacity);
    segments.set(this.segmentOf);
    this.segmentOf = segments;
    this.entryCapacity = capacity;
    this.buckets = new Int32Array(capacity * 2).fill(NONE);
    this.bucketMask = capacity * 2 - 1;
    for (const segment of [PROBATION, PROTECTED] as const) {
      for (let e = this.heads[segment] as number; e !== NONE; e = this.nextOf[e] as number) this.addToIndex(e);
    }
  }

  private pushFront(segment: number, entry: number): void {
    const head = this.heads[segment] as number;
    this.segmentOf[entry] = segment;
    this.prevOf[entry] = NONE;
    this.nextOf[entry] = head;
    if (head !== NONE) this.prevOf[head] = entry;
    else this.tails[segment] = entry;
    this.heads[segment] = entry;
    this.segmentBytes[segment] = (this.segmentBytes[segment] as number) + (this.chargeOf[entry] as number);
  }

  private unlink(entry: number): void {
    const segment = this.segmentOf[entry] as number;
    const prev = this.prevOf[entry] as number;
    const next = this.nextOf[entry] as number;
    if (prev !== NONE) this.nextOf[prev] = next;
    else this.heads[segment] = next;
    if (next !== NONE) this.prevOf[next] = prev;
    else this.tails[segment] = prev;
    this.segmentBytes[segment] = (this.segmentBytes[segment] as number) - (this.chargeOf[entry] as number);
  }

  /** A free slot; the budget check before guarantees one exists or can be allocated. */
  private takeSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    assert(this.slotCount < this.maxSlots, 'no free cache slot within the budget');
    const n = Math.min(SLOTS_PER_SLAB, this.maxSlots - this.slotCount);
    const bytes = n * this.slotBytes;
    this.slabs.push(spareSlabs.take((slab) => slab.length === bytes) ?? Buffer.allocUnsafeSlow(bytes));
    for (let i = n - 1; i >= 1; i--) this.freeSlots.push(this.slotCount + i);
    const slot = this.slotCount;
    this.slotCount += n;
    return slot;
  }

  /** Unlinks `entry` from its list and the index, frees its slot and the entry itself. */
  private remove(entry: number): void {
    this.unlink(entry);
    this.removeFromIndex(entry);
    this.unlinkFromFile(entry);
    const slot = this.slotOf[entry] as number;
    if (slot !== NO_SLOT) this.freeSlots.push(slot);
    else this.ownBlocks[entry] = undefined;
    this.freeEntries[this.freeEntryCount++] = entry;
    this.entryCount--;
  }

  /** Drops every block of a file (called when it is deleted; file numbers are never reused). */
  evictFile(fileNumber: number): void {
    let e = this.fileHeads.get(fileNumber);
    if (e === undefined) return;
    while (e !== NONE) {
      const next = this.fileNextOf[e] as number;
      this.remove(e);
      e = next;
    }
    assert(!this.fileHeads.has(fileNumber), 'evictFile left blocks of the file cached');
    this.checkInvariants();
  }

  private linkToFile(entry: number, fileNumber: number): void {
    const head = this.fileHeads.get(fileNumber) ?? NONE;
    this.filePrevOf[entry] = NONE;
    this.fileNextOf[entry] = head;
    if (head !== NONE) this.filePrevOf[head] = entry;
    this.fileHeads.set(fileNumber, entry);
  }

  private unlinkFromFile(entry: number): void {
    const prev = this.filePrevOf[entry] as number;
    const next = this.fileNextOf[entry] as number;
    if (next !== NONE) this.filePrevOf[next] = prev;
    if (prev !== NONE) {
      this.fileNextOf[prev] = next;
    } else {
      const fileNumber = this.fileOf[entry] as number;
      if (next === NONE) this.fileHeads.delete(fileNumber);
      else this.fileHeads.set(fileNumber, next);
    }
  }

  /**
   * Empties the cache for good and offers its slabs to the next cache created in this thread
   * (WeakSpares). Called by a database's close once nothing reads through it any more: a view
   * handed out earlier must not be used after this. Later inserts cache nothing.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const slab of this.slabs) spareSlabs.put(slab);
    this.slabs.length = 0;
    this.slotCount = 0;
    this.freeSlots = [];
    this.ownBlocks = [];
    this.buckets = new Int32Array(0);
    this.bucketMask = 0;
    this.entryCapacity = 0;
    this.fileOf = this.offsetOf = this.lengthOf = this.chargeOf = new Float64Array(0);
    this.hashOf = this.prevOf = this.nextOf = this.slotOf = this.freeEntries = new Int32Array(0);
    this.filePrevOf = this.fileNextOf = new Int32Array(0);
    this.segmentOf = new Uint8Array(0);
    this.entryHighWater = 0;
    this.freeEntryCount = 0;
    this.entryCount = 0;
    this.fileHeads.clear();
    this.heads.fill(NONE);
    this.tails.fill(NONE);
    this.segmentBytes.fill(0);
    this.checkInvariants();
  }

  stats(): BlockCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      usedBytes: this.usedBytes,
      capacityBytes: this.capacityBytes,
      entries: this.entryCount,
      protectedBytes: this.segmentBytes[PROTECTED] as number,
      rejected: this.rejected,
    };
  }

  /** Moves least recently used protected blocks back to probation while protected is too big. */
  private demoteOverflow(): void {
    while ((this.segmentBytes[PROTECTED] as number) > this.protectedCapacityBytes && this.tails[PROTECTED] !== NONE) {
      const e = this.tails[PROTECTED] as number;
      this.unlink(e);
      this.pushFront(PROBATION, e);
    }
  }

  /** Evicts least recently used blocks (probation first) until at most `budget` bytes are used. */
  private evictToBudget(budget: number): void {
    while (this.usedBytes > budget) {
      const victim = this.victim();
      assert(victim !== NONE, 'cache over budget with no entries');
      this.remove(victim);
    }
    assert(this.usedBytes >= 0, 'cache byte count went negative');
  }

  /** Whole-structure check (tests): lists, segments, index and byte sums agree with the counters. */
  private checkInvariants(): void {
    if (!invariants.enabled) return;
    let count = 0;
    let slotted = 0;
    const perFile = new Map<number, number>();
    for (const segment of [PROBATION, PROTECTED] as const) {
      let bytes = 0;
      let prev = NONE;
      for (let e = this.heads[segment] as number; e !== NONE; e = this.nextOf[e] as number) {
        count++;
        bytes += this.chargeOf[e] as number;
        const slot = this.slotOf[e] as number;
        if (slot !== NO_SLOT) slotted++;
        assert(this.prevOf[e] === prev, 'recency list back link broken');
        assert(this.chargeOf[e] === (slot === NO_SLOT ? this.lengthOf[e] : this.slotBytes), 'entry charge mismatch');
        assert(slot !== NO_SLOT || this.ownBlocks[e]?.length === this.lengthOf[e], 'own block missing or wrong length');
        assert(this.segmentOf[e] === segment, 'entry in the wrong segment list');
        const fileNumber = this.fileOf[e] as number;
        const offset = this.offsetOf[e] as number;
        assert(this.hashOf[e] === blockHash(fileNumber, offset), 'entry hash mismatch');
        assert(this.find(fileNumber, offset, this.hashOf[e] as number) === e, 'list entry missing from the index');
        perFile.set(fileNumber, (perFile.get(fileNumber) ?? 0) + 1);
        prev = e;
      }
      assert(this.tails[segment] === prev, 'recency list tail mismatch');
      assert(bytes === this.segmentBytes[segment], 'segment byte count mismatch');
    }
    assert(count === this.entryCount, 'cache entry count mismatch');
    assert(count + this.freeEntryCount === this.entryHighWater, 'cache entries leaked or double-freed');
    let indexed = 0;
    for (let i = 0; i < this.buckets.length; i++) if (this.buckets[i] !== NONE) indexed++;
    assert(indexed === count, 'index holds entries that are not cached');
    assert(perFile.size === this.fileHeads.size, 'per-file lists mismatch');
    for (const [file, n] of perFile) {
      let listed = 0;
      let prev = NONE;
      for (let e = this.fileHeads.get(file) ?? NONE; e !== NONE; e = this.fileNextOf[e] as number) {
        assert(this.fileOf[e] === file && this.filePrevOf[e] === prev, 'per-file list broken');
        prev = e;
        listed++;
      }
      assert(listed === n, 'per-file list misses entries');
    }
    assert(slotted + this.freeSlots.length === this.slotCount, 'slots leaked or double-freed');
    assert(this.usedBytes <= this.capacityBytes, 'cache over budget');
    assert((this.segmentBytes[PROTECTED] as number) <= this.protectedCapacityBytes, 'protected segment over its share');
  }
}

/** A well-mixed 32-bit hash of a block's cache key, as a signed int32 (as the index stores it). */
function blockHash(fileNumber: number, offset: number): number {
  return avalanche32(Math.imul(fileNumber, 0x9e3779b1) ^ offset ^ Math.imul(Math.floor(offset / 4294967296), 0x27d4eb2f)) | 0;
}

/**
 * Count-min sketch of access counts: 4 rows of byte counters capped at 15; every 10 x width
 * increments all counters are halved (aging). Rows are indexed by double hashing of one 32-bit hash.
 */
class FrequencySketch {
  private readonly counters: Uint8Array;
  private readonly mask: number;
  private additions = 0;
  private readonly sampleSize: number;

  constructor(expectedItems: number) {
    let width = 1;
    while (width < expectedItems * 2) width *= 2;
    this.counters = new Uint8Array(4 * width);
    this.mask = width - 1;
    this.sampleSize = 10 * width;
  }

  increment(h: number): void {
    const w = this.mask + 1;
    for (let i = 0; i < 4; i++) {
      const idx = i * w + ((h + Math.imul(i, (h >>> 16) | 1)) & this.mask);
      const c = this.counters[idx] as number;
      if (c < 15) this.counters[idx] = c + 1;
    }
    if (++this.additions >= this.sampleSize) {
      this.additions = 0;
      for (let i = 0; i < this.counters.length; i++) this.counters[i] = (this.counters[i] as number) >>> 1;
    }
  }

  estimate(h: number): number {
    const w = this.mask + 1;
    let min = 15;
    for (let i = 0; i < 4; i++) {
      const c = this.counters[i * w + ((h + Math.imul(i, (h >>> 16) | 1)) & this.mask)] as number;
      if (c < min) min = c;
    }
    return min;
  }
}
