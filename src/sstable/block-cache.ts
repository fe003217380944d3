/**
 * LRU cache of verified, uncompressed data blocks shared by all open tables, bounded in bytes.
 *
 * Keyed by (file number, block offset) through two Map levels, so a lookup builds no string and
 * allocates nothing; evicting a deleted file drops its inner map. Recency is a doubly linked list
 * threaded through the entries (O(1) get, insert, evict). Cached blocks are immutable: readers may
 * hand out views into them, and an evicted block simply becomes garbage once those views die.
 * Capacity 0 disables caching (every get misses, insert does nothing).
 */
import { assert, invariants } from '../util/assert.js';

class CacheEntry {
  prev: CacheEntry | null = null;
  next: CacheEntry | null = null;
  constructor(
    readonly fileNumber: number,
    readonly offset: number,
    public block: Buffer,
  ) {}
}

export interface BlockCacheStats {
  hits: number;
  misses: number;
  usedBytes: number;
  capacityBytes: number;
  entries: number;
}

export class BlockCache {
  private readonly files = new Map<number, Map<number, CacheEntry>>();
  /** Most recently used end of the list. */
  private head: CacheEntry | null = null;
  /** Least recently used end: evicted first. */
  private tail: CacheEntry | null = null;
  private usedBytes = 0;
  private entryCount = 0;
  private hits = 0;
  private misses = 0;

  constructor(readonly capacityBytes: number) {
    assert(Number.isSafeInteger(capacityBytes), 'cache capacity must be an integer');
    assert(capacityBytes >= 0, 'cache capacity must be non-negative');
  }

  /** The cached block, marked most recently used, or undefined. */
  get(fileNumber: number, offset: number): Buffer | undefined {
    const entry = this.files.get(fileNumber)?.get(offset);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (entry !== this.head) {
      this.unlink(entry);
      this.pushFront(entry);
    }
    return entry.block;
  }

  /**
   * Caches `block` (which must never be modified afterwards) as most recently used, replacing any
   * block at the same key, then evicts least recently used blocks until the budget holds. A block
   * larger than the capacity is not cached.
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
      this.usedBytes += block.length - existing.block.length;
      existing.block = block;
      this.unlink(existing);
      this.pushFront(existing);
    } else {
      const entry = new CacheEntry(fileNumber, offset, block);
      inner.set(offset, entry);
      this.pushFront(entry);
      this.usedBytes += block.length;
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
      this.unlink(entry);
      this.usedBytes -= entry.block.length;
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
    };
  }

  private evictToBudget(): void {
    while (this.usedBytes > this.capacityBytes) {
      const victim = this.tail;
      assert(victim !== null, 'cache over budget with no entries');
      this.unlink(victim);
      const inner = this.files.get(victim.fileNumber);
      assert(inner !== undefined, 'cached entry without its file map');
      inner.delete(victim.offset);
      if (inner.size === 0) this.files.delete(victim.fileNumber);
      this.usedBytes -= victim.block.length;
      this.entryCount--;
    }
    assert(this.usedBytes >= 0, 'cache byte count went negative');
  }

  private pushFront(entry: CacheEntry): void {
    entry.prev = null;
    entry.next = this.head;
    if (this.head !== null) this.head.prev = entry;
    this.head = entry;
    if (this.tail === null) this.tail = entry;
  }

  private unlink(entry: CacheEntry): void {
    if (entry.prev !== null) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next !== null) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = null;
    entry.next = null;
  }

  /** Whole-structure check (tests): list length and byte sum agree with the counters. */
  private checkInvariants(): void {
    if (!invariants.enabled) return;
    let count = 0;
    let bytes = 0;
    for (let e = this.head; e !== null; e = e.next) {
      count++;
      bytes += e.block.length;
      assert(this.files.get(e.fileNumber)?.get(e.offset) === e, 'list entry missing from the maps');
    }
    assert(count === this.entryCount, 'cache entry count mismatch');
    assert(bytes === this.usedBytes, 'cache byte count mismatch');
    assert(bytes <= this.capacityBytes, 'cache over budget');
  }
}
