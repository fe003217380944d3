/**
 * The in-memory table of recent writes: a skiplist of internal keys. A memtable is mutable until the
 * DB rotates it (it then becomes the immutable memtable being flushed to an SSTable) and is dropped
 * once that SSTable is in the manifest.
 */
import { assert } from '../util/assert.js';
import { Random } from '../util/random.js';
import {
  KIND_DELETE,
  TRAILER_BYTES,
  compareBytes,
  kindOfTrailer,
  putTrailer,
  seqOfTrailer,
  trailerOf,
} from '../base/internal-key.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { SkipList, type SkipNode } from './skiplist.js';

/** Approximate per-entry overhead of a skiplist node (object, next array, two Buffers). */
const NODE_OVERHEAD_BYTES = 96;

/** Result of a point lookup in one memtable. */
export type MemGetResult =
  | { found: false }
  | { found: true; deleted: true }
  | { found: true; deleted: false; value: Buffer };

const NOT_FOUND: MemGetResult = { found: false };
const DELETED: MemGetResult = { found: true, deleted: true };

export class MemTable {
  private readonly list: SkipList;
  private bytes = 0;
  /** Smallest and largest sequence numbers inserted (for flush metadata). */
  minSeq = Number.MAX_SAFE_INTEGER;
  maxSeq = 0;

  constructor(seed: number) {
    this.list = new SkipList(new Random(seed));
  }

  /** Approximate memory used, in bytes. */
  get approximateBytes(): number {
    return this.bytes;
  }

  get entryCount(): number {
    return this.list.length;
  }

  /**
   * Inserts one entry. `userKey` and `value` are copied into one allocation, so callers may reuse
   * their buffers.
   */
  add(seq: number, kind: number, userKey: Uint8Array, value: Uint8Array): void {
    const klen = userKey.length + TRAILER_BYTES;
    const buf = Buffer.allocUnsafe(klen + value.length);
    buf.set(userKey, 0);
    putTrailer(buf, userKey.length, seq, kind);
    buf.set(value, klen);
    this.list.insert(buf.subarray(0, klen), buf.subarray(klen));
    this.bytes += klen + value.length + NODE_OVERHEAD_BYTES;
    if (seq < this.minSeq) this.minSeq = seq;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** Newest version of `userKey` with sequence <= `seq`. */
  get(userKey: Buffer, seq: number): MemGetResult {
    const node = this.list.findVisible(userKey, seq * 256 + 255);
    if (node === null) return NOT_FOUND;
    const k = node.key;
    if (k.length - TRAILER_BYTES !== userKey.length) return NOT_FOUND;
    if (compareBytes(k, 0, userKey.length, userKey, 0, userKey.length) !== 0) return NOT_FOUND;
    const t = trailerOf(k, k.length);
    assert(seqOfTrailer(t) <= seq, 'findVisible returned an invisible version');
    if (kindOfTrailer(t) === KIND_DELETE) return DELETED;
    return { found: true, deleted: false, value: node.value };
  }

  iterator(): InternalIterator {
    return new MemTableIterator(this.list);
  }
}

class MemTableIterator implements InternalIterator {
  private node: SkipNode | null = null;
  constructor(private readonly list: SkipList) {}

  valid(): boolean {
    return this.node !== null;
  }
  first(): void {
    this.node = this.list.head.next[0] ?? null;
  }
  last(): void {
    this.node = this.list.findLast();
  }
  seekGE(target: Buffer): void {
    this.node = this.list.findGE(target);
  }
  seekLE(target: Buffer): void {
    const ge = this.list.findGE(target);
    if (ge !== null && ge.key.equals(target)) {
      this.node = ge;
      return;
    }
    this.node = this.list.findLT(target);
  }
  next(): void {
    assert(this.node !== null, 'next() requires valid()');
    this.node = this.node.next[0] ?? null;
  }
  prev(): void {
    assert(this.node !== null, 'prev() requires valid()');
    this.node = this.list.findLT(this.node.key);
  }
  key(): Buffer {
    assert(this.node !== null, 'key() requires valid()');
    return this.node.key;
  }
  value(): Buffer {
    assert(this.node !== null, 'value() requires valid()');
    return this.node.value;
  }
  close(): void {
    this.node = null;
  }
}
