/**
 * Two-level iterator over one SSTable: an index block iterator picks the data block, a block
 * iterator walks inside it. Data blocks are loaded on demand (through the block cache) as the
 * position crosses block boundaries; the table is never materialised.
 *
 * Index key i separates blocks i and i+1: every key in block i is <= it and every key in block
 * i+1 is greater. So seekGE(t) starts in the first block whose index key is >= t, and seekLE(t)
 * ends in that block or, if all its keys exceed t, in the block before.
 */
import { assert } from '../util/assert.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import { BlockIterator } from './block-iterator.js';
import { BufferPool } from '../util/buffer-pool.js';
import { getBlockHandle, type BlockHandle } from './block-handle.js';
import { Readahead, READAHEAD_COMPACTION_MAX_BYTES, READAHEAD_MAX_BYTES } from './readahead.js';
import { copyBytes } from '../util/copy-bytes.js';

/** What the iterator needs from its table: the reader implements it. */
export interface TableBlockSource {
  readonly path: string;
  /** The verified index block and its file offset (for error messages). */
  readonly indexBlock: Buffer;
  readonly indexOffset: number;
  /**
   * A verified data block, from the cache or the file, as a view valid only until the next block
   * read. With `useCache` false the cache is neither read nor filled (compaction streams: they must
   * not flush the hot set). A `readahead` serves and fetches runs of consecutive blocks in one
   * read. Throws CORRUPTION / IO_ERROR.
   */
  readDataBlock(offset: number, sizeBytes: number, useCache: boolean, readahead: Readahead | null): Buffer;
}

/** Block copies of closed table iterators, reused (sized for the default 4 KiB blocks). */
const blockCopies = new BufferPool(8192, 64);

export class TableIterator implements InternalIterator {
  private readonly index: BlockIterator;
  private readonly data = new BlockIterator();
  /** True when `data` holds the block of the current index entry. */
  private dataLoaded = false;
  /** File offset of the block in `data`, to skip reloading it; -1 when none. */
  private loadedOffset = -1;
  private readonly handle: BlockHandle = { offset: 0, sizeBytes: 0 };
  /**
   * This iterator's copy of its current block: what readDataBlock returns is only valid until the
   * next block read anywhere (cache slots and the read buffer are reused), and the iterator keeps
   * its position across other reads. Reused from block to block.
   */
  private blockCopy: Buffer | null = null;
  /** Turns runs of consecutive block reads into one read per window (scans, compaction inputs). */
  private readonly readahead: Readahead;
  private closed = false;

  constructor(
    private readonly source: TableBlockSource,
    private readonly useCache: boolean,
  ) {
    this.index = new BlockIterator(source.indexBlock, source.path, source.indexOffset);
    this.readahead = new Readahead(useCache ? READAHEAD_MAX_BYTES : READAHEAD_COMPACTION_MAX_BYTES);
  }

  valid(): boolean {
    return this.dataLoaded && this.data.valid();
  }

  first(): void {
    this.index.first();
    if (!this.loadBlock()) return;
    this.data.first();
    this.skipEmptyForward();
  }

  last(): void {
    this.index.last();
    if (!this.loadBlock()) return;
    this.data.last();
    this.skipEmptyBackward();
  }

  seekGE(target: Buffer): void {
    this.index.seekGE(target);
    if (!this.loadBlock()) return;
    this.data.seekGE(target);
    this.skipEmptyForward();
  }

  seekLE(target: Buffer): void {
    this.index.seekGE(target);
    if (!this.index.valid()) this.index.last();
    if (!this.loadBlock()) return;
    this.data.seekLE(target);
    this.skipEmptyBackward();
  }

  next(): void {
    assert(this.valid(), 'next() requires valid()');
    this.data.next();
    this.skipEmptyForward();
  }

  prev(): void {
    assert(this.valid(), 'prev() requires valid()');
    this.data.prev();
    this.skipEmptyBackward();
  }

  key(): Buffer {
    assert(this.valid(), 'key() requires valid()');
    return this.data.key();
  }

  value(): Buffer {
    assert(this.valid(), 'value() requires valid()');
    return this.data.value();
  }

  copyValue(): Buffer {
    assert(this.valid(), 'copyValue() requires valid()');
    return this.data.copyValue();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dataLoaded = false;
    if (this.blockCopy !== null) blockCopies.give(this.blockCopy);
    this.blockCopy = null;
    this.readahead.release();
    this.index.close();
    this.data.close();
  }

  /** While the data block is exhausted, moves to the first entry of the next block. */
  private skipEmptyForward(): void {
    while (this.dataLoaded && !this.data.valid()) {
      this.index.next();
      if (!this.loadBlock()) return;
      this.data.first();
    }
  }

  /** While the data block is exhausted, moves to the last entry of the previous block. */
  private skipEmptyBackward(): void {
    while (this.dataLoaded && !this.data.valid()) {
      this.index.prev();
      if (!this.loadBlock()) return;
      this.data.last();
    }
  }

  /**
   * Loads the block of the current index entry into `data` (unpositioned). Returns false, leaving
   * the iterator invalid, if the index iterator is exhausted.
   */
  private loadBlock(): boolean {
    assert(!this.closed, 'table iterator used after close');
    this.dataLoaded = false;
    if (!this.index.valid()) return false;
    const { source, index, handle } = this;
    const path = source.path;
    const start = index.valueStart();
    const end = index.valueEnd();
    getBlockHandle(index.valueBlock(), start, end, handle, path, source.indexOffset);
    const offset = handle.offset;
    if (offset !== this.loadedOffset) {
      this.loadedOffset = -1;
      const block = source.readDataBlock(offset, handle.sizeBytes, this.useCache, this.readahead);
      let copy = this.blockCopy;
      // Grow to fit, but do not keep a buffer sized for one huge block.
      if (copy === null || copy.length < block.length || copy.length > 4 * block.length + 65536) {
        if (copy !== null) blockCopies.give(copy);
        copy = block.length <= blockCopies.bytes ? blockCopies.take() : Buffer.allocUnsafeSlow(block.length);
        this.blockCopy = copy;
      }
      copyBytes(block, 0, block.length, copy, 0);
      this.data.reset(copy.subarray(0, block.length), path, offset);
      this.loadedOffset = offset;
    }
    this.dataLoaded = true;
    return true;
  }
}
