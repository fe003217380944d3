/**
 * Order-preserving 48-bit fingerprints of user keys, for binary searches over many sorted keys
 * (a table's index): the search first narrows to the entries whose fingerprint equals the
 * target's using a Float64Array — numbers side by side in memory, no byte loops, few cache
 * misses — and compares whole keys only inside that (usually one or two entries wide) range.
 *
 * The fingerprint of a key is the 6 bytes that follow a prefix every key of the set shares,
 * big-endian, with missing bytes read as 0. If key a sorts before key b then fp(a) <= fp(b);
 * equal fingerprints say nothing (a shorter key and one with zero bytes look alike), so callers
 * must compare whole keys there. 6 bytes keep the value an exact integer in a double.
 */

/** Bytes a fingerprint covers. */
export const FINGERPRINT_BYTES = 6;

/** Fingerprint of `buf[keyStart + prefixLength, keyEnd)` (the key's bytes after the prefix). */
export function fingerprintOf(buf: Uint8Array, keyStart: number, keyEnd: number, prefixLength: number): number {
  let fp = 0;
  let i = keyStart + prefixLength;
  for (let n = 0; n < FINGERPRINT_BYTES; n++, i++) fp = fp * 256 + (i < keyEnd ? (buf[i] as number) : 0);
  return fp;
}

/** Length of the common prefix of `a[aStart, aEnd)` and `b[bStart, bEnd)`. */
export function commonPrefixLength(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  let i = 0;
  while (i < n && a[aStart + i] === b[bStart + i]) i++;
  return i;
}
