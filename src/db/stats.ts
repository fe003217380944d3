/** Shape of `db.stats()`. Field names are stable: the admin server and metrics read them. */
export interface LevelStats {
  level: number;
  files: number;
  bytes: number;
}

export interface DbStats {
  /** 'degraded': open, but writes fail with `backgroundError` until reopen. */
  state: 'open' | 'closing' | 'closed' | 'degraded';
  readOnly: boolean;
  /** mode 'retrying': resumes by itself (e.g. once disk space returns); 'failed': reopen needed. */
  backgroundError: { code: string; message: string; mode: 'healthy' | 'retrying' | 'failed' } | null;
  /** Last sequence number applied. */
  sequence: number;
  memtable: { bytes: number; entries: number };
  immutableMemtables: number;
  levels: LevelStats[];
  writes: {
    batches: number;
    /** WAL writes: batches / groups is the group-commit factor. */
    groups: number;
    /** fdatasyncs of durable write groups. */
    walSyncs: number;
    /** fdatasyncs started in the background after 1 MiB of non-durable WAL (nobody waits for them). */
    walBackgroundSyncs: number;
    walBytesWritten: number;
    userBytesWritten: number;
    queued: number;
    /** Times a write group waited for a flush or compaction, and the total wait. */
    stalls: number;
    stallMs: number;
    /** Times a write group was delayed 1 ms because L0 reached l0SlowdownTrigger. */
    slowdowns: number;
  };
  /** `thread`: where flushed tables are built ('worker' with node:fs, else or after a worker failure 'main'). */
  flushes: { count: number; bytesWritten: number; thread: 'worker' | 'main' };
  compactions: {
    count: number;
    trivialMoves: number;
    /** Merges split in two by key and run in parallel (option subcompactionMinSize). */
    splitCompactions: number;
    bytesRead: number;
    bytesWritten: number;
    entriesDropped: number;
    running: boolean;
    /**
     * Where merges run: 'worker' (a worker thread), or 'main' (option compactionThread 'main', a
     * non-node:fs filesystem, or after the worker failed and the DB fell back to the main thread).
     */
    thread: 'worker' | 'main';
    tablesDeleted: number;
    obsoleteTablesPending: number;
  };
  /** (WAL + flush + compaction bytes written) / user bytes written. */
  writeAmplification: number;
  recovery: { walRecordsReplayed: number; walBytesSkipped: number; orphansRemoved: number };
  backgroundErrors: number;
  /** Automatic retries of failed background work. */
  backgroundRetries: number;
  openIterators: number;
  oldestIteratorAgeMs: number;
  openSnapshots: number;
  oldestSnapshotAgeMs: number;
  /** Transactions begun and not yet committed or rolled back, and the age of the oldest. */
  activeTransactions: number;
  oldestTransactionAgeMs: number;
  tableCache: { open: number; opens: number };
  blockCache: { hits: number; misses: number; usedBytes: number; capacityBytes: number; entries: number } | null;
}
