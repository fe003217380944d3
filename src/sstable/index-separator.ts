/**
 * Index keys need only separate neighbouring data blocks, so the builder stores a short key s with
 * lastKey(block i) <= s < firstKey(block i+1) instead of the whole last key. Shorter index keys
 * make the in-memory index smaller and its binary search cheaper. The idea is LevelDB's
 * FindShortestSeparator, applied to the user key part of internal keys.
 */
import { assert } from '../util/assert.js';
import { putTrailer, KIND_SEEK, MAX_SEQ, TRAILER_BYTES } from '../base/internal-key.js';

/**
 * Writes a separator for internal keys `last[0, lastLength)` < `next` into `out` and returns its
 * length. Requires: out.length >= lastLength.
 *
 * If the user keys first differ at byte i, last[i] + 1 < next[i], and i + 1 is shorter than last's
 * user key, the separator is lastUser[0, i] ++ (last[i] + 1) with the largest trailer (MAX_SEQ,
 * KIND_SEEK), which sorts first among entries of that user key; it is > last because its user key
 * is greater, and < next because its user key is smaller. Otherwise the separator is `last` itself.
 */
export function findShortestSeparator(
  last: Buffer,
  lastLength: number,
  next: Buffer,
  out: Buffer,
): number {
  assert(out.length >= lastLength, 'separator buffer too small');
  assert(lastLength >= TRAILER_BYTES, 'separator needs internal keys (last)');
  assert(next.length >= TRAILER_BYTES, 'separator needs internal keys (next)');
  const lastUser = lastLength - TRAILER_BYTES;
  const nextUser = next.length - TRAILER_BYTES;
  const common = Math.min(lastUser, nextUser);
  let i = 0;
  while (i < common && last[i] === next[i]) i++;
  if (i < common && i + 1 < lastUser) {
    const byte = last[i] as number;
    if (byte < 0xff && byte + 1 < (next[i] as number)) {
      last.copy(out, 0, 0, i);
      out[i] = byte + 1;
      putTrailer(out, i + 1, MAX_SEQ, KIND_SEEK);
      return i + 1 + TRAILER_BYTES;
    }
  }
  last.copy(out, 0, 0, lastLength);
  return lastLength;
}
