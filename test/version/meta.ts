/** Builders for FileMetadata in version tests. */
import { KIND_VALUE, makeInternalKey } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';

/** A table over user keys [smallest, largest] and sequence numbers [smallestSeq, largestSeq]. */
export function fileMeta(
  number: number,
  smallest: string | Buffer,
  largest: string | Buffer,
  smallestSeq = number,
  largestSeq = smallestSeq,
): FileMetadata {
  return {
    number,
    sizeBytes: 1000 + number,
    smallest: makeInternalKey(Buffer.from(smallest), largestSeq, KIND_VALUE),
    largest: makeInternalKey(Buffer.from(largest), smallestSeq, KIND_VALUE),
    smallestSeq,
    largestSeq,
    entryCount: 10,
  };
}
