/**
 * Group commit. Writers enqueue their batch and get a promise; one drain loop at a time takes every
 * queued batch (up to a byte cap), frames them as WAL records into one buffer, issues ONE write and,
 * if any of them asked for durability, ONE fsync, then applies them to the memtable and resolves
 * them all. Writers that arrive while an fsync is in flight form the next group, which is how 16
 * concurrent durable writers share fsyncs.
 *
 * Batches are applied to the memtable (made visible) only after their WAL write (and fsync, if
 * any) succeeded, so a reader never sees a write that a crash could take back.
 */
import type { LightningError } from '../base/errors.js';

/** Upper bound on bytes framed into one group write (a single larger batch still goes alone). */
export const GROUP_BYTES_MAX = 4 * 1024 * 1024;

/** What a commit-time validator may ask (transactions: first-committer-wins, read-set checks). */
export interface CommitCheck {
  /** True if `userKey` has a version newer than `seq` (committed, or earlier in this group). */
  keyChangedSince(userKey: Buffer, seq: number): boolean;
  /** True if any key in the range has a version newer than `seq` (including deletions). */
  rangeChangedSince(range: CheckRange, seq: number): boolean;
}

/** A user-key range for CommitCheck; undefined bounds are open. */
export interface CheckRange {
  lower: Buffer | undefined;
  lowerExclusive: boolean;
  upper: Buffer | undefined;
  upperExclusive: boolean;
}

export interface PendingWrite {
  /**
   * Operations in the batch (its sequence numbers). The operations themselves are not kept: the
   * payload holds them, and a queued write holds no object per operation (objects that live
   * across a scavenge make V8 grow the young generation).
   */
  opCount: number;
  /**
   * Runs at commit time, after every earlier write is decided and before this one gets its
   * sequence numbers; a returned error rejects this write alone.
   */
  validate?: ((check: CommitCheck) => LightningError | null) | undefined;
  sync: boolean;
  /** The encoded batch (sequence set at commit): what the WAL stores and the memtable applies. */
  payload: Buffer;
  resolve: () => void;
  reject: (e: LightningError) => void;
}

/** What the queue needs from the DB: room, a WAL commit, and a way to fail everything. */
export interface GroupCommitter {
  /** Waits until the memtable has room (may rotate the WAL and stall on a flush). */
  makeRoom(): Promise<void>;
  /**
   * Writes, syncs if asked, and applies one group. Writes whose validator fails are rejected and
   * removed from `group` (in place). Rejects with a LightningError.
   */
  commitGroup(group: PendingWrite[], sync: boolean): Promise<void>;
  /** Converts anything thrown into the error to hand to writers. */
  toError(e: unknown): LightningError;
}

export class WriteQueue {
  private readonly pending: PendingWrite[] = [];
  private draining: Promise<void> | null = null;
  private readonly committer: GroupCommitter;
  /** Counters for stats. */
  groups = 0;
  batches = 0;

  constructor(committer: GroupCommitter) {
    this.committer = committer;
  }

  get length(): number {
    return this.pending.length;
  }

  enqueue(w: PendingWrite): void {
    this.pending.push(w);
    if (this.draining === null) this.draining = this.drain();
  }

  /** Resolves when every write queued so far has been settled. Never rejects. */
  async idle(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  private async drain(): Promise<void> {
    // Let every writer of the current tick join the first group.
    await Promise.resolve();
    try {
      while (this.pending.length > 0) await this.drainOnce();
    } finally {
      this.draining = null;
    }
  }

  private async drainOnce(): Promise<void> {
    try {
      await this.committer.makeRoom();
    } catch (e) {
      this.failAll(this.pending.splice(0), this.committer.toError(e));
      return;
    }
    const group = this.takeGroup();
    let sync = false;
    for (const w of group) sync ||= w.sync;
    try {
      await this.committer.commitGroup(group, sync);
    } catch (e) {
      this.failAll(group, this.committer.toError(e));
      return;
    }
    this.groups++;
    this.batches += group.length;
    for (const w of group) w.resolve();
  }

  private takeGroup(): PendingWrite[] {
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length) {
      const w = this.pending[n] as PendingWrite;
      if (n > 0 && bytes + w.payload.length > GROUP_BYTES_MAX) break;
      bytes += w.payload.length;
      n++;
    }
    return this.pending.splice(0, n);
  }

  private failAll(group: PendingWrite[], err: LightningError): void {
    for (const w of group) w.reject(err);
  }
}
