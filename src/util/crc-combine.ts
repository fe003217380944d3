/**
 * CRC-32 arithmetic (zlib polynomial, reflected bit order): the CRC of the bytes B from the CRCs of
 * A and of A ++ B, without reading B. The CRC is linear over GF(2): appending n bytes multiplies
 * the register by x^(8n) modulo the polynomial, so crc(A ++ B) = crc(A) · x^(8|B|) ⊕ crc(B), and
 * crc(B) follows from the other two. The log reader uses it to checksum any candidate record in a
 * scan from checkpointed prefix CRCs (src/wal/record-reader.ts), so a scan stays linear in the
 * file size whatever lengths the candidates claim.
 */

/** The CRC-32 polynomial, reflected. */
const POLY = 0xedb88320;
/** x^0 = 1 in the reflected representation (the top bit is the x^0 coefficient). */
const ONE = 0x80000000;

/** (a · b) mod POLY over GF(2), both in the reflected representation. */
export function mulModPoly(a: number, b: number): number {
  let product = 0;
  let bit = ONE;
  let multiple = b >>> 0;
  a >>>= 0;
  while (a !== 0) {
    if ((a & bit) !== 0) {
      product ^= multiple;
      a = (a ^ bit) >>> 0;
    }
    bit >>>= 1;
    // multiple ← multiple · x mod POLY
    multiple = (multiple & 1) !== 0 ? (multiple >>> 1) ^ POLY : multiple >>> 1;
  }
  return product >>> 0;
}

/** POWERS[k] = x^(2^k) mod POLY. */
const POWERS = new Uint32Array(64);
POWERS[0] = ONE >>> 1; // x^1
for (let k = 1; k < POWERS.length; k++) POWERS[k] = mulModPoly(POWERS[k - 1] as number, POWERS[k - 1] as number);

/** x^(8 · n) mod POLY: the factor that appending n bytes applies to a CRC register. */
export function byteShiftFactor(n: number): number {
  let factor = ONE;
  let k = 3; // x^(8n) = x^(n · 2^3)
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2), k++) {
    if (rest % 2 === 1) factor = mulModPoly(POWERS[k % 64] as number, factor);
  }
  return factor;
}

/**
 * CRC-32 of the bytes B, given `crcWhole` = CRC-32 of A ++ B, `crcPrefix` = CRC-32 of A, and
 * `suffixBytes` = |B|. (zlib's crc32 values: initial and final inversion included.)
 */
export function crc32OfSuffix(crcWhole: number, crcPrefix: number, suffixBytes: number): number {
  return (crcWhole ^ mulModPoly(byteShiftFactor(suffixBytes), crcPrefix)) >>> 0;
}

/** Byte-at-a-time table for crc32Continue. */
const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[n] = c >>> 0;
}

/**
 * zlib's crc32(buf.subarray(start, end), crc), in JS: for the few bytes between a checkpoint and
 * a candidate, where the native call's subarray and call overhead cost more than the loop.
 */
export function crc32Continue(crc: number, buf: Uint8Array, start: number, end: number): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (buf[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
