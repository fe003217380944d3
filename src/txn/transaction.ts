/**
 * One transaction: reads from a snapshot merged with its own buffered writes, and commits all its
 * writes as one atomic batch through `writeValidated`, whose validator (run at commit time, in
 * commit order) rejects the commit with CONFLICT if something it depends on changed.
 *
 * What is validated (docs/transactions.md has the reasoning):
 *   - written keys: not changed since the snapshot (first committer wins) — whenever the snapshot
 *     is pinned, which is always in optimistic mode;
 *   - keys read with getForUpdate: not changed since they were read (every mode and isolation);
 *   - serializable only: every other key read (present or absent) and every range an iterator
 *     covered: not changed since the snapshot.
 *
 * Pessimistic mode also locks every key it writes or reads with getForUpdate (lock-table.ts).
 * Its snapshot is taken lazily and, until the transaction's first plain (unlocked) read *pins*
 * it, moves forward after every lock grant (the next read takes a new one): everything read until
 * then is locked, so the newer snapshot agrees with it, and transactions that lock what they read
 * never conflict with each other. Plain writes and optimistic transactions ignore locks, so a
 * move re-checks the keys read so far and fails with CONFLICT if one changed (the commit could not
 * succeed; failing early also keeps every read consistent). After pinning, a lock granted on a
 * key changed since the snapshot fails the transaction with CONFLICT at once, for the same reason.
 * The snapshot of the oldest validated read is held to the end (`floor`) so compaction keeps
 * every newer change visible to validation.
 */
import { LightningError, invalidArgument } from '../base/errors.js';
import type { UserRange } from '../iter/db-iterator.js';
import type { Snapshot } from '../db/snapshot.js';
import type { BatchOp } from '../db/write-batch.js';
import type { CheckRange, CommitCheck, PendingWrite } from '../db/write-queue.js';
import type { LightningIterator } from '../db/user-iterator.js';
import { BATCH_OPS_MAX } from '../db/options.js';
import { type Bytes, type RangeOptions, toKey, toRange, toValue } from '../db/keys.js';
import { assert } from '../util/assert.js';
import { pacedRejection, pacedResult } from '../util/yield.js';
import { describeKeyId, type LockOwner, type LockTable } from './lock-table.js';
import { TransactionIterator, type IteratorTransaction } from './transaction-iterator.js';
import { WriteBuffer, keyId } from './write-buffer.js';
import type { ConcurrencyMode, IsolationLevel, ResolvedTransactionOptions } from './transaction-options.js';

/** What a transaction needs from its database (src/db/db.ts implements it). */
export interface TransactionHost {
  /** Throws CLOSED once the database is closed. */
  checkReadable(): void;
  snapshot(): Snapshot;
  getAt(userKey: Buffer, seq: number): Buffer | undefined;
  iteratorAt(range: UserRange, seq: number): LightningIterator;
  writeValidated(ops: BatchOp[], sync: boolean, validate: PendingWrite['validate']): Promise<void>;
  /** A CommitCheck against what is applied now (read-only commits validate with it). */
  currentCheck(): CommitCheck;
  readonly defaultSync: boolean;
  toError(e: unknown): LightningError;
}

/** What a transaction needs from its manager. */
export interface TransactionRegistry {
  readonly locks: LockTable;
  /** Throws CLOSED once the database is closing. */
  checkOpen(): void;
  /** Called once when the transaction ends. */
  finished(tx: Transaction): void;
  /** Next position in the commit order of this database's transactions. */
  nextCommitOrder(): number;
}

export type TransactionState = 'active' | 'committing' | 'committed' | 'rolled-back';

/** Stable messages of INVALID_ARGUMENT for use of a finished transaction. */
export const TXN_COMMITTED_MESSAGE = 'transaction already committed';
export const TXN_ROLLED_BACK_MESSAGE = 'transaction already rolled back';

function rolledBackError(): LightningError {
  return invalidArgument(TXN_ROLLED_BACK_MESSAGE);
}
export const TXN_COMMITTING_MESSAGE = 'transaction is committing';

/** Most distinct keys a transaction may read with validation (serializable, getForUpdate). */
export const READ_SET_KEYS_MAX = 1_000_000;
/** Most ranges a serializable transaction may scan. */
export const READ_SET_RANGES_MAX = 100_000;
/**
 * A pessimistic snapshot moves forward only while the transaction has read fewer keys than this:
 * each move re-checks every key read so far, so this bounds that work; past it, the snapshot is
 * pinned (later locks on changed keys then fail with CONFLICT).
 */
export const SNAPSHOT_MOVE_READS_MAX = 1024;

interface ReadRecord {
  readonly key: Buffer;
  /** Snapshot sequence the key was read at (the oldest, if read more than once). */
  readonly seq: number;
  /** Read with getForUpdate: validated in every isolation level. */
  forUpdate: boolean;
}

export class Transaction implements LockOwner, IteratorTransaction {
  /** Unique within the database; appears in error messages. */
  readonly id: number;
  readonly isolation: IsolationLevel;
  readonly mode: ConcurrencyMode;
  /** When it began (stats: oldestTransactionAgeMs). */
  readonly createdAtMs: number;
  private txState: TransactionState = 'active';
  /** Set when a lock wait or an early check doomed the transaction; every later call throws it. */
  private failure: LightningError | null = null;
  private snap: Snapshot | null = null;
  /**
   * The snapshot of the oldest validated read, held to the end even after `snap` moves on:
   * compaction keeps every change newer than the oldest snapshot, and validation must see them
   * (a deletion newer than the read could otherwise be dropped at the bottom level).
   */
  private floor: Snapshot | null = null;
  /** True once the snapshot may no longer move (always in optimistic mode). */
  private pinned: boolean;
  private readonly writes = new WriteBuffer();
  private readonly reads = new Map<string, ReadRecord>();
  private readonly ranges: { range: CheckRange; seq: number }[] = [];
  private readonly iterators = new Set<TransactionIterator>();
  private readonly sync: boolean;
  private readonly timeoutMs: number;
  /** Pessimistic: keys requested (held, or queued in lockChain). The lock table knows the held. */
  private readonly requested = new Set<string>();
  /** Pessimistic: the last pending lock request; requests run one after another. */
  private lockChain: Promise<void> | null = null;
  private commitPromise: Promise<void> | null = null;
  private commitOrderValue = 0;

  /** @internal Use `db.beginTransaction()` or `db.transaction()`. */
  constructor(
    private readonly registry: TransactionRegistry,
    private readonly host: TransactionHost,
    id: number,
    options: ResolvedTransactionOptions,
    nowMs: number,
  ) {
    this.id = id;
    this.isolation = options.isolation;
    this.mode = options.mode;
    this.createdAtMs = nowMs;
    this.sync = options.sync ?? host.defaultSync;
    this.timeoutMs = options.timeoutMs;
    this.pinned = options.mode === 'optimistic';
    if (this.pinned) this.snap = host.snapshot();
  }

  /** 'active' until commit() is called or it is rolled back; a failed commit ends 'rolled-back'. */
  get state(): TransactionState {
    return this.txState;
  }

  /** @internal Position among this database's accepted commits (1, 2, ...); 0 until committed. */
  get commitOrder(): number {
    return this.commitOrderValue;
  }

  // ------------------------------------------------------------------------------------ reads

  /** The value of `key` in this transaction: its own write, else the snapshot's. */
  getSync(key: Bytes): Buffer | undefined {
    this.checkUsable();
    const k = toKey(key);
    const id = keyId(k);
    const own = this.writes.get(id);
    if (own !== undefined) return own.value === null ? undefined : Buffer.from(own.value);
    this.pinned = true;
    const seq = this.readSequence();
    const value = this.host.getAt(k, seq);
    if (this.isolation === 'serializable') this.recordRead(id, k, seq, false);
    return value;
  }

  get(key: Bytes): Promise<Buffer | undefined> {
    let value: Buffer | undefined;
    try {
      value = this.getSync(key);
    } catch (e) {
      return pacedRejection(this.host.toError(e));
    }
    return pacedResult(value);
  }

  /**
   * Reads `key` and protects the read until commit. Pessimistic: waits for the key's lock first
   * (rejects with DEADLOCK or TIMEOUT). Optimistic: the commit fails with CONFLICT if the key
   * changes before it, in every isolation level.
   */
  async getForUpdate(key: Bytes): Promise<Buffer | undefined> {
    try {
      this.checkUsable();
      const k = toKey(key);
      const id = keyId(k);
      if (this.mode === 'pessimistic') {
        await this.lock(k, id);
        this.checkUsable();
      }
      const own = this.writes.get(id);
      if (own !== undefined) return own.value === null ? undefined : Buffer.from(own.value);
      const seq = this.readSequence();
      const value = this.host.getAt(k, seq);
      this.recordRead(id, k, seq, true);
      return value;
    } catch (e) {
      throw this.host.toError(e);
    }
  }

  /**
   * Iterates the snapshot merged with this transaction's writes made so far. Serializable
   * transactions validate the range it covers at commit (phantoms).
   */
  iterator(range?: RangeOptions): TransactionIterator {
    this.checkUsable();
    const r = toRange(range);
    const scans = this.ranges.length + this.iterators.size;
    if (this.isolation === 'serializable' && scans >= READ_SET_RANGES_MAX) {
      throw invalidArgument(`a transaction may scan at most ${READ_SET_RANGES_MAX} ranges`);
    }
    this.pinned = true;
    const seq = this.readSequence();
    const inner = this.host.iteratorAt({ ...r, limit: Infinity }, seq);
    const own = this.writes.inRange(r);
    if (r.reverse) own.reverse();
    const it = new TransactionIterator(this, inner, own, r, seq, this.isolation === 'serializable');
    this.iterators.add(it);
    return it;
  }

  // ------------------------------------------------------------------------------------ writes

  /**
   * Buffers a put; nothing is visible to others before commit. Synchronous: throws
   * INVALID_ARGUMENT for a bad key or value or a finished transaction. Pessimistic mode also
   * requests the key's lock; later operations wait for it only if they need it (getForUpdate of
   * the key, commit), and a failed lock wait fails the transaction.
   */
  put(key: Bytes, value: Bytes): void {
    this.checkUsable();
    const k = toKey(key);
    const v = toValue(value);
    this.buffer(k, Buffer.from(v));
  }

  /** Buffers a delete (no error if the key is absent). See put(). */
  delete(key: Bytes): void {
    this.checkUsable();
    this.buffer(toKey(key), null);
  }

  private buffer(k: Buffer, value: Buffer | null): void {
    const id = keyId(k);
    if (!this.writes.has(id) && this.writes.size >= BATCH_OPS_MAX) {
      throw invalidArgument(`a transaction may write at most ${BATCH_OPS_MAX} keys`);
    }
    this.writes.set(id, Buffer.from(k), value);
    if (this.mode === 'pessimistic') void this.lock(k, id).catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------ end

  /**
   * Validates and writes everything atomically; durable per `sync` when it resolves. Rejects with
   * CONFLICT (validation failed), DEADLOCK/TIMEOUT (a lock wait failed), CLOSED, or a write error;
   * nothing is written then, and the transaction is over either way.
   */
  commit(): Promise<void> {
    try {
      this.checkActive();
    } catch (e) {
      return Promise.reject(e);
    }
    this.txState = 'committing';
    this.commitPromise = this.runCommit();
    return this.commitPromise;
  }

  /**
   * Discards the transaction: releases its snapshot and locks. Idempotent on a rolled-back
   * transaction; rejects with INVALID_ARGUMENT after (or during) commit.
   */
  rollback(): Promise<void> {
    if (this.txState === 'committed') return Promise.reject(invalidArgument(TXN_COMMITTED_MESSAGE));
    if (this.txState === 'committing') return Promise.reject(invalidArgument(TXN_COMMITTING_MESSAGE));
    this.finish('rolled-back');
    return Promise.resolve();
  }

  /** @internal The running commit, if commit() was called. */
  get pendingCommit(): Promise<void> | null {
    return this.commitPromise;
  }

  /** @internal Rolls back unless commit() was already called. */
  abandon(): void {
    if (this.txState === 'active') this.finish('rolled-back');
  }

  private async runCommit(): Promise<void> {
    try {
      while (this.lockChain !== null) await this.lockChain;
      if (this.failure !== null) throw this.failure;
      for (const it of [...this.iterators]) it.close();
      if (this.writes.size === 0) {
        this.validateReadOnly();
      } else {
        const validate = (check: CommitCheck): LightningError | null => this.validate(check);
        await this.host.writeValidated(this.writes.toOps(), this.sync, validate);
      }
    } catch (e) {
      this.finish('rolled-back');
      throw this.host.toError(e);
    }
    this.finish('committed');
  }

  /** Runs at commit time inside the group commit, in commit order. */
  private validate(check: CommitCheck): LightningError | null {
    if (this.pinned) {
      const seq = this.snapshotSequence();
      for (const w of this.writes.values()) {
        if (check.keyChangedSince(w.key, seq)) return this.conflict(`it wrote key ${describeKeyId(w.id)}`);
      }
    }
    for (const [id, r] of this.reads) {
      if (check.keyChangedSince(r.key, r.seq)) return this.conflict(`it read key ${describeKeyId(id)}`);
    }
    for (const { range, seq } of this.ranges) {
      if (check.rangeChangedSince(range, seq)) return this.conflict(`it scanned ${describeRange(range)}`);
    }
    this.commitOrderValue = this.registry.nextCommitOrder();
    return null;
  }

  /**
   * A transaction without writes commits without the write queue. Its plain reads all came from
   * one snapshot, so they need no check; reads made with getForUpdate are checked against what is
   * applied now, as an update's would be.
   */
  private validateReadOnly(): void {
    this.registry.checkOpen();
    this.host.checkReadable();
    const check = this.host.currentCheck();
    for (const [id, r] of this.reads) {
      if (!r.forUpdate || !check.keyChangedSince(r.key, r.seq)) continue;
      throw this.conflict(`it read key ${describeKeyId(id)}`);
    }
  }

  private conflict(what: string): LightningError {
    return new LightningError(
      'CONFLICT',
      `transaction ${this.id} conflicts: ${what}, which another write changed after this transaction read it`,
    );
  }

  /** Ends the transaction: releases iterators, snapshot and locks. Idempotent. */
  private finish(state: 'committed' | 'rolled-back'): void {
    if (this.ended) return;
    this.txState = state;
    for (const it of [...this.iterators]) it.close();
    const locks = this.registry.locks;
    // The error is built only if a wait is pending: constructing one (its stack) is costly.
    locks.cancelWait(this, rolledBackError);
    locks.releaseAll(this);
    if (this.floor !== this.snap) this.floor?.release();
    this.snap?.release();
    this.snap = null;
    this.floor = null;
    this.reads.clear();
    this.ranges.length = 0;
    this.writes.clear();
    this.registry.finished(this);
  }

  // ------------------------------------------------------------------------------------ locks

  /**
   * Resolves once `id` is locked by this transaction. Requests run one after another, so this
   * transaction waits for at most one lock at a time (the lock table's deadlock detection relies
   * on it). A failed request fails the transaction; later requests fail with the same error.
   */
  private lock(k: Buffer, id: string): Promise<void> {
    if (this.registry.locks.holderOf(id) === this) return this.lockResult();
    if (this.requested.has(id)) {
      assert(this.lockChain !== null, 'a requested, unheld key is queued');
      return this.lockChain;
    }
    this.requested.add(id);
    if (this.lockChain === null && this.registry.locks.tryAcquire(this, id)) {
      this.granted(k, id);
      return this.lockResult();
    }
    const prev = this.lockChain ?? Promise.resolve();
    const p = prev.then(() => this.acquireQueued(k, id));
    this.lockChain = p;
    p.then(
      () => {
        if (this.lockChain === p) this.lockChain = null;
      },
      (e: unknown) => {
        if (this.lockChain === p) this.lockChain = null;
        this.fail(this.host.toError(e));
      },
    );
    return p;
  }

  private async acquireQueued(k: Buffer, id: string): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (this.ended) throw invalidArgument(TXN_ROLLED_BACK_MESSAGE);
    const locks = this.registry.locks;
    if (!locks.tryAcquire(this, id)) await locks.wait(this, id, this.timeoutMs);
    // Ended while the grant was on its way: finish() already released the key.
    if (this.ended) throw invalidArgument(TXN_ROLLED_BACK_MESSAGE);
    this.granted(k, id);
    if (this.failure !== null) throw this.failure;
  }

  /**
   * A lock was granted. Unpinned: drop the snapshot, so the next read takes a newer one (see
   * readSequence). Pinned: fail now if the key changed since the snapshot (commit would fail).
   */
  private granted(k: Buffer, id: string): void {
    assert(this.registry.locks.holderOf(id) === this, 'a granted key is held');
    if (this.snap === null) return;
    if (!this.pinned && this.reads.size >= SNAPSHOT_MOVE_READS_MAX) this.pinned = true;
    if (!this.pinned) {
      if (this.snap !== this.floor) this.snap.release();
      this.snap = null;
      return;
    }
    if (this.host.currentCheck().keyChangedSince(k, this.snap.sequence)) {
      this.fail(this.conflict(`it locked key ${describeKeyId(id)}`));
    }
  }

  private fail(e: LightningError): void {
    if (this.failure === null && !this.ended) this.failure = e;
  }

  /** Committed or rolled back. */
  private get ended(): boolean {
    return this.txState === 'committed' || this.txState === 'rolled-back';
  }

  private lockResult(): Promise<void> {
    return this.failure === null ? Promise.resolve() : Promise.reject(this.failure);
  }

  // ------------------------------------------------------------------------------------ helpers

  /** @internal IteratorTransaction: throws unless reads and writes are allowed now. */
  checkUsable(): void {
    this.checkActive();
    if (this.failure !== null) throw this.failure;
    this.registry.checkOpen();
    this.host.checkReadable();
  }

  private checkActive(): void {
    if (this.txState === 'active') return;
    if (this.txState === 'committed') throw invalidArgument(TXN_COMMITTED_MESSAGE);
    if (this.txState === 'committing') throw invalidArgument(TXN_COMMITTING_MESSAGE);
    throw invalidArgument(TXN_ROLLED_BACK_MESSAGE);
  }

  /** @internal IteratorTransaction */
  iteratorReleased(it: TransactionIterator, covered: CheckRange | null, seq: number): void {
    this.iterators.delete(it);
    if (covered !== null && !this.ended) {
      this.ranges.push({ range: covered, seq });
    }
  }

  /**
   * The snapshot to read at, taken now if there is none. A pessimistic transaction's new snapshot
   * must agree with everything it read before: its locks keep other pessimistic transactions
   * away, but a plain write or an optimistic commit may have changed a locked key. Then the
   * transaction is doomed, and it fails now rather than show a mix of old and new versions.
   */
  private readSequence(): number {
    if (this.snap !== null) return this.snap.sequence;
    this.snap = this.host.snapshot();
    if (this.reads.size > 0) {
      const check = this.host.currentCheck();
      for (const [id, r] of this.reads) {
        if (!check.keyChangedSince(r.key, r.seq)) continue;
        const e = this.conflict(`it read key ${describeKeyId(id)}`);
        this.fail(e);
        throw e;
      }
    }
    return this.snap.sequence;
  }

  private snapshotSequence(): number {
    assert(this.snap !== null, 'a pinned transaction has a snapshot');
    return this.snap.sequence;
  }

  private recordRead(id: string, k: Buffer, seq: number, forUpdate: boolean): void {
    const r = this.reads.get(id);
    if (r !== undefined) {
      r.forUpdate ||= forUpdate;
      return;
    }
    if (this.reads.size >= READ_SET_KEYS_MAX) {
      throw invalidArgument(`a transaction may read at most ${READ_SET_KEYS_MAX} keys with validation`);
    }
    this.reads.set(id, { key: Buffer.from(k), seq, forUpdate });
    if (this.floor === null) {
      assert(this.snap !== null && this.snap.sequence === seq, 'reads are recorded at the current snapshot');
      this.floor = this.snap;
    }
  }
}

function describeRange(r: CheckRange): string {
  const bound = (b: Buffer): string => describeKeyId(b.toString('latin1'));
  const lo = r.lower === undefined ? '(' : `${r.lowerExclusive ? '(' : '['}${bound(r.lower)}`;
  const hi = r.upper === undefined ? ')' : `${bound(r.upper)}${r.upperExclusive ? ')' : ']'}`;
  return `the range ${lo}, ${hi}`;
}
