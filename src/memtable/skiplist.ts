/**
 * Skiplist of (encoded internal key, value) entries in internal-key order, stored without one JS
 * object per entry: keys and values are appended to one growable byte arena, and each node is a
 * row in one Int32Array (key offset, key length, value length, and one forward link per level of
 * the node's height). A memtable of 100k entries is a handful of objects for the garbage
 * collector instead of 400k.
 *
 * Insert-only: entries are never removed or changed, which is what lets iterators run while writers
 * insert (the event loop never interleaves a half-done insert with a read). When the arena grows,
 * views handed out earlier keep pointing into the old arena, whose bytes never change.
 *
 * Heights come from the injected seeded Random so runs replay exactly.
 *
 * The arena and the rows live in SharedArrayBuffers: once the memtable is immutable, the flush
 * worker walks them in place (sortedEntries) instead of receiving a copy, and after the flush
 * the DB hands them to the next memtable (release, then the constructor's `storage`).
 */
import { assert, invariants } from '../util/assert.js';
import { KeyProbe, viewOf } from '../base/key-probe.js';
import { copyBytes, copyOfRange, copyWithViews, viewCopyPays } from '../util/copy-bytes.js';
import type { Random } from '../util/random.js';
import { TRAILER_BYTES, compareBytes, compareBytesView, compareInternalKeyViews, trailerOf } from '../base/internal-key.js';

export const MAX_HEIGHT = 12;
/** One in BRANCHING nodes is promoted to the next level. */
const BRANCHING = 4;
/** The head node: index 0, an empty key, never returned. */
const HEAD = 0;
/** Null link. */
export const NIL = -1;
/**
 * A node is a row in `rows`: key offset, key length, value length, the previous node on level 0
 * (HEAD for the first), then one link per level.
 */
const KEY_OFF = 0;
const KEY_LEN = 1;
const VALUE_LEN = 2;
const PREV = 3;
const LINKS = 4;
const INITIAL_ROW_INTS = 8 * 1024;
const INITIAL_ARENA_BYTES = 64 * 1024;

/**
 * A frozen skiplist's entries in internal-key order, shared with another thread (the arrays view
 * SharedArrayBuffers, so posting them copies nothing). Walk them with firstSorted / nextSorted:
 * node x has its key at bytes[sortedKeyOffset(x), + sortedKeyLength(x)) and its value in the
 * sortedValueLength(x) bytes right after it. Valid only while the skiplist takes no inserts and
 * has not been released.
 */
export interface SortedEntries {
  bytes: Uint8Array;
  rows: Int32Array;
  count: number;
  /** Bytes of keys and values in `bytes` (the rest of it is unused). */
  usedBytes: number;
}

/** The first node of a SortedEntries walk (NIL if empty). */
export function firstSorted(s: SortedEntries): number {
  return s.rows[HEAD + LINKS] as number;
}

/** The node after `node` in key order, or NIL. */
export function nextSorted(s: SortedEntries, node: number): number {
  return s.rows[node + LINKS] as number;
}

export function sortedKeyOffset(s: SortedEntries, node: number): number {
  return s.rows[node + KEY_OFF] as number;
}

export function sortedKeyLength(s: SortedEntries, node: number): number {
  return s.rows[node + KEY_LEN] as number;
}

export function sortedValueLength(s: SortedEntries, node: number): number {
  return s.rows[node + VALUE_LEN] as number;
}

/**
 * A released skiplist's arena and rows, for a new skiplist to reuse (see release); null where the
 * list had outgrown the size worth keeping.
 */
export interface SkipListStorage {
  arena: Buffer | null;
  rows: Int32Array | null;
}

/**
 * True if an arena or rows array of `bytes` is worth reusing for a list whose arena starts at
 * `arenaBytes`: at most twice that. A list that one outsized batch grew keeps nothing of that size
 * alive for the rest of the session.
 */
function worthKeeping(bytes: number, arenaBytes: number): boolean {
  return bytes <= 2 * arenaBytes;
}

/** A Buffer over a new SharedArrayBuffer (zeroed pages, resident only once written). */
function sharedBytes(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}

function sharedInts(count: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(count * 4));
}

export class SkipList {
  /** Key bytes (user key + trailer) followed by value bytes, per node. */
  private arena: Buffer;
  /** The arena as a DataView: comparisons read four bytes at a time (compareBytesView). */
  private view: DataView;
  private arenaUsed = 0;
  /** The buffer values were last inserted from (a batch payload) and its view; see sourceView. */
  private lastSource: Buffer | null = null;
  private lastSourceView: DataView = new DataView(new ArrayBuffer(0));
  /** Search keys are copied here once per search, so every comparison is view against view. */
  private readonly target = new KeyProbe();
  /**
   * Every node's row, back to back; a node's id is the index of its row. A row holds only as many
   * links as the node's height (1.33 on average), so a node costs ~21 bytes here rather than a
   * fixed MAX_HEIGHT row, and the fields a search reads sit together: one cache line per hop.
   * rows[node + LINKS + level] = next node at that level, or NIL. The head (id 0) has every level.
   */
  private rows: Int32Array;
  private rowsUsed = LINKS + MAX_HEIGHT;
  private count = 0;
  private height = 1;
  private readonly prevScratch = new Int32Array(MAX_HEIGHT);
  /** Per level, the node after which a key just above the last insert would go. */
  private readonly hint = new Int32Array(MAX_HEIGHT);
  private lastInserted = NIL;
  private readonly rng: Random;
  /** True after release(): a reader still walking the list is a bug (MemTableIterator asserts). */
  released = false;
  /** The arena's first size (the constructor's `arenaBytes`). */
  private readonly arenaBytes: number;

  /**
   * `arenaBytes`: the arena's first size. Sized for the whole memtable, it never grows (no copy,
   * no discarded smaller arenas for the garbage collector); pages not yet written are not resident.
   * `storage` (a released skiplist's) is reused instead: its pages are already resident, and no new
   * ones wait for the garbage collector. Each of its arrays is reused only if it is at least the
   * size a new one would have and worth keeping (see worthKeeping).
   */
  constructor(rng: Random, arenaBytes = INITIAL_ARENA_BYTES, storage: SkipListStorage | null = null) {
    assert(Number.isSafeInteger(arenaBytes) && arenaBytes > 0, 'arena size must be a positive integer');
    this.arenaBytes = arenaBytes;
    const arena = storage?.arena ?? null;
    this.arena = arena !== null && arena.length >= arenaBytes && worthKeeping(arena.length, arenaBytes) ? arena : sharedBytes(arenaBytes);
    const rows = storage?.rows ?? null;
    this.rows = rows !== null && rows.length >= INITIAL_ROW_INTS && worthKeeping(rows.byteLength, arenaBytes) ? rows : sharedInts(INITIAL_ROW_INTS);
    this.view = viewOf(this.arena);
    this.rng = rng;
    this.rows.fill(NIL, HEAD + LINKS, HEAD + LINKS + MAX_HEIGHT);
  }

  /** Entries, not counting the head. */
  get length(): number {
    return this.count;
  }

  /** Bytes of entries stored: key and value bytes plus the nodes' rows. */
  get usedBytes(): number {
    return this.arenaUsed + this.rowsUsed * 4;
  }

  /**
   * The entries in order, shared in place (no copy) with the thread that builds the flush table.
   * Requires: no insert from now on (the memtable is immutable) and no release() while in use.
   */
  sortedEntries(): SortedEntries {
    return { bytes: this.arena, rows: this.rows, count: this.count, usedBytes: this.arenaUsed };
  }

  /**
   * Gives up the arena and rows for a new skiplist to reuse (those worth keeping), and becomes
   * empty. Requires: nothing still reads this list (no open iterator, no flush, no view of a key or
   * value kept).
   */
  release(): SkipListStorage {
    this.released = true;
    const storage: SkipListStorage = {
      arena: worthKeeping(this.arena.length, this.arenaBytes) ? this.arena : null,
      rows: worthKeeping(this.rows.byteLength, this.arenaBytes) ? this.rows : null,
    };
    this.arena = Buffer.alloc(0);
    this.view = viewOf(this.arena);
    this.rows = new Int32Array(LINKS + MAX_HEIGHT).fill(NIL, HEAD + LINKS);
    this.rowsUsed = LINKS + MAX_HEIGHT;
    this.arenaUsed = 0;
    this.count = 0;
    this.height = 1;
    this.lastInserted = NIL;
    this.hint.fill(HEAD);
    return storage;
  }

  // ---- node accessors (views are valid for as long as they are referenced) ----

  key(node: number): Buffer {
    const off = this.rows[node + KEY_OFF] as number;
    return this.arena.subarray(off, off + (this.rows[node + KEY_LEN] as number));
  }

  /** A copy of node's value that the caller owns. */
  copyValue(node: number): Buffer {
    const off = (this.rows[node + KEY_OFF] as number) + (this.rows[node + KEY_LEN] as number);
    return copyOfRange(this.arena, off, off + (this.rows[node + VALUE_LEN] as number));
  }

  value(node: number): Buffer {
    const off = (this.rows[node + KEY_OFF] as number) + (this.rows[node + KEY_LEN] as number);
    return this.arena.subarray(off, off + (this.rows[node + VALUE_LEN] as number));
  }

  next(node: number): number {
    return this.rows[node + LINKS] as number;
  }

  first(): number {
    return this.next(HEAD);
  }

  /** The node before `node` in key order, or NIL (level 0 is doubly linked). */
  prev(node: number): number {
    const p = this.rows[node + PREV] as number;
    return p === HEAD ? NIL : p;
  }

  /** Copies a search key into `target`; returns its length. */
  private setTarget(key: Buffer): number {
    this.target.set(key);
    return key.length;
  }

  /** Compares node's internal key with the internal key in `target` (setTarget). */
  private cmp(node: number, targetLength: number): number {
    const off = this.rows[node + KEY_OFF] as number;
    return compareInternalKeyViews(this.view, off, off + (this.rows[node + KEY_LEN] as number), this.target.view, 0, targetLength);
  }

  /** Compares the internal keys of two nodes (no Buffer views: both live in the arena). */
  private cmpNodes(a: number, b: number): number {
    const rows = this.rows;
    const aOff = rows[a + KEY_OFF] as number;
    const bOff = rows[b + KEY_OFF] as number;
    const v = this.view;
    return compareInternalKeyViews(v, aOff, aOff + (rows[a + KEY_LEN] as number), v, bOff, bOff + (rows[b + KEY_LEN] as number));
  }

  private randomHeight(): number {
    let h = 1;
    while (h < MAX_HEIGHT && this.rng.nextUint32() % BRANCHING === 0) h++;
    return h;
  }

  /**
   * Inserts keySrc[keyStart, keyEnd) ++ trailer → valueSrc[valueStart, valueEnd), copying both
   * into the arena. Returns the new node.
   * Requires: no equal internal key already present (sequence numbers are unique).
   *
   * Keys that arrive in ascending order (sequential loads, sorted batches) start each level's walk
   * from where the previous insert ended (`hint`), so they cost O(height) comparisons, not
   * O(height × branching).
   */
  insert(
    keySrc: Buffer,
    keyStart: number,
    keyEnd: number,
    trailerLow: number,
    trailerHigh: number,
    valueSrc: Buffer,
    valueStart: number,
    valueEnd: number,
    newer: number = NIL,
  ): number {
    const ulen = keyEnd - keyStart;
    const klen = ulen + TRAILER_BYTES;
    const h = this.randomHeight();
    const node = this.appendNode(klen, valueEnd - valueStart, h);
    const off = this.rows[node + KEY_OFF] as number;
    const a = this.arena;
    const view = this.view;
    copyBytes(keySrc, keyStart, keyEnd, a, off);
    view.setUint32(off + ulen, trailerLow, true);
    view.setUint32(off + ulen + 4, trailerHigh, true);
    const vlen = valueEnd - valueStart;
    if (viewCopyPays(vlen)) copyWithViews(this.sourceView(valueSrc), valueStart, view, off + klen, vlen);
    else copyBytes(valueSrc, valueStart, valueEnd, a, off + klen);
    if (newer !== NIL && h === 1) return this.linkBefore(node, newer);
    const prev = this.prevScratch;
    const hint = this.hint;
    const useHint = this.lastInserted !== NIL && this.cmpNodes(this.lastInserted, node) < 0;
    let x = HEAD;
    if (useHint && this.rows[this.lastInserted + LINKS] === NIL) {
      // Appending after the tail (a sequential load): the previous insert was the last node, so
      // on every level the last node, hint[level], is the predecessor. No comparisons.
      for (let level = this.height - 1; level >= 0; level--) prev[level] = hint[level] as number;
      x = prev[0] as number;
    } else {
      for (let level = this.height - 1; level >= 0; level--) {
        // hint[level] precedes the new key too; jump to it if it is further along than x.
        if (useHint) {
          const h = hint[level] as number;
          if (h !== HEAD && (x === HEAD || this.cmpNodes(h, x) > 0)) x = h;
        }
        for (;;) {
          const nx = this.rows[x + LINKS + level] as number;
          if (nx === NIL || this.cmpNodes(nx, node) >= 0) break;
          x = nx;
        }
        prev[level] = x;
      }
    }
    const rows = this.rows;
    const following = rows[x + LINKS] as number;
    assert(following === NIL || this.cmpNodes(following, node) !== 0, 'duplicate key');
    for (let level = this.height; level < h; level++) prev[level] = HEAD;
    if (h > this.height) this.height = h;
    for (let level = 0; level < h; level++) {
      const p = (prev[level] as number) + LINKS + level;
      rows[node + LINKS + level] = rows[p] as number;
      rows[p] = node;
    }
    rows[node + PREV] = prev[0] as number;
    if (following !== NIL) rows[following + PREV] = node;
    // Levels at and above the list's height keep HEAD, their initial value: the list never had
    // nodes there.
    for (let level = 0; level < this.height; level++) hint[level] = level < h ? node : (prev[level] as number);
    this.lastInserted = node;
    return node;
  }

  /**
   * Links a node of height 1 in just before `newer`, the newest node of the same user key (the
   * new node has a higher sequence number, so it sorts right before it): O(1), no search.
   * The insert hints then no longer describe the last insert, so the next insert searches.
   */
  private linkBefore(node: number, newer: number): number {
    const rows = this.rows;
    const p = rows[newer + PREV] as number;
    if (invariants.enabled) {
      assert(this.cmpNodes(node, newer) < 0, 'a newer version must sort before the older');
      assert(p === HEAD || this.cmpNodes(p, node) < 0, 'the node before the newest version sorts before the new one');
    }
    rows[node + LINKS] = newer;
    rows[node + PREV] = p;
    rows[p + LINKS] = node;
    rows[newer + PREV] = node;
    this.lastInserted = NIL;
    return node;
  }

  /**
   * A DataView of `src`, kept while the same buffer keeps coming (a batch's entries are all
   * inserted from its one payload): value copies then need no allocation.
   */
  private sourceView(src: Buffer): DataView {
    if (src !== this.lastSource) {
      this.lastSource = src;
      this.lastSourceView = viewOf(src);
    }
    return this.lastSourceView;
  }

  /** Reserves arena bytes and a row with `height` links (set by the caller); returns the node. */
  private appendNode(klen: number, vlen: number, height: number): number {
    const bytes = klen + vlen;
    if (this.arenaUsed + bytes > this.arena.length) {
      const grown = sharedBytes(Math.max(this.arena.length * 2, this.arenaUsed + bytes));
      this.arena.copy(grown, 0, 0, this.arenaUsed);
      this.arena = grown;
      this.view = viewOf(grown);
    }
    const rowInts = LINKS + height;
    if (this.rowsUsed + rowInts > this.rows.length) {
      const grown = sharedInts(Math.max(this.rows.length * 2, this.rowsUsed + rowInts));
      grown.set(this.rows.subarray(0, this.rowsUsed));
      this.rows = grown;
    }
    const node = this.rowsUsed;
    this.rowsUsed += rowInts;
    this.count++;
    const rows = this.rows;
    rows[node + KEY_OFF] = this.arenaUsed;
    rows[node + KEY_LEN] = klen;
    rows[node + VALUE_LEN] = vlen;
    this.arenaUsed += bytes;
    return node;
  }

  /** First node with key >= target, or NIL. */
  findGE(target: Buffer): number {
    const tlen = this.setTarget(target);
    let x = HEAD;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.rows[x + LINKS + level] as number;
        if (nx === NIL || this.cmp(nx, tlen) >= 0) break;
        x = nx;
      }
    }
    return this.rows[x + LINKS] as number;
  }

  /**
   * First node whose user key >= userKey and, for an equal user key, whose trailer <= seekTrailer
   * (i.e. the newest version visible at that sequence). Avoids building a seek key for point reads.
   */
  findVisible(userKey: Buffer, seekTrailer: number): number {
    const ulen = this.setTarget(userKey);
    let x = HEAD;
    const a = this.arena;
    const v = this.view;
    const t = this.target.view;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.rows[x + LINKS + level] as number;
        if (nx === NIL) break;
        const off = this.rows[nx + KEY_OFF] as number;
        const end = off + (this.rows[nx + KEY_LEN] as number);
        const c = compareBytesView(v, off, end - TRAILER_BYTES, t, 0, ulen);
        if (c > 0 || (c === 0 && trailerOf(a, end) <= seekTrailer)) break;
        x = nx;
      }
    }
    return this.rows[x + LINKS] as number;
  }

  /** Last node with key < target, or NIL. */
  findLT(target: Buffer): number {
    const tlen = this.setTarget(target);
    let x = HEAD;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.rows[x + LINKS + level] as number;
        if (nx === NIL || this.cmp(nx, tlen) >= 0) break;
        x = nx;
      }
    }
    return x === HEAD ? NIL : x;
  }

  /** Last node, or NIL if empty. */
  findLast(): number {
    let x = HEAD;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.rows[x + LINKS + level] as number;
        if (nx === NIL) break;
        x = nx;
      }
    }
    return x === HEAD ? NIL : x;
  }

  /** The arena: node keys lie at keyOffset (see userKeyLength); valid until the next insert. */
  arenaBuffer(): Buffer {
    return this.arena;
  }

  keyOffset(node: number): number {
    return this.rows[node + KEY_OFF] as number;
  }

  userKeyLength(node: number): number {
    return (this.rows[node + KEY_LEN] as number) - TRAILER_BYTES;
  }

  /** True if node's user key equals src[start, end). */
  userKeyEqualsRange(node: number, src: Uint8Array, start: number, end: number): boolean {
    const off = this.rows[node + KEY_OFF] as number;
    const ulen = (this.rows[node + KEY_LEN] as number) - TRAILER_BYTES;
    return ulen === end - start && compareBytes(this.arena, off, off + ulen, src, start, end) === 0;
  }

  /** True if node's user key equals `userKey`. */
  userKeyEquals(node: number, userKey: Buffer): boolean {
    return this.userKeyEqualsRange(node, userKey, 0, userKey.length);
  }

  /** Packed trailer of node's key. */
  trailer(node: number): number {
    return trailerOf(this.arena, (this.rows[node + KEY_OFF] as number) + (this.rows[node + KEY_LEN] as number));
  }
}
