/**
 * The iterator users hold: `for await (const [key, value] of db.iterator(range))`. Also usable with
 * a plain `for...of` (synchronous). It sees the database as of its creation (its sequence number and
 * the memtables and files pinned then). Leaving a loop early (break, return, throw) calls return(),
 * which releases what it pinned; so does reaching the end, or calling close().
 */
import { LightningError } from '../base/errors.js';
import type { DbIterator } from '../iter/db-iterator.js';
import { pacedRejection, pacedResult } from '../util/yield.js';

export type Entry = [key: Buffer, value: Buffer];

/** What an iterator needs from its owner. */
export interface IteratorOwner {
  /** Throws CLOSED when the database is closed. */
  checkReadable(): void;
  /** Called once when the iterator is released. */
  releaseIterator(it: LightningIterator): void;
}

const DONE: IteratorResult<Entry, undefined> = { done: true, value: undefined };

export class LightningIterator implements AsyncIterableIterator<Entry> {
  private inner: DbIterator | null;
  private readonly owner: IteratorOwner;
  /** When it was created (for stats on iterators left open). */
  readonly createdAtMs: number;

  /** @internal */
  constructor(inner: DbIterator, owner: IteratorOwner, nowMs: number) {
    this.inner = inner;
    this.owner = owner;
    this.createdAtMs = nowMs;
  }

  /** True once released (end reached, return() or close() called). */
  get closed(): boolean {
    return this.inner === null;
  }

  /** Synchronous step: the next entry, or undefined at the end. Throws LightningError. */
  nextSync(): Entry | undefined {
    // After db.close() every step fails with CLOSED, so a scan cut short never looks complete.
    this.owner.checkReadable();
    const inner = this.inner;
    if (inner === null) return undefined;
    try {
      if (!inner.step()) {
        this.close();
        return undefined;
      }
      return [inner.key, inner.value];
    } catch (e) {
      this.close();
      throw e instanceof LightningError ? e : new LightningError('IO_ERROR', String(e), { cause: e });
    }
  }

  /** Async step for `for await`. Rejects with LightningError; never throws synchronously. */
  next(): Promise<IteratorResult<Entry, undefined>> {
    return pacedNext(this);
  }

  /** Releases the iterator. Idempotent. */
  close(): void {
    const inner = this.inner;
    if (inner === null) return;
    this.inner = null;
    inner.close();
    this.owner.releaseIterator(this);
  }

  return(): Promise<IteratorResult<Entry, undefined>> {
    return pacedReturn(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Entry> {
    return this;
  }

  /** Synchronous protocol, for `for...of`. */
  [Symbol.iterator](): IterableIterator<Entry> {
    return syncIterableOf(this);
  }
}

/**
 * The async iteration step over anything with nextSync(): a rejection, never a synchronous throw.
 * A for-await over cached data would settle in microtasks alone, so the result is paced
 * (pacedResult): the event loop turns now and then. Shared by DB and transaction iterators.
 */
export function pacedNext(source: { nextSync(): Entry | undefined }): Promise<IteratorResult<Entry, undefined>> {
  let e: Entry | undefined;
  try {
    e = source.nextSync();
  } catch (err) {
    return pacedRejection(err);
  }
  return pacedResult<IteratorResult<Entry, undefined>>(e === undefined ? DONE : { done: false, value: e });
}

/** The async protocol's return(): closes `source` now; settles after any step still pending. */
export function pacedReturn(source: { close(): void }): Promise<IteratorResult<Entry, undefined>> {
  try {
    source.close();
  } catch (err) {
    return pacedRejection(err);
  }
  return pacedResult<IteratorResult<Entry, undefined>>(DONE);
}

/**
 * The synchronous iteration protocol over anything with nextSync()/close(): leaving a `for...of`
 * early calls return(), which closes the source. Shared by DB and transaction iterators.
 */
export function syncIterableOf(source: { nextSync(): Entry | undefined; close(): void }): IterableIterator<Entry> {
  const sync: IterableIterator<Entry> = {
    next(): IteratorResult<Entry, undefined> {
      const e = source.nextSync();
      return e === undefined ? DONE : { done: false, value: e };
    },
    return(): IteratorResult<Entry, undefined> {
      source.close();
      return DONE;
    },
    [Symbol.iterator]() {
      return sync;
    },
  };
  return sync;
}
