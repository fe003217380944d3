/**
 * The database: public operations on top of the engine's parts. Follow one `put`:
 *
 *   put() → keys.ts validates → WriteQueue.enqueue (write-queue.ts) → commitGroup() here frames the
 *   group's batches as WAL records into one buffer → RecordWriter.addEncoded (one write) →
 *   RecordWriter.sync (one fsync if any writer asked) → MemTable.add per op → promise resolves.
 *   When the memtable is full, makeRoom() rotates it: a new WAL, the old memtable becomes `imm`, and
 *   flush.ts writes it to an L0 SSTable and records it in the MANIFEST (VersionSet.logAndApply).
 *
 * Reads: memtable → immutable memtable → SSTables of the current Version (L0 newest first, then
 * each level), each table behind its bloom filter (read-path.ts).
 */
import { LightningError, fromIoError } from '../base/errors.js';
import { KIND_DELETE, KIND_SEEK, KIND_VALUE, MAX_SEQ, compareUserKeyOf, makeInternalKey, seqOfTrailer, trailerOf } from '../base/internal-key.js';
import { logFileName } from '../base/file-names.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import { MergingIterator } from '../iter/merging-iterator.js';
import { LevelIterator } from '../iter/level-iterator.js';
import { ReleasingIterator } from '../iter/releasing-iterator.js';
import { DbIterator, type UserRange } from '../iter/db-iterator.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { MemTable, offerMemTableStorage, takeOfferedMemTableStorage, type MemTableStorage } from '../memtable/memtable.js';
import { BlockCache } from '../sstable/block-cache.js';
import { RecordWriter } from '../wal/record-writer.js';
import { encodeRecordInto, encodedRecordBytes } from '../wal/format.js';
import type { VersionSet } from '../version/version-set.js';
import type { Version } from '../version/version.js';
import { NUM_LEVELS, type FileMetadata } from '../version/file-metadata.js';
import { type BatchOp, EMPTY_VALUE, applyBatch, batchCount, batchKeys, encodeBatchPayload, encodedBatchBytes, setBatchSequence } from './write-batch.js';
import { WriteQueue, type CheckRange, type CommitCheck, type GroupCommitter, type PendingWrite } from './write-queue.js';
import { resolveSync, type ResolvedOptions } from './options.js';
import { type Bytes, type BatchOperation, type RangeOptions, argumentError, toBatchPayload, toKey, toRange, toValue } from './keys.js';
import { LightningIterator, type IteratorOwner } from './user-iterator.js';
import { TableCache } from './table-cache.js';
import { getFromTables, newestSeqInTables } from './read-path.js';
import { bloomHash } from '../sstable/bloom-filter.js';
import { flushMemTable, flushOnThisThread } from './flush.js';
import { removeTablesInRange, type FlushSpec } from './flush-table.js';
import { BackgroundDeleter } from './background-deleter.js';
import { Snapshot, type SnapshotOwner } from './snapshot.js';
import { TransactionManager } from '../txn/transaction-manager.js';
import { runTransaction, type TransactionCallback } from '../txn/run-transaction.js';
import type { Transaction } from '../txn/transaction.js';
import type { RunTransactionOptions, TransactionOptions } from '../txn/transaction-options.js';
import type { DbStats } from './stats.js';
import { pickCompaction, withNextInputs, userKeyRange, type CompactionPick } from '../compaction/picker.js';
import { runCompaction } from '../compaction/compaction-job.js';
import { copyOfRange } from '../util/copy-bytes.js';
import { CompactionThread } from '../compaction/compaction-thread.js';
import { mergeTables, type MergeOutcome, type MergeSpec } from '../compaction/merge-tables.js';
import { tableFileName } from '../base/file-names.js';
import { deleteObsoleteWals, hasFreeSpace, removeQuietly } from './flush.js';
import { BackgroundErrorState, type BackgroundSource } from './background-error.js';
import { VersionEdit } from '../version/version-edit.js';
import { createNewFile } from '../env/open-file.js';
import { EVENT_LOOP_SHARE_MS, pacedRejection, pacedResult, yieldToEventLoop } from '../util/yield.js';

type State = 'open' | 'closing' | 'closed';

/** Free space a DISK_FULL recovery wants beyond the memtables it flushes. */
const RECOVERY_HEADROOM_BYTES = 64 * 1024;
/**
 * Non-durable writes start a background fdatasync of the WAL whenever this much is unsynced, so the
 * WAL reaches the disk in steps while the memtable fills, and the fsync a memtable switch must wait
 * for (every writer waits with it) finds at most this much left: the switch took 1-2 ms instead of
 * 27-30 ms after a 16 MiB non-durable load here.
 */
const WAL_BACKGROUND_SYNC_BYTES = 1024 * 1024;
/** Memtables below this many bytes (and half of memtableSize) are flushed on the main thread even with a flush worker. */
const SMALL_FLUSH_BYTES = 1024 * 1024;

/** Entries a main-thread compaction merge processes between yields to the event loop. */
const MAIN_THREAD_MERGE_SLICE_ENTRIES = 1024;

/** Everything open() hands over once recovery is done. */
export interface RecoveredState {
  fs: FileSystem;
  dir: string;
  options: ResolvedOptions;
  versions: VersionSet;
  mem: MemTable;
  /** Active WAL; null in read-only mode. */
  wal: RecordWriter | null;
  lastSeq: number;
  releaseLock: () => void;
  recovery: { walRecordsReplayed: number; walBytesSkipped: number; orphansRemoved: number };
}

export class Database implements GroupCommitter, IteratorOwner, SnapshotOwner {
  private state: State = 'open';
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly options: ResolvedOptions;
  private readonly versions: VersionSet;
  private readonly tableCache: TableCache;
  private readonly blockCache: BlockCache | null;
  private readonly writeQueue: WriteQueue;
  private readonly releaseLock: () => void;
  private mem: MemTable;
  private imm: MemTable | null = null;
  private wal: RecordWriter | null;
  /** Highest sequence number applied to the memtable (visible to new reads). */
  private lastSeq: number;
  private flushing: Promise<void> | null = null;
  /** The memtable rotation in progress (WAL fsync + new WAL), if any. */
  private rotating: Promise<void> | null = null;
  /**
   * The group commit between its WAL write and its memtable apply, if any. A rotation waits for it
   * and a commit waits for a rotation, so a group's records and its entries always land in a WAL
   * and the memtable that WAL covers.
   */
  private committing = false;
  /** Waiting for `committing` to end (resolved, and emptied, by the commit's end). */
  private readonly commitWaiters: (() => void)[] = [];
  private compacting: Promise<void> | null = null;
  /**
   * Runs compaction merges off the event loop (option compactionThread 'worker'); created lazily.
   * The same thread as flushThread (one worker per database, flushes first), unless a test gave
   * either its own.
   */
  private compactionThread: CompactionThread | null = null;
  /** Builds flushed memtables' tables off the event loop (same option); created lazily. */
  private flushThread: CompactionThread | null = null;
  /** The background thread both default to (see backgroundThread). */
  private sharedThread: CompactionThread | null = null;
  /** Runs the second half of split merges (subcompactions); created at the first. */
  private asideThread: CompactionThread | null = null;
  /** Set once the current memtable is half full and the flush worker was started for it. */
  private flushWorkerWarmed = false;
  /** Deletes replaced tables and obsolete WALs off the event loop. */
  private readonly deleter: BackgroundDeleter;
  /**
   * The buffers of the last flushed memtable, for the next memtable (MemTable.retire): its pages
   * are resident already, and 16 MiB arenas do not pile up waiting for the garbage collector.
   */
  private spareMemTable: MemTableStorage | null = null;
  private readonly keepSpareMemTable = (storage: MemTableStorage): void => {
    this.spareMemTable = storage;
  };
  private lastShareMs = 0;
  /** Per level: largest user key of the last compaction there (round-robin cursor). */
  private readonly compactCursor: (Buffer | undefined)[] = [];
  /** Tables removed from the current Version, deleted once no Version references them. */
  private readonly obsoleteTables = new Set<number>();
  /** Failures of WAL, flush and compaction; writes fail with `bg.error` while it is set. */
  private readonly bg = new BackgroundErrorState();
  private recovering: Promise<void> | null = null;
  private memSeed: number;
  private groupBuf: Buffer = Buffer.allocUnsafe(64 * 1024);
  private readonly iterators = new Set<LightningIterator>();
  private readonly snapshots = new Set<Snapshot>();
  /** Active transactions and their lock table (src/txn/). */
  private readonly txns: TransactionManager;
  private closePromise: Promise<void> | null = null;
  private readonly counters = {
    flushes: 0,
    flushBytesWritten: 0,
    walBytesWritten: 0,
    userBytesWritten: 0,
    walSyncs: 0,
    walBackgroundSyncs: 0,
    stalls: 0,
    backgroundErrors: 0,
    walRecordsReplayed: 0,
    walBytesSkipped: 0,
    orphansRemoved: 0,
    compactions: 0,
    trivialMoves: 0,
    splitCompactions: 0,
    compactionBytesRead: 0,
    compactionBytesWritten: 0,
    compactionEntriesDropped: 0,
    slowdowns: 0,
    stallMs: 0,
    tablesDeleted: 0,
  };

  /** @internal Use `open()`. */
  constructor(r: RecoveredState) {
    this.fs = r.fs;
    this.dir = r.dir;
    this.options = r.options;
    this.versions = r.versions;
    this.mem = r.mem;
    this.wal = r.wal;
    this.lastSeq = r.lastSeq;
    this.releaseLock = r.releaseLock;
    this.memSeed = r.options.seed + 1;
    this.counters.walRecordsReplayed = r.recovery.walRecordsReplayed;
    this.counters.walBytesSkipped = r.recovery.walBytesSkipped;
    this.counters.orphansRemoved = r.recovery.orphansRemoved;
    this.blockCache = r.options.blockCacheSizeBytes > 0 ? new BlockCache(r.options.blockCacheSizeBytes, cacheSlotBytes(r.options.blockSizeBytes), true) : null;
    this.tableCache = new TableCache(r.fs, r.dir, this.blockCache, r.options.maxOpenFiles);
    this.deleter = new BackgroundDeleter(r.fs);
    this.writeQueue = new WriteQueue(this);
    this.txns = new TransactionManager(this, r.options.maxActiveTransactions, r.options.seed);
  }

  // ---------------------------------------------------------------- writes

  /** Stores `value` under `key`. Resolves once durable per `sync` (default: the DB's option). */
  put(key: Bytes, value: Bytes, options?: { sync?: boolean }): Promise<void> {
    let op: BatchOp;
    let sync: boolean;
    try {
      op = { kind: KIND_VALUE, key: toKey(key), value: toValue(value) };
      sync = resolveSync(options, this.options.sync);
    } catch (e) {
      return Promise.reject(argumentError(e));
    }
    return this.writeOrReject([op], sync);
  }

  /** Removes `key` (no error if absent). */
  delete(key: Bytes, options?: { sync?: boolean }): Promise<void> {
    let op: BatchOp;
    let sync: boolean;
    try {
      op = { kind: KIND_DELETE, key: toKey(key), value: EMPTY_VALUE };
      sync = resolveSync(options, this.options.sync);
    } catch (e) {
      return Promise.reject(argumentError(e));
    }
    return this.writeOrReject([op], sync);
  }

  /** Applies all operations atomically, or none (an invalid operation rejects the whole batch). */
  batch(operations: readonly BatchOperation[], options?: { sync?: boolean }): Promise<void> {
    let payload: Buffer;
    let sync: boolean;
    try {
      payload = toBatchPayload(operations);
      sync = resolveSync(options, this.options.sync);
    } catch (e) {
      return Promise.reject(argumentError(e));
    }
    try {
      this.checkWritable();
      const count = batchCount(payload);
      if (count === 0) return Promise.resolve();
      return this.enqueue(payload, count, sync, undefined);
    } catch (e) {
      return Promise.reject(this.toError(e));
    }
  }

  /** writeValidated() that never throws: a synchronous failure becomes the rejection. */
  private writeOrReject(ops: BatchOp[], sync: boolean): Promise<void> {
    try {
      return this.writeValidated(ops, sync, undefined);
    } catch (e) {
      return Promise.reject(this.toError(e));
    }
  }

  /**
   * @internal Writes `ops` atomically if `validate` (run at commit time, see CommitCheck) returns
   * null; otherwise rejects with its error and writes nothing. Transactions commit through this.
   */
  writeValidated(ops: BatchOp[], sync: boolean, validate: PendingWrite['validate']): Promise<void> {
    this.checkWritable();
    // Copy now: the caller may reuse its buffers as soon as this call returns.
    return this.enqueue(encodeBatchPayload(ops, encodedBatchBytes(ops)), ops.length, sync, validate);
  }

  /** Queues an encoded batch of `count` operations for the next group commit. */
  private enqueue(payload: Buffer, count: number, sync: boolean, validate: PendingWrite['validate']): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.writeQueue.enqueue({ opCount: count, sync, payload, validate, resolve, reject });
    });
  }

  /** @internal The sequence number reads see now (what a new snapshot would pin). */
  get visibleSequence(): number {
    return this.lastSeq;
  }

  /** @internal The database's default durability. */
  get defaultSync(): boolean {
    return this.options.sync;
  }

  private checkWritable(): void {
    if (this.state !== 'open') throw new LightningError('CLOSED', 'the database is closed');
    if (this.options.readOnly) throw new LightningError('READ_ONLY', 'the database was opened readOnly');
    if (this.backgroundError !== null) throw this.backgroundError;
  }

  /** @internal GroupCommitter: waits until the memtable has room for a group. */
  async makeRoom(): Promise<void> {
    let slowed = false;
    await this.shareEventLoop();
    for (;;) {
      if (this.backgroundError !== null) throw this.backgroundError;
      const l0 = this.versions.current().files(0).length;
      const cfg = this.options.compaction;
      if (!slowed && l0 >= cfg.l0SlowdownTrigger && l0 < cfg.l0StopTrigger) {
        // Give compaction a millisecond per write group instead of stopping writes outright.
        slowed = true;
        this.counters.slowdowns++;
        this.maybeScheduleCompaction();
        await delay(1);
        continue;
      }
      if (l0 >= cfg.l0StopTrigger) {
        this.maybeScheduleCompaction();
        if (this.compacting !== null) {
          await this.stall(this.compacting);
          continue;
        }
      }
      if (this.mem.approximateBytes < this.options.memtableSizeBytes) {
        if (!this.flushWorkerWarmed && this.mem.approximateBytes >= this.options.memtableSizeBytes / 2) this.warmFlushWorker();
        return;
      }
      if (this.imm !== null) {
        // A flush is still running: stall writers instead of growing memory.
        await this.stall(this.flushing);
        continue;
      }
      await this.rotateMemTable();
    }
  }

  /**
   * Non-durable writes complete without I/O, so a caller awaiting them in a loop never leaves the
   * microtask queue: the application's timers and I/O, and our own background flush and compaction
   * (which advance in macrotasks), would starve. Let the event loop turn at least every
   * EVENT_LOOP_SHARE_MS of writing.
   */
  private async shareEventLoop(): Promise<void> {
    const now = performance.now(); // monotonic: a wall clock stepped back must not stop the yields
    if (now - this.lastShareMs < EVENT_LOOP_SHARE_MS) return;
    this.lastShareMs = now;
    await yieldToEventLoop();
  }

  private async stall(on: Promise<void> | null): Promise<void> {
    this.counters.stalls++;
    const t0 = Date.now();
    await on;
    this.counters.stallMs += Date.now() - t0;
  }

  /**
   * Switches to a new WAL and memtable and starts flushing the old one. The old WAL is fsynced
   * first: a later durable write to the new WAL must never survive a crash that loses an earlier
   * non-durable write in the old one (the prefix property).
   */
  private rotateMemTable(): Promise<void> {
    // One rotation at a time: a second caller (a write's makeRoom, compactRange, close) that
    // arrives while one awaits its fsyncs shares it instead of rotating the new memtable again.
    if (this.rotating === null) {
      this.rotating = this.doRotateMemTable().finally(() => {
        this.rotating = null;
      });
    }
    return this.rotating;
  }

  private async doRotateMemTable(): Promise<void> {
    // A commit in flight (a rotation from compactRange or close, not from a write's makeRoom)
    // applies to the current memtable the records it wrote to the current WAL: let it finish.
    await this.commitEnded();
    const oldWal = this.wal;
    assert(oldWal !== null, 'rotate requires a WAL');
    assert(this.imm === null, 'rotate requires no immutable memtable');
    try {
      oldWal.trimTail(); // only the newest log may end in preallocated zeros
      await oldWal.sync();
    } catch (e) {
      this.setBackgroundError(e, 'wal-sync');
      throw e;
    }
    const walNumber = this.versions.newFileNumber();
    const wal = await createWal(this.fs, this.dir, walNumber);
    await oldWal.settled();
    oldWal.close();
    this.wal = wal;
    this.imm = this.mem;
    this.mem = this.newMemTable();
    this.startFlush(walNumber);
  }

  private startFlush(logNumber: number): void {
    const imm = this.imm;
    assert(imm !== null, 'flush requires an immutable memtable');
    this.flushing = this.runFlush(imm, logNumber).finally(() => {
      this.flushing = null;
    });
  }

  /** Background flush; never rejects: a failure goes to the background-error state. */
  private async runFlush(imm: MemTable, logNumber: number): Promise<void> {
    try {
      await this.flushImmutable(imm, logNumber);
    } catch (e) {
      this.setBackgroundError(e, 'flush');
      return;
    }
    this.bg.succeeded();
    this.maybeScheduleCompaction();
  }

  /** Flushes `imm` to L0 and drops it. Throws LightningError. */
  private async flushImmutable(imm: MemTable, logNumber: number): Promise<void> {
    assert(this.imm === imm, 'flushing a memtable that is not the immutable one');
    const r = await flushMemTable(this.fs, this.dir, this.versions, imm, logNumber, this.lastSeq, this.options, {
      build: this.buildFlushTable,
      remove: this.removeInBackground,
    });
    this.counters.flushes++;
    this.counters.flushBytesWritten += r.bytesWritten;
    this.imm = null;
    imm.retire(this.keepSpareMemTable);
  }

  /** The next memtable, on spare buffers when there are some. */
  private newMemTable(): MemTable {
    // The last flushed memtable's buffers, else those a closed database left (WeakSpares).
    const spare = this.spareMemTable ?? takeOfferedMemTableStorage();
    this.spareMemTable = null;
    this.flushWorkerWarmed = false;
    return new MemTable(this.memSeed++, this.options.memtableSizeBytes, spare);
  }

  // ---------------------------------------------------------------- compaction

  /** Called once by open(): starts any compaction the recovered state already needs. */
  startBackgroundWork(): void {
    this.maybeScheduleCompaction();
  }

  /** Starts a background compaction if one is due and none runs. Never throws. */
  private maybeScheduleCompaction(): void {
    if (this.compacting !== null || this.state !== 'open' || this.options.readOnly) return;
    if (this.backgroundError !== null) return;
    const pick = pickCompaction(this.versions.current(), this.options.compaction, this.compactCursor);
    if (pick === null) return;
    this.compacting = this.runCompactionJob(pick).finally(() => {
      this.compacting = null;
      this.maybeScheduleCompaction();
    });
  }

  /** Runs one compaction; never rejects: a failure becomes the sticky background error. */
  private async runCompactionJob(pick: CompactionPick): Promise<void> {
    const version = this.versions.current();
    version.ref();
    try {
      const r = await runCompaction(
        {
          fs: this.fs,
          dir: this.dir,
          versions: this.versions,
          merge: (spec) => this.merge(spec),
          mergeAside: (spec) => this.mergeAside(spec),
          subcompactionMinBytes: this.options.subcompactionMinBytes,
          hasFreeSpace: (bytes) => hasFreeSpace(this.fs, this.dir, bytes),
          smallestSnapshot: this.smallestSnapshot(),
          blockSizeBytes: this.options.blockSizeBytes,
          bloomBitsPerKey: this.options.bloomBitsPerKey,
          compression: this.options.compression,
          targetFileBytes: this.options.compaction.targetFileBytes,
        },
        pick,
        version,
      );
      this.compactCursor[pick.level] = userKeyRange(pick.inputs)[1];
      this.counters.compactions++;
      if (r.trivialMove) this.counters.trivialMoves++;
      if (r.subcompactions > 1) this.counters.splitCompactions++;
      this.counters.compactionBytesRead += r.bytesRead;
      this.counters.compactionBytesWritten += r.bytesWritten;
      this.counters.compactionEntriesDropped += r.entriesDropped;
      if (!r.trivialMove) {
        for (const f of [...pick.inputs, ...pick.nextInputs]) this.obsoleteTables.add(f.number);
      }
      this.bg.succeeded();
    } catch (e) {
      this.setBackgroundError(e, 'compaction');
    } finally {
      version.unref();
    }
    this.collectObsoleteTables();
  }

  /**
   * Starts the flush worker while the memtable is half full, so the flush finds it running: a
   * worker takes ~50 ms to start and load its code, which the first flush of a load (and the
   * first after an idle worker retired) spent with writers waiting. At most once per memtable.
   */
  private warmFlushWorker(): void {
    this.flushWorkerWarmed = true;
    if (this.options.compactionThread !== 'worker' || this.options.memtableSizeBytes / 2 < SMALL_FLUSH_BYTES) return;
    this.flushThread ??= this.backgroundThread();
    this.flushThread.prestart();
  }

  /** Builds a flush's table in the flush worker, or here in slices (other filesystems, or after the worker failed). */
  private readonly buildFlushTable = (spec: FlushSpec): Promise<FileMetadata> => {
    // A part-full memtable (the tail flushed at close) is built here in a few milliseconds:
    // cheaper than starting a worker for it.
    const small = spec.sorted.usedBytes < Math.min(SMALL_FLUSH_BYTES, this.options.memtableSizeBytes / 2);
    const here = (): Promise<FileMetadata> => flushOnThisThread(this.fs)(spec);
    if (this.options.compactionThread !== 'worker' || small) return here();
    const thread = (this.flushThread ??= this.backgroundThread());
    return thread.orHere(() => thread.flush(spec), here).catch((e: unknown) => {
      // A worker that died mid-build left its partial table: the flush is retried under a new number.
      removeTablesInRange(this.fs, spec.dir, spec.fileNumber, 1);
      throw e;
    });
  };

  /**
   * The database's one background worker thread, for flushes and merges alike: a second worker
   * cost ~20 MiB of peak RSS for no throughput (the worker gives a flush priority over a merge).
   */
  private backgroundThread(): CompactionThread {
    return (this.sharedThread ??= new CompactionThread());
  }

  /** Where jobs of `thread` run: the worker unless the option says main or that worker failed. */
  private threadKind(thread: CompactionThread | null): 'worker' | 'main' {
    return this.options.compactionThread === 'worker' && thread?.broken !== true ? 'worker' : 'main';
  }

  /** Runs a compaction merge in the worker thread, or here in slices (other filesystems, or after the worker failed). */
  private merge(spec: MergeSpec): Promise<MergeOutcome> {
    return this.mergeOn(() => (this.compactionThread ??= this.backgroundThread()), spec);
  }

  /**
   * Runs a subcompaction's second merge: in a worker of its own (created for the first large
   * merge, retired when idle like any worker), or here in slices.
   */
  private mergeAside(spec: MergeSpec): Promise<MergeOutcome> {
    return this.mergeOn(() => (this.asideThread ??= new CompactionThread('subcompaction')), spec);
  }

  /** Runs a merge on `thread()`'s worker, or here in slices (option 'main', or that worker failed). */
  private mergeOn(thread: () => CompactionThread, spec: MergeSpec): Promise<MergeOutcome> {
    const here = (): Promise<MergeOutcome> => mergeTables(this.fs, spec, MAIN_THREAD_MERGE_SLICE_ENTRIES);
    if (this.options.compactionThread !== 'worker') return here();
    const t = thread();
    return t.orHere(() => t.run(spec), here).catch((e: unknown) => {
      // A merge that fails in the worker removes its outputs, but a worker that died mid-merge
      // could not: remove what it wrote now instead of leaving orphans until the next open.
      removeTablesInRange(this.fs, spec.dir, spec.firstOutputNumber, spec.outputNumberCount);
      throw e;
    });
  }

  /** Oldest sequence number any reader may still ask for. */
  private smallestSnapshot(): number {
    let s = this.lastSeq;
    for (const snap of this.snapshots) if (snap.sequence < s) s = snap.sequence;
    return s;
  }

  private readonly countTableDeleted = (): void => {
    this.counters.tablesDeleted++;
  };

  /** Starts deleting an obsolete file off the event loop (see BackgroundDeleter). */
  private readonly removeInBackground = (path: string): void => {
    this.deleter.remove(path);
  };

  /** Deletes obsolete tables that no live Version (iterator, compaction) still references. */
  private collectObsoleteTables(): void {
    if (this.obsoleteTables.size === 0) return;
    const live = this.versions.liveFileNumbers();
    for (const n of [...this.obsoleteTables]) {
      if (live.has(n)) continue;
      this.obsoleteTables.delete(n);
      this.tableCache.evict(n);
      this.deleter.remove(joinPath(this.dir, tableFileName(n)), this.countTableDeleted);
    }
  }

  /**
   * Compacts every table overlapping [start, end] (user keys; undefined = unbounded) down the
   * tree, after flushing the memtable, into the deepest level that held any of them (at least L1),
   * as LevelDB does: every version of a key in the range is then merged in one table, and levels
   * below are not filled with further rewrites of the same data (compacting a 57 MB tree all the
   * way to L6 rewrote it six times: 12 s instead of ~2). Resolves when done.
   */
  async compactRange(start?: Bytes, end?: Bytes): Promise<void> {
    try {
      this.checkWritable();
      let lo: Buffer | undefined;
      let hi: Buffer | undefined;
      try {
        lo = start === undefined ? undefined : toKey(start);
        hi = end === undefined ? undefined : toKey(end);
      } catch (e) {
        throw argumentError(e);
      }
      await this.writeQueue.idle();
      if (this.mem.entryCount > 0) await this.flushNow();
      while (this.compacting !== null) await this.compacting;
      const start0 = this.versions.current();
      let deepest = 1;
      for (let level = 1; level < NUM_LEVELS; level++) if (start0.overlappingFiles(level, lo, hi).length > 0) deepest = level;
      for (let level = 0; level < deepest; level++) {
        while (this.compacting !== null) await this.compacting;
        // close() may have started meanwhile: stop between steps rather than race it.
        if (this.state !== 'open') throw new LightningError('CLOSED', 'the database was closed during compactRange');
        if (this.backgroundError !== null) throw this.backgroundError;
        const v = this.versions.current();
        const inputs = v.overlappingFiles(level, lo, hi);
        if (inputs.length === 0) continue;
        const pick = withNextInputs(v, level, level === 0 ? [...v.files(0)] : inputs, 'manual');
        this.compacting = this.runCompactionJob(pick).finally(() => {
          this.compacting = null;
        });
        await this.compacting;
        if (this.state !== 'open') throw new LightningError('CLOSED', 'the database was closed during compactRange');
        if (this.backgroundError !== null) throw this.backgroundError;
      }
    } catch (e) {
      throw this.toError(e);
    }
  }

  /**
   * Resolves once no write, flush, compaction or file deletion is queued or running and no level
   * needs compacting (every level score < 1). Background errors do not reject it; see stats().
   */
  async idle(): Promise<void> {
    this.checkReadable();
    for (;;) {
      await this.writeQueue.idle();
      await this.rotationSettled();
      this.maybeScheduleCompaction();
      const running = this.compacting ?? this.recovering;
      if (running === null) {
        if (this.deleter.inFlight === 0) return;
        await this.deleter.idle();
        continue;
      }
      await running;
    }
  }

  /** Rotates and flushes the memtable now, waiting for the flush. */
  private async flushNow(): Promise<void> {
    while (this.rotating !== null || this.flushing !== null) await (this.rotating ?? this.flushing);
    // A failed flush leaves its memtable in `imm`: report why instead of rotating again.
    if (this.backgroundError !== null) throw this.backgroundError;
    if (this.mem.entryCount === 0) return;
    await this.rotateMemTable();
    while (this.flushing !== null) await this.flushing;
    if (this.backgroundError !== null) throw this.backgroundError;
  }

  private get backgroundError(): LightningError | null {
    return this.bg.error;
  }

  /** Records a background failure and schedules a retry when the state machine allows one. */
  private setBackgroundError(e: unknown, source: BackgroundSource): void {
    this.counters.backgroundErrors++;
    if (this.bg.report(this.toError(e), source)) this.bg.scheduleRetry(() => this.retryBackground());
  }

  /**
   * Retries failed background work now instead of waiting for the automatic retry (e.g. right
   * after freeing disk space). Resolves once the database accepts writes again; rejects with the
   * background error if it still does not (DISK_FULL: still no space; IO_ERROR with stats()
   * backgroundError.mode 'failed': only reopening helps).
   */
  async resume(): Promise<void> {
    this.checkReadable();
    if (this.bg.mode === 'failed' && this.bg.error !== null) throw this.bg.error;
    if (this.bg.mode === 'healthy') return;
    this.bg.cancel();
    this.retryBackground();
    while (this.recovering !== null) await this.recovering;
    if (this.bg.error !== null) throw this.bg.error;
  }

  private retryBackground(): void {
    if (this.state !== 'open' || this.recovering !== null) return;
    this.recovering = this.recoverFromBackgroundError().finally(() => {
      this.recovering = null;
    });
  }

  /**
   * Resumes after a retryable failure: waits for free space (DISK_FULL), finishes a failed flush,
   * and replaces a failed WAL (its tail is unknown) by flushing the memtable and starting a new
   * log. Never rejects.
   */
  private async recoverFromBackgroundError(): Promise<void> {
    try {
      await this.backgroundSettled();
      const err = this.bg.error;
      if (err === null || this.state !== 'open') return;
      if (err.code === 'DISK_FULL') {
        const current = this.wal;
        assert(current !== null, 'a writable database has a WAL');
        if (!(await hasFreeSpace(this.fs, this.dir, this.bytesToRecover(current)))) {
          this.bg.scheduleRetry(() => this.retryBackground());
          return;
        }
        // Work that began before the error may have gone on meanwhile: a rotation ends by starting
        // its own flush of `imm`, which must not be flushed twice.
        await this.backgroundSettled();
        if (this.bg.error === null || this.state !== 'open') return;
      }
      const wal = this.wal;
      assert(wal !== null, 'a writable database has a WAL');
      // The current WAL (even a failed one) still holds the memtable's writes: keep it live.
      if (this.imm !== null) await this.flushImmutable(this.imm, wal.fileNumber);
      if (wal.failed() !== undefined) await this.replaceFailedWal(wal);
      this.bg.recovered();
      this.maybeScheduleCompaction();
    } catch (e) {
      this.setBackgroundError(e, 'recovery');
    }
  }

  /**
   * Resolves once no rotation or flush is running. A rotation (a write's, or compactRange's)
   * starts a flush when it ends: this waits for both. A failed rotation is its caller's error;
   * here it only means there is nothing to wait for.
   */
  private async rotationSettled(): Promise<void> {
    while (this.rotating !== null || this.flushing !== null) await (this.rotating ?? this.flushing)?.catch(() => undefined);
  }

  /** Resolves once no rotation, flush or compaction is running. */
  private async backgroundSettled(): Promise<void> {
    for (;;) {
      await this.rotationSettled();
      if (this.compacting === null) return;
      await this.compacting;
    }
  }

  /** Space a recovery needs: the memtables it will flush, plus room for a new WAL to start. */
  private bytesToRecover(wal: RecordWriter): number {
    let bytes = RECOVERY_HEADROOM_BYTES;
    if (this.imm !== null) bytes += this.imm.approximateBytes;
    if (wal.failed() !== undefined) bytes += this.mem.approximateBytes;
    return bytes;
  }

  /** New WAL; the memtable (whose tail the failed WAL may have lost) goes to an SSTable. */
  private async replaceFailedWal(failed: RecordWriter): Promise<void> {
    await this.commitEnded(); // as a rotation does
    const walNumber = this.versions.newFileNumber();
    this.wal = await createWal(this.fs, this.dir, walNumber);
    await failed.settled();
    failed.close();
    if (this.mem.entryCount > 0) {
      this.imm = this.mem;
      this.mem = this.newMemTable();
      await this.flushImmutable(this.imm, walNumber);
    } else {
      const edit = new VersionEdit();
      edit.logNumber = walNumber;
      await this.versions.logAndApply(edit);
      deleteObsoleteWals(this.fs, this.dir, walNumber, this.removeInBackground);
    }
  }

  /** @internal GroupCommitter: one WAL write (+ one fsync) for the group, then apply. */
  async commitGroup(group: PendingWrite[], sync: boolean): Promise<void> {
    // Commit to the WAL and memtable a rotation in progress is about to install, never to the old
    // WAL with the entries then applied to the new memtable: that WAL is deleted once the old
    // memtable is flushed, and the records with it.
    while (this.rotating !== null) await this.rotating.catch(() => undefined);
    if (this.backgroundError !== null) throw this.backgroundError;
    assert(!this.committing, 'one group commit at a time');
    // A flag and waiters rather than a promise per commit: a non-durable commit runs to its end
    // without awaiting anything, and allocates nothing for the rotation that rarely waits.
    this.committing = true;
    try {
      const wal = this.writeGroupToWal(group);
      if (wal === null) return; // every write of the group failed validation
      if (sync) {
        try {
          await wal.sync(this.options.inlineSync, true);
        } catch (e) {
          this.setBackgroundError(e, 'wal-sync');
          throw e;
        }
        this.counters.walSyncs++;
      } else if (wal.unsyncedBytes() >= WAL_BACKGROUND_SYNC_BYTES) {
        if (wal.syncInBackground((e) => this.setBackgroundError(e, 'wal-sync'))) this.counters.walBackgroundSyncs++;
      }
      this.apply(group);
    } finally {
      this.committing = false;
      if (this.commitWaiters.length > 0) for (const wake of this.commitWaiters.splice(0)) wake();
    }
  }

  /** Resolves once no group commit is between its WAL write and its memtable apply. */
  private async commitEnded(): Promise<void> {
    while (this.committing) await new Promise<void>((resolve) => this.commitWaiters.push(resolve));
  }

  /**
   * Validates the group (removing writes that fail), gives it sequence numbers and appends it to
   * the WAL with one write. Returns that WAL, or null if no write is left.
   */
  private writeGroupToWal(group: PendingWrite[]): RecordWriter | null {
    const wal = this.wal;
    assert(wal !== null, 'commit requires a WAL');
    if (group.some((w) => w.validate !== undefined)) this.validateGroup(group);
    if (group.length === 0) return null;
    // After a completed sync the group begins with a sync mark (src/wal/record-writer.ts).
    const markBytes = wal.markBytesDue();
    let total = markBytes;
    for (const w of group) total += encodedRecordBytes(w.payload.length);
    const buf = this.groupBuffer(total);
    let off = markBytes > 0 ? wal.encodeMarkInto(buf, 0) : 0;
    let seq = this.lastSeq + 1;
    for (const w of group) {
      setBatchSequence(w.payload, seq);
      off = encodeRecordInto(buf, off, w.payload);
      seq += w.opCount;
    }
    assert(off === total, 'group size mismatch');
    try {
      wal.addEncoded(buf.subarray(0, total));
      this.counters.walBytesWritten += total;
    } catch (e) {
      // The WAL's tail is now unknown: writes pause until a new WAL replaces it (DISK_FULL) or
      // until reopen (IO_ERROR).
      this.setBackgroundError(e, 'wal-write');
      throw e;
    }
    return wal;
  }

  /**
   * Runs the validators of a group in order, rejecting (and removing) the writes that fail. A
   * validator sees every applied write plus the writes accepted before it in this group.
   */
  private validateGroup(group: PendingWrite[]): void {
    // Keys accepted earlier in this group, as latin1 strings (one byte per char: exact identity).
    const writtenInGroup = new Set<string>();
    const check: CommitCheck = {
      keyChangedSince: (key, seq) => writtenInGroup.has(key.toString('latin1')) || this.newestSeqOf(key) > seq,
      rangeChangedSince: (range, seq) => {
        for (const k of writtenInGroup) if (inCheckRange(Buffer.from(k, 'latin1'), range)) return true;
        return this.rangeChangedSince(range, seq);
      },
    };
    let kept = 0;
    for (const w of group) {
      const err = w.validate === undefined ? null : w.validate(check);
      if (err !== null) {
        w.reject(err);
        continue;
      }
      group[kept++] = w;
      // Keys from the payload: the caller's buffers may have changed since the call.
      for (const key of batchKeys(w.payload)) writtenInGroup.add(key.toString('latin1'));
    }
    group.length = kept;
  }

  /** Sequence number of the newest version of `userKey` (a value or a deletion), or -1. */
  private newestSeqOf(userKey: Buffer): number {
    const hash = bloomHash(userKey); // once, for both memtables' filters and every table's
    const inMem = this.mem.newestSeq(userKey, hash);
    if (inMem >= 0) return inMem;
    const inImm = this.imm === null ? -1 : this.imm.newestSeq(userKey, hash);
    if (inImm >= 0) return inImm;
    return newestSeqInTables(this.versions.current(), this.tableCache, userKey, hash);
  }

  /** True if any entry with a user key in `range` has a sequence number above `seq`. */
  private rangeChangedSince(range: CheckRange, seq: number): boolean {
    const it = this.internalIterator(this.versions.current());
    try {
      if (range.lower === undefined) it.first();
      else it.seekGE(makeInternalKey(range.lower, MAX_SEQ, KIND_SEEK));
      for (; it.valid(); it.next()) {
        const k = it.key();
        if (range.upper !== undefined) {
          const c = compareUserKeyOf(k, range.upper);
          if (c > 0 || (c === 0 && range.upperExclusive)) break;
        }
        if (range.lowerExclusive && range.lower !== undefined && compareUserKeyOf(k, range.lower) === 0) continue;
        if (seqOfTrailer(trailerOf(k, k.length)) > seq) return true;
      }
      return false;
    } finally {
      it.close();
    }
  }

  private apply(group: PendingWrite[]): void {
    const mem = this.mem;
    let seq = this.lastSeq;
    for (const w of group) {
      this.counters.userBytesWritten += applyBatch(w.payload, seq + 1, mem);
      seq += w.opCount;
    }
    this.lastSeq = seq;
  }


  private groupBuffer(bytes: number): Buffer {
    if (this.groupBuf.length < bytes) {
      // Keep at most a few MiB around; one huge batch gets a one-off buffer.
      const b = Buffer.allocUnsafe(Math.max(bytes, this.groupBuf.length * 2));
      if (bytes <= 8 * 1024 * 1024) this.groupBuf = b;
      return b;
    }
    return this.groupBuf;
  }

  /** @internal */
  toError(e: unknown): LightningError {
    return e instanceof LightningError ? e : fromIoError(e, 'operation', this.dir);
  }

  // ---------------------------------------------------------------- reads

  /** The value of `key`, or undefined. */
  get(key: Bytes): Promise<Buffer | undefined> {
    let value: Buffer | undefined;
    try {
      value = this.getSync(key);
    } catch (e) {
      return pacedRejection(this.toError(e));
    }
    return pacedResult(value); // a loop of awaited gets still lets the event loop turn
  }

  /** Synchronous get: reads are positioned reads of page-cached files (see env/file-system.ts). */
  getSync(key: Bytes): Buffer | undefined {
    this.checkReadable();
    return this.getAt(toKey(key), this.lastSeq);
  }

  /** @internal Point read at a sequence number (snapshots use this). Returns a copy. */
  getAt(userKey: Buffer, seq: number): Buffer | undefined {
    // mem first (newest), then imm; no array per read on this hot path. The key is hashed once,
    // for the memtables' filters and every table's.
    const hash = bloomHash(userKey);
    let r = this.mem.get(userKey, seq, hash);
    if (!r.found && this.imm !== null) r = this.imm.get(userKey, seq, hash);
    if (r.found) return r.deleted ? undefined : copyOfRange(r.value, 0, r.value.length);
    const version = this.versions.current();
    return getFromTables(version, this.tableCache, userKey, seq, hash);
  }

  /** An iterator over a consistent view of the database as of now. */
  iterator(range?: RangeOptions): LightningIterator {
    this.checkReadable();
    return this.iteratorAt(toRange(range), this.lastSeq);
  }

  /** @internal */
  iteratorAt(range: UserRange, seq: number): LightningIterator {
    const version = this.versions.current();
    version.ref();
    let merged: InternalIterator;
    try {
      merged = this.internalIterator(version);
    } catch (e) {
      version.unref();
      throw e;
    }
    const inner = new DbIterator(new ReleasingIterator(merged, () => version.unref()), seq, range);
    const it = new LightningIterator(inner, this, Date.now());
    this.iterators.add(it);
    return it;
  }

  /**
   * Every entry (all versions) of the memtables and the tables of `version`, merged. L0 tables
   * overlap: each is its own child. Deeper levels: one lazy iterator per level.
   * Requires: the caller keeps `version` referenced while the iterator lives.
   */
  private internalIterator(version: Version): InternalIterator {
    const children: InternalIterator[] = [this.mem.iterator()];
    if (this.imm !== null) children.push(this.imm.iterator());
    try {
      for (const meta of version.files(0)) children.push(this.openTableIterator(meta));
      for (let level = 1; level < NUM_LEVELS; level++) {
        const files = version.files(level);
        if (files.length > 0) children.push(new LevelIterator(files, this.openTable));
      }
    } catch (e) {
      for (const c of children) c.close();
      throw e;
    }
    return new MergingIterator(children);
  }

  /** Opens a table's iterator holding a table-cache reference that its close() releases. */
  private readonly openTable = (meta: FileMetadata): InternalIterator => this.openTableIterator(meta);

  private openTableIterator(meta: FileMetadata): InternalIterator {
    const reader = this.tableCache.acquire(meta);
    try {
      return new ReleasingIterator(reader.iterator(), () => this.tableCache.release(reader));
    } catch (e) {
      this.tableCache.release(reader);
      throw e;
    }
  }

  /** A point-in-time view that later writes do not change. Release it when done. */
  snapshot(): Snapshot {
    this.checkReadable();
    const s = new Snapshot(this, this.lastSeq, Date.now());
    this.snapshots.add(s);
    return s;
  }

  /**
   * Runs `fn` in a transaction and commits it; re-runs it after CONFLICT or DEADLOCK (up to
   * `retries`). Resolves with `fn`'s result. See docs/transactions.md.
   */
  transaction<T>(fn: TransactionCallback<T>, options?: RunTransactionOptions): Promise<T> {
    return runTransaction(this.txns, fn, options);
  }

  /** Begins a transaction; finish it with `commit()` or `rollback()`. See docs/transactions.md. */
  beginTransaction(options?: TransactionOptions): Transaction {
    return this.txns.begin(options);
  }

  /** @internal A CommitCheck against what is applied now (read-only transactions commit with it). */
  currentCheck(): CommitCheck {
    return {
      keyChangedSince: (key, seq) => this.newestSeqOf(key) > seq,
      rangeChangedSince: (range, seq) => this.rangeChangedSince(range, seq),
    };
  }

  /** @internal IteratorOwner / SnapshotOwner */
  checkReadable(): void {
    if (this.state === 'closed') throw new LightningError('CLOSED', 'the database is closed');
  }

  /** @internal */
  releaseIterator(it: LightningIterator): void {
    this.iterators.delete(it);
    this.collectObsoleteTables();
  }

  /** @internal */
  releaseSnapshot(s: Snapshot): void {
    this.snapshots.delete(s);
  }

  // ---------------------------------------------------------------- stats & lifecycle

  stats(): DbStats {
    const version = this.versions.current();
    const levels = [];
    for (let level = 0; level < NUM_LEVELS; level++) {
      const files = version.files(level);
      let bytes = 0;
      for (const f of files) bytes += f.sizeBytes;
      levels.push({ level, files: files.length, bytes });
    }
    const now = Date.now();
    let oldestSnapshotAgeMs = 0;
    for (const s of this.snapshots) oldestSnapshotAgeMs = Math.max(oldestSnapshotAgeMs, now - s.createdAtMs);
    let oldestIteratorAgeMs = 0;
    for (const it of this.iterators) oldestIteratorAgeMs = Math.max(oldestIteratorAgeMs, now - it.createdAtMs);
    const c = this.counters;
    return {
      state: this.state === 'open' && this.backgroundError !== null ? 'degraded' : this.state,
      readOnly: this.options.readOnly,
      backgroundError:
        this.bg.error === null ? null : { code: this.bg.error.code, message: this.bg.error.message, mode: this.bg.mode },
      sequence: this.lastSeq,
      memtable: { bytes: this.mem.approximateBytes, entries: this.mem.entryCount },
      immutableMemtables: this.imm === null ? 0 : 1,
      levels,
      writes: {
        batches: this.writeQueue.batches,
        groups: this.writeQueue.groups,
        walSyncs: c.walSyncs,
        walBackgroundSyncs: c.walBackgroundSyncs,
        walBytesWritten: c.walBytesWritten,
        userBytesWritten: c.userBytesWritten,
        queued: this.writeQueue.length,
        stalls: c.stalls,
        stallMs: c.stallMs,
        slowdowns: c.slowdowns,
      },
      flushes: {
        count: c.flushes,
        bytesWritten: c.flushBytesWritten,
        thread: this.threadKind(this.flushThread ?? this.sharedThread),
      },
      compactions: {
        count: c.compactions,
        trivialMoves: c.trivialMoves,
        splitCompactions: c.splitCompactions,
        bytesRead: c.compactionBytesRead,
        bytesWritten: c.compactionBytesWritten,
        entriesDropped: c.compactionEntriesDropped,
        running: this.compacting !== null,
        thread: this.threadKind(this.compactionThread ?? this.sharedThread),
        tablesDeleted: c.tablesDeleted,
        obsoleteTablesPending: this.obsoleteTables.size,
      },
      writeAmplification:
        c.userBytesWritten === 0 ? 0 : (c.walBytesWritten + c.flushBytesWritten + c.compactionBytesWritten) / c.userBytesWritten,
      recovery: { walRecordsReplayed: c.walRecordsReplayed, walBytesSkipped: c.walBytesSkipped, orphansRemoved: c.orphansRemoved },
      backgroundErrors: c.backgroundErrors,
      backgroundRetries: this.bg.retries,
      openIterators: this.iterators.size,
      oldestIteratorAgeMs,
      openSnapshots: this.snapshots.size,
      oldestSnapshotAgeMs,
      activeTransactions: this.txns.activeCount,
      oldestTransactionAgeMs: this.txns.oldestAgeMs(now),
      tableCache: { open: this.tableCache.openCount, opens: this.tableCache.opens },
      blockCache: this.blockCache === null ? null : this.blockCache.stats(),
    };
  }

  /** Flushes the memtable, waits for background work, and releases the lock. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise === null) this.closePromise = this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.state = 'closing';
    this.txns.close();
    let firstError: LightningError | null = null;
    try {
      await this.writeQueue.idle();
      // Wait for a rotation too, and look again after each wait: a compactRange() that began
      // before close() may rotate the memtable while we wait here (its flushNow), and the flush of
      // that rotation starts only once the new WAL exists. Passing it by would close the flush
      // worker under that flush, whose promise then never settles (close() returns, compactRange
      // hangs with nothing left to keep the process alive).
      for (;;) {
        const busy = this.rotating ?? this.flushing ?? this.compacting;
        if (busy === null) break;
        // A failed rotation is its caller's error (a write, compactRange); close() goes on.
        await busy.catch(() => undefined);
      }
      this.bg.cancel();
      while (this.recovering !== null) await this.recovering;
      if (!this.options.readOnly && this.backgroundError === null && this.mem.entryCount > 0) {
        await this.flushOnClose();
      }
    } catch (e) {
      firstError = this.toError(e);
    }
    this.state = 'closed';
    for (const it of [...this.iterators]) it.close();
    this.snapshots.clear();
    await this.wal?.settled();
    try {
      this.wal?.trimTail(); // tidy: a clean close leaves no preallocated zeros
    } catch {
      // The zeros stay: the next open reads them as the end of the log.
    }
    this.wal?.close();
    this.tableCache.closeAll();
    await this.compactionThread?.close();
    await this.flushThread?.close();
    await this.sharedThread?.close();
    await this.asideThread?.close();
    // Nothing reads the block cache or the memtables' buffers now (readers, iterators and workers
    // are closed; the active memtable's entries are flushed or in the WAL): they go to the next
    // database opened in this thread (WeakSpares). An unflushed `imm` (a failed flush) is left.
    this.blockCache?.release();
    if (this.spareMemTable !== null) offerMemTableStorage(this.spareMemTable);
    this.spareMemTable = null;
    this.mem.retire(offerMemTableStorage);
    await this.deleter.idle();
    await this.versions.close();
    this.releaseLock();
    if (firstError !== null) throw firstError;
  }

  /** Makes the memtable an SSTable so the next open replays no WAL. */
  private async flushOnClose(): Promise<void> {
    await this.flushNow();
    while (this.compacting !== null) await this.compacting;
  }
}

function inCheckRange(key: Buffer, r: CheckRange): boolean {
  if (r.lower !== undefined) {
    const c = Buffer.compare(key, r.lower);
    if (c < 0 || (c === 0 && r.lowerExclusive)) return false;
  }
  if (r.upper !== undefined) {
    const c = Buffer.compare(key, r.upper);
    if (c > 0 || (c === 0 && r.upperExclusive)) return false;
  }
  return true;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Block-cache slot size for tables with this block size: a block is cut once it reaches the
 * target, so it overshoots by at most one entry; blocks with a bigger last entry get a buffer of
 * their own.
 */
function cacheSlotBytes(blockSizeBytes: number): number {
  const bytes = blockSizeBytes + Math.max(blockSizeBytes >>> 4, 128);
  return Math.ceil(bytes / 64) * 64;
}

/** Creates, headers and makes durable (file and directory entry) a new WAL. */
export async function createWal(fs: FileSystem, dir: string, walNumber: number): Promise<RecordWriter> {
  const path = joinPath(dir, logFileName(walNumber));
  const file = createNewFile(fs, path);
  try {
    const wal = RecordWriter.create(file, walNumber, 'wal');
    await wal.sync();
    await fs.syncDir(dir).catch((e: unknown) => {
      throw fromIoError(e, 'fsync directory', dir);
    });
    return wal;
  } catch (e) {
    file.close();
    // A half-created log holds no write, but left behind it would look like a torn older WAL.
    removeQuietly(fs, path);
    throw fromIoError(e, 'create', path);
  }
}
