/**
 * Internal keys: a user key plus an 8-byte trailer packing (sequence number, kind).
 *
 *   internal key = user key bytes ++ fixed64LE(seq * 256 + kind)
 *
 * Ordering: user key ascending (bytewise), then trailer DESCENDING, so that for one user key the
 * newest version comes first and a seek to (key, snapshotSeq, KIND_SEEK) lands on the newest version
 * visible to that snapshot. This encoding reaches disk (SSTables) and is frozen.
 */
import { assert } from '../util/assert.js';

/** Value kinds. On disk: never renumber. */
export const KIND_DELETE = 0;
export const KIND_VALUE = 1;
export type Kind = typeof KIND_DELETE | typeof KIND_VALUE;
/** Highest kind: used in seek keys so a seek lands on the first entry with seq <= snapshot. */
export const KIND_SEEK = KIND_VALUE;

export const TRAILER_BYTES = 8;
/** Sequence numbers are < 2^45 so that seq * 256 + kind stays a safe integer. */
export const MAX_SEQ = 2 ** 45 - 1;

/** Writes the trailer for (seq, kind) at `off`. */
export function putTrailer(buf: Buffer, off: number, seq: number, kind: number): void {
  assert(seq >= 0 && seq <= MAX_SEQ, 'sequence number out of range');
  const packed = seq * 256 + kind;
  buf.writeUInt32LE(packed % 0x100000000, off);
  buf.writeUInt32LE(Math.floor(packed / 0x100000000), off + 4);
}

export function makeInternalKey(userKey: Uint8Array, seq: number, kind: number): Buffer {
  const out = Buffer.allocUnsafe(userKey.length + TRAILER_BYTES);
  out.set(userKey, 0);
  putTrailer(out, userKey.length, seq, kind);
  return out;
}

/** Packed trailer (seq * 256 + kind) of the internal key stored in `buf[start, end)`. */
export function trailerOf(buf: Buffer, end: number): number {
  return buf.readUInt32LE(end - 8) + buf.readUInt32LE(end - 4) * 0x100000000;
}

export function seqOfTrailer(trailer: number): number {
  return Math.floor(trailer / 256);
}

export function kindOfTrailer(trailer: number): number {
  return trailer % 256;
}

/** Length of the user key inside an internal key of length `len`. */
export function userKeyLength(len: number): number {
  return len - TRAILER_BYTES;
}

/** The user key of an encoded internal key, as a view (no copy). */
export function userKeyOf(ikey: Buffer): Buffer {
  return ikey.subarray(0, ikey.length - TRAILER_BYTES);
}

/**
 * Compares two encoded internal keys: user key ascending, then trailer descending.
 * Works on views: `a[aStart, aEnd)` vs `b[bStart, bEnd)`.
 */
export function compareInternalKeys(
  a: Buffer,
  b: Buffer,
  aStart = 0,
  aEnd = a.length,
  bStart = 0,
  bEnd = b.length,
): number {
  const c = a.compare(b, bStart, bEnd - TRAILER_BYTES, aStart, aEnd - TRAILER_BYTES);
  if (c !== 0) return c;
  const ta = trailerOf(a, aEnd);
  const tb = trailerOf(b, bEnd);
  return ta > tb ? -1 : ta < tb ? 1 : 0;
}

/** Human-readable form used by describe() output and tests: `key#seq,SET` / `key#seq,DEL`. */
export function describeInternalKey(ikey: Buffer): string {
  const t = trailerOf(ikey, ikey.length);
  const kind = kindOfTrailer(t) === KIND_DELETE ? 'DEL' : 'SET';
  return `${describeUserKey(userKeyOf(ikey))}#${seqOfTrailer(t)},${kind}`;
}

/** Printable ASCII as is, anything else as \xNN. */
export function describeUserKey(key: Uint8Array): string {
  let s = '';
  for (const b of key) {
    s += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return s;
}
