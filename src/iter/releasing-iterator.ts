/**
 * Wraps an iterator so that close() also releases what the iterator pinned (a table-cache
 * reference, an open table reader), exactly once.
 */
import type { InternalIterator } from './internal-iterator.js';

export class ReleasingIterator implements InternalIterator {
  private released = false;
  constructor(
    private readonly inner: InternalIterator,
    private readonly onClose: () => void,
  ) {}
  valid(): boolean { return this.inner.valid(); }
  first(): void { this.inner.first(); }
  last(): void { this.inner.last(); }
  seekGE(t: Buffer): void { this.inner.seekGE(t); }
  seekLE(t: Buffer): void { this.inner.seekLE(t); }
  next(): void { this.inner.next(); }
  prev(): void { this.inner.prev(); }
  key(): Buffer { return this.inner.key(); }
  value(): Buffer { return this.inner.value(); }
  copyValue(): Buffer { return this.inner.copyValue(); }
  close(): void {
    if (this.released) return;
    this.released = true;
    this.inner.close();
    this.onClose();
  }
}
