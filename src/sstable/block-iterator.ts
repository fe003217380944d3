/**
 * InternalIterator over one block written by BlockBuilder (docs/formats/sstable.md#block-format).
 *
 * Seeks binary-search the restart array (keys at restart points are stored whole, so they are
 * compared in place) and then scan forward at most one restart interval. prev() re-scans from the
 * restart point before the current entry, as the format has no back links.
 *
 * The current key is rebuilt in one reusable buffer (the shared prefix is already there from the
 * previous entry), so stepping allocates nothing; key() returns a cached view of that buffer.
 *
 * Blocks reach this class after their CRC was checked, but the decoder still bounds-checks every
 * length it reads: a bad block (a builder bug, or a CRC collision) raises CORRUPTION, never a
 * RangeError or an endless loop. Every step moves the position strictly, which bounds each loop.
 */
import { assert } from '../util/assert.js';
import { getFixed32, getVarint } from '../util/coding.js';
import { TRAILER_BYTES } from '../base/internal-key.js';
import { corruption } from '../base/errors.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { compareInternalKeyRanges } from '../base/internal-key.js';
import { copyBytes, copyOfRange } from '../util/copy-bytes.js';
import { BufferPool } from '../util/buffer-pool.js';

const RESTART_BYTES = 4;
const EMPTY_BLOCK = Buffer.from([0, 0, 0, 0, 1, 0, 0, 0]);
/** Key buffers of closed iterators, reused (a scan opens a few iterators per table it reads). */
const keyBuffers = new BufferPool(64, 256);
const NO_TARGET_COPY = Buffer.alloc(0);

export class BlockIterator implements InternalIterator {
  private block: Buffer = EMPTY_BLOCK;
  private filePath = '<memory>';
  /** File offset of the block, for error messages. */
  private blockOffset = 0;
  /** Offset of the restart array, which is also the end of the entries. */
  private restartsOffset = 0;
  private restartCount = 1;

  /** Offset of the current entry; equals restartsOffset when not valid. */
  private current = 0;
  /** Offset just past the current entry. */
  private nextOffset = 0;
  /** Index of the restart region holding the current entry. */
  private restartIndex = 0;
  /** Offset where the restart region after restartIndex begins (restartsOffset for the last). */
  private regionEnd = 0;
  private valueOffset = 0;
  private valueLength = 0;

  private keyBuf: Buffer = keyBuffers.take();
  /** keyBuf's own ArrayBuffer (allocUnsafeSlow: never shared), to detect aliased seek targets. */
  private keyArrayBuffer: ArrayBufferLike = this.keyBuf.buffer;
  private keyLength = 0;
  /** keyBuf[0, keyLength) as a view, recreated only when the length changes. */
  private keyView: Buffer = this.keyBuf.subarray(0, 0);
  /** Copy of a seek target that was a view of keyBuf (see copyIfAliased). */
  private targetCopy: Buffer = NO_TARGET_COPY;
  private closed = false;

  constructor(block?: Buffer, filePath?: string, blockOffset?: number) {
    if (block !== undefined) this.reset(block, filePath ?? '<memory>', blockOffset ?? 0);
  }

  /**
   * Points the iterator at a new block and leaves it unpositioned (not valid). The block must stay
   * unchanged while the iterator uses it. Throws CORRUPTION if the restart array does not fit.
   */
  reset(block: Buffer, filePath: string, blockOffset: number): void {
    assert(!this.closed, 'block iterator used after close');
    this.filePath = filePath;
    this.blockOffset = blockOffset;
    if (block.length < RESTART_BYTES) this.fail(0, 'block too small for its restart count');
    const count = block.readUInt32LE(block.length - RESTART_BYTES);
    const maxCount = Math.floor((block.length - RESTART_BYTES) / RESTART_BYTES);
    if (count === 0 || count > maxCount) {
      this.fail(block.length - RESTART_BYTES, 'bad block restart count');
    }
    this.block = block;
    this.restartCount = count;
    this.restartsOffset = block.length - RESTART_BYTES - count * RESTART_BYTES;
    this.current = this.restartsOffset;
    this.nextOffset = this.restartsOffset;
    this.restartIndex = 0;
    this.keyLength = 0;
  }

  valid(): boolean {
    return this.current < this.restartsOffset;
  }

  first(): void {
    this.seekToRestart(0);
    this.step();
  }

  last(): void {
    this.seekToRestart(this.restartCount - 1);
    if (!this.step()) return;
    while (this.nextOffset < this.restartsOffset) this.step();
  }

  seekGE(target: Buffer): void {
    target = this.copyIfAliased(target);
    this.seekToRestart(this.lastRestartBefore(target));
    while (this.step()) {
      if (this.compareKeyWith(target) >= 0) return;
    }
  }

  seekLE(target: Buffer): void {
    target = this.copyIfAliased(target);
    this.seekToRestart(this.lastRestartBefore(target));
    if (!this.step()) return;
    if (this.compareKeyWith(target) > 0) {
      // Only happens in region 0: every key in the block is greater than the target.
      this.current = this.restartsOffset;
      return;
    }
    // Advance while the following entry is still <= target; the scan ends at the next restart
    // region at the latest, because that region's first key is >= target.
    while (this.nextOffset < this.restartsOffset) {
      const savedCurrent = this.current;
      const savedRestart = this.restartIndex;
      this.step();
      if (this.compareKeyWith(target) > 0) {
        this.reposition(savedCurrent, savedRestart);
        return;
      }
    }
  }

  next(): void {
    assert(this.valid(), 'next() requires valid()');
    this.step();
  }

  prev(): void {
    assert(this.valid(), 'prev() requires valid()');
    const original = this.current;
    while (this.restartPoint(this.restartIndex) >= original) {
      if (this.restartIndex === 0) {
        this.current = this.restartsOffset;
        return;
      }
      this.restartIndex--;
    }
    this.seekToRestart(this.restartIndex);
    this.scanTo(original);
  }

  key(): Buffer {
    assert(this.valid(), 'key() requires valid()');
    if (this.keyView.length !== this.keyLength) {
      this.keyView = this.keyBuf.subarray(0, this.keyLength);
    }
    return this.keyView;
  }

  value(): Buffer {
    assert(this.valid(), 'value() requires valid()');
    return this.block.subarray(this.valueOffset, this.valueOffset + this.valueLength);
  }

  copyValue(): Buffer {
    assert(this.valid(), 'copyValue() requires valid()');
    return copyOfRange(this.block, this.valueOffset, this.valueOffset + this.valueLength);
  }

  /** Requires: valid(). The block holding the current value (for decoding without a view). */
  valueBlock(): Buffer {
    assert(this.valid(), 'valueBlock() requires valid()');
    return this.block;
  }

  /** Requires: valid(). Offset of the current value inside valueBlock(). */
  valueStart(): number {
    assert(this.valid(), 'valueStart() requires valid()');
    return this.valueOffset;
  }

  /** Requires: valid(). Offset just past the current value inside valueBlock(). */
  valueEnd(): number {
    assert(this.valid(), 'valueEnd() requires valid()');
    return this.valueOffset + this.valueLength;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.block = EMPTY_BLOCK;
    this.restartsOffset = 0;
    this.current = 0;
    // Views of keyBuf handed out by key() are only valid until the next move, so none is live.
    keyBuffers.give(this.keyBuf);
  }

  private compareKeyWith(target: Buffer): number {
    return compareInternalKeyRanges(this.keyBuf, 0, this.keyLength, target, 0, target.length);
  }

  /** Re-decodes the entry at `offset` (a position visited before), rebuilding its key. */
  private reposition(offset: number, restartIndex: number): void {
    this.seekToRestart(restartIndex);
    while (this.step()) {
      if (this.current === offset) return;
      if (this.current > offset) break;
    }
    this.fail(offset, 'block entry not reachable from its restart point');
  }

  /** From a restart point, steps until the entry just before offset `target` is current. */
  private scanTo(target: number): void {
    while (this.step()) {
      if (this.nextOffset === target) return;
      if (this.nextOffset > target) this.fail(this.current, 'block entries overlap an entry start');
    }
    this.fail(target, 'block entry not reachable from its restart point');
  }

  /** Index of the last restart point whose key is < target, or 0. */
  private lastRestartBefore(target: Buffer): number {
    let lo = 0;
    let hi = this.restartCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.compareRestartKey(mid, target) < 0) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Compares the (whole) key stored at restart point `i` with target, without copying it. */
  private compareRestartKey(i: number, target: Buffer): number {
    const off = this.restartPoint(i);
    const limit = this.restartsOffset;
    const block = this.block;
    let unshared: number;
    let keyStart: number;
    // Fast path: one-byte varints (shared must be 0 at a restart point).
    const b1 = block[off + 1] ?? 0x80;
    const b2 = block[off + 2] ?? 0x80;
    if (off + 3 <= limit && block[off] === 0 && (b1 | b2) < 0x80) {
      unshared = b1;
      keyStart = off + 3;
    } else {
      let d = getVarint(block, off, limit);
      if (d.next < 0 || d.value !== 0) this.fail(off, 'bad restart entry');
      d = getVarint(block, d.next, limit);
      if (d.next < 0) this.fail(off, 'bad restart entry');
      unshared = d.value;
      d = getVarint(block, d.next, limit);
      if (d.next < 0) this.fail(off, 'bad restart entry');
      keyStart = d.next;
    }
    if (unshared < TRAILER_BYTES || keyStart + unshared > limit) this.fail(off, 'bad restart key');
    return compareInternalKeyRanges(block, keyStart, keyStart + unshared, target, 0, target.length);
  }

  private restartPoint(i: number): number {
    // i < restartCount, so the 4 bytes lie inside the restart array.
    const off = getFixed32(this.block, this.restartsOffset + i * RESTART_BYTES);
    // An empty block has one restart point, at the end of its (zero) entries.
    if (off > this.restartsOffset) {
      this.fail(this.restartsOffset + i * RESTART_BYTES, 'bad restart point');
    }
    return off;
  }

  /** Prepares to decode from restart point i; the next step() lands on its entry. */
  private seekToRestart(i: number): void {
    assert(!this.closed, 'block iterator used after close');
    this.restartIndex = i;
    this.regionEnd = i + 1 < this.restartCount ? this.restartPoint(i + 1) : this.restartsOffset;
    this.keyLength = 0;
    this.nextOffset = this.restartPoint(i);
  }

  /** Decodes the entry at nextOffset; returns false (and becomes invalid) at the block's end. */
  private step(): boolean {
    if (this.nextOffset >= this.restartsOffset) {
      this.current = this.restartsOffset;
      return false;
    }
    this.decodeEntry(this.nextOffset);
    while (this.current >= this.regionEnd && this.restartIndex + 1 < this.restartCount) {
      this.restartIndex++;
      const i = this.restartIndex;
      this.regionEnd = i + 1 < this.restartCount ? this.restartPoint(i + 1) : this.restartsOffset;
    }
    return true;
  }

  private decodeEntry(off: number): void {
    const block = this.block;
    const limit = this.restartsOffset;
    let shared: number;
    let unshared: number;
    let valueLength: number;
    let p = off;
    if (p + 3 <= limit) {
      shared = block[p] as number;
      unshared = block[p + 1] as number;
      valueLength = block[p + 2] as number;
    } else {
      shared = unshared = valueLength = 0x80;
    }
    if ((shared | unshared | valueLength) < 0x80) {
      p += 3;
    } else {
      let d = getVarint(block, p, limit);
      shared = d.value;
      d = getVarint(block, d.next < 0 ? limit : d.next, limit);
      unshared = d.value;
      d = getVarint(block, d.next < 0 ? limit : d.next, limit);
      valueLength = d.value;
      if (d.next < 0) this.fail(off, 'bad block entry header');
      p = d.next;
    }
    if (shared > this.keyLength) this.fail(off, 'block entry shares more than the previous key');
    if (p + unshared + valueLength > limit) this.fail(off, 'block entry overruns the block');
    const keyLength = shared + unshared;
    if (keyLength < TRAILER_BYTES) this.fail(off, 'block key shorter than an internal key trailer');
    if (keyLength > this.keyBuf.length) this.growKey(keyLength);
    copyBytes(block, p, p + unshared, this.keyBuf, shared);
    this.keyLength = keyLength;
    this.current = off;
    this.valueOffset = p + unshared;
    this.valueLength = valueLength;
    this.nextOffset = this.valueOffset + valueLength;
  }

  private growKey(minBytes: number): void {
    const grown = Buffer.allocUnsafeSlow(Math.max(minBytes, this.keyBuf.length * 2));
    this.keyBuf.copy(grown, 0, 0, this.keyLength);
    this.keyBuf = grown;
    this.keyArrayBuffer = grown.buffer;
    this.keyView = grown.subarray(0, 0);
  }

  /**
   * A caller may seek to a key it got from this iterator; decoding would overwrite it mid-compare,
   * so such a target is copied first (rare: costs one comparison of ArrayBuffers otherwise).
   */
  private copyIfAliased(target: Buffer): Buffer {
    if (target.buffer !== this.keyArrayBuffer) return target;
    if (this.targetCopy.length < target.length) {
      this.targetCopy = Buffer.allocUnsafeSlow(target.length * 2);
    }
    target.copy(this.targetCopy, 0, 0, target.length);
    return this.targetCopy.subarray(0, target.length);
  }

  private fail(offsetInBlock: number, what: string): never {
    this.current = this.restartsOffset;
    throw corruption(this.filePath, this.blockOffset + offsetInBlock, what);
  }
}
