/**
 * Cache of verified, uncompressed data blocks shared by all open tables, bounded in bytes.
 *
 * Replacement is a segmented LRU (SLRU), which is scan resistant: a block enters the *probation*
 * segment; a second hit promotes it to the *protected* segment (at most PROTECTED_SHARE of the
 * budget; its overflow is demoted back to probation). Eviction takes the least recently used
 * probation block first. A full scan touches each block once, so it only churns probation and
 * the hot set in protected survives it.
 *
 * Keyed by (file number, block offset) through two Map levels, so a lookup builds no string and
 * allocates nothing; evicting a deleted file drops its inner map. Recency lists are doubly linked
 * through the entries (O(1) get, insert, evict). Cached blocks are immutable: readers may hand out
 * views into them, and an evicted block simply becomes garbage once those views die.
 * Capacity 0 disables caching (every get misses, insert does nothing).
 */
import { assert, invariants } from '../util/assert.js';

/** Share of the budget the protected segment may hold. */
const PROTECTED_SHARE = 0.8;

const PROBATION = 0;
const PROTECTED = 1;

class CacheEntry {
  prev: CacheEntry | null = null;
  next: CacheEntry | null = null;
  segment = PROBATION;
  constructor(
    readonly fileNumber: number,
    readonly offset: number,
    public block: Buffer,
  ) {}
}

/** One recency list: head = most recently used. */
class LruList {
  head: CacheEntry | null = null;
  tail: CacheEntry | null = null;
  bytes = 0;

  pushFront(entry: CacheEntry): void {
    entry.prev = null;
    entry.next = this.head;
    if (this.head !== null) this.head.prev = entry;
    this.head = entry;
    if (this.tail === null) this.tail = entry;
    this.bytes += entry.block.length;
  }

  unlink(entry: CacheEntry): void {
    if (entry.prev !== null) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next !== null) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = null;
    entry.next = null;
    this.bytes -= entry.block.length;
  }
}

export interface BlockCacheStats {
  hits: number;
  misses: number;
  usedBytes: number;
  capacityBytes: number;
  entries: number;
  /** Bytes in the protected (hit at least twice) segment. */
  protectedBytes: number;
}

export class BlockCache {
  private readonly files = new Map<number, Map<number, CacheEntry>>();
  private readonly lists = [new LruList(), new LruList()] as const;
  private readonly protectedCapacityBytes: number;
  private entryCount = 0;
  private hits = 0;
  private misses = 0;

  constructor(readonly capacityBytes: number) {
    assert(Number.isSafeInteger(capacityBytes), 'cache capacity must be an integer');
    assert(capacityBytes >= 0, 'cache capacity must be non-negative');
    this.protectedCapacityBytes = Math.floor(capacityBytes * PROTECTED_SHARE);
  }

  private get usedBytes(): number {
    return this.lists[PROBATION].bytes + this.lists[PROTECTED].bytes;
  }

  /** The cached block, marked most recently used (and promoted if in probation), or undefined. */
  get(fileNumber: number, offset: number): Buffer | undefined {
    const entry = this.files.get(fileNumber)?.get(offset);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    const list = this.lists[entry.segment as 0 | 1];
    if (entry.segment === PROTECTED && entry === list.head) return entry.block;
    list.unlink(entry);
    entry.segment = PROTECTED;
    this.lists[PROTECTED].pushFront(entry);
    this.demoteOverflow();
    return entry.block;
  }

  /**
   * Caches `block` (which must never be modified afterwards) in probation, replacing any block at
   * the same key, then evicts until the budget holds. A block larger than the capacity is not
   * cached.
   */
  insert(fileNumber: number, offset: number, block: Buffer): void {
    assert(Number.isSafeInteger(fileNumber) && fileNumber >= 0, 'bad file number');
    assert(Number.isSafeInteger(offset) && offset >= 0, 'bad block offset');
    if (this.capacityBytes === 0) return;
    // A block larger than the whole budget would only flush everything else.
    if (block.length > this.capacityBytes) return;
    let inner = this.files.get(fileNumber);
    if (inner === undefined) {
      inner = new Map();
      this.files.set(fileNumber, inner);
    }
    const existing = inner.get(offset);
    if (existing !== undefined) {
      this.lists[existing.segment as 0 | 1].unlink(existing);
      existing.block = block;
      existing.segment = PROBATION;
      this.lists[PROBATION].pushFront(existing);
    } else {
      const entry = new CacheEntry(fileNumber, offset, block);
      inner.set(offset, entry);
      this.lists[PROBATION].pushFront(entry);
      this.entryCount++;
    }
    this.evictToBudget();
    this.checkInvariants();
  }

  /** Drops every block of a file (called when it is deleted; file numbers are never reused). */
  evictFile(fileNumber: number): void {
    const inner = this.files.get(fileNumber);
    if (inner === undefined) return;
    for (const entry of inner.values()) {
      this.lists[entry.segment as 0 | 1].unlink(entry);
      this.entryCount--;
    }
    this.files.delete(fileNumber);
    this.checkInvariants();
  }

  stats(): BlockCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      usedBytes: this.usedBytes,
      capacityBytes: this.capacityBytes,
      entries: this.entryCount,
      protectedBytes: this.lists[PROTECTED].bytes,
    };
  }

  /** Moves least recently used protected blocks back to probation while protected is too big. */
  private demoteOverflow(): void {
    const prot = this.lists[PROTECTED];
    while (prot.bytes > this.protectedCapacityBytes && prot.tail !== null) {
      const e = prot.tail;
      prot.unlink(e);
      e.segment = PROBATION;
      this.lists[PROBATION].pushFront(e);
    }
  }

  private evictToBudget(): void {
    while (this.usedBytes > this.capacityBytes) {
      const victim = this.lists[PROBATION].tail ?? this.lists[PROTECTED].tail;
      assert(victim !== null, 'cache over budget with no entries');
      this.lists[victim.segment as 0 | 1].unlink(victim);
      const inner = this.files.get(victim.fileNumber);
      assert(inner !== undefined, 'cached entry without its file map');
      inner.delete(victim.offset);
      if (inner.size === 0) this.files.delete(victim.fileNumber);
      this.entryCount--;
    }
    assert(this.usedBytes >= 0, 'cache byte count went negative');
  }

  /** Whole-structure check (tests): lists, segments and byte sums agree with the counters. */
  private checkInvariants(): void {
    if (!invariants.enabled) return;
    let count = 0;
    for (const segment of [PROBATION, PROTECTED] as const) {
      let bytes = 0;
      for (let e = this.lists[segment].head; e !== null; e = e.next) {
        count++;
        bytes += e.block.length;
        assert(e.segment === segment, 'entry in the wrong segment list');
        assert(this.files.get(e.fileNumber)?.get(e.offset) === e, 'list entry missing from the maps');
      }
      assert(bytes === this.lists[segment].bytes, 'segment byte count mismatch');
    }
    assert(count === this.entryCount, 'cache entry count mismatch');
    assert(this.usedBytes <= this.capacityBytes, 'cache over budget');
    assert(this.lists[PROTECTED].bytes <= this.protectedCapacityBytes, 'protected segment over its share');
  }
}
