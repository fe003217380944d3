/**
 * The CPU- and I/O-heavy half of a flush: write a memtable's entries (shared in place, in order,
 * see SkipList.sortedEntries) as one new L0 table, fsync it and its directory entry. Like
 * mergeTables, it needs only a filesystem and plain data, so the same code runs in the background
 * worker (compaction-worker.ts, for node:fs) or on the main thread in slices (other filesystems,
 * or after the worker failed). Recording the table in the MANIFEST stays with flush.ts.
 *
 * On failure the table is closed and unlinked (a failed unlink leaves an orphan the next open
 * removes) and the error is rethrown as a LightningError.
 */
import { fromIoError } from '../base/errors.js';
import { parseFileName, tableFileName } from '../base/file-names.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { NIL, firstSorted, nextSorted, sortedKeyLength, sortedKeyOffset, sortedValueLength, type SortedEntries } from '../memtable/skiplist.js';
import { TableBuilder, type TableCompression } from '../sstable/table-builder.js';
import { assert } from '../util/assert.js';
import { metadataOfBuiltTable, type FileMetadata } from '../version/file-metadata.js';
import { createNewFile } from '../env/open-file.js';
import { Slices, yieldToEventLoop } from '../util/yield.js';

/** Everything a flush needs; plain data (structured-clonable). */
export interface FlushSpec {
  dir: string;
  fileNumber: number;
  blockSizeBytes: number;
  bloomBitsPerKey: number;
  /** The DB's table compression: L0 tables are compressed like the levels below (see below). */
  compression: TableCompression;
  sorted: SortedEntries;
}

/**
 * Writes the table and returns its metadata. `yieldEvery` > 0 yields to the event loop after
 * that many entries or SLICE_BYTES_MAX bytes (`Slices`; the main-thread path); 0 never yields
 * (the worker).
 */
export async function buildFlushTable(fs: FileSystem, spec: FlushSpec, yieldEvery: number): Promise<FileMetadata> {
  const sorted = spec.sorted;
  const count = sorted.count;
  assert(Number.isInteger(count) && count > 0, 'flush of an empty memtable');
  const data = Buffer.from(sorted.bytes.buffer, sorted.bytes.byteOffset, sorted.bytes.byteLength);
  const path = joinPath(spec.dir, tableFileName(spec.fileNumber));
  const file = createNewFile(fs, path);
  let builder: TableBuilder | null = null;
  let built = false;
  try {
    builder = new TableBuilder(file, {
      blockSizeBytes: spec.blockSizeBytes,
      bloomBitsPerKey: spec.bloomBitsPerKey,
      // Compressed like every other level: a table that does not overlap L1 then moves down
      // without a rewrite (sequential writes are never rewritten just to compress them), and the
      // encoding cost lands in the flush worker, off the writers' thread.
      compression: spec.compression,
    });
    let i = 0;
    const slices = yieldEvery > 0 ? new Slices(yieldEvery) : null;
    for (let x = firstSorted(sorted); x !== NIL; x = nextSorted(sorted, x)) {
      // Each entry's value follows its key in `data` (SkipList.sortedEntries).
      const keyLength = sortedKeyLength(sorted, x);
      const valueLength = sortedValueLength(sorted, x);
      builder.addAdjacent(data, sortedKeyOffset(sorted, x), keyLength, valueLength);
      i++;
      if (slices !== null && slices.step(keyLength + valueLength)) await yieldToEventLoop();
    }
    assert(i === count, 'skiplist count disagrees with its level-0 chain');
    const info = builder.finish();
    built = true;
    assert(info.entryCount === count, 'flush lost entries');
    await file.sync();
    file.close();
    await fs.syncDir(spec.dir);
    return metadataOfBuiltTable(spec.fileNumber, info);
  } catch (e) {
    if (!built) builder?.abandon(); // its buffers go back to the thread's spares
    file.close();
    removeQuietly(fs, path);
    throw fromIoError(e, 'flush', path);
  }
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

/**
 * Removes the tables numbered [first, first + count) that exist in `dir`, quietly: what a job
 * whose worker died (and so could not clean up after itself) wrote of its reserved outputs.
 * Numbers reserved for a job are never used by anything else, so whatever is in the range is its.
 * One listing, not one unlink per number: a retried merge reserves one number per entry.
 */
export function removeTablesInRange(fs: FileSystem, dir: string, first: number, count: number): void {
  let names: string[];
  try {
    names = fs.readdir(dir);
  } catch {
    return; // the next open removes what is left
  }
  for (const name of names) {
    const parsed = parseFileName(name);
    if (parsed?.kind === 'sst' && parsed.number >= first && parsed.number < first + count) removeQuietly(fs, joinPath(dir, name));
  }
}
