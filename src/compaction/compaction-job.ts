/**
 * Runs one compaction: merges the input tables of level L and the overlapping tables of L+1 into new
 * L+1 tables and installs the result with ONE version edit. A single input with nothing below it
 * is a trivial move (an edit only, no I/O).
 *
 * This module plans and installs; the merge itself (drop rules, output cutting, fsyncs) is
 * merge-tables.ts, which the DB runs either on this thread or in the compaction worker: it gets a
 * plain-data MergeSpec with the output file numbers reserved here up front.
 *
 * Crash safety: outputs are fsynced and the directory fsynced before the edit; a crash before the
 * edit leaves orphan tables that the next open deletes; input files are deleted only once no
 * Version references them (the DB's obsolete-file collection).
 */
import { LightningError } from '../base/errors.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { tableFileName } from '../base/file-names.js';
import { TRAILER_BYTES, compareBytes, compareInternalKeys } from '../base/internal-key.js';
import { removeQuietly } from '../db/flush-table.js';
import type { FileMetadata } from '../version/file-metadata.js';
import { NUM_LEVELS } from '../version/file-metadata.js';
import { VersionEdit } from '../version/version-edit.js';
import type { Version } from '../version/version.js';
import type { VersionSet } from '../version/version-set.js';
import { OUT_OF_OUTPUT_NUMBERS, type MergeOutcome, type MergeSpec, type RunTableSpec } from './merge-tables.js';
import type { CompactionPick } from './picker.js';
import type { TableCompression } from '../sstable/table-builder.js';

/** What a compaction needs from the DB. */
export interface CompactionContext {
  fs: FileSystem;
  dir: string;
  versions: VersionSet;
  /** True if the filesystem has at least `bytes` available. */
  hasFreeSpace(bytes: number): Promise<boolean>;
  /** Runs the merge (mergeTables) on this thread or in the worker. */
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  /** Runs a merge alongside `merge` (on another thread when there is one): a subcompaction's. */
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
  /** A merge of at least this many input bytes is split in two by key and run in parallel (0: never). */
  subcompactionMinBytes: number;
  /** Oldest sequence number a snapshot can read at. */
  smallestSnapshot: number;
  blockSizeBytes: number;
  bloomBitsPerKey: number;
  /** Data block compression of the output tables. */
  compression: TableCompression;
  targetFileBytes: number;
}

export interface CompactionResult {
  bytesRead: number;
  bytesWritten: number;
  outputs: FileMetadata[];
  entriesDropped: number;
  trivialMove: boolean;
  /** How many merges ran in parallel (2 for a split merge; 1 otherwise, 0 for a trivial move). */
  subcompactions: number;
}

export async function runCompaction(ctx: CompactionContext, pick: CompactionPick, version: Version): Promise<CompactionResult> {
  const outputLevel = pick.level + 1;
  if (pick.inputs.length === 1 && pick.nextInputs.length === 0 && pick.reason === 'score') {
    return trivialMove(ctx, pick);
  }
  const inputs = [...pick.inputs, ...pick.nextInputs];
  let inputBytes = 0;
  for (const f of inputs) inputBytes += f.sizeBytes;
  // Outputs are at most about the size of the inputs; fail fast rather than half-write them.
  if (!(await ctx.hasFreeSpace(inputBytes))) {
    throw new LightningError('DISK_FULL', `not enough free space in ${ctx.dir} to compact ${inputBytes} bytes`);
  }
  // Output file numbers are reserved up front (the merge may run in the worker). Every output but
  // the last is >= targetFileBytes, so twice the input bytes' worth plus slack is plenty unless
  // the inputs were compressed and the outputs are not; then the merge stops with
  // OUT_OF_OUTPUT_NUMBERS and runs again with one number per input entry, a bound that always
  // holds (an output has at least one entry). Unused numbers are simply skipped.
  let entries = 0;
  for (const f of inputs) entries += f.entryCount;
  const estimate = 2 * Math.ceil(inputBytes / ctx.targetFileBytes) + inputs.length + 4;
  const deeperLevels = [];
  for (let level = outputLevel + 1; level < NUM_LEVELS; level++) {
    deeperLevels.push(version.levelRanges(level).packed);
  }
  const spec: MergeSpec = {
    dir: ctx.dir,
    // L0 tables may overlap: one child each. A level >= 1 is a sorted run: one child.
    inputs: pick.level === 0 ? pick.inputs.map((f) => ({ number: f.number, sizeBytes: f.sizeBytes })) : [],
    sortedRuns: pick.level === 0 ? [sortedRun(pick.nextInputs)] : [sortedRun(pick.inputs), sortedRun(pick.nextInputs)],
    firstOutputNumber: ctx.versions.reserveFileNumbers(estimate),
    outputNumberCount: estimate,
    smallestSnapshot: ctx.smallestSnapshot,
    deeperLevels,
    blockSizeBytes: ctx.blockSizeBytes,
    bloomBitsPerKey: ctx.bloomBitsPerKey,
    compression: ctx.compression,
    targetFileBytes: ctx.targetFileBytes,
  };
  const split = ctx.subcompactionMinBytes > 0 && inputBytes >= ctx.subcompactionMinBytes ? splitKey(pick.nextInputs) : null;
  let merged: MergeOutcome;
  /** Merges that made the outputs: 2 for a split merge, 1 for one merge (or the unsplit retry). */
  let subcompactions = 1;
  try {
    if (split === null) merged = await ctx.merge(spec);
    else {
      merged = await mergeInTwo(ctx, spec, split, estimate);
      subcompactions = 2;
    }
  } catch (e) {
    if (!(e instanceof Error && e.message.includes(OUT_OF_OUTPUT_NUMBERS)) || entries + 1 <= estimate) throw e;
    spec.outputNumberCount = entries + 1;
    spec.firstOutputNumber = ctx.versions.reserveFileNumbers(spec.outputNumberCount);
    merged = await ctx.merge(spec);
  }
  const { outputs, entriesDropped } = merged;
  const edit = new VersionEdit();
  for (const f of pick.inputs) edit.deleteFile(pick.level, f.number);
  for (const f of pick.nextInputs) edit.deleteFile(outputLevel, f.number);
  for (const f of outputs) edit.addFile(outputLevel, f);
  // If the edit fails it may still have reached the manifest: keep the outputs (an orphan is
  // removed at the next open; a named one is needed).
  await ctx.versions.logAndApply(edit);
  let bytesWritten = 0;
  for (const f of outputs) bytesWritten += f.sizeBytes;
  return { bytesRead: inputBytes, bytesWritten, outputs, entriesDropped, trivialMove: false, subcompactions };
}

/**
 * Where to split a large merge in two of about equal size: the smallest user key of the next-level
 * input where the inputs before it hold half the next level's bytes. Next-level files never share
 * a user key, so each half gets every version of its keys. Null if there is no such file.
 */
function splitKey(nextInputs: readonly FileMetadata[]): Buffer | null {
  if (nextInputs.length < 2) return null;
  const files = [...nextInputs].sort((a, b) => compareUserKeys(a.smallest, b.smallest));
  let total = 0;
  for (const f of files) total += f.sizeBytes;
  let before = 0;
  for (let i = 1; i < files.length; i++) {
    before += (files[i - 1] as FileMetadata).sizeBytes;
    if (2 * before >= total) return userKeyOf((files[i] as FileMetadata).smallest);
  }
  return userKeyOf((files[files.length - 1] as FileMetadata).smallest);
}

/** A level's tables as a merge's sorted run: in key order, with their key ranges. */
function sortedRun(files: readonly FileMetadata[]): RunTableSpec[] {
  const sorted = [...files].sort((a, b) => compareInternalKeys(a.smallest, b.smallest));
  return sorted.map((f) => ({ number: f.number, sizeBytes: f.sizeBytes, smallest: f.smallest, largest: f.largest }));
}

function userKeyOf(internalKey: Buffer): Buffer {
  return internalKey.subarray(0, internalKey.length - TRAILER_BYTES);
}

function compareUserKeys(a: Buffer, b: Buffer): number {
  return compareBytes(a, 0, a.length - TRAILER_BYTES, b, 0, b.length - TRAILER_BYTES);
}

/**
 * Merges the keys below `split` with ctx.merge and the rest with ctx.mergeAside, at the same time;
 * the outputs of the two, in key order, are one merge's. If either fails, the other's outputs are
 * removed (unreferenced; a removal that fails leaves an orphan the next open deletes) and the
 * first failure is thrown.
 */
async function mergeInTwo(ctx: CompactionContext, spec: MergeSpec, split: Buffer, numbers: number): Promise<MergeOutcome> {
  const below: MergeSpec = { ...spec, upperBound: split };
  const above: MergeSpec = { ...spec, lowerBound: split, firstOutputNumber: ctx.versions.reserveFileNumbers(numbers), outputNumberCount: numbers };
  const [a, b] = await Promise.allSettled([ctx.merge(below), ctx.mergeAside(above)]);
  if (a.status === 'fulfilled' && b.status === 'fulfilled') {
    return { outputs: [...a.value.outputs, ...b.value.outputs], entriesDropped: a.value.entriesDropped + b.value.entriesDropped };
  }
  for (const r of [a, b]) {
    if (r.status === 'fulfilled') for (const f of r.value.outputs) removeQuietly(ctx.fs, joinPath(ctx.dir, tableFileName(f.number)));
  }
  throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
}

async function trivialMove(ctx: CompactionContext, pick: CompactionPick): Promise<CompactionResult> {
  const f = pick.inputs[0] as FileMetadata;
  const edit = new VersionEdit();
  edit.deleteFile(pick.level, f.number);
  edit.addFile(pick.level + 1, f);
  await ctx.versions.logAndApply(edit);
  return { bytesRead: 0, bytesWritten: 0, outputs: [f], entriesDropped: 0, trivialMove: true, subcompactions: 0 };
}
