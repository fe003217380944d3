/**
 * Little-endian fixed-width and LEB128 varint coding. Integers up to 2^53 - 1 are supported
 * (JavaScript numbers); larger values are a programmer error.
 */
import { assert } from './assert.js';

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` at `off`; returns the offset after it. */
export function putVarint(buf: Buffer, off: number, v: number): number {
  assert(Number.isSafeInteger(v) && v >= 0, 'varint must be a non-negative safe integer');
  while (v >= 0x80) {
    buf[off++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[off++] = v;
  return off;
}

/**
 * Decoded varint: value and the offset after it. `next` is -1 if the bytes end before the varint
 * does or the varint is longer than 8 bytes (corrupt input, never an exception).
 */
export interface Decoded {
  value: number;
  next: number;
}

/** Reusable result object for hot paths: callers read fields before the next call. */
const scratch: Decoded = { value: 0, next: 0 };

export function getVarint(buf: Uint8Array, off: number, end: number, out: Decoded = scratch): Decoded {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (off >= end) break;
    const b = buf[off++] as number;
    result += (b & 0x7f) * mul;
    if (b < 0x80) {
      out.value = result;
      out.next = off;
      return out;
    }
    mul *= 128;
  }
  out.value = 0;
  out.next = -1;
  return out;
}

/** 64-bit little-endian unsigned stored as two uint32 halves; value must be < 2^53. */
export function putFixed64(buf: Buffer, off: number, v: number): number {
  assert(Number.isSafeInteger(v) && v >= 0, 'fixed64 must be a non-negative safe integer');
  buf.writeUInt32LE(v % 0x100000000, off);
  buf.writeUInt32LE(Math.floor(v / 0x100000000), off + 4);
  return off + 8;
}

/**
 * Little-endian uint32 at `buf[off, off + 4)`, read byte by byte: readUInt32LE re-validates its
 * argument in JS on every call, which shows on per-entry hot paths (internal-key trailers, block
 * restart points). Requires: the 4 bytes lie inside `buf` (callers check their ranges).
 */
export function getFixed32(buf: Uint8Array, off: number): number {
  return ((buf[off] as number) | ((buf[off + 1] as number) << 8) | ((buf[off + 2] as number) << 16) | ((buf[off + 3] as number) << 24)) >>> 0;
}

export function getFixed64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x100000000;
}
