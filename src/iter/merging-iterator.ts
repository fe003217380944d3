/**
 * Merges N child iterators into one ordered stream (internal-key order), in either direction.
 * Internal keys are unique across children (every write has its own sequence number), so there are
 * no ties to break. A binary heap of child indexes keeps next()/prev() at O(log N); the heap is a
 * min-heap going forward and a max-heap going backward.
 */
import { assert } from '../util/assert.js';
import { compareInternalKeys } from '../base/internal-key.js';
import type { InternalIterator } from './internal-iterator.js';

export class MergingIterator implements InternalIterator {
  private readonly children: InternalIterator[];
  /** Indexes of valid children, heap-ordered. */
  private readonly heap: number[] = [];
  private forward = true;

  constructor(children: InternalIterator[]) {
    this.children = children;
  }

  valid(): boolean {
    return this.heap.length > 0;
  }

  first(): void {
    for (const c of this.children) c.first();
    this.rebuild(true);
  }

  last(): void {
    for (const c of this.children) c.last();
    this.rebuild(false);
  }

  seekGE(target: Buffer): void {
    for (const c of this.children) c.seekGE(target);
    this.rebuild(true);
  }

  seekLE(target: Buffer): void {
    for (const c of this.children) c.seekLE(target);
    this.rebuild(false);
  }

  next(): void {
    assert(this.heap.length > 0, 'next() requires valid()');
    if (!this.forward) this.switchToForward();
    const top = this.heap[0] as number;
    const child = this.children[top] as InternalIterator;
    child.next();
    if (child.valid()) this.siftDown(0);
    else this.removeTop();
  }

  prev(): void {
    assert(this.heap.length > 0, 'prev() requires valid()');
    if (this.forward) this.switchToReverse();
    const top = this.heap[0] as number;
    const child = this.children[top] as InternalIterator;
    child.prev();
    if (child.valid()) this.siftDown(0);
    else this.removeTop();
  }

  key(): Buffer {
    assert(this.heap.length > 0, 'key() requires valid()');
    return (this.children[this.heap[0] as number] as InternalIterator).key();
  }

  value(): Buffer {
    assert(this.heap.length > 0, 'value() requires valid()');
    return (this.children[this.heap[0] as number] as InternalIterator).value();
  }

  copyValue(): Buffer {
    assert(this.heap.length > 0, 'copyValue() requires valid()');
    return (this.children[this.heap[0] as number] as InternalIterator).copyValue();
  }

  close(): void {
    for (const c of this.children) c.close();
    this.heap.length = 0;
  }

  /**
   * Going forward, every non-top child sits at its first key > current; to go backward they must
   * sit at their last key < current (keys are unique, so "<= current" then one step back if equal).
   */
  private switchToReverse(): void {
    const cur = Buffer.from(this.key());
    const top = this.heap[0] as number;
    for (let i = 0; i < this.children.length; i++) {
      if (i === top) continue;
      const c = this.children[i] as InternalIterator;
      c.seekLE(cur);
      if (c.valid() && compareInternalKeys(c.key(), cur) === 0) c.prev();
    }
    this.rebuild(false);
    assert(compareInternalKeys(this.key(), cur) === 0, 'direction switch lost the current key');
  }

  private switchToForward(): void {
    const cur = Buffer.from(this.key());
    const top = this.heap[0] as number;
    for (let i = 0; i < this.children.length; i++) {
      if (i === top) continue;
      const c = this.children[i] as InternalIterator;
      c.seekGE(cur);
      if (c.valid() && compareInternalKeys(c.key(), cur) === 0) c.next();
    }
    this.rebuild(true);
    assert(compareInternalKeys(this.key(), cur) === 0, 'direction switch lost the current key');
  }

  private rebuild(forward: boolean): void {
    this.forward = forward;
    const heap = this.heap;
    heap.length = 0;
    for (let i = 0; i < this.children.length; i++) {
      if ((this.children[i] as InternalIterator).valid()) heap.push(i);
    }
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** True if child a should be above child b in the heap. */
  private before(a: number, b: number): boolean {
    const c = compareInternalKeys(
      (this.children[a] as InternalIterator).key(),
      (this.children[b] as InternalIterator).key(),
    );
    return this.forward ? c < 0 : c > 0;
  }

  private removeTop(): void {
    const heap = this.heap;
    const lastIdx = heap.pop() as number;
    if (heap.length > 0) {
      heap[0] = lastIdx;
      this.siftDown(0);
    }
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      let best = l;
      if (r < n && this.before(heap[r] as number, heap[l] as number)) best = r;
      if (!this.before(heap[best] as number, heap[i] as number)) return;
      const tmp = heap[i] as number;
      heap[i] = heap[best] as number;
      heap[best] = tmp;
      i = best;
    }
  }
}
