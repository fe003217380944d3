/**
 * Lightning DB: an embedded, crash-safe key-value database for Node.js (LSM tree, pure TypeScript).
 *
 * ```ts
 * import { open } from 'lightning-db';
 * const db = await open('./data');
 * await db.put('hello', 'world');
 * (await db.get('hello'))?.toString(); // 'world'
 * await db.close();
 * ```
 */
export { open } from './db/open.js';
export type { Database } from './db/db.js';
export type { OpenOptions, WriteOptions } from './db/options.js';
export { KEY_BYTES_MAX, VALUE_BYTES_MAX, BATCH_OPS_MAX } from './db/options.js';
export type { Bytes, BatchOperation, RangeOptions } from './db/keys.js';
export type { LightningIterator, Entry } from './db/user-iterator.js';
export type { Snapshot } from './db/snapshot.js';
export type { Transaction, TransactionState } from './txn/transaction.js';
export type { TransactionIterator } from './txn/transaction-iterator.js';
export type { TransactionCallback } from './txn/run-transaction.js';
export type {
  TransactionOptions,
  RunTransactionOptions,
  IsolationLevel,
  ConcurrencyMode,
} from './txn/transaction-options.js';
export type { DbStats, LevelStats } from './db/stats.js';
export { LightningError, isLightningError } from './base/errors.js';
export type { ErrorCode } from './base/errors.js';
export type { FileSystem, FileHandle, OpenMode, FileStat, FsStats } from './env/file-system.js';
/** Filesystems: the real one, and a strict in-memory one (crash simulation) for applications' tests. */
export { NodeFs } from './env/node-fs.js';
export { MemFs } from './env/mem-fs.js';
export type { MemFsOptions, CrashOptions } from './env/mem-fs.js';
