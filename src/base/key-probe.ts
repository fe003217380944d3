/**
 * A search key copied into a reusable buffer that can be read through a DataView, so that a
 * binary search can compare it with packed keys four bytes at a time (compareBytesView,
 * compareInternalKeyViews in internal-key.ts). Copying a 16-byte key costs less than one
 * byte-by-byte comparison, and a search makes several.
 */
export class KeyProbe {
  private buffer: Buffer;
  view: DataView;
  /** Length of the key set last. */
  length = 0;

  constructor(initialBytes = 256) {
    this.buffer = Buffer.allocUnsafeSlow(initialBytes);
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
  }

  /** Copies `key` in; `view[0, length)` holds it until the next set(). */
  set(key: Uint8Array): void {
    const n = key.length;
    if (n > this.buffer.length) {
      this.buffer = Buffer.allocUnsafeSlow(Math.max(n, 2 * this.buffer.length));
      this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
    }
    const b = this.buffer;
    for (let i = 0; i < n; i++) b[i] = key[i] as number;
    this.length = n;
  }
}

/** A DataView over exactly the bytes of `buf`. */
export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}
