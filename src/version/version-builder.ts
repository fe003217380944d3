/**
 * Applies a sequence of VersionEdits to a base Version and produces the levels of the result.
 * Used both by recovery (many edits, problems are CORRUPTION) and by logAndApply (one edit,
 * problems are programmer errors), so it reports problems as strings and lets the caller decide.
 *
 * Within one edit, deletions apply before additions, so "delete L1 #5, add L2 #5" moves a file.
 */
import { NUM_LEVELS, type FileMetadata } from './file-metadata.js';
import type { VersionEdit } from './version-edit.js';
import {
  checkLevels,
  compareBySmallestKey,
  compareL0NewestFirst,
  type Version,
} from './version.js';

export class VersionBuilder {
  /** File number -> where it lives. Sorting happens once, in build(). */
  private readonly files = new Map<number, { level: number; meta: FileMetadata }>();

  constructor(base: Version) {
    for (const f of base.allFiles()) this.files.set(f.meta.number, f);
  }

  /** Applies `edit`; returns a description of the first problem, or undefined. */
  apply(edit: VersionEdit): string | undefined {
    for (const d of edit.deletedFiles) {
      const cur = this.files.get(d.number);
      if (cur === undefined) return `deleted file ${d.number} is not in the version`;
      if (cur.level !== d.level)
        return `deleted file ${d.number} is in L${cur.level}, not L${d.level}`;
      this.files.delete(d.number);
    }
    for (const f of edit.newFiles) {
      if (f.level < 0 || f.level >= NUM_LEVELS) return `level ${f.level} out of range`;
      const cur = this.files.get(f.meta.number);
      if (cur !== undefined) return `added file ${f.meta.number} is already in L${cur.level}`;
      this.files.set(f.meta.number, { level: f.level, meta: f.meta });
    }
    return undefined;
  }

  /** The resulting levels, ordered, or a description of why they are not a valid version. */
  build(): FileMetadata[][] | string {
    const levels: FileMetadata[][] = Array.from({ length: NUM_LEVELS }, () => []);
    for (const { level, meta } of this.files.values()) levels[level]?.push(meta);
    levels.forEach((files, level) =>
      files.sort(level === 0 ? compareL0NewestFirst : compareBySmallestKey),
    );
    return checkLevels(levels, false) ?? levels;
  }

  /** Highest file number in the result (0 if empty). */
  maxFileNumber(): number {
    let max = 0;
    for (const n of this.files.keys()) max = Math.max(max, n);
    return max;
  }
}
