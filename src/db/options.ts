/**
 * Open options: defaults, limits and validation. Every option here is read by the engine; an unknown
 * name or an out-of-range value is rejected at `open` with INVALID_ARGUMENT (never ignored).
 */
import { LightningError, invalidArgument } from '../base/errors.js';
import type { FileSystem } from '../env/file-system.js';
import { NodeFs } from '../env/node-fs.js';
import { COMPACTION_DEFAULTS, type CompactionConfig } from '../compaction/config.js';
import type { TableCompression } from '../sstable/table-builder.js';

/** Options accepted by `open()`. */
export interface OpenOptions {
  /** Create the database if the directory holds none. Default true. */
  createIfMissing?: boolean;
  /** Fail with ALREADY_EXISTS if a database already exists. Default false. */
  errorIfExists?: boolean;
  /** Open without writing anything; writes fail with READ_ONLY. Default false. */
  readOnly?: boolean;
  /** Memtable size in bytes that triggers a flush to an SSTable. Default 16 MiB. */
  memtableSize?: number;
  /** Target uncompressed size of an SSTable data block in bytes. Default 2048 (point reads decode less per cache miss). */
  blockSize?: number;
  /** Bloom filter bits per key; 0 disables filters. Default 10. */
  bloomBitsPerKey?: number;
  /**
   * How new SSTable data blocks are stored: 'lz' compresses each block (a fast LZ77 codec; a block
   * is stored raw unless that saves at least 12.5%), 'none' stores them raw. Applies to tables
   * written from now on (flushes and compactions); tables of either kind are always readable.
   * Blocks are decompressed when read from disk, so the block cache holds them uncompressed.
   * Default 'lz'.
   */
  compression?: 'none' | 'lz';
  /** Default durability of writes: true = fsync before the promise resolves. Default true. */
  sync?: boolean;
  /**
   * Run a durable write's fdatasync on the event-loop thread, blocking it for the fsync's duration
   * (as better-sqlite3 does), instead of in libuv's thread pool. Saves the hand-off to a pool thread
   * and back (~30 µs here, and up to milliseconds when waking an idle vCPU in a VM): one writer
   * awaiting durable puts gets ~25% more of them per second. Everything else on the event loop
   * waits meanwhile (longer on slow disks), so leave it off in servers. Only the WAL sync of a
   * durable commit is affected. Default false.
   */
  inlineSync?: boolean;
  /** Byte budget of the block cache; 0 disables it. Default 32 MiB. */
  blockCacheSize?: number;
  /** Most SSTables kept open at once. Default 500. */
  maxOpenFiles?: number;
  /**
   * What to do with a corrupt record in the middle of a WAL at recovery: 'strict' fails the open with
   * CORRUPTION; 'skip-corrupt' skips to the next valid record (and counts what it skipped). A torn
   * tail (an unfinished last write) is always dropped silently. Default 'strict'.
   */
  walRecovery?: 'strict' | 'skip-corrupt';
  /** L0 file count that triggers a compaction into L1. Default 2. */
  l0CompactionTrigger?: number;
  /** L0 file count at which writes are slowed down. Default 8. */
  l0SlowdownTrigger?: number;
  /** L0 file count at which writes wait for compaction. Default 12. */
  l0StopTrigger?: number;
  /** Target size of L1 in bytes; each deeper level is levelMultiplier times larger. Default 64 MiB. */
  levelBaseSize?: number;
  /** Size ratio between adjacent levels. Default 10. */
  levelMultiplier?: number;
  /** Compaction output file size in bytes. Default 8 MiB. */
  targetFileSize?: number;
  /**
   * A compaction merge of at least this many input bytes is split in two by key, and the halves
   * run at the same time (the second in a worker of its own with 'worker'; interleaved on the main
   * thread with 'main'). 0 never splits. Default 0. For bulk loads of large trees: 128 MiB made a
   * 10M-key random fill ~15% faster with half the write stalls, but the second worker's heap and
   * malloc arena added ~100 MiB of peak RSS (docs/decisions/2026-11-26-subcompactions.md).
   */
  subcompactionMinSize?: number;
  /** Filesystem implementation; tests pass an in-memory, fault-injecting one. Default: node:fs. */
  fs?: FileSystem;
  /**
   * Where compaction merges run: 'worker' (a worker thread; only with the default node:fs
   * filesystem) keeps their CPU off the event loop; 'main' runs them on the main thread in slices.
   * Default 'worker' with the default NodeFs, 'main' with any other filesystem (subclasses too).
   */
  compactionThread?: 'worker' | 'main';
  /** Seed for the engine's internal randomness (skiplist heights). Default 0x5eed. */
  seed?: number;
  /** Most transactions active at once; beyond it beginTransaction throws BUSY. Default 10,000. */
  maxActiveTransactions?: number;
}

export interface ResolvedOptions {
  createIfMissing: boolean;
  errorIfExists: boolean;
  readOnly: boolean;
  memtableSizeBytes: number;
  blockSizeBytes: number;
  bloomBitsPerKey: number;
  compression: TableCompression;
  sync: boolean;
  inlineSync: boolean;
  blockCacheSizeBytes: number;
  maxOpenFiles: number;
  walRecovery: 'strict' | 'skip-corrupt';
  seed: number;
  maxActiveTransactions: number;
  compaction: CompactionConfig;
  compactionThread: 'worker' | 'main';
  subcompactionMinBytes: number;
}

/** Limits on user data (documented in README "Limits"). */
export const KEY_BYTES_MAX = 64 * 1024;
export const VALUE_BYTES_MAX = 64 * 1024 * 1024;
/** Most operations in one batch. */
export const BATCH_OPS_MAX = 1_000_000;

const MiB = 1024 * 1024;

type Range = readonly [min: number, max: number];
const NUMERIC: Record<string, Range> = {
  memtableSize: [1024, 1024 * MiB],
  blockSize: [64, 4 * MiB],
  bloomBitsPerKey: [0, 30],
  blockCacheSize: [0, 64 * 1024 * MiB],
  maxOpenFiles: [16, 1_000_000],
  seed: [0, 0xffffffff],
  l0CompactionTrigger: [1, 1000],
  l0SlowdownTrigger: [1, 1000],
  l0StopTrigger: [1, 1000],
  levelBaseSize: [1024, 1024 * 1024 * MiB],
  levelMultiplier: [2, 100],
  targetFileSize: [1024, 1024 * MiB],
  subcompactionMinSize: [0, Number.MAX_SAFE_INTEGER],
  maxActiveTransactions: [1, 1_000_000],
};
const BOOLEAN = ['createIfMissing', 'errorIfExists', 'readOnly', 'sync', 'inlineSync'];

function num(o: Record<string, unknown>, name: string, dflt: number): number {
  const v = o[name];
  if (v === undefined) return dflt;
  const r = NUMERIC[name] as Range;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < r[0] || v > r[1]) {
    throw invalidArgument(`option ${name} must be an integer in [${r[0]}, ${r[1]}], got ${String(v)}`);
  }
  return v;
}

function bool(o: Record<string, unknown>, name: string, dflt: boolean): boolean {
  const v = o[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgument(`option ${name} must be a boolean`);
  return v;
}

export function resolveOptions(options: unknown): ResolvedOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalidArgument('options must be an object');
  const o = options as Record<string, unknown>;
  const known = new Set([...Object.keys(NUMERIC), ...BOOLEAN, 'walRecovery', 'fs', 'compactionThread', 'compression']);
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw invalidArgument(`unknown option ${JSON.stringify(k)}`);
  }
  const walRecovery = o['walRecovery'] ?? 'strict';
  if (walRecovery !== 'strict' && walRecovery !== 'skip-corrupt') {
    throw invalidArgument("option walRecovery must be 'strict' or 'skip-corrupt'");
  }
  const compression = o['compression'] === undefined ? 'lz' : o['compression'];
  if (compression !== 'none' && compression !== 'lz') {
    throw invalidArgument("option compression must be 'none' or 'lz'");
  }
  const fs = o['fs'];
  if (fs !== undefined && !isFileSystem(fs)) {
    throw invalidArgument(`option fs must implement the FileSystem interface (methods ${FILE_SYSTEM_METHODS.join(', ')})`);
  }
  // Exactly NodeFs: a subclass (instrumentation, fault injection) must see every file operation,
  // and the worker opens files with a plain NodeFs of its own.
  const nodeFs = fs === undefined || (fs as object).constructor === NodeFs;
  const compactionThread = o['compactionThread'] ?? (nodeFs ? 'worker' : 'main');
  if (compactionThread !== 'worker' && compactionThread !== 'main') {
    throw invalidArgument("option compactionThread must be 'worker' or 'main'");
  }
  if (compactionThread === 'worker' && !nodeFs) {
    throw invalidArgument("compactionThread 'worker' opens files with node:fs: it needs the default filesystem (option fs unset or a NodeFs)");
  }
  const resolved: ResolvedOptions = {
    createIfMissing: bool(o, 'createIfMissing', true),
    errorIfExists: bool(o, 'errorIfExists', false),
    readOnly: bool(o, 'readOnly', false),
    memtableSizeBytes: num(o, 'memtableSize', 16 * MiB),
    blockSizeBytes: num(o, 'blockSize', 2048),
    bloomBitsPerKey: num(o, 'bloomBitsPerKey', 10),
    compression,
    sync: bool(o, 'sync', true),
    inlineSync: bool(o, 'inlineSync', false),
    blockCacheSizeBytes: num(o, 'blockCacheSize', 32 * MiB),
    maxOpenFiles: num(o, 'maxOpenFiles', 500),
    walRecovery,
    seed: num(o, 'seed', 0x5eed),
    maxActiveTransactions: num(o, 'maxActiveTransactions', 10_000),
    compaction: {
      l0CompactionTrigger: num(o, 'l0CompactionTrigger', COMPACTION_DEFAULTS.l0CompactionTrigger),
      l0SlowdownTrigger: num(o, 'l0SlowdownTrigger', COMPACTION_DEFAULTS.l0SlowdownTrigger),
      l0StopTrigger: num(o, 'l0StopTrigger', COMPACTION_DEFAULTS.l0StopTrigger),
      levelBaseBytes: num(o, 'levelBaseSize', COMPACTION_DEFAULTS.levelBaseBytes),
      levelMultiplier: num(o, 'levelMultiplier', COMPACTION_DEFAULTS.levelMultiplier),
      targetFileBytes: num(o, 'targetFileSize', COMPACTION_DEFAULTS.targetFileBytes),
    },
    subcompactionMinBytes: num(o, 'subcompactionMinSize', 0),
    compactionThread,
  };
  const c = resolved.compaction;
  if (!(c.l0CompactionTrigger <= c.l0SlowdownTrigger && c.l0SlowdownTrigger <= c.l0StopTrigger)) {
    throw invalidArgument('l0CompactionTrigger <= l0SlowdownTrigger <= l0StopTrigger must hold');
  }
  if (resolved.readOnly && resolved.errorIfExists) {
    throw new LightningError('INVALID_ARGUMENT', 'readOnly and errorIfExists cannot both be set');
  }
  return resolved;
}

/** Per-write options. */
export interface WriteOptions {
  /** fsync before resolving (survives power loss). Default: the DB's `sync` option. */
  sync?: boolean;
}

export function resolveSync(opts: unknown, dflt: boolean): boolean {
  if (opts === undefined || opts === null) return dflt;
  if (typeof opts !== 'object') throw invalidArgument('write options must be an object');
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'sync') throw invalidArgument(`unknown write option ${JSON.stringify(k)}`);
  }
  const s = o['sync'];
  if (s === undefined) return dflt;
  if (typeof s !== 'boolean') throw invalidArgument('write option sync must be a boolean');
  return s;
}

/** The methods a FileSystem (src/env/file-system.ts) has. */
const FILE_SYSTEM_METHODS = ['open', 'rename', 'unlink', 'remove', 'mkdir', 'readdir', 'stat', 'exists', 'syncDir', 'statfs', 'lock'] as const satisfies readonly (keyof FileSystem)[];
/** Compile-time check that the list names every FileSystem method (a new one must be added). */
const FILE_SYSTEM_METHODS_COMPLETE: Exclude<keyof FileSystem, (typeof FILE_SYSTEM_METHODS)[number]> extends never ? true : never = true;
void FILE_SYSTEM_METHODS_COMPLETE;

function isFileSystem(fs: unknown): boolean {
  if (typeof fs !== 'object' || fs === null) return false;
  const o = fs as Record<string, unknown>;
  return FILE_SYSTEM_METHODS.every((m) => typeof o[m] === 'function');
}
