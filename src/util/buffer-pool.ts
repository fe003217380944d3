/**
 * A free list of Buffers that each own their ArrayBuffer, for objects created per operation that
 * need a scratch buffer (a block iterator's key buffer, a table iterator's block copy). A range
 * scan creates a few of those per table it touches; allocating an ArrayBuffer costs ~1 µs plus GC
 * work, and was a fifth of a short scan. Buffers come back with give() when their owner closes; an
 * owner that is never closed just leaves its buffer to the garbage collector.
 *
 * One pool per size class and thread; reads are synchronous, so no locking. Never give() a buffer
 * something may still read.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  /** `bytes`: the size of the buffers handed out; at most `keep` idle buffers are kept. */
  constructor(
    readonly bytes: number,
    private readonly keep: number,
  ) {}

  /** A buffer of exactly `bytes` bytes (contents undefined). */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bytes);
  }

  /** Returns a buffer obtained from take() (others are ignored). */
  give(buf: Buffer): void {
    if (buf.length === this.bytes && buf.byteOffset === 0 && this.free.length < this.keep) this.free.push(buf);
  }
}
