/**
 * What the manifest records about one SSTable. Keys are encoded internal keys
 * (base/internal-key.ts); the encoding inside a version edit is in docs/formats/manifest.md.
 */
import { compareInternalKeys, describeInternalKey, TRAILER_BYTES } from '../base/internal-key.js';
import { tableFileName } from '../base/file-names.js';

/** Number of LSM levels, L0..L6. Reaches disk (level numbers in edits): never lower it. */
export const NUM_LEVELS = 7;

export interface FileMetadata {
  /** File number: the table lives in `tableFileName(number)`. */
  readonly number: number;
  readonly sizeBytes: number;
  /** Smallest internal key in the table. */
  readonly smallest: Buffer;
  /** Largest internal key in the table. */
  readonly largest: Buffer;
  /** Smallest and largest sequence numbers of the entries in the table. */
  readonly smallestSeq: number;
  readonly largestSeq: number;
  readonly entryCount: number;
}

/** What a table builder reports about a finished table (sstable's TableInfo has this shape). */
export interface BuiltTable {
  fileSizeBytes: number;
  entryCount: number;
  smallest: Buffer;
  largest: Buffer;
  smallestSeq: number;
  largestSeq: number;
}

/** Metadata for table `number` just written (flush and compaction outputs). */
export function metadataOfBuiltTable(number: number, t: BuiltTable): FileMetadata {
  return {
    number,
    sizeBytes: t.fileSizeBytes,
    smallest: t.smallest,
    largest: t.largest,
    smallestSeq: t.smallestSeq,
    largestSeq: t.largestSeq,
    entryCount: t.entryCount,
  };
}

/**
 * Returns a description of what is wrong with `meta`, or undefined if it is well formed: keys are
 * internal keys, smallest <= largest, seq range ordered, counters non-negative safe integers.
 */
export function checkFileMetadata(meta: FileMetadata): string | undefined {
  const ints: [string, number][] = [
    ['number', meta.number],
    ['sizeBytes', meta.sizeBytes],
    ['smallestSeq', meta.smallestSeq],
    ['largestSeq', meta.largestSeq],
    ['entryCount', meta.entryCount],
  ];
  for (const [name, v] of ints) {
    if (!Number.isSafeInteger(v) || v < 0) return `file ${meta.number}: bad ${name} ${v}`;
  }
  if (meta.number === 0) return 'file number 0 is reserved';
  if (meta.smallest.length < TRAILER_BYTES || meta.largest.length < TRAILER_BYTES) {
    return `file ${meta.number}: bounds are not internal keys`;
  }
  if (compareInternalKeys(meta.smallest, meta.largest) > 0) {
    return `file ${meta.number}: smallest key is after largest key`;
  }
  if (meta.smallestSeq > meta.largestSeq) return `file ${meta.number}: smallestSeq > largestSeq`;
  return undefined;
}

/** `000012[a#5,SET-k#9,SET]` */
export function describeFile(meta: FileMetadata): string {
  const name = tableFileName(meta.number).replace(/\.sst$/, '');
  return `${name}[${describeInternalKey(meta.smallest)}-${describeInternalKey(meta.largest)}]`;
}
