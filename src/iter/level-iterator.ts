/**
 * Concatenates the tables of one level >= 1 (sorted, non-overlapping) into one iterator, opening
 * at most one table at a time and only when the position reaches it. A DB iterator over a tree of
 * hundreds of tables thus costs one open table per level, not one per table; a compaction merges a
 * next level's inputs as one child of its merging heap instead of one child per table.
 */
import { assert } from '../util/assert.js';
import { compareInternalKeys } from '../base/internal-key.js';
import type { FileMetadata } from '../version/file-metadata.js';
import type { InternalIterator } from './internal-iterator.js';

/** What the iterator needs to know of a table without opening it: its internal-key range. */
export interface TableKeyRange {
  readonly smallest: Buffer;
  readonly largest: Buffer;
}

/** Opens a table's iterator; closing that iterator releases the table. */
export type TableIteratorOpener<T extends TableKeyRange = FileMetadata> = (table: T) => InternalIterator;

export class LevelIterator<T extends TableKeyRange = FileMetadata> implements InternalIterator {
  private index = -1;
  private current: InternalIterator | null = null;

  constructor(
    private readonly files: readonly T[],
    private readonly openTable: TableIteratorOpener<T>,
  ) {}

  valid(): boolean {
    return this.current !== null && this.current.valid();
  }

  first(): void {
    this.load(0);
    this.current?.first();
    this.skipEmptyForward();
  }

  last(): void {
    this.load(this.files.length - 1);
    this.current?.last();
    this.skipEmptyBackward();
  }

  seekGE(target: Buffer): void {
    // First file whose largest key >= target: every earlier file ends before target.
    let lo = 0;
    let hi = this.files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareInternalKeys((this.files[mid] as T).largest, target) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.load(lo);
    this.current?.seekGE(target);
    this.skipEmptyForward();
  }

  seekLE(target: Buffer): void {
    // Last file whose smallest key <= target: every later file starts after target.
    let lo = 0;
    let hi = this.files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareInternalKeys((this.files[mid] as T).smallest, target) <= 0) lo = mid + 1;
      else hi = mid;
    }
    this.load(lo - 1);
    this.current?.seekLE(target);
    this.skipEmptyBackward();
  }

  next(): void {
    assert(this.valid(), 'next() requires valid()');
    (this.current as InternalIterator).next();
    this.skipEmptyForward();
  }

  prev(): void {
    assert(this.valid(), 'prev() requires valid()');
    (this.current as InternalIterator).prev();
    this.skipEmptyBackward();
  }

  key(): Buffer {
    assert(this.valid(), 'key() requires valid()');
    return (this.current as InternalIterator).key();
  }

  value(): Buffer {
    assert(this.valid(), 'value() requires valid()');
    return (this.current as InternalIterator).value();
  }

  copyValue(): Buffer {
    assert(this.valid(), 'copyValue() requires valid()');
    return (this.current as InternalIterator).copyValue();
  }

  close(): void {
    this.load(-1);
  }

  /** Makes file `i` current (opening it), or none when out of range. */
  private load(i: number): void {
    if (i === this.index && this.current !== null) return;
    this.current?.close();
    this.current = null;
    this.index = i;
    if (i < 0 || i >= this.files.length) return;
    this.current = this.openTable(this.files[i] as T);
  }

  private skipEmptyForward(): void {
    while (this.current !== null && !this.current.valid()) {
      if (this.index + 1 >= this.files.length) {
        this.load(-1);
        return;
      }
      this.load(this.index + 1);
      this.current?.first();
    }
  }

  private skipEmptyBackward(): void {
    while (this.current !== null && !this.current.valid()) {
      if (this.index <= 0) {
        this.load(-1);
        return;
      }
      this.load(this.index - 1);
      this.current?.last();
    }
  }
}
