/**
 * `tx.iterator(range)`: the transaction's snapshot merged with its own writes. Own puts replace or
 * add entries, own deletes hide them; bounds, direction and limit apply to the merged result. Own
 * writes are captured when the iterator is created (later writes of the transaction do not show).
 *
 * When it is released (end reached, early exit, or the transaction finishing) it reports the key
 * range it actually covered, so that a serializable transaction validates exactly what it saw:
 * the whole range if it reached the end, else the range up to the last key it returned (nothing if
 * it returned nothing). Like `LightningIterator`, it is async- and sync-iterable.
 */
import { LightningError } from '../base/errors.js';
import type { UserRange } from '../iter/db-iterator.js';
import type { CheckRange } from '../db/write-queue.js';
import { pacedNext, pacedReturn, syncIterableOf, type Entry, type LightningIterator } from '../db/user-iterator.js';
import type { BufferedWrite } from './write-buffer.js';

/** What the iterator needs from its transaction. */
export interface IteratorTransaction {
  /** Throws unless the transaction (and its database) can still be read. */
  checkUsable(): void;
  /** Called once, on release, with the range covered (null: nothing observed). */
  iteratorReleased(it: TransactionIterator, covered: CheckRange | null, seq: number): void;
}

export class TransactionIterator implements AsyncIterableIterator<Entry> {
  private inner: LightningIterator | null;
  /** Next snapshot entry: null = not fetched yet, undefined = snapshot side exhausted. */
  private head: Entry | undefined | null = null;
  private ownPos = 0;
  private emitted = 0;
  private lastKey: Buffer | undefined = undefined;
  private complete = false;

  /**
   * @internal Use `tx.iterator()`. `inner` iterates the snapshot over `range` without a limit;
   * `own` holds the transaction's writes within the bounds, in key order.
   */
  constructor(
    private readonly txn: IteratorTransaction,
    inner: LightningIterator,
    private readonly own: readonly BufferedWrite[],
    private readonly range: UserRange,
    private readonly seq: number,
    /** Serializable transactions validate what an iterator covered; others need no record. */
    private readonly trackCoverage: boolean,
  ) {
    this.inner = inner;
  }

  /** True once released. */
  get closed(): boolean {
    return this.inner === null;
  }

  /** Synchronous step: the next entry, or undefined at the end. Throws LightningError. */
  nextSync(): Entry | undefined {
    // After commit/rollback every step fails, so a scan cut short never looks complete.
    this.txn.checkUsable();
    if (this.inner === null) return undefined;
    try {
      const e = this.step(this.inner);
      if (e === undefined) this.close();
      return e;
    } catch (e) {
      this.close();
      throw e instanceof LightningError ? e : new LightningError('IO_ERROR', String(e), { cause: e });
    }
  }

  next(): Promise<IteratorResult<Entry, undefined>> {
    return pacedNext(this);
  }

  /** Releases the iterator and reports its coverage. Idempotent. */
  close(): void {
    const inner = this.inner;
    if (inner === null) return;
    this.inner = null;
    inner.close();
    this.txn.iteratorReleased(this, this.covered(), this.seq);
  }

  return(): Promise<IteratorResult<Entry, undefined>> {
    return pacedReturn(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Entry> {
    return this;
  }

  [Symbol.iterator](): IterableIterator<Entry> {
    return syncIterableOf(this);
  }

  /** One merged step. Own writes win over the snapshot on equal keys. */
  private step(inner: LightningIterator): Entry | undefined {
    if (this.emitted >= this.range.limit) return undefined;
    const dir = this.range.reverse ? -1 : 1;
    for (;;) {
      if (this.head === null) this.head = inner.nextSync();
      const d = this.head;
      const o = this.own[this.ownPos];
      if (d === undefined && o === undefined) {
        this.complete = true;
        return undefined;
      }
      const c = d === undefined ? 1 : o === undefined ? -1 : Buffer.compare(d[0], o.key) * dir;
      if (c < 0) {
        this.head = null;
        return this.emit(d as Entry);
      }
      this.ownPos++;
      if (c === 0) this.head = null;
      if (o === undefined || o.value === null) continue; // own delete hides the key
      return this.emit([Buffer.from(o.key), Buffer.from(o.value)]);
    }
  }

  private emit(e: Entry): Entry {
    this.emitted++;
    // A copy: the caller owns the returned key and may mutate it.
    if (this.trackCoverage) this.lastKey = Buffer.from(e[0]);
    return e;
  }

  private covered(): CheckRange | null {
    if (!this.trackCoverage) return null;
    const r = this.range;
    if (this.complete) {
      const { lower, lowerExclusive, upper, upperExclusive } = r;
      return { lower, lowerExclusive, upper, upperExclusive };
    }
    const last = this.lastKey;
    if (last === undefined) return null;
    return r.reverse
      ? { lower: last, lowerExclusive: false, upper: r.upper, upperExclusive: r.upperExclusive }
      : { lower: r.lower, lowerExclusive: r.lowerExclusive, upper: last, upperExclusive: false };
  }
}
