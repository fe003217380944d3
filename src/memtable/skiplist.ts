/**
 * Skiplist of (encoded internal key, value) entries in internal-key order, stored without one JS
 * object per entry: keys and values are appended to one growable byte arena, and each node is a
 * row of typed arrays (key offset, key length, value length, and MAX_HEIGHT forward links). A
 * memtable of 100k entries is a handful of objects for the garbage collector instead of 400k.
 *
 * Insert-only: entries are never removed or changed, which is what lets iterators run while writers
 * insert (the event loop never interleaves a half-done insert with a read). When the arena grows,
 * views handed out earlier keep pointing into the old arena, whose bytes never change.
 *
 * Heights come from the injected seeded Random so runs replay exactly.
 */
import { assert } from '../util/assert.js';
import { KeyProbe, viewOf } from '../base/key-probe.js';
import { copyBytes } from '../util/copy-bytes.js';
import type { Random } from '../util/random.js';
import { TRAILER_BYTES, compareBytes, compareBytesView, compareInternalKeyViews, trailerOf } from '../base/internal-key.js';

export const MAX_HEIGHT = 12;
/** One in BRANCHING nodes is promoted to the next level. */
const BRANCHING = 4;
/** The head node: index 0, an empty key, never returned. */
const HEAD = 0;
/** Null link. */
export const NIL = -1;
const INITIAL_NODES = 1024;
/** Typed-array bytes per node: key offset, key length, value length, MAX_HEIGHT links. */
const NODE_ROW_BYTES = 12 + 4 * MAX_HEIGHT;
const INITIAL_ARENA_BYTES = 64 * 1024;

export class SkipList {
  /** Key bytes (user key + trailer) followed by value bytes, per node. */
  private arena: Buffer = Buffer.allocUnsafeSlow(INITIAL_ARENA_BYTES);
  /** The arena as a DataView: comparisons read four bytes at a time (compareBytesView). */
  private view = viewOf(this.arena);
  private arenaUsed = 0;
  /** Search keys are copied here once per search, so every comparison is view against view. */
  private readonly target = new KeyProbe();
  private keyOff = new Int32Array(INITIAL_NODES);
  private keyLen = new Int32Array(INITIAL_NODES);
  private valueLen = new Int32Array(INITIAL_NODES);
  /** links[node * MAX_HEIGHT + level] = next node at that level, or NIL. */
  private links = new Int32Array(INITIAL_NODES * MAX_HEIGHT).fill(NIL);
  private nodes = 1; // the head
  private height = 1;
  private readonly prevScratch = new Int32Array(MAX_HEIGHT);
  /** Per level, the node after which a key just above the last insert would go. */
  private readonly hint = new Int32Array(MAX_HEIGHT);
  private lastInserted = NIL;
  private readonly rng: Random;

  constructor(rng: Random) {
    this.rng = rng;
  }

  /** Entries, not counting the head. */
  get length(): number {
    return this.nodes - 1;
  }

  /** Bytes of entries stored: key and value bytes plus each node's row in the typed arrays. */
  get usedBytes(): number {
    return this.arenaUsed + this.nodes * NODE_ROW_BYTES;
  }

  // ---- node accessors (views are valid for as long as they are referenced) ----

  key(node: number): Buffer {
    const off = this.keyOff[node] as number;
    return this.arena.subarray(off, off + (this.keyLen[node] as number));
  }

  value(node: number): Buffer {
    const off = (this.keyOff[node] as number) + (this.keyLen[node] as number);
    return this.arena.subarray(off, off + (this.valueLen[node] as number));
  }

  next(node: number): number {
    return this.links[node * MAX_HEIGHT] as number;
  }

  first(): number {
    return this.next(HEAD);
  }

  /** Copies a search key into `target`; returns its length. */
  private setTarget(key: Buffer): number {
    this.target.set(key);
    return key.length;
  }

  /** Compares node's internal key with the internal key in `target` (setTarget). */
  private cmp(node: number, targetLength: number): number {
    const off = this.keyOff[node] as number;
    return compareInternalKeyViews(this.view, off, off + (this.keyLen[node] as number), this.target.view, 0, targetLength);
  }

  /** Compares the internal keys of two nodes (no Buffer views: both live in the arena). */
  private cmpNodes(a: number, b: number): number {
    const aOff = this.keyOff[a] as number;
    const bOff = this.keyOff[b] as number;
    const v = this.view;
    return compareInternalKeyViews(v, aOff, aOff + (this.keyLen[a] as number), v, bOff, bOff + (this.keyLen[b] as number));
  }

  private randomHeight(): number {
    let h = 1;
    while (h < MAX_HEIGHT && this.rng.nextUint32() % BRANCHING === 0) h++;
    return h;
  }

  /**
   * Inserts keySrc[keyStart, keyEnd) ++ trailer → valueSrc[valueStart, valueEnd), copying both
   * into the arena.
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
  ): void {
    const ulen = keyEnd - keyStart;
    const klen = ulen + TRAILER_BYTES;
    const node = this.appendNode(klen, valueEnd - valueStart);
    const off = this.keyOff[node] as number;
    const a = this.arena;
    copyBytes(keySrc, keyStart, keyEnd, a, off);
    a.writeUInt32LE(trailerLow, off + ulen);
    a.writeUInt32LE(trailerHigh, off + ulen + 4);
    copyBytes(valueSrc, valueStart, valueEnd, a, off + klen);
    const prev = this.prevScratch;
    const hint = this.hint;
    const useHint = this.lastInserted !== NIL && this.cmpNodes(this.lastInserted, node) < 0;
    let x = HEAD;
    if (useHint && this.links[this.lastInserted * MAX_HEIGHT] === NIL) {
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
          const nx = this.links[x * MAX_HEIGHT + level] as number;
          if (nx === NIL || this.cmpNodes(nx, node) >= 0) break;
          x = nx;
        }
        prev[level] = x;
      }
    }
    const following = this.links[x * MAX_HEIGHT] as number;
    assert(following === NIL || this.cmpNodes(following, node) !== 0, 'duplicate key');
    const h = this.randomHeight();
    for (let level = this.height; level < h; level++) prev[level] = HEAD;
    if (h > this.height) this.height = h;
    const links = this.links;
    for (let level = 0; level < h; level++) {
      const p = prev[level] as number;
      links[node * MAX_HEIGHT + level] = links[p * MAX_HEIGHT + level] as number;
      links[p * MAX_HEIGHT + level] = node;
    }
    // Levels above the list's height have no predecessor but the head.
    for (let level = 0; level < MAX_HEIGHT; level++) {
      hint[level] = level < h ? node : level < this.height ? (prev[level] as number) : HEAD;
    }
    this.lastInserted = node;
  }

  /** Reserves arena bytes and a node row; returns the node index. */
  private appendNode(klen: number, vlen: number): number {
    const bytes = klen + vlen;
    if (this.arenaUsed + bytes > this.arena.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.arena.length * 2, this.arenaUsed + bytes));
      this.arena.copy(grown, 0, 0, this.arenaUsed);
      this.arena = grown;
      this.view = viewOf(grown);
    }
    if (this.nodes === this.keyOff.length) this.growNodes();
    const node = this.nodes++;
    this.keyOff[node] = this.arenaUsed;
    this.keyLen[node] = klen;
    this.valueLen[node] = vlen;
    this.arenaUsed += bytes;
    return node;
  }

  private growNodes(): void {
    const n = this.keyOff.length * 2;
    const grow = (a: Int32Array, size: number, fill: number): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(size).fill(fill);
      b.set(a);
      return b;
    };
    this.keyOff = grow(this.keyOff, n, 0);
    this.keyLen = grow(this.keyLen, n, 0);
    this.valueLen = grow(this.valueLen, n, 0);
    this.links = grow(this.links, n * MAX_HEIGHT, NIL);
  }

  /** First node with key >= target, or NIL. */
  findGE(target: Buffer): number {
    const tlen = this.setTarget(target);
    let x = HEAD;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.links[x * MAX_HEIGHT + level] as number;
        if (nx === NIL || this.cmp(nx, tlen) >= 0) break;
        x = nx;
      }
    }
    return this.links[x * MAX_HEIGHT] as number;
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
        const nx = this.links[x * MAX_HEIGHT + level] as number;
        if (nx === NIL) break;
        const off = this.keyOff[nx] as number;
        const end = off + (this.keyLen[nx] as number);
        const c = compareBytesView(v, off, end - TRAILER_BYTES, t, 0, ulen);
        if (c > 0 || (c === 0 && trailerOf(a, end) <= seekTrailer)) break;
        x = nx;
      }
    }
    return this.links[x * MAX_HEIGHT] as number;
  }

  /** Last node with key < target, or NIL. */
  findLT(target: Buffer): number {
    const tlen = this.setTarget(target);
    let x = HEAD;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = this.links[x * MAX_HEIGHT + level] as number;
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
        const nx = this.links[x * MAX_HEIGHT + level] as number;
        if (nx === NIL) break;
        x = nx;
      }
    }
    return x === HEAD ? NIL : x;
  }

  /** True if node's user key equals `userKey`. */
  userKeyEquals(node: number, userKey: Buffer): boolean {
    const off = this.keyOff[node] as number;
    const ulen = (this.keyLen[node] as number) - TRAILER_BYTES;
    return ulen === userKey.length && compareBytes(this.arena, off, off + ulen, userKey, 0, ulen) === 0;
  }

  /** Packed trailer of node's key. */
  trailer(node: number): number {
    return trailerOf(this.arena, (this.keyOff[node] as number) + (this.keyLen[node] as number));
  }
}
