/**
 * Runs one compaction: merges the input tables of level L and the overlapping tables of L+1 into new
 * L+1 tables, dropping versions no reader can see, and installs the result with ONE version edit.
 *
 * What may be dropped (S = the oldest sequence any snapshot can read at):
 *   - a version of a user key when a newer version of the same key with seq <= S exists (every
 *     reader sees that newer one instead);
 *   - a tombstone with seq <= S when no level below the output holds the key (nothing left to hide)
 *     and, by the first rule, nothing older survives in this merge.
 * Outputs are cut near `targetFileBytes`, only where the user key changes, so one user key never
 * spans two files of a level (point reads binary-search a level by user key).
 *
 * Crash safety: outputs are fsynced and the directory fsynced before the edit; a crash before the
 * edit leaves orphan tables that the next open deletes; input files are deleted only once no
 * Version references them (the DB's obsolete-file collection).
 */
import { LightningError, fromIoError } from '../base/errors.js';
import { tableFileName } from '../base/file-names.js';
import { KIND_DELETE, TRAILER_BYTES, compareBytes, kindOfTrailer, seqOfTrailer, trailerOf } from '../base/internal-key.js';
import { joinPath, type FileHandle, type FileSystem } from '../env/file-system.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { MergingIterator } from '../iter/merging-iterator.js';
import { TableBuilder } from '../sstable/table-builder.js';
import type { TableReader } from '../sstable/table-reader.js';
import { assert } from '../util/assert.js';
import type { FileMetadata } from '../version/file-metadata.js';
import { NUM_LEVELS, metadataOfBuiltTable } from '../version/file-metadata.js';
import { VersionEdit } from '../version/version-edit.js';
import type { Version } from '../version/version.js';
import type { VersionSet } from '../version/version-set.js';
import type { CompactionPick } from './picker.js';

/** Entries merged between yields to the event loop. */
const COMPACTION_YIELD_ENTRIES = 1024;

/** What a compaction needs from the DB. */
export interface CompactionContext {
  fs: FileSystem;
  dir: string;
  versions: VersionSet;
  /** Opens input tables (reference counted). */
  acquireTable(meta: FileMetadata): TableReader;
  releaseTable(reader: TableReader): void;
  /** True if the filesystem has at least `bytes` available. */
  hasFreeSpace(bytes: number): Promise<boolean>;
  /** Oldest sequence number a snapshot can read at. */
  smallestSnapshot: number;
  blockSizeBytes: number;
  bloomBitsPerKey: number;
  targetFileBytes: number;
}

export interface CompactionResult {
  bytesRead: number;
  bytesWritten: number;
  outputs: FileMetadata[];
  entriesDropped: number;
  trivialMove: boolean;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function runCompaction(ctx: CompactionContext, pick: CompactionPick, version: Version): Promise<CompactionResult> {
  const outputLevel = pick.level + 1;
  if (pick.inputs.length === 1 && pick.nextInputs.length === 0 && pick.reason === 'score') {
    return trivialMove(ctx, pick);
  }
  let inputBytes = 0;
  for (const f of [...pick.inputs, ...pick.nextInputs]) inputBytes += f.sizeBytes;
  // Outputs are at most about the size of the inputs; fail fast rather than half-write them.
  if (!(await ctx.hasFreeSpace(inputBytes))) {
    throw new LightningError('DISK_FULL', `not enough free space in ${ctx.dir} to compact ${inputBytes} bytes`);
  }
  const readers: TableReader[] = [];
  const outputs: FileMetadata[] = [];
  const outputPaths: string[] = [];
  let bytesRead = 0;
  let writer: OutputWriter | null = null;
  /** Once the edit is being written, the outputs may be named by the manifest: keep them. */
  let committing = false;
  try {
    const children: InternalIterator[] = [];
    for (const meta of [...pick.inputs, ...pick.nextInputs]) {
      const r = ctx.acquireTable(meta);
      readers.push(r);
      children.push(r.iterator(false));
      bytesRead += meta.sizeBytes;
    }
    const merged = new MergingIterator(children);
    writer = new OutputWriter(ctx, outputs, outputPaths);
    const dropped = await mergeInto(merged, writer, ctx.smallestSnapshot, (uk) => isBaseLevelForKey(version, outputLevel, uk));
    merged.close();
    await writer.finishAll();
    const edit = new VersionEdit();
    for (const f of pick.inputs) edit.deleteFile(pick.level, f.number);
    for (const f of pick.nextInputs) edit.deleteFile(outputLevel, f.number);
    for (const f of outputs) edit.addFile(outputLevel, f);
    committing = true;
    await ctx.versions.logAndApply(edit);
    let bytesWritten = 0;
    for (const f of outputs) bytesWritten += f.sizeBytes;
    return { bytesRead, bytesWritten, outputs, entriesDropped: dropped, trivialMove: false };
  } catch (e) {
    writer?.abandon();
    if (committing) throw e; // maybe committed: the next open removes them if they are orphans
    for (const p of outputPaths) {
      try {
        ctx.fs.unlink(p);
      } catch {
        // an orphan output is removed at the next open
      }
    }
    throw e;
  } finally {
    for (const r of readers) ctx.releaseTable(r);
  }
}

async function trivialMove(ctx: CompactionContext, pick: CompactionPick): Promise<CompactionResult> {
  const f = pick.inputs[0] as FileMetadata;
  const edit = new VersionEdit();
  edit.deleteFile(pick.level, f.number);
  edit.addFile(pick.level + 1, f);
  await ctx.versions.logAndApply(edit);
  return { bytesRead: 0, bytesWritten: 0, outputs: [f], entriesDropped: 0, trivialMove: true };
}

/** True if no level deeper than `outputLevel` has a file whose range holds `userKey`. */
function isBaseLevelForKey(v: Version, outputLevel: number, userKey: Buffer): boolean {
  for (let level = outputLevel + 1; level < NUM_LEVELS; level++) {
    if (v.findFile(level, userKey) !== undefined) return false;
  }
  return true;
}

/** Streams the merge into the writer, applying the drop rules. Returns entries dropped. */
async function mergeInto(
  it: InternalIterator,
  out: OutputWriter,
  smallestSnapshot: number,
  isBaseLevel: (userKey: Buffer) => boolean,
): Promise<number> {
  let current: Buffer | null = null;
  /** Sequence of the previous (newer) version of the current user key; Infinity if none. */
  let newerSeq = Infinity;
  let dropped = 0;
  let n = 0;
  for (it.first(); it.valid(); it.next()) {
    const k = it.key();
    const ulen = k.length - TRAILER_BYTES;
    const newKey = current === null || current.length !== ulen || compareBytes(k, 0, ulen, current, 0, ulen) !== 0;
    if (newKey) {
      current = Buffer.from(k.subarray(0, ulen));
      newerSeq = Infinity;
      out.maybeCut();
    }
    const t = trailerOf(k, k.length);
    const seq = seqOfTrailer(t);
    let drop = false;
    if (newerSeq <= smallestSnapshot) drop = true;
    else if (kindOfTrailer(t) === KIND_DELETE && seq <= smallestSnapshot && isBaseLevel(current as Buffer)) drop = true;
    newerSeq = seq;
    if (drop) dropped++;
    else out.add(k, it.value());
    if (++n % COMPACTION_YIELD_ENTRIES === 0) await yieldToEventLoop();
  }
  return dropped;
}

/** Writes compaction outputs, cutting files near the target size at user-key boundaries. */
class OutputWriter {
  private builder: TableBuilder | null = null;
  private file: FileHandle | null = null;
  private number = 0;
  private readonly pendingSync: { file: FileHandle; meta: FileMetadata }[] = [];

  constructor(
    private readonly ctx: CompactionContext,
    private readonly outputs: FileMetadata[],
    private readonly paths: string[],
  ) {}

  /** Called at each new user key: closes the current output if it is big enough. */
  maybeCut(): void {
    if (this.builder !== null && this.builder.estimatedSizeBytes() >= this.ctx.targetFileBytes) this.finishCurrent();
  }

  add(key: Buffer, value: Buffer): void {
    if (this.builder === null) this.openNext();
    (this.builder as TableBuilder).add(key, value);
  }

  private openNext(): void {
    this.number = this.ctx.versions.newFileNumber();
    const path = joinPath(this.ctx.dir, tableFileName(this.number));
    try {
      this.file = this.ctx.fs.open(path, 'create-excl');
    } catch (e) {
      throw fromIoError(e, 'create', path);
    }
    this.paths.push(path);
    this.builder = new TableBuilder(this.file, {
      blockSizeBytes: this.ctx.blockSizeBytes,
      bloomBitsPerKey: this.ctx.bloomBitsPerKey,
    });
  }

  private finishCurrent(): void {
    const builder = this.builder;
    const file = this.file;
    assert(builder !== null && file !== null, 'finish without an open output');
    const info = builder.finish();
    const meta = metadataOfBuiltTable(this.number, info);
    this.outputs.push(meta);
    this.pendingSync.push({ file, meta });
    this.builder = null;
    this.file = null;
  }

  /** Closes every output file (after a failure; the caller unlinks them). */
  abandon(): void {
    this.builder?.abandon();
    this.file?.close();
    for (const p of this.pendingSync) p.file.close();
    this.builder = null;
    this.file = null;
  }

  /** Finishes the last output, then makes every output durable (files and directory). */
  async finishAll(): Promise<void> {
    if (this.builder !== null) this.finishCurrent();
    try {
      for (const p of this.pendingSync) {
        await p.file.sync();
        p.file.close();
      }
      await this.ctx.fs.syncDir(this.ctx.dir);
    } catch (e) {
      for (const p of this.pendingSync) p.file.close();
      throw fromIoError(e, 'sync', this.ctx.dir);
    }
  }
}
