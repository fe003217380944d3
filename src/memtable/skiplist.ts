/**
 * Skiplist of (encoded internal key, value) entries in internal-key order. Insert-only: entries are
 * never removed or changed, which is what lets iterators run while writers insert (the event loop
 * never interleaves a half-done insert with a read).
 *
 * Nodes are plain objects with a fixed shape (V8 keeps one hidden class); heights come from the
 * injected seeded Random so runs replay exactly.
 */
import { assert } from '../util/assert.js';
import type { Random } from '../util/random.js';
import { TRAILER_BYTES, compareBytes, compareInternalKeys, trailerOf } from '../base/internal-key.js';

export const MAX_HEIGHT = 12;
/** One in BRANCHING nodes is promoted to the next level. */
const BRANCHING = 4;

export class SkipNode {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly next: (SkipNode | null)[];
  constructor(key: Buffer, value: Buffer, height: number) {
    this.key = key;
    this.value = value;
    this.next = new Array<SkipNode | null>(height).fill(null);
  }
}

export class SkipList {
  readonly head = new SkipNode(Buffer.alloc(0), Buffer.alloc(0), MAX_HEIGHT);
  private height = 1;
  private count = 0;
  private readonly prevScratch = new Array<SkipNode>(MAX_HEIGHT);
  private readonly rng: Random;

  constructor(rng: Random) {
    this.rng = rng;
  }

  get length(): number {
    return this.count;
  }

  private randomHeight(): number {
    let h = 1;
    while (h < MAX_HEIGHT && this.rng.nextUint32() % BRANCHING === 0) h++;
    return h;
  }

  /** Requires: no equal internal key already present (sequence numbers are unique). */
  insert(key: Buffer, value: Buffer): void {
    assert(key.length >= TRAILER_BYTES, 'internal key too short');
    const prev = this.prevScratch;
    let x = this.head;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = x.next[level] as SkipNode | null;
        if (nx === null || compareInternalKeys(nx.key, key) >= 0) break;
        x = nx;
      }
      prev[level] = x;
    }
    const following = x.next[0] as SkipNode | null;
    assert(following === null || compareInternalKeys(following.key, key) !== 0, 'duplicate key');
    const h = this.randomHeight();
    for (let level = this.height; level < h; level++) prev[level] = this.head;
    if (h > this.height) this.height = h;
    const node = new SkipNode(key, value, h);
    for (let level = 0; level < h; level++) {
      const p = prev[level] as SkipNode;
      node.next[level] = p.next[level] as SkipNode | null;
      p.next[level] = node;
    }
    this.count++;
  }

  /** First node with key >= target, or null. */
  findGE(target: Buffer): SkipNode | null {
    let x = this.head;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = x.next[level] as SkipNode | null;
        if (nx === null || compareInternalKeys(nx.key, target) >= 0) break;
        x = nx;
      }
    }
    return x.next[0] as SkipNode | null;
  }

  /**
   * First node whose user key >= userKey and, for an equal user key, whose trailer <= seekTrailer
   * (i.e. the newest version visible at that sequence). Avoids building a seek key for point reads.
   */
  findVisible(userKey: Buffer, seekTrailer: number): SkipNode | null {
    let x = this.head;
    const ulen = userKey.length;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = x.next[level] as SkipNode | null;
        if (nx === null) break;
        const k = nx.key;
        const c = compareBytes(k, 0, k.length - TRAILER_BYTES, userKey, 0, ulen);
        if (c > 0 || (c === 0 && trailerOf(k, k.length) <= seekTrailer)) break;
        x = nx;
      }
    }
    return x.next[0] as SkipNode | null;
  }

  /** Last node with key < target, or null (head). */
  findLT(target: Buffer): SkipNode | null {
    let x = this.head;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = x.next[level] as SkipNode | null;
        if (nx === null || compareInternalKeys(nx.key, target) >= 0) break;
        x = nx;
      }
    }
    return x === this.head ? null : x;
  }

  /** Last node, or null if empty. */
  findLast(): SkipNode | null {
    let x = this.head;
    for (let level = this.height - 1; level >= 0; level--) {
      for (;;) {
        const nx = x.next[level] as SkipNode | null;
        if (nx === null) break;
        x = nx;
      }
    }
    return x === this.head ? null : x;
  }
}
