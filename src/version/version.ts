/**
 * A Version is one immutable snapshot of which SSTables make up the LSM tree, per level.
 *
 *   L0   files may overlap; ordered NEWEST FIRST (largestSeq, then smallestSeq, then number, all
 *        descending), so a reader that stops at the first hit sees the newest data.
 *   L1+  files sorted by smallest key and disjoint by USER key: no user key appears in two files of
 *        one level (compaction must not split a user key's versions across output files). This is
 *        what lets findFile() answer with a single binary search.
 *
 * Versions are reference counted: readers (iterators, gets, compactions) ref() the version they
 * use and unref() it when done; when the count drops to zero the owner's callback runs so the DB
 * can delete files no live version references (VersionSet.liveFileNumbers()).
 */
import { TRAILER_BYTES, compareBytes, userKeyOf } from '../base/internal-key.js';
import { assert, invariants } from '../util/assert.js';
import { LevelRanges, packLevelRanges } from './level-ranges.js';
import { checkFileMetadata, describeFile, NUM_LEVELS, type FileMetadata } from './file-metadata.js';

export type Levels = readonly (readonly FileMetadata[])[];

export interface LevelFile {
  level: number;
  meta: FileMetadata;
}

export class Version {
  private readonly levels: Levels;
  /** Per level >= 1, the files' user-key ranges packed for searches; built on first use. */
  private readonly ranges: (LevelRanges | undefined)[] = [];
  private refs = 0;
  private readonly onUnreferenced: ((v: Version) => void) | undefined;

  /**
   * Requires: `levels` has NUM_LEVELS entries in the order described above (see checkLevels).
   * The arrays are copied and frozen; the FileMetadata objects are shared, never mutated.
   */
  constructor(levels: Levels, onUnreferenced?: (v: Version) => void) {
    assert(levels.length === NUM_LEVELS, `a version has ${NUM_LEVELS} levels`);
    const problem = checkLevels(levels, invariants.enabled);
    assert(problem === undefined, problem ?? '');
    this.levels = Object.freeze(levels.map((files) => Object.freeze(files.slice())));
    this.onUnreferenced = onUnreferenced;
  }

  static empty(onUnreferenced?: (v: Version) => void): Version {
    return new Version(emptyLevels(), onUnreferenced);
  }

  /** Files of `level` in level order (L0 newest first, L1+ by key). */
  files(level: number): readonly FileMetadata[] {
    const files = this.levels[level];
    assert(files !== undefined, 'level out of range');
    return files;
  }

  /** Every file with its level, L0 first. */
  allFiles(): LevelFile[] {
    const out: LevelFile[] = [];
    this.levels.forEach((files, level) => {
      for (const meta of files) out.push({ level, meta });
    });
    return out;
  }

  levelBytes(level: number): number {
    let total = 0;
    for (const f of this.files(level)) total += f.sizeBytes;
    return total;
  }

  totalFiles(): number {
    let n = 0;
    for (const files of this.levels) n += files.length;
    return n;
  }

  ref(): void {
    this.refs++;
  }

  /** Drops a reference; the owner's callback runs when the last one goes. */
  unref(): void {
    assert(this.refs > 0, 'Version.unref without a matching ref');
    this.refs--;
    if (this.refs === 0) this.onUnreferenced?.(this);
  }

  refCount(): number {
    return this.refs;
  }

  /**
   * Files of `level` whose user-key range intersects [smallestUserKey, largestUserKey] (inclusive;
   * undefined means unbounded on that side), in level order. Does not widen the range for L0
   * overlaps between files (that is the compaction picker's job).
   */
  overlappingFiles(
    level: number,
    smallestUserKey: Uint8Array | undefined,
    largestUserKey: Uint8Array | undefined,
  ): FileMetadata[] {
    const files = this.files(level);
    const afterEnd = (f: FileMetadata): boolean =>
      largestUserKey !== undefined && userKeyOf(f.smallest).compare(largestUserKey) > 0;
    const beforeStart = (f: FileMetadata): boolean =>
      smallestUserKey !== undefined && userKeyOf(f.largest).compare(smallestUserKey) < 0;
    if (level === 0) return files.filter((f) => !afterEnd(f) && !beforeStart(f));
    const out: FileMetadata[] = [];
    const start =
      smallestUserKey === undefined ? 0 : firstFileEndingAtOrAfter(files, smallestUserKey);
    for (let i = start; i < files.length; i++) {
      const f = files[i];
      assert(f !== undefined, 'index in range');
      if (afterEnd(f)) break;
      out.push(f);
    }
    return out;
  }

  /**
   * The only file of `level` whose user-key range contains `userKey`, or undefined.
   * Requires: level >= 1 (L0 files overlap; scan files(0) instead).
   */
  findFile(level: number, userKey: Uint8Array): FileMetadata | undefined {
    assert(level >= 1, 'findFile is for L1+');
    const files = this.files(level);
    if (files.length === 0) return undefined;
    const i = this.levelRanges(level).find(userKey);
    return i < 0 ? undefined : files[i];
  }

  /** The user-key ranges of `level` (>= 1) packed for searching (cached: versions are immutable). */
  levelRanges(level: number): LevelRanges {
    assert(level >= 1, 'level ranges are for L1+');
    return (this.ranges[level] ??= new LevelRanges(
      packLevelRanges(this.files(level).map((f) => [userKeyOf(f.smallest), userKeyOf(f.largest)] as const)),
    ));
  }

  /** `0: 000012[a#5,SET-k#9,SET] 000010[...]`, one line per non-empty level. */
  describe(): string {
    const lines: string[] = [];
    this.levels.forEach((files, level) => {
      if (files.length > 0) lines.push(`${level}: ${files.map(describeFile).join(' ')}`);
    });
    return lines.length === 0 ? '(empty)' : lines.join('\n');
  }

  /** Full structural check (ordering, metadata, unique numbers); throws AssertionError. */
  checkInvariants(): void {
    const problem = checkLevels(this.levels, true);
    assert(problem === undefined, problem ?? '');
  }
}

export function emptyLevels(): FileMetadata[][] {
  return Array.from({ length: NUM_LEVELS }, () => []);
}

/** L0 order: newest first. */
export function compareL0NewestFirst(a: FileMetadata, b: FileMetadata): number {
  return b.largestSeq - a.largestSeq || b.smallestSeq - a.smallestSeq || b.number - a.number;
}

/** L1+ order: by smallest user key (ties are overlaps, rejected by checkLevels). */
export function compareBySmallestKey(a: FileMetadata, b: FileMetadata): number {
  return userKeyOf(a.smallest).compare(userKeyOf(b.smallest));
}

/**
 * Returns what is wrong with `levels`, or undefined. Always checks the per-level order and L1+
 * disjointness (O(files)); with `deep` also each file's metadata and that numbers are unique.
 */
export function checkLevels(levels: Levels, deep: boolean): string | undefined {
  const seen = new Set<number>();
  for (let level = 0; level < levels.length; level++) {
    const files = levels[level] ?? [];
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      assert(f !== undefined, 'index in range');
      if (deep) {
        const problem = checkFileMetadata(f);
        if (problem !== undefined) return `L${level}: ${problem}`;
        if (seen.has(f.number)) return `file ${f.number} appears twice`;
        seen.add(f.number);
      }
      const prev = files[i - 1];
      if (prev === undefined) continue;
      if (level === 0) {
        if (compareL0NewestFirst(prev, f) >= 0) {
          return `L0: file ${prev.number} must come after file ${f.number} (newest first)`;
        }
      } else if (userKeyOf(prev.largest).compare(userKeyOf(f.smallest)) >= 0) {
        return `L${level}: files ${prev.number} and ${f.number} overlap or are out of order`;
      }
    }
  }
  return undefined;
}

/** Index of the first file whose largest user key is >= `userKey` (files.length if none). */
function firstFileEndingAtOrAfter(files: readonly FileMetadata[], userKey: Uint8Array): number {
  let lo = 0;
  let hi = files.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const f = files[mid];
    assert(f !== undefined, 'index in range');
    if (compareBytes(f.largest, 0, f.largest.length - TRAILER_BYTES, userKey, 0, userKey.length) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
