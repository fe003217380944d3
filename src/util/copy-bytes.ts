/**
 * Copies `src[srcStart, srcEnd)` to `dst` at `dstStart`; returns the number of bytes copied.
 *
 * Why not Buffer#copy: for the few-byte copies of the block hot paths (key deltas, short values,
 * last-key updates) its argument checks and native call cost more than the copy; a byte loop is
 * several times faster below ~32 bytes. Longer copies use TypedArray#set from a plain Uint8Array
 * view (a native memmove): Buffer#copy in Node 20 validates its arguments in JS and builds such a
 * view itself, ~130 vs ~60 ns of overhead per call (measured: 100-byte copy into a fresh
 * allocUnsafe buffer, 199 vs 126 ns).
 * Requires: the ranges lie inside their buffers and do not overlap.
 */
const LOOP_COPY_BYTES_MAX = 32;

/** %TypedArray%.prototype's `length` getter: what the engine itself knows of a view's length. */
const typedArrayLength = (Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'length') as PropertyDescriptor).get as (this: Uint8Array) => number;

/**
 * The element count of a typed array as the engine knows it (0 once its buffer is detached or it
 * is out of bounds), whatever `length` property the object shows: an own or subclass `length`
 * getter can lie, or change between reads. Throws TypeError for anything but a typed array.
 * Inlined by the optimizer (~2.5 ns).
 */
export function trueLength(a: Uint8Array): number {
  return typedArrayLength.call(a);
}

export function copyBytes(
  src: Buffer,
  srcStart: number,
  srcEnd: number,
  dst: Buffer,
  dstStart: number,
): number {
  const n = srcEnd - srcStart;
  if (n > LOOP_COPY_BYTES_MAX) {
    // A whole source goes to set() as it is: no view to make, and no `buffer` access (a runtime
    // call). Measured, 100-byte values: ~13 ns per copy against ~47 ns with a view.
    if (srcStart === 0 && n === src.length) dst.set(src, dstStart);
    else dst.set(new Uint8Array(src.buffer, src.byteOffset + srcStart, n), dstStart);
    return n;
  }
  for (let i = 0; i < n; i++) dst[dstStart + i] = src[srcStart + i] as number;
  return n;
}

/**
 * Copies the first `n` elements of `src` to dst at `at` (n = its trueLength, read with no caller
 * code run since: see PayloadBuilder); returns the offset after them. Element reads and set() use
 * the engine's view of `src`, never its properties, so exactly n bytes land.
 */
export function copyFirstBytes(src: Uint8Array, n: number, dst: Buffer, at: number): number {
  if (n > LOOP_COPY_BYTES_MAX) dst.set(src, at);
  else for (let i = 0; i < n; i++) dst[at + i] = src[i] as number;
  return at + n;
}

/** A new Buffer holding a copy of `src[start, end)` (small ones come from Node's buffer pool). */
export function copyOfRange(src: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  copyBytes(src, start, end, out, 0);
  return out;
}

/**
 * True if a caller holding views should use copyWithViews for `n` bytes: 33 to 256 (above, a native
 * memmove wins). Shorter copies stay on copyBytes' byte loop: moving keys to views was 3x faster in
 * a micro-benchmark for 16 bytes but made no measurable difference to fillseq.
 */
export function viewCopyPays(n: number): boolean {
  return n > LOOP_COPY_BYTES_MAX && n <= 256;
}

/**
 * Copies `n` bytes from `src` at `srcPos` to `dst` at `dstPos`, four bytes per step, for callers
 * that keep DataViews of both sides: no allocation, about twice as fast as copyBytes' native copy
 * through a fresh Uint8Array view for the 33-256-byte values of the write path (100 bytes: 51 vs
 * 121 ns). Requires: both ranges inside their views; they do not overlap.
 */
export function copyWithViews(src: DataView, srcPos: number, dst: DataView, dstPos: number, n: number): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) dst.setInt32(dstPos + i, src.getInt32(srcPos + i, true), true);
  for (; i < n; i++) dst.setUint8(dstPos + i, src.getUint8(srcPos + i));
}
