/**
 * Opening a database: lock, load the MANIFEST, replay WALs, make the replayed writes durable as an
 * L0 table, start a fresh WAL, and remove files a crash left behind. After open the state is a
 * prefix of the acknowledged write order: WAL records are replayed in order and replay stops at the
 * first torn record.
 */
import { LightningError, fromIoError } from '../base/errors.js';
import { CURRENT_FILE, LOCK_FILE, logFileName, parseFileName, tableFileName } from '../base/file-names.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { NodeFs } from '../env/node-fs.js';
import { MemTable, takeOfferedMemTableStorage } from '../memtable/memtable.js';
import { RecordReader } from '../wal/record-reader.js';
import { VersionSet } from '../version/version-set.js';
import { VersionEdit } from '../version/version-edit.js';
import { createWal, Database, type RecoveredState } from './db.js';
import { decodeBatch } from './write-batch.js';
import { deleteObsoleteWals, flushMemTable, removeQuietly } from './flush.js';
import { resolveOptions, type OpenOptions, type ResolvedOptions } from './options.js';
import { openFile } from '../env/open-file.js';

/** Opens (or creates) the database in directory `dir`. */
export async function open(dir: string, options?: OpenOptions): Promise<Database> {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new LightningError('INVALID_ARGUMENT', 'dir must be a non-empty string');
  }
  const opts = resolveOptions(options);
  const fs = options?.fs ?? new NodeFs();
  prepareDirectory(fs, dir, opts);
  const releaseLock = takeLock(fs, dir);
  let versions: VersionSet | undefined;
  try {
    versions = await loadVersions(fs, dir, opts);
    return await recover(fs, dir, opts, versions, releaseLock);
  } catch (e) {
    await versions?.close().catch(() => undefined); // the open error is the one to report
    releaseLock();
    throw e instanceof LightningError ? e : fromIoError(e, 'open', dir);
  }
}

function prepareDirectory(fs: FileSystem, dir: string, opts: ResolvedOptions): void {
  if (fs.exists(dir)) return;
  if (!opts.createIfMissing || opts.readOnly) {
    throw new LightningError('NOT_FOUND', `no database at ${dir} (createIfMissing is false)`);
  }
  try {
    fs.mkdir(dir);
  } catch (e) {
    throw fromIoError(e, 'mkdir', dir);
  }
}

function takeLock(fs: FileSystem, dir: string): () => void {
  const path = joinPath(dir, LOCK_FILE);
  try {
    return fs.lock(path);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ELOCKED') {
      throw new LightningError('LOCKED', `${dir} is open in another process or another open() of this process`);
    }
    throw fromIoError(e, 'lock', path);
  }
}

async function loadVersions(fs: FileSystem, dir: string, opts: ResolvedOptions): Promise<VersionSet> {
  if (fs.exists(joinPath(dir, CURRENT_FILE))) {
    if (opts.errorIfExists) throw new LightningError('ALREADY_EXISTS', `a database exists at ${dir} (errorIfExists)`);
    return VersionSet.recover(fs, dir, { readOnly: opts.readOnly, checkFiles: true });
  }
  if (!opts.createIfMissing || opts.readOnly) {
    throw new LightningError('NOT_FOUND', `no database at ${dir} (createIfMissing is false)`);
  }
  removeUnfinishedCreate(fs, dir);
  return VersionSet.create(fs, dir);
}

/**
 * Without CURRENT the directory must hold no data files: tables or WALs there mean CURRENT was
 * lost, and creating a new database would orphan (and then delete) them. A lone MANIFEST is what a
 * crash during creation leaves (CURRENT is written last); it holds no data and is removed.
 */
function removeUnfinishedCreate(fs: FileSystem, dir: string): void {
  const manifests: string[] = [];
  for (const name of listDir(fs, dir)) {
    const p = parseFileName(name);
    if (p?.kind === 'sst' || p?.kind === 'log') {
      throw new LightningError(
        'CORRUPTION',
        `${dir} holds database files (${name}) but no CURRENT file; refusing to create a new database over them`,
      );
    }
    if (p?.kind === 'manifest' || p?.kind === 'temp') manifests.push(name);
  }
  for (const name of manifests) {
    try {
      fs.unlink(joinPath(dir, name));
    } catch (e) {
      throw fromIoError(e, 'unlink', joinPath(dir, name));
    }
  }
}

interface Replayed {
  mem: MemTable;
  /** Highest sequence seen in the MANIFEST or any replayed record. */
  lastSeq: number;
  /** Last sequence of the previous replayed record: records must follow each other. */
  prevRecordSeq: number;
  /** Path of a log that ended in a torn record, if any so far. */
  tornIn: string | null;
  records: number;
  skippedBytes: number;
}

async function recover(
  fs: FileSystem,
  dir: string,
  opts: ResolvedOptions,
  versions: VersionSet,
  releaseLock: () => void,
): Promise<Database> {
  const names = listDir(fs, dir);
  const wals: number[] = [];
  for (const name of names) {
    const p = parseFileName(name);
    if (p === undefined) continue;
    // A crash can leave files numbered past the MANIFEST's counter (a WAL created before any edit).
    while (versions.peekNextFileNumber() <= p.number) versions.newFileNumber();
    if (p.kind === 'log' && p.number >= versions.logNumber()) wals.push(p.number);
  }
  wals.sort((a, b) => a - b);
  const replayed = replayWals(fs, dir, wals, versions.lastSequence(), opts);
  let mem = replayed.mem;
  let wal = null;
  let orphansRemoved = 0;
  if (!opts.readOnly) {
    const walNumber = versions.newFileNumber();
    wal = await createWal(fs, dir, walNumber);
    try {
      if (mem.entryCount > 0) {
        await flushMemTable(fs, dir, versions, mem, walNumber, replayed.lastSeq, opts);
        mem = new MemTable(opts.seed, opts.memtableSizeBytes, mem.retireNow());
      } else {
        const edit = new VersionEdit();
        edit.logNumber = walNumber;
        edit.lastSequence = replayed.lastSeq;
        await versions.logAndApply(edit);
      }
    } catch (e) {
      wal.close(); // the open fails; the replayed WALs stay for the next attempt
      throw e;
    }
    deleteObsoleteWals(fs, dir, walNumber);
    orphansRemoved = removeOrphans(fs, dir, versions);
  }
  const state: RecoveredState = {
    fs,
    dir,
    options: opts,
    versions,
    mem,
    wal,
    lastSeq: replayed.lastSeq,
    releaseLock,
    recovery: { walRecordsReplayed: replayed.records, walBytesSkipped: replayed.skippedBytes, orphansRemoved },
  };
  const db = new Database(state);
  // A backlog left by the last run (L0 at its trigger, an oversized level) is worked off in the
  // background now, not at the first write: a read-mostly reopen would otherwise keep probing
  // every L0 table forever.
  db.startBackgroundWork();
  return db;
}

function listDir(fs: FileSystem, dir: string): string[] {
  try {
    return fs.readdir(dir);
  } catch (e) {
    throw fromIoError(e, 'readdir', dir);
  }
}

/** Replays WALs in order into a new memtable. */
function replayWals(
  fs: FileSystem,
  dir: string,
  wals: number[],
  lastSequence: number,
  opts: ResolvedOptions,
): Replayed {
  // A database closed earlier in this thread may have left its memtable buffers (WeakSpares).
  const mem = new MemTable(opts.seed, opts.memtableSizeBytes, takeOfferedMemTableStorage());
  const out: Replayed = { mem, lastSeq: lastSequence, prevRecordSeq: 0, records: 0, skippedBytes: 0, tornIn: null };
  for (const n of wals) replayOneWal(fs, joinPath(dir, logFileName(n)), opts, out);
  return out;
}

/**
 * Replays one log. A torn tail is fine in the newest log with records; a record in a later log
 * after a torn one would mean an acknowledged write was lost before it (rotation fsyncs a log
 * before the next one is written), which breaks the prefix property: CORRUPTION unless
 * 'skip-corrupt'. (A later log with no records is normal: recovery creates one before the
 * replayed data is committed, and a crash can intervene.)
 */
function replayOneWal(fs: FileSystem, path: string, opts: ResolvedOptions, out: Replayed): void {
  const file = openFile(fs, path, 'r', 'open');
  try {
    const reader = new RecordReader(file, path, { kind: 'wal', skipCorrupt: opts.walRecovery === 'skip-corrupt' });
    let recordsHere = 0;
    for (let payload = reader.next(); payload !== undefined; payload = reader.next()) {
      recordsHere++;
      if (out.tornIn !== null && opts.walRecovery === 'strict') {
        throw new LightningError(
          'CORRUPTION',
          `${out.tornIn} ends in a torn record but ${path} holds later writes; open with walRecovery: 'skip-corrupt' to accept the loss`,
        );
      }
      const batch = decodeBatch(payload, path, reader.lastRecordOffset);
      let seq = batch.firstSeq;
      // The MANIFEST's lastSequence may already cover records of a live WAL (a flush records the
      // sequence at its end), so records are only checked against each other.
      if (seq <= out.prevRecordSeq) {
        throw new LightningError('CORRUPTION', `${path}: batch sequence ${seq} is not after ${out.prevRecordSeq}`);
      }
      for (const op of batch.ops) out.mem.add(seq++, op.kind, op.key, op.value);
      out.prevRecordSeq = seq - 1;
      out.lastSeq = Math.max(out.lastSeq, seq - 1);
      out.records++;
    }
    out.skippedBytes += reader.skippedBytes;
    // A log torn in its header lost no write (a crash while creating it). One torn after a valid
    // header may have: in a version 2 WAL a bad first record is a torn tail even when records
    // follow it (no sync mark proves it durable), so it counts although it returned no record.
    const torn = reader.tornTailOffset;
    if (torn !== undefined && (recordsHere > 0 || torn > 0)) out.tornIn = path;
  } finally {
    file.close();
  }
}

/** Removes temp files and tables no version references (left by a crash mid-flush). */
function removeOrphans(fs: FileSystem, dir: string, versions: VersionSet): number {
  const live = versions.liveFileNumbers();
  let removed = 0;
  for (const name of listDir(fs, dir)) {
    const p = parseFileName(name);
    if (p === undefined) continue;
    const orphan = p.kind === 'temp' || (p.kind === 'sst' && !live.has(p.number));
    if (orphan && removeQuietly(fs, joinPath(dir, p.kind === 'sst' ? tableFileName(p.number) : name))) removed++;
  }
  return removed;
}
