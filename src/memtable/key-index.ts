/**
 * A hash index over a memtable's user keys: user key → its newest node in the skiplist. A point
 * read then finds a key written here in O(1) (one probe, one key comparison, and a short walk
 * down level 0 to the version its snapshot sees) instead of a skiplist descent of ~log(n) random
 * node visits, and an insert of a key it holds links in before the newest version without a
 * search. It pays where the memtable answers the read: a key updated again and again (a
 * transaction workload reads and conflict-checks each key it writes). MemTable builds it only
 * once reads find keys there (a load would pay a probe per insert for nothing).
 *
 * Open addressing with linear probing in two Int32Arrays (node, key hash), sized once from the
 * memtable's capacity and never grown: memory stays bounded (8 bytes per slot). When the index is
 * three-quarters full it stops taking new keys and says so (`complete` false): a key it does not
 * hold must then be searched in the skiplist. Nodes of one user key are contiguous in the
 * skiplist, newest first, and a newer insert of a key always has a higher sequence number, so the
 * node last inserted for a key is its newest version.
 */
import { NIL } from './skiplist.js';

/** What the index needs from the skiplist (implemented by SkipList). */
export interface KeyNodes {
  /** True if node's user key equals src[start, end). */
  userKeyEqualsRange(node: number, src: Uint8Array, start: number, end: number): boolean;
}

export interface KeyIndexStorage {
  nodes: Int32Array;
  hashes: Int32Array;
}

const SLOTS_MIN = 1024;
const SLOTS_MAX = 1 << 22;
/**
 * Bytes of memtable per slot: 2 MiB of index for a 16 MiB memtable. Entries of 86 bytes or more
 * (on average) all fit under the 3/4 limit; smaller ones leave the index incomplete, not wrong.
 */
const BYTES_PER_SLOT = 64;

/** Slots for a memtable of `capacityBytes`: a power of two in [SLOTS_MIN, SLOTS_MAX]. */
export function keyIndexSlots(capacityBytes: number): number {
  let n = SLOTS_MIN;
  while (n < SLOTS_MAX && n * BYTES_PER_SLOT < capacityBytes) n *= 2;
  return n;
}

export class KeyIndex {
  private readonly nodes: Int32Array;
  private readonly hashes: Int32Array;
  private readonly mask: number;
  private readonly limit: number;
  private count = 0;
  /** False once a key was left out (the index was full): absent keys may then be in the list. */
  complete = true;

  /** `reuse`: a retired index's arrays, taken if they have exactly `slots` slots. */
  constructor(slots: number, reuse: KeyIndexStorage | null) {
    if (reuse !== null && reuse.nodes.length === slots) {
      this.nodes = reuse.nodes.fill(NIL);
      this.hashes = reuse.hashes;
    } else {
      this.nodes = new Int32Array(slots).fill(NIL);
      this.hashes = new Int32Array(slots);
    }
    this.mask = slots - 1;
    this.limit = (slots >>> 2) * 3;
  }

  /**
   * The slot of the user key src[start, end) (hash `hash`): the slot holding its newest node, or
   * the empty slot it would take, or -1 if the index does not hold it and is full.
   */
  slotOf(hash: number, src: Uint8Array, start: number, end: number, list: KeyNodes): number {
    const i = this.probe(hash, src, start, end, list);
    if (this.nodes[i] !== NIL || this.count < this.limit) return i;
    this.complete = false;
    return -1;
  }

  /** The node in a slot from slotOf (NIL: empty; -1 is never a slot's node). */
  nodeAt(slot: number): number {
    return slot < 0 ? NIL : (this.nodes[slot] as number);
  }

  /** Makes `node` the newest node of the key whose slot (from slotOf) this is; -1: nothing. */
  store(slot: number, hash: number, node: number): void {
    if (slot < 0) return;
    if (this.nodes[slot] === NIL) this.count++;
    this.nodes[slot] = node;
    this.hashes[slot] = hash | 0;
  }

  /** The newest node of userKey (hash `hash`), or NIL if the index does not hold it. */
  find(hash: number, userKey: Buffer, list: KeyNodes): number {
    return this.nodes[this.probe(hash, userKey, 0, userKey.length, list)] as number;
  }

  /**
   * The slot holding the key src[start, end), or the empty slot ending its probe chain (there is
   * always one: the index stops taking keys at three quarters full).
   */
  private probe(hash: number, src: Uint8Array, start: number, end: number, list: KeyNodes): number {
    hash |= 0; // as the Int32Array stores it (bloom hashes are unsigned)
    const nodes = this.nodes;
    const hashes = this.hashes;
    for (let i = hash & this.mask; ; i = (i + 1) & this.mask) {
      const at = nodes[i] as number;
      if (at === NIL || (hashes[i] === hash && list.userKeyEqualsRange(at, src, start, end))) return i;
    }
  }

  storage(): KeyIndexStorage {
    return { nodes: this.nodes, hashes: this.hashes };
  }
}
