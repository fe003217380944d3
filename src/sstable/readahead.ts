/**
 * Readahead for one sequential reader of one table (a TableIterator): after two data-block reads
 * in a row that continue where the previous one ended, blocks are read in windows that double from
 * READAHEAD_INITIAL_BYTES up to `maxWindowBytes`, one positioned read per window instead of one
 * per block. A scan of 1 KiB blocks then costs one system call per 64 KiB instead of ~60.
 *
 * Point lookups and the first block after a seek never read ahead: a random scan of a few entries
 * reads only what it needs. Only the first READAHEAD_CACHED_BLOCKS blocks a run takes out of
 * windows go into the block cache. Backward scans never read ahead (each block is read alone). The window holds raw bytes as stored (blocks with their trailers); the
 * table reader checks each block's CRC when it takes the block out, exactly as for a single read.
 *
 * The window buffer comes from a pool per size class and goes back in release() (the owning
 * iterator's close); a reader that is never released just leaves it to the garbage collector.
 */
import { assert } from '../util/assert.js';
import { BufferPool } from '../util/buffer-pool.js';

/** The first window after a sequential pattern is seen. */
export const READAHEAD_INITIAL_BYTES = 16 * 1024;
/** Largest window for user iterators (through the block cache). */
export const READAHEAD_MAX_BYTES = 64 * 1024;
/** Largest window for compaction inputs (each input file is read once, start to end). */
export const READAHEAD_COMPACTION_MAX_BYTES = 256 * 1024;
/**
 * Blocks a reader takes out of its windows that still go into the block cache: a short scan of a
 * hot range stays cached, a long scan does not flush the cache (nor pay to fill it).
 */
export const READAHEAD_CACHED_BLOCKS = 16;

const pools = new Map<number, BufferPool>();

function poolFor(bytes: number): BufferPool {
  let pool = pools.get(bytes);
  if (pool === undefined) {
    pool = new BufferPool(bytes, 16);
    pools.set(bytes, pool);
  }
  return pool;
}

export class Readahead {
  /** Raw file bytes [windowStart, windowStart + windowLength), or null before the first window. */
  buffer: Buffer | null = null;
  windowStart = 0;
  windowLength = 0;
  /** File offset where the last block read from the file (not the cache) ended; -1 at first. */
  private lastEnd = -1;
  /** Sequential block reads seen in a row (reset by a jump). */
  private sequentialReads = 0;
  /** Size of the next window (doubles up to the maximum). */
  private nextWindowBytes = READAHEAD_INITIAL_BYTES;
  /** Blocks taken out of windows in the current run. */
  private windowBlocks = 0;

  constructor(readonly maxWindowBytes: number) {
    assert(Number.isSafeInteger(maxWindowBytes) && maxWindowBytes >= READAHEAD_INITIAL_BYTES, 'bad readahead window');
  }

  /** Start of `[offset, offset + totalBytes)` inside `buffer`, or -1 if the window lacks it. */
  find(offset: number, totalBytes: number): number {
    if (this.buffer === null || offset < this.windowStart) return -1;
    const start = offset - this.windowStart;
    return start + totalBytes <= this.windowLength ? start : -1;
  }

  /**
   * Notes a block read at `[offset, offset + totalBytes)` that the window did not hold. Returns
   * how many bytes to read from `offset` into a window (at least totalBytes, capped at
   * `limitBytes`, the bytes left in the data area), or 0 to read only the block as usual.
   */
  plan(offset: number, totalBytes: number, limitBytes: number): number {
    if (offset === this.lastEnd) this.sequentialReads++;
    else {
      // A jump (a seek): a new run starts, with the first window size and its own cached blocks.
      this.sequentialReads = 0;
      this.nextWindowBytes = READAHEAD_INITIAL_BYTES;
      this.windowBlocks = 0;
    }
    this.lastEnd = offset + totalBytes;
    if (this.sequentialReads < 1) return 0;
    const want = Math.min(Math.max(this.nextWindowBytes, totalBytes), limitBytes);
    this.nextWindowBytes = Math.min(this.maxWindowBytes, this.nextWindowBytes * 2);
    return want > totalBytes ? want : 0;
  }

  /** A buffer of at least `bytes` for a window about to be read at `offset` (contents undefined). */
  prepare(offset: number, bytes: number): Buffer {
    let buf = this.buffer;
    if (buf === null || buf.length < bytes) {
      this.release();
      buf = bytes <= this.maxWindowBytes ? poolFor(this.maxWindowBytes).take() : Buffer.allocUnsafeSlow(bytes);
      this.buffer = buf;
    }
    this.windowStart = offset;
    this.windowLength = 0;
    return buf;
  }

  /** Counts a block taken out of the window; true while such blocks should still be cached. */
  takeBlock(): boolean {
    return this.windowBlocks++ < READAHEAD_CACHED_BLOCKS;
  }

  /** Records that `length` bytes were read into the window prepared last. */
  filled(length: number): void {
    this.windowLength = length;
  }

  /** Gives the window buffer back; the object stays usable (it takes another when needed). */
  release(): void {
    if (this.buffer !== null) poolFor(this.maxWindowBytes).give(this.buffer);
    this.buffer = null;
    this.windowLength = 0;
  }

  /** Notes a block delivered without a file read (window or cache): the pattern goes on. */
  passed(offset: number, totalBytes: number): void {
    this.lastEnd = offset + totalBytes;
  }
}
