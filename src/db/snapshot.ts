/**
 * A snapshot pins a sequence number: reads through it ignore every later write. It holds no files
 * open; it only promises that versions it can see are kept (compaction consults the oldest
 * snapshot). Release it when done; an unreleased snapshot shows in `db.stats()`.
 */
import { LightningError } from '../base/errors.js';
import type { UserRange } from '../iter/db-iterator.js';
import { type Bytes, type RangeOptions, toKey, toRange } from './keys.js';
import type { LightningIterator } from './user-iterator.js';
import { pacedRejection, pacedResult } from '../util/yield.js';

/** What a snapshot needs from its database. */
export interface SnapshotOwner {
  checkReadable(): void;
  getAt(userKey: Buffer, seq: number): Buffer | undefined;
  iteratorAt(range: UserRange, seq: number): LightningIterator;
  releaseSnapshot(s: Snapshot): void;
}

export class Snapshot {
  private released = false;

  /** @internal Use `db.snapshot()`. */
  constructor(
    private readonly owner: SnapshotOwner,
    /** The sequence number this snapshot reads at. */
    readonly sequence: number,
    readonly createdAtMs: number,
  ) {}

  private check(): void {
    if (this.released) throw new LightningError('INVALID_ARGUMENT', 'snapshot was released');
    this.owner.checkReadable();
  }

  getSync(key: Bytes): Buffer | undefined {
    this.check();
    return this.owner.getAt(toKey(key), this.sequence);
  }

  get(key: Bytes): Promise<Buffer | undefined> {
    let value: Buffer | undefined;
    try {
      value = this.getSync(key);
    } catch (e) {
      return pacedRejection(e);
    }
    return pacedResult(value);
  }

  iterator(range?: RangeOptions): LightningIterator {
    this.check();
    return this.owner.iteratorAt(toRange(range), this.sequence);
  }

  /** Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.owner.releaseSnapshot(this);
  }
}
