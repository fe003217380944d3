/**
 * Flush: writes an immutable memtable to a new L0 SSTable and records it in the MANIFEST.
 *
 * Order (each step durable before the next, so a crash anywhere leaves either no trace the next open
 * can see, or the complete table):
 *   1. write 000NNN.sst (flush-table.ts: in the background worker with node:fs, else here,
 *      yielding to the event loop every thousand entries);
 *   2. fsync the table, fsync the directory (its entry must survive too);
 *   3. VersionSet.logAndApply({ +L0 file, logNumber }) — the commit point;
 *   4. delete WALs older than logNumber (their contents are now in the table).
 * A crash before 3 leaves an orphan .sst that the next open deletes and a WAL it replays.
 */
import { LightningError, fromIoError } from '../base/errors.js';
import { logFileName, parseFileName } from '../base/file-names.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import type { MemTable } from '../memtable/memtable.js';
import type { VersionSet } from '../version/version-set.js';
import { VersionEdit } from '../version/version-edit.js';
import type { FileMetadata } from '../version/file-metadata.js';
import type { ResolvedOptions } from './options.js';
import { buildFlushTable, removeQuietly, type FlushSpec } from './flush-table.js';

export { removeQuietly };

/** Entries written between yields to the event loop. */
const FLUSH_YIELD_ENTRIES = 1024;

export interface FlushResult {
  fileNumber: number;
  bytesWritten: number;
  walsDeleted: number;
}

/**
 * True if the filesystem of `dir` has at least `bytes` available. Checked before flush and
 * compaction so that a nearly full disk fails fast with DISK_FULL instead of half-writing a table.
 */
export async function hasFreeSpace(fs: FileSystem, dir: string, bytes: number): Promise<boolean> {
  let st;
  try {
    st = await fs.statfs(dir);
  } catch (e) {
    throw fromIoError(e, 'statfs', dir);
  }
  return st.availableBytes >= bytes;
}

/** Builds the table of a FlushSpec: in the background worker, or on this thread in slices. */
export type FlushBuilder = (spec: FlushSpec) => Promise<FileMetadata>;

/** The main-thread builder: yields to the event loop every FLUSH_YIELD_ENTRIES entries. */
export function flushOnThisThread(fs: FileSystem): FlushBuilder {
  return (spec) => buildFlushTable(fs, spec, FLUSH_YIELD_ENTRIES);
}

/** How a flush runs; every field has a main-thread default. */
export interface FlushHow {
  /** Builds the table (default: here, in slices). */
  build?: FlushBuilder;
  /** Removes an obsolete WAL (default: removeQuietly, synchronously). */
  remove?: (path: string) => void;
}

/**
 * Writes `mem` as a new L0 table (through `how.build`), records it in the MANIFEST with
 * `logNumber`, and deletes the WALs it makes obsolete.
 */
export async function flushMemTable(
  fs: FileSystem,
  dir: string,
  versions: VersionSet,
  mem: MemTable,
  logNumber: number,
  lastSeq: number,
  options: ResolvedOptions,
  how: FlushHow = {},
): Promise<FlushResult> {
  const build = how.build ?? flushOnThisThread(fs);
  assert(mem.entryCount > 0, 'flush of an empty memtable');
  if (!(await hasFreeSpace(fs, dir, mem.approximateBytes))) {
    throw new LightningError('DISK_FULL', `not enough free space in ${dir} to flush ${mem.approximateBytes} bytes`);
  }
  const fileNumber = versions.newFileNumber();
  // The builder reads the memtable's buffers in place (the memtable takes no more writes).
  const meta = await build({
    dir,
    fileNumber,
    blockSizeBytes: options.blockSizeBytes,
    bloomBitsPerKey: options.bloomBitsPerKey,
    compression: options.compression,
    sorted: mem.sortedEntries(),
  });
  assert(meta.number === fileNumber, 'flush built a different table');
  const edit = new VersionEdit();
  edit.addFile(0, meta);
  edit.logNumber = logNumber;
  edit.lastSequence = lastSeq;
  await versions.logAndApply(edit);
  const walsDeleted = deleteObsoleteWals(fs, dir, logNumber, how.remove);
  return { fileNumber, bytesWritten: meta.sizeBytes, walsDeleted };
}

/**
 * Deletes WAL files numbered below `logNumber` (through `remove`, default a synchronous
 * removeQuietly); returns how many it started deleting. Failures are left for the next open's
 * cleanup.
 */
export function deleteObsoleteWals(
  fs: FileSystem,
  dir: string,
  logNumber: number,
  remove: (path: string) => void = (path) => void removeQuietly(fs, path),
): number {
  let deleted = 0;
  let names: string[];
  try {
    names = fs.readdir(dir);
  } catch {
    return 0; // cleanup only: the next open retries
  }
  for (const name of names) {
    const p = parseFileName(name);
    if (p?.kind === 'log' && p.number < logNumber) {
      remove(joinPath(dir, logFileName(p.number)));
      deleted++;
    }
  }
  return deleted;
}
