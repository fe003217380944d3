/**
 * A transaction's own writes: the newest put or delete per key, readable by key and in key order.
 * Reads and iterators of the transaction consult it before the snapshot; commit turns it into one
 * atomic batch.
 *
 * Keys are indexed by their latin1 string (one char per byte): JavaScript compares such strings by
 * code unit, which is exactly bytewise key order, so a sorted array of ids is the key order.
 * Entries are immutable: a second write to a key replaces the entry, so an iterator that captured
 * entries keeps a stable view.
 */
import { KIND_DELETE, KIND_VALUE } from '../base/internal-key.js';
import { type BatchOp, EMPTY_VALUE } from '../db/write-batch.js';
import type { UserRange } from '../iter/db-iterator.js';
import { assert } from '../util/assert.js';

/** One buffered write; `value` null means a delete. Key and value are private copies. */
export interface BufferedWrite {
  readonly id: string;
  readonly key: Buffer;
  readonly value: Buffer | null;
}

/** The map id of a key. */
export function keyId(key: Buffer): string {
  return key.toString('latin1');
}

export class WriteBuffer {
  private readonly entries = new Map<string, BufferedWrite>();
  /** Ids in key order; null when a new key arrived since the last sort. */
  private sorted: string[] | null = [];

  get size(): number {
    return this.entries.size;
  }

  get(id: string): BufferedWrite | undefined {
    return this.entries.get(id);
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Buffers a put (value) or a delete (null). Requires: `key` and `value` are owned copies. */
  set(id: string, key: Buffer, value: Buffer | null): void {
    assert(id.length === key.length, 'id is the latin1 form of key');
    if (!this.entries.has(id)) this.sorted = null;
    this.entries.set(id, { id, key, value });
  }

  clear(): void {
    this.entries.clear();
    this.sorted = [];
  }

  /** The buffered writes within `range`'s bounds (limit and direction ignored), in key order. */
  inRange(range: UserRange): BufferedWrite[] {
    const ids = this.sortedIds();
    let i = 0;
    if (range.lower !== undefined) {
      const lo = keyId(range.lower);
      i = lowerBound(ids, lo);
      if (range.lowerExclusive && ids[i] === lo) i++;
    }
    const hi = range.upper === undefined ? undefined : keyId(range.upper);
    const out: BufferedWrite[] = [];
    for (; i < ids.length; i++) {
      const id = ids[i] as string;
      if (hi !== undefined && (id > hi || (id === hi && range.upperExclusive))) break;
      out.push(this.entries.get(id) as BufferedWrite);
    }
    return out;
  }

  /** The writes as batch operations in key order (fresh objects: the batch encoder re-points them). */
  toOps(): BatchOp[] {
    return this.sortedIds().map((id) => {
      const w = this.entries.get(id) as BufferedWrite;
      return w.value === null
        ? { kind: KIND_DELETE, key: w.key, value: EMPTY_VALUE }
        : { kind: KIND_VALUE, key: w.key, value: w.value };
    });
  }

  /** Every buffered write, in no particular order. */
  values(): IterableIterator<BufferedWrite> {
    return this.entries.values();
  }

  private sortedIds(): string[] {
    if (this.sorted === null) this.sorted = [...this.entries.keys()].sort();
    return this.sorted;
  }
}

/** First index whose id is >= `id`. */
function lowerBound(ids: readonly string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ids[mid] as string) < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
