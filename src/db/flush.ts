/**
 * Flush: writes an immutable memtable to a new L0 SSTable and records it in the MANIFEST.
 *
 * Order (each step durable before the next, so a crash anywhere leaves either no trace the next open
 * can see, or the complete table):
 *   1. write 000NNN.sst with TableBuilder, yielding to the event loop every few thousand entries;
 *   2. fsync the table, fsync the directory (its entry must survive too);
 *   3. VersionSet.logAndApply({ +L0 file, logNumber }) — the commit point;
 *   4. delete WALs older than logNumber (their contents are now in the table).
 * A crash before 3 leaves an orphan .sst that the next open deletes and a WAL it replays.
 */
import { LightningError, fromIoError } from '../base/errors.js';
import { logFileName, parseFileName, tableFileName } from '../base/file-names.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import type { MemTable } from '../memtable/memtable.js';
import { TableBuilder } from '../sstable/table-builder.js';
import type { VersionSet } from '../version/version-set.js';
import { VersionEdit } from '../version/version-edit.js';
import { metadataOfBuiltTable } from '../version/file-metadata.js';
import type { ResolvedOptions } from './options.js';

/** Entries written between yields to the event loop. */
const FLUSH_YIELD_ENTRIES = 1024;

export interface FlushResult {
  fileNumber: number;
  bytesWritten: number;
  walsDeleted: number;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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

/** Writes `mem` as table `fileNumber`; returns its metadata inputs. Unlinks the file on failure. */
export async function flushMemTable(
  fs: FileSystem,
  dir: string,
  versions: VersionSet,
  mem: MemTable,
  logNumber: number,
  lastSeq: number,
  options: ResolvedOptions,
): Promise<FlushResult> {
  assert(mem.entryCount > 0, 'flush of an empty memtable');
  if (!(await hasFreeSpace(fs, dir, mem.approximateBytes))) {
    throw new LightningError('DISK_FULL', `not enough free space in ${dir} to flush ${mem.approximateBytes} bytes`);
  }
  const fileNumber = versions.newFileNumber();
  const path = joinPath(dir, tableFileName(fileNumber));
  let file;
  try {
    file = fs.open(path, 'create-excl');
  } catch (e) {
    throw fromIoError(e, 'create', path);
  }
  let info;
  try {
    const builder = new TableBuilder(file, {
      blockSizeBytes: options.blockSizeBytes,
      bloomBitsPerKey: options.bloomBitsPerKey,
      // L0 tables stay uncompressed: a flush runs on the main thread, where compressing (~18 µs per
      // 4 KiB block) would slow every writer. The compaction worker compresses them on the way to
      // L1 (runCompaction never moves an L0 table down as it is when compression is on).
      compression: 'none',
    });
    const it = mem.iterator();
    let n = 0;
    for (it.first(); it.valid(); it.next()) {
      builder.add(it.key(), it.value());
      if (++n % FLUSH_YIELD_ENTRIES === 0) await yieldToEventLoop();
    }
    info = builder.finish();
    assert(info.entryCount === mem.entryCount, 'flush lost entries');
    await file.sync();
    file.close();
    await fs.syncDir(dir);
  } catch (e) {
    file.close();
    removeQuietly(fs, path);
    throw fromIoError(e, 'flush', path);
  }
  const edit = new VersionEdit();
  edit.addFile(0, metadataOfBuiltTable(fileNumber, info));
  edit.logNumber = logNumber;
  edit.lastSequence = lastSeq;
  await versions.logAndApply(edit);
  const walsDeleted = deleteObsoleteWals(fs, dir, logNumber);
  return { fileNumber, bytesWritten: info.fileSizeBytes, walsDeleted };
}

/** Deletes WAL files numbered below `logNumber`. Failures are left for the next open's cleanup. */
export function deleteObsoleteWals(fs: FileSystem, dir: string, logNumber: number): number {
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
      if (removeQuietly(fs, joinPath(dir, logFileName(p.number)))) deleted++;
    }
  }
  return deleted;
}

/** Best-effort unlink of a file that is garbage either way; true if it is gone. */
export function removeQuietly(fs: FileSystem, path: string): boolean {
  try {
    fs.unlink(path);
    return true;
  } catch {
    return false; // an orphan left behind is removed by the next open
  }
}
