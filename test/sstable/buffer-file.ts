/**
 * A FileHandle over an in-memory Buffer, so sstable tests need no filesystem implementation.
 * Synced and unsynced bytes are not distinguished (the sstable layer never syncs).
 */
import type { FileHandle } from '../../src/env/file-system.js';

export class BufferFile implements FileHandle {
  readonly path: string;
  private data: Buffer;
  private length: number;
  writeCount = 0;
  readCount = 0;
  closed = false;

  constructor(path = 'test.sst', contents?: Buffer) {
    this.path = path;
    this.data = contents === undefined ? Buffer.alloc(1024) : Buffer.from(contents);
    this.length = contents === undefined ? 0 : contents.length;
  }

  /** A copy of the current contents. */
  contents(): Buffer {
    return Buffer.from(this.data.subarray(0, this.length));
  }

  read(buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.checkOpen();
    this.readCount++;
    if (position >= this.length) return 0;
    const n = Math.min(length, this.length - position);
    buf.set(this.data.subarray(position, position + n), bufOffset);
    return n;
  }

  write(buf: Uint8Array, bufOffset: number, length: number, position: number | null): void {
    this.checkOpen();
    this.writeCount++;
    const at = position ?? this.length;
    this.ensure(at + length);
    this.data.set(buf.subarray(bufOffset, bufOffset + length), at);
    this.length = Math.max(this.length, at + length);
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  size(): number {
    return this.length;
  }

  truncate(length: number): void {
    this.ensure(length);
    if (length > this.length) this.data.fill(0, this.length, length);
    this.length = length;
  }

  close(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.path}: use after close`);
  }

  private ensure(size: number): void {
    if (size <= this.data.length) return;
    const grown = Buffer.alloc(Math.max(size, this.data.length * 2));
    this.data.copy(grown, 0, 0, this.length);
    this.data = grown;
  }
}

/** A file whose writes fail with a Node-style error after `okWrites` successful ones. */
export class FailingFile extends BufferFile {
  constructor(
    private readonly okWrites: number,
    private readonly errorCode: string,
  ) {
    super('failing.sst');
  }

  override write(
    buf: Uint8Array,
    bufOffset: number,
    length: number,
    position: number | null,
  ): void {
    if (this.writeCount >= this.okWrites) {
      this.writeCount++;
      throw Object.assign(new Error(`${this.errorCode}: injected`), { code: this.errorCode });
    }
    super.write(buf, bufOffset, length, position);
  }
}
