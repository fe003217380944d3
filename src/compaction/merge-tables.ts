/**
 * The CPU- and I/O-heavy half of a compaction: merge the input tables into new, fsynced output
 * tables, applying the drop rules. It needs no Version, VersionSet or cache — only a filesystem and
 * a `MergeSpec` of plain data — so the same code runs on the main thread (in slices, for in-memory
 * filesystems) or in the compaction worker (compaction-worker.ts, for node:fs). Installing the
 * result (the version edit) stays with the caller (compaction-job.ts).
 *
 * What may be dropped (S = `smallestSnapshot`, the oldest sequence any reader can read at):
 *   - a version of a user key when a newer version of the same key with seq <= S exists (every
 *     reader sees that newer one instead);
 *   - a tombstone with seq <= S when no level below the output holds the key (nothing left to
 *     hide) and, by the first rule, nothing older survives in this merge.
 * Outputs are cut near `targetFileBytes`, only where the user key changes, so one user key never
 * spans two files of a level (point reads binary-search a level by user key).
 *
 * On failure every output created is closed and unlinked (an unlink that fails leaves an orphan
 * the next open removes) and the error is rethrown.
 */
import { fromIoError } from '../base/errors.js';
import { tableFileName } from '../base/file-names.js';
import { KIND_DELETE, KIND_SEEK, MAX_SEQ, TRAILER_BYTES, compareBytes, compareInternalKeys, kindOfTrailer, makeInternalKey, seqOfTrailer, trailerOf } from '../base/internal-key.js';
import { joinPath, type FileHandle, type FileSystem } from '../env/file-system.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { MergingIterator } from '../iter/merging-iterator.js';
import { LevelIterator, type TableKeyRange } from '../iter/level-iterator.js';
import { asBuffer } from './worker-protocol.js';
import { ReleasingIterator } from '../iter/releasing-iterator.js';
import { TableBuilder, type TableCompression } from '../sstable/table-builder.js';
import { TableReader } from '../sstable/table-reader.js';
import { assert } from '../util/assert.js';
import { metadataOfBuiltTable, type FileMetadata } from '../version/file-metadata.js';
import { LevelRanges, type PackedLevelRanges } from '../version/level-ranges.js';
import { createNewFile } from '../env/open-file.js';
import { Slices, yieldToEventLoop } from '../util/yield.js';
import { copyBytes } from '../util/copy-bytes.js';

/** Message of the error a merge throws when it needs more output numbers than reserved. */
export const OUT_OF_OUTPUT_NUMBERS = 'compaction ran out of reserved output file numbers';

/** Everything a merge needs; plain data (structured-clonable). */
export interface MergeSpec {
  dir: string;
  /** Input tables merged each as its own child (any order: internal keys are unique). */
  inputs: { number: number; sizeBytes: number }[];
  /**
   * More inputs, in sorted runs: a run's tables are disjoint and in key order (the inputs from one
   * level >= 1), so the merge reads each run as one child that opens one table at a time. A merge
   * of 4 L0 tables into 10 L1 tables then keeps 5 children in its heap instead of 14.
   */
  sortedRuns?: RunTableSpec[][];
  /** Output tables take the numbers [firstOutputNumber, firstOutputNumber + outputNumberCount). */
  firstOutputNumber: number;
  outputNumberCount: number;
  smallestSnapshot: number;
  /** Key ranges of the levels below the output level (for the tombstone rule). */
  deeperLevels: PackedLevelRanges[];
  blockSizeBytes: number;
  bloomBitsPerKey: number;
  /** Data block compression of the outputs. */
  compression: TableCompression;
  targetFileBytes: number;
  /**
   * A subcompaction's share of the key space: user keys >= lowerBound (if set) and < upperBound
   * (if set). Bounds are user keys, so every version of a key falls in one share.
   */
  lowerBound?: Uint8Array;
  upperBound?: Uint8Array;
}

/** A table of a sorted run, with the internal-key range that places it in the run. */
export interface RunTableSpec {
  number: number;
  sizeBytes: number;
  smallest: Uint8Array;
  largest: Uint8Array;
}

export interface MergeOutcome {
  outputs: FileMetadata[];
  entriesDropped: number;
}

/** Answers "does any level below the output hold this user key's range?". */
class DeeperLevels {
  private readonly levels: LevelRanges[];

  constructor(packed: readonly PackedLevelRanges[]) {
    this.levels = packed.filter((p) => p.ends.length > 0).map((p) => new LevelRanges(p));
  }

  contains(userKey: Buffer): boolean {
    for (const l of this.levels) if (l.find(userKey) >= 0) return true;
    return false;
  }
}

/**
 * Merges `spec.inputs` into new tables in `spec.dir` and fsyncs them and the directory.
 * `yieldEveryEntries` > 0 awaits `yieldToEventLoop` after that many entries or SLICE_BYTES_MAX
 * bytes, whichever comes first (`Slices`; main-thread runs, and the worker, where a flush may be
 * waiting); 0 never yields.
 */
export async function mergeTables(
  fs: FileSystem,
  spec: MergeSpec,
  yieldEveryEntries: number,
): Promise<MergeOutcome> {
  const readers: TableReader[] = [];
  const writer = new OutputWriter(fs, spec);
  try {
    const children: InternalIterator[] = [];
    for (const input of spec.inputs) {
      const reader = openInput(fs, spec.dir, input.number, input.sizeBytes);
      readers.push(reader);
      children.push(reader.iterator(false));
    }
    for (const run of spec.sortedRuns ?? []) {
      if (run.length > 0) children.push(sortedRunIterator(fs, spec.dir, run));
    }
    const merged = new MergingIterator(children);
    let dropped: number;
    try {
      if (spec.lowerBound === undefined) merged.first();
      else merged.seekGE(makeInternalKey(spec.lowerBound, MAX_SEQ, KIND_SEEK));
      const upper = spec.upperBound === undefined ? null : asBuffer(spec.upperBound);
      dropped = await mergeInto(merged, upper, writer, spec.smallestSnapshot, new DeeperLevels(spec.deeperLevels), yieldEveryEntries);
    } finally {
      merged.close();
    }
    await writer.finishAll();
    return { outputs: writer.outputs, entriesDropped: dropped };
  } catch (e) {
    writer.abandon();
    throw e;
  } finally {
    for (const r of readers) r.close();
  }
}

/**
 * Opens an input table for scanning only (no filter, no point-lookup index) and without a block
 * cache: a merge reads each block once.
 */
function openInput(fs: FileSystem, dir: string, number: number, sizeBytes: number): TableReader {
  const path = joinPath(dir, tableFileName(number));
  let file: FileHandle;
  try {
    file = fs.open(path, 'r');
  } catch (e) {
    throw fromIoError(e, 'open', path);
  }
  try {
    return TableReader.open(file, number, sizeBytes, null, true);
  } catch (e) {
    file.close();
    throw e;
  }
}

interface RunTable extends TableKeyRange {
  number: number;
  sizeBytes: number;
}

/**
 * One child for a sorted run: its tables in order, each opened when the merge reaches it and
 * closed when the merge moves past it (or the iterator closes).
 */
function sortedRunIterator(fs: FileSystem, dir: string, run: readonly RunTableSpec[]): InternalIterator {
  const tables: RunTable[] = run.map((t) => ({ number: t.number, sizeBytes: t.sizeBytes, smallest: asBuffer(t.smallest), largest: asBuffer(t.largest) }));
  for (let i = 1; i < tables.length; i++) {
    const prev = tables[i - 1] as RunTable;
    assert(compareInternalKeys(prev.largest, (tables[i] as RunTable).smallest) < 0, `sorted run: table ${prev.number} overlaps the next`);
  }
  return new LevelIterator(tables, (t: RunTable) => {
    const reader = openInput(fs, dir, t.number, t.sizeBytes);
    return new ReleasingIterator(reader.iterator(false), () => reader.close());
  });
}

/**
 * Streams the merge, from where `it` is positioned to the end or to the first user key >= `upper`,
 * into the writer, applying the drop rules. Returns entries dropped.
 */
async function mergeInto(
  it: InternalIterator,
  upper: Buffer | null,
  out: OutputWriter,
  smallestSnapshot: number,
  deeper: DeeperLevels,
  yieldEveryEntries: number,
): Promise<number> {
  // The current user key, copied into a reusable buffer (no allocation per key).
  let current = Buffer.allocUnsafe(64);
  let currentLen = -1;
  /** Sequence of the previous (newer) version of the current user key; Infinity if none. */
  let newerSeq = Infinity;
  let dropped = 0;
  const slices = yieldEveryEntries > 0 ? new Slices(yieldEveryEntries) : null;
  for (; it.valid(); it.next()) {
    const k = it.key();
    const ulen = k.length - TRAILER_BYTES;
    if (currentLen !== ulen || compareBytes(k, 0, ulen, current, 0, ulen) !== 0) {
      if (upper !== null && compareBytes(k, 0, ulen, upper, 0, upper.length) >= 0) break;
      if (ulen > current.length) current = Buffer.allocUnsafe(Math.max(ulen, 2 * current.length));
      copyBytes(k, 0, ulen, current, 0);
      currentLen = ulen;
      newerSeq = Infinity;
      out.maybeCut();
    }
    const t = trailerOf(k, k.length);
    const seq = seqOfTrailer(t);
    let drop = false;
    if (newerSeq <= smallestSnapshot) drop = true;
    else if (kindOfTrailer(t) === KIND_DELETE && seq <= smallestSnapshot && !deeper.contains(current.subarray(0, currentLen))) drop = true;
    newerSeq = seq;
    // A dropped entry's value was read, checked and decoded too: it counts towards the slice.
    const value = it.value();
    if (drop) dropped++;
    else out.add(k, value);
    if (slices !== null && slices.step(k.length + value.length)) await yieldToEventLoop();
  }
  return dropped;
}

/** Writes merge outputs, cutting files near the target size at user-key boundaries. */
class OutputWriter {
  readonly outputs: FileMetadata[] = [];
  private readonly paths: string[] = [];
  private builder: TableBuilder | null = null;
  private file: FileHandle | null = null;
  private number = 0;
  private numbersUsed = 0;
  private readonly pendingSync: FileHandle[] = [];

  constructor(
    private readonly fs: FileSystem,
    private readonly spec: MergeSpec,
  ) {}

  /** Called at each new user key: closes the current output if it is big enough. */
  maybeCut(): void {
    if (this.builder !== null && this.builder.estimatedSizeBytes() >= this.spec.targetFileBytes) this.finishCurrent();
  }

  add(key: Buffer, value: Buffer): void {
    if (this.builder === null) this.openNext();
    (this.builder as TableBuilder).add(key, value);
  }

  private openNext(): void {
    // Not a LightningError: runCompaction catches it and merges again with more numbers.
    if (this.numbersUsed >= this.spec.outputNumberCount) throw new Error(OUT_OF_OUTPUT_NUMBERS);
    this.number = this.spec.firstOutputNumber + this.numbersUsed++;
    const path = joinPath(this.spec.dir, tableFileName(this.number));
    this.file = createNewFile(this.fs, path);
    this.paths.push(path);
    this.builder = new TableBuilder(this.file, {
      blockSizeBytes: this.spec.blockSizeBytes,
      bloomBitsPerKey: this.spec.bloomBitsPerKey,
      compression: this.spec.compression,
    });
  }

  private finishCurrent(): void {
    const builder = this.builder;
    const file = this.file;
    assert(builder !== null && file !== null, 'finish without an open output');
    const info = builder.finish();
    this.builder = null;
    this.file = null;
    this.pendingSync.push(file);
    this.outputs.push(metadataOfBuiltTable(this.number, info));
  }

  /** Closes and unlinks every output (after a failure). */
  abandon(): void {
    this.builder?.abandon();
    this.file?.close();
    for (const f of this.pendingSync) f.close();
    this.builder = null;
    this.file = null;
    this.pendingSync.length = 0;
    for (const p of this.paths) {
      try {
        this.fs.unlink(p);
      } catch {
        // an orphan output is removed at the next open
      }
    }
  }

  /** Finishes the last output, then makes every output durable (files and directory). */
  async finishAll(): Promise<void> {
    if (this.builder !== null) this.finishCurrent();
    try {
      while (this.pendingSync.length > 0) {
        const f = this.pendingSync[0] as FileHandle;
        await f.sync();
        f.close();
        this.pendingSync.shift();
      }
      await this.fs.syncDir(this.spec.dir);
    } catch (e) {
      throw fromIoError(e, 'sync', this.spec.dir);
    }
  }
}
