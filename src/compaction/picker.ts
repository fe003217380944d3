/**
 * Chooses the next compaction by level score (LevelDB's rule): L0 scores by file count against
 * `l0CompactionTrigger`, deeper levels by size against their target. The level with the highest
 * score >= 1 is compacted into the next one. Picks are pure functions of the Version.
 */
import { TRAILER_BYTES, userKeyOf } from '../base/internal-key.js';
import { NUM_LEVELS, type FileMetadata } from '../version/file-metadata.js';
import type { Version } from '../version/version.js';
import { assert } from '../util/assert.js';
import { levelTargetBytes, type CompactionConfig } from './config.js';

export interface CompactionPick {
  /** Level the inputs come from; outputs go to level + 1. */
  level: number;
  inputs: FileMetadata[];
  /** Overlapping files of level + 1, merged with the inputs. */
  nextInputs: FileMetadata[];
  /** Why it was picked: 'score' or 'manual'. */
  reason: 'score' | 'manual';
}

/** Score of each level (index = level); L_last has no score (it cannot be compacted deeper). */
export function levelScores(v: Version, cfg: CompactionConfig): number[] {
  const scores: number[] = [v.files(0).length / cfg.l0CompactionTrigger];
  for (let level = 1; level < NUM_LEVELS - 1; level++) {
    scores.push(v.levelBytes(level) / levelTargetBytes(cfg, level));
  }
  return scores;
}

/** Smallest and largest user keys of a set of files. Requires: files is not empty. */
export function userKeyRange(files: readonly FileMetadata[]): [Buffer, Buffer] {
  assert(files.length > 0, 'range of no files');
  let lo = userKeyOf((files[0] as FileMetadata).smallest);
  let hi = userKeyOf((files[0] as FileMetadata).largest);
  for (const f of files) {
    const s = userKeyOf(f.smallest);
    const l = userKeyOf(f.largest);
    if (Buffer.compare(s, lo) < 0) lo = s;
    if (Buffer.compare(l, hi) > 0) hi = l;
  }
  return [lo, hi];
}

/**
 * The compaction to run now, or null if every score is below 1. `cursor[level]` is the largest
 * user key of the previous pick at that level: levels are compacted round-robin through the key
 * space so every file eventually moves down.
 */
export function pickCompaction(
  v: Version,
  cfg: CompactionConfig,
  cursor: (Buffer | undefined)[],
): CompactionPick | null {
  const scores = levelScores(v, cfg);
  let best = -1;
  let bestScore = 1;
  for (let level = 0; level < scores.length; level++) {
    const s = scores[level] as number;
    if (s >= bestScore) {
      best = level;
      bestScore = s;
    }
  }
  if (best < 0) return null;
  const inputs = best === 0 ? pickL0Inputs(v) : [pickFileAfter(v.files(best), cursor[best])];
  return withNextInputs(v, best, inputs, 'score');
}

/**
 * The oldest L0 file plus every L0 file overlapping it, transitively (the range widens as files
 * join). Moving only part of L0 down is safe exactly when no L0 file left behind overlaps a moved
 * one: an older version left in L0 would shadow the newer one moved below it. Sequentially written
 * data gives one non-overlapping file at a time, which then moves down without a rewrite.
 */
export function pickL0Inputs(v: Version): FileMetadata[] {
  const files = v.files(0);
  assert(files.length > 0, 'L0 pick from an empty L0');
  const oldest = files[files.length - 1] as FileMetadata; // L0 is ordered newest first
  let [lo, hi] = userKeyRange([oldest]);
  let inputs: FileMetadata[] = [oldest];
  for (;;) {
    const next = v.overlappingFiles(0, lo, hi);
    if (next.length === inputs.length) return next;
    inputs = next;
    [lo, hi] = userKeyRange(inputs);
  }
}

/** Completes a pick with the overlapping files of the next level. */
export function withNextInputs(
  v: Version,
  level: number,
  inputs: FileMetadata[],
  reason: CompactionPick['reason'],
): CompactionPick {
  assert(level < NUM_LEVELS - 1, 'cannot compact the last level');
  const [lo, hi] = userKeyRange(inputs);
  return { level, inputs, nextInputs: v.overlappingFiles(level + 1, lo, hi), reason };
}

function pickFileAfter(files: readonly FileMetadata[], after: Buffer | undefined): FileMetadata {
  assert(files.length > 0, 'pick from an empty level');
  if (after !== undefined) {
    for (const f of files) {
      const s = f.smallest;
      if (s.compare(after, 0, after.length, 0, s.length - TRAILER_BYTES) > 0) return f;
    }
  }
  return files[0] as FileMetadata;
}
