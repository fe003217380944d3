/**
 * The in-memory table of recent writes: a skiplist of internal keys. A memtable is mutable until the
 * DB rotates it (it then becomes the immutable memtable being flushed to an SSTable) and is dropped
 * once that SSTable is in the manifest.
 */
import { assert } from '../util/assert.js';
import { WeakSpares } from '../util/weak-spares.js';
import { Random } from '../util/random.js';
import { KIND_DELETE, MAX_SEQ, kindOfTrailer, seqOfTrailer } from '../base/internal-key.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { NIL, SkipList, type SkipListStorage, type SortedEntries } from './skiplist.js';
import { addHashToFilter, bloomHash, emptyFilter, mayContainHash } from '../sstable/bloom-filter.js';
import { KeyIndex, keyIndexSlots, type KeyIndexStorage } from './key-index.js';

/** Result of a point lookup in one memtable. `value` is a view valid while referenced. */
export type MemGetResult =
  | { found: false }
  | { found: true; deleted: true }
  | { found: true; deleted: false; value: Buffer };

const NOT_FOUND: MemGetResult = { found: false };
const DELETED: MemGetResult = { found: true, deleted: true };

/** Arenas larger than this start smaller and grow: a huge memtableSize reserves no huge buffer. */
const ARENA_PREALLOCATE_BYTES_MAX = 256 * 1024 * 1024;
const ARENA_BYTES_MIN = 64 * 1024;

/**
 * The arena for a memtable rotated at `capacityBytes`: keys and values take all of that but the
 * node rows, so the capacity itself is enough (a group that overshoots grows it once).
 */
function arenaBytesFor(capacityBytes: number): number {
  return Math.max(ARENA_BYTES_MIN, Math.min(capacityBytes, ARENA_PREALLOCATE_BYTES_MAX));
}

/**
 * The memtable's bloom filter: one bit per FILTER_BYTES_PER_BIT bytes of capacity (a 16 MiB
 * memtable of 120-byte entries gets ~15 bits per key, ~0.3% false positives), within bounds.
 */
const FILTER_BYTES_PER_BIT = 8;
const FILTER_BITS_MIN = 32 * 1024;
const FILTER_BITS_MAX = 64 * 1024 * 1024;
const FILTER_PROBES = 6;

/** A retired memtable's buffers, for the next memtable to reuse (see MemTable.retire). */
export interface MemTableStorage {
  list: SkipListStorage;
  filter: Buffer;
  index: KeyIndexStorage | null;
}

/**
 * Buffers of closed databases' memtables (the last flushed one and the active one), for the next
 * database opened in this thread: its first memtable and its first rotation (see WeakSpares). A
 * 16 MiB arena whose pages are already resident.
 */
export const spareMemTableStorage = new WeakSpares<MemTableStorage>(2);

/** Offers a retired memtable's buffers to the next database opened here (a retire() recycle). */
export function offerMemTableStorage(storage: MemTableStorage): void {
  spareMemTableStorage.put(storage);
}

/** Buffers a closed database offered (the MemTable constructor decides if they fit), or null. */
export function takeOfferedMemTableStorage(): MemTableStorage | null {
  return spareMemTableStorage.take(anyStorage) ?? null;
}

const anyStorage = (): boolean => true;

/** Versions a read walks down from a key's newest node before it searches the skiplist instead. */
const VERSION_WALK_MAX = 8;
/** Reads of keys written here (that searched the list) after which a memtable builds its key index. */
const INDEX_AFTER_SEARCHES = 256;
/** Nodes the index build visits per read or insert (~20 µs at most). */
const INDEX_BUILD_STEP = 64;

export class MemTable {
  private readonly list: SkipList;
  /**
   * Bloom filter of the user keys inserted (cache-local layout, bloom-filter.ts): a point read whose
   * key was never written here skips the skiplist search (~0.6 µs with 15k entries) for one cache
   * line. Reads pass the key's bloomHash, which they compute once for the tables' filters too.
   */
  private filter: Buffer;
  /**
   * User key → newest node, for point reads of keys written here (key-index.ts). Built once
   * INDEX_AFTER_SEARCHES reads have searched the list (keys written here are being read back):
   * keeping it costs each insert a probe of a table too large for the CPU cache, so a memtable
   * only written to (a load) never has one.
   */
  private index: KeyIndex | null = null;
  /**
   * The next node the index build visits (NIL once it is done). The build walks level 0 a few
   * nodes per read or insert rather than all at once: 115k entries take ~30 ms, too long a stall.
   * Until it is done the index answers only the keys it holds; others are searched in the list.
   */
  private buildCursor = NIL;
  /** A retired memtable's index arrays, for the index if this memtable builds one. */
  private spareIndex: KeyIndexStorage | null;
  /** Reads that searched the list (the key passed the filter) while there was no index. */
  private searches = 0;
  private readonly capacityBytes: number;
  /** Iterators not yet closed: they read the arena, so retire() waits for them. */
  private openIterators = 0;
  /** Set by retire() while iterators are open: receives the storage when the last one closes. */
  private recycle: ((storage: MemTableStorage) => void) | null = null;
  private retired = false;
  /** Smallest and largest sequence numbers inserted (for flush metadata). */
  minSeq = Number.MAX_SAFE_INTEGER;
  maxSeq = 0;

  /**
   * `capacityBytes`: the memtable size it will be rotated at (its arena is allocated for it once).
   * `storage`: a retired memtable's buffers, reused where they are large enough.
   */
  constructor(seed: number, capacityBytes = 0, storage: MemTableStorage | null = null) {
    this.list = new SkipList(new Random(seed), arenaBytesFor(capacityBytes), storage?.list ?? null);
    const bits = Math.min(FILTER_BITS_MAX, Math.max(FILTER_BITS_MIN, Math.floor(capacityBytes / FILTER_BYTES_PER_BIT)));
    this.filter = emptyFilter(bits, FILTER_PROBES, storage?.filter ?? null);
    this.spareIndex = storage?.index ?? null;
    this.capacityBytes = capacityBytes;
  }

  /**
   * Bytes of entries held (keys, values, node rows): what counts against memtableSize. The arena
   * grows by doubling, so memory held is at most about twice this.
   */
  get approximateBytes(): number {
    return this.list.usedBytes;
  }

  get entryCount(): number {
    return this.list.length;
  }

  /** Inserts one entry; the bytes are copied, so callers may reuse their buffers. */
  add(seq: number, kind: number, userKey: Buffer, value: Buffer): void {
    this.addFrom(seq, kind, userKey, 0, userKey.length, value, 0, value.length);
  }

  /**
   * Inserts key `keySrc[keyStart, keyEnd)` with value `valueSrc[valueStart, valueEnd)` (ranges,
   * so a whole encoded batch is applied without creating a view per key and value).
   */
  addFrom(
    seq: number,
    kind: number,
    keySrc: Buffer,
    keyStart: number,
    keyEnd: number,
    valueSrc: Buffer,
    valueStart: number,
    valueEnd: number,
  ): void {
    assert(seq >= 0 && seq <= MAX_SEQ, 'sequence number out of range');
    const packed = seq * 256 + kind;
    const low = packed % 0x100000000;
    const high = Math.floor(packed / 0x100000000);
    const hash = bloomHash(keySrc, keyStart, keyEnd);
    const index = this.index;
    const list = this.list;
    // A key written here before goes in right before its newest version: no search (skiplist.ts).
    // Only a newer version: callers add a key's versions in rising sequence order (commits and
    // WAL replay do), but an older one must not pass for the newest.
    if (index !== null && this.buildCursor !== NIL) this.advanceBuild(index);
    let slot = index !== null ? index.slotOf(hash, keySrc, keyStart, keyEnd, list) : -1;
    let newer = index !== null ? index.nodeAt(slot) : NIL;
    if (newer !== NIL && packed <= list.trailer(newer)) slot = newer = NIL;
    const node = list.insert(keySrc, keyStart, keyEnd, low, high, valueSrc, valueStart, valueEnd, newer);
    index?.store(slot, hash, node);
    addHashToFilter(this.filter, hash);
    if (seq < this.minSeq) this.minSeq = seq;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** False only if no entry here has this user key; `hash` is its bloomHash. */
  mayContainHash(hash: number): boolean {
    return mayContainHash(this.filter, hash);
  }

  /**
   * Newest version of `userKey` with sequence <= `seq`. `hash`, the key's bloomHash if the caller
   * has it, lets a key never written here return at once.
   */
  get(userKey: Buffer, seq: number, hash = -1): MemGetResult {
    // An empty memtable (just after a rotation or open) answers without touching the filter.
    if (this.list.length === 0 || (hash >= 0 && !mayContainHash(this.filter, hash))) return NOT_FOUND;
    const list = this.list;
    const node = this.findVisible(userKey, seq, hash);
    if (node === NIL) return NOT_FOUND;
    const t = list.trailer(node);
    assert(seqOfTrailer(t) <= seq, 'findVisible returned an invisible version');
    if (kindOfTrailer(t) === KIND_DELETE) return DELETED;
    return { found: true, deleted: false, value: list.value(node) };
  }

  /** Sequence number of the newest version of `userKey` here (value or deletion), or -1. `hash`: its bloomHash. */
  newestSeq(userKey: Buffer, hash = bloomHash(userKey)): number {
    if (!mayContainHash(this.filter, hash)) return -1;
    const list = this.list;
    const node = this.findVisible(userKey, MAX_SEQ, hash);
    if (node === NIL) return -1;
    return seqOfTrailer(list.trailer(node));
  }

  /**
   * The newest version of userKey visible at `seq`, or NIL. Through the key index when it holds
   * the key: its newest node, then down the older versions; a long walk or a key the index could
   * not take searches the list.
   */
  private findVisible(userKey: Buffer, seq: number, hash: number): number {
    const list = this.list;
    const index = this.index ?? this.countSearch();
    if (index !== null) {
      if (this.buildCursor !== NIL) this.advanceBuild(index);
      const h = hash >= 0 ? hash : bloomHash(userKey);
      let node = index.find(h, userKey, list);
      if (node === NIL) {
        if (index.complete && this.buildCursor === NIL) return NIL;
      } else {
        for (let i = 0; i < VERSION_WALK_MAX; i++) {
          if (seqOfTrailer(list.trailer(node)) <= seq) return node;
          node = list.next(node);
          // Past the key's oldest version: no version is visible at seq.
          if (node === NIL || !list.userKeyEquals(node, userKey)) return NIL;
        }
      }
    }
    const node = list.findVisible(userKey, seq * 256 + 255);
    return node !== NIL && list.userKeyEquals(node, userKey) ? node : NIL;
  }

  iterator(): InternalIterator {
    assert(!this.retired, 'memtable read after retire');
    this.openIterators++;
    return new MemTableIterator(this.list, this);
  }

  /**
   * The entries in order, shared in place with the thread that builds the flush table.
   * Requires: the memtable is immutable (rotated out) and stays unretired until the flush ends.
   */
  sortedEntries(): SortedEntries {
    assert(!this.retired, 'memtable read after retire');
    return this.list.sortedEntries();
  }

  /**
   * Called once, when the memtable has left the database (its table is installed): hands its
   * buffers to `recycle` for the next memtable, at once or when the last open iterator closes.
   * Point reads copy what they return, so only iterators can still be reading it.
   */
  retire(recycle: (storage: MemTableStorage) => void): void {
    assert(!this.retired, 'memtable retired twice');
    this.retired = true;
    if (this.openIterators === 0) recycle(this.takeStorage());
    else this.recycle = recycle;
  }

  /** retire() for a memtable no iterator reads (checked): returns its buffers at once. */
  retireNow(): MemTableStorage {
    assert(!this.retired, 'memtable retired twice');
    assert(this.openIterators === 0, 'memtable retired under an open iterator');
    this.retired = true;
    return this.takeStorage();
  }

  /** @internal MemTableIterator.close(). */
  iteratorClosed(): void {
    assert(this.openIterators > 0, 'memtable iterator closed twice');
    this.openIterators--;
    const recycle = this.recycle;
    if (this.openIterators === 0 && recycle !== null) {
      this.recycle = null;
      recycle(this.takeStorage());
    }
  }

  /** Counts a read that searches the list; starts the index at the INDEX_AFTER_SEARCHES-th. */
  private countSearch(): KeyIndex | null {
    if (++this.searches < INDEX_AFTER_SEARCHES || this.retired) return null;
    this.index = new KeyIndex(keyIndexSlots(this.capacityBytes), this.spareIndex);
    this.spareIndex = null;
    this.buildCursor = this.list.first();
    return this.index;
  }

  /**
   * Visits the next INDEX_BUILD_STEP nodes of level 0 and records each user key's first node,
   * which is its newest version. Inserts meanwhile record their own nodes (newer than anything
   * the walk will find), so a slot already taken is skipped.
   */
  private advanceBuild(index: KeyIndex): void {
    const list = this.list;
    const keys = list.arenaBuffer();
    let node = this.buildCursor;
    for (let i = 0; i < INDEX_BUILD_STEP && node !== NIL; i++) {
      const start = list.keyOffset(node);
      const end = start + list.userKeyLength(node);
      const hash = bloomHash(keys, start, end);
      const slot = index.slotOf(hash, keys, start, end, list);
      if (slot >= 0 && index.nodeAt(slot) === NIL) index.store(slot, hash, node);
      node = list.next(node);
    }
    this.buildCursor = node;
  }

  private takeStorage(): MemTableStorage {
    const storage: MemTableStorage = { list: this.list.release(), filter: this.filter, index: this.index?.storage() ?? this.spareIndex };
    this.filter = Buffer.alloc(0);
    this.index = null;
    this.spareIndex = null;
    this.buildCursor = NIL;
    return storage;
  }
}

class MemTableIterator implements InternalIterator {
  private node = NIL;
  private closed = false;
  constructor(
    private readonly list: SkipList,
    private readonly owner: MemTable,
  ) {}

  valid(): boolean {
    return this.node !== NIL;
  }
  first(): void {
    this.checkLive();
    this.node = this.list.first();
  }
  last(): void {
    this.checkLive();
    this.node = this.list.findLast();
  }
  seekGE(target: Buffer): void {
    this.checkLive();
    this.node = this.list.findGE(target);
  }
  seekLE(target: Buffer): void {
    this.checkLive();
    const ge = this.list.findGE(target);
    if (ge !== NIL && this.list.key(ge).equals(target)) {
      this.node = ge;
      return;
    }
    this.node = this.list.findLT(target);
  }
  next(): void {
    this.checkLive();
    assert(this.node !== NIL, 'next() requires valid()');
    this.node = this.list.next(this.node);
  }
  prev(): void {
    this.checkLive();
    assert(this.node !== NIL, 'prev() requires valid()');
    this.node = this.list.prev(this.node);
  }
  key(): Buffer {
    assert(this.node !== NIL, 'key() requires valid()');
    return this.list.key(this.node);
  }
  value(): Buffer {
    assert(this.node !== NIL, 'value() requires valid()');
    return this.list.value(this.node);
  }
  copyValue(): Buffer {
    assert(this.node !== NIL, 'copyValue() requires valid()');
    return this.list.copyValue(this.node);
  }
  /** A step after the memtable's buffers went to another memtable would read its entries. */
  private checkLive(): void {
    assert(!this.list.released, 'memtable iterator used after its buffers were handed on');
  }
  close(): void {
    this.node = NIL;
    if (this.closed) return;
    this.closed = true;
    this.owner.iteratorClosed();
  }
}
