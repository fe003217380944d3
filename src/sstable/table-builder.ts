/**
 * Writes one SSTable: sorted internal keys and values in data blocks, then a bloom filter block, a
 * meta (properties) block, an index block and a fixed-size footer.
 * File format: docs/formats/sstable.md (format version 1, or 2 once a data block is compressed).
 *
 *   [data block 0][trailer] ... [data block n-1][trailer]
 *   [filter block][trailer] [meta block][trailer] [index block][trailer] [footer, 64 bytes]
 *
 * With `compression: 'lz'` each data block is compressed (lz-codec.ts) straight into the staging
 * buffer and stored with trailer type LZ if that saves at least 12.5%; otherwise it is stored raw.
 * Filter, meta and index blocks are always raw. Block sizes (`blockSizeBytes`) are uncompressed.
 *
 * Blocks are written from a staging buffer in writes of about WRITE_BATCH_BYTES rather than one
 * write per block. The builder never fsyncs and never closes the file: the caller does both.
 * All buffers are grown and reused; add() allocates nothing once they reach working size.
 */
import { assert } from '../util/assert.js';
import { fromIoError } from '../base/errors.js';
import {
  kindOfTrailer,
  KIND_DELETE,
  seqOfTrailer,
  trailerOf,
  TRAILER_BYTES,
} from '../base/internal-key.js';
import type { FileHandle } from '../env/file-system.js';
import { BlockBuilder, RESTART_INTERVAL_DEFAULT } from './block-builder.js';
import { BLOCK_HANDLE_BYTES_MAX, putBlockHandle, type BlockHandle } from './block-handle.js';
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ, COMPRESSION_NONE, putBlockTrailer } from './block-trailer.js';
import { BloomFilterBuilder, type BloomLayout } from './bloom-filter.js';
import { FOOTER_BYTES, putFooter, TABLE_FORMAT_VERSION_1, TABLE_FORMAT_VERSION_2 } from './footer.js';
import { compressBlock } from './lz-codec.js';
import { findShortestSeparator } from './index-separator.js';
import { encodeProperties, type TableProperties } from './properties.js';
import { copyBytes, copyOfRange } from '../util/copy-bytes.js';
import { compareInternalKeyRanges, compareBytes as compareUserKeyRanges } from '../base/internal-key.js';

/** Target size of each file write: amortises syscalls while keeping the staging buffer small. */
export const WRITE_BATCH_BYTES = 64 * 1024;
/** Smallest and largest accepted data block sizes. */
export const BLOCK_SIZE_BYTES_MIN = 64;
export const BLOCK_SIZE_BYTES_MAX = 16 * 1024 * 1024;
/** Index blocks restart at every entry so their binary search lands exactly on the entry. */
const INDEX_RESTART_INTERVAL = 1;

/** How data blocks are stored: 'none' = raw; 'lz' = LZ-compressed where that saves >= 12.5%. */
export type TableCompression = 'none' | 'lz';

export interface TableBuilderOptions {
  /** Uncompressed size at which a data block is closed (it may exceed it by one entry). */
  blockSizeBytes: number;
  /** Bloom filter bits per user key; 0 writes no filter. */
  bloomBitsPerKey: number;
  /** Entries between restart points in data blocks (default 16). */
  restartInterval?: number;
  /** Data block compression (default 'none'). */
  compression?: TableCompression;
  /** Bloom filter layout (default 'cache-local'; 'legacy' only to reproduce older tables). */
  bloomLayout?: BloomLayout;
}

export interface TableInfo {
  fileSizeBytes: number;
  entryCount: number;
  /** Smallest and largest internal keys (copies). */
  smallest: Buffer;
  largest: Buffer;
  /** Smallest and largest sequence numbers among all entries. */
  smallestSeq: number;
  largestSeq: number;
}

type BuilderState = 'open' | 'finished' | 'abandoned' | 'failed';

/**
 * Buffers of finished or abandoned builders (write staging, index block), for the next builder on
 * the same thread: this module has one instance per thread. Each builder grows these to the size
 * of its filter and index blocks (~0.5 MiB per 8 MiB table). In a worker, which allocates little
 * JS and so rarely runs its garbage collector, dropped ones stayed resident.
 */
const SPARES_MAX = 2;
const SPARE_BYTES_MAX = 4 * 1024 * 1024;
const spareStaging: Buffer[] = [];
const spareIndexBuffers: Buffer[] = [];
/** What a builder holds as staging once its buffer went to the spares. */
const EMPTY_STAGING = Buffer.alloc(0);

function takeSpare(spares: Buffer[], minBytes: number): Buffer {
  const b = spares.pop();
  return b !== undefined && b.length >= minBytes ? b : Buffer.allocUnsafeSlow(minBytes);
}

function giveSpare(spares: Buffer[], b: Buffer): void {
  if (spares.length < SPARES_MAX && b.length <= SPARE_BYTES_MAX) spares.push(b);
}

export class TableBuilder {
  private readonly file: FileHandle;
  private readonly blockSizeBytes: number;
  private readonly restartInterval: number;
  private readonly bloomBitsPerKey: number;
  private readonly dataBlock: BlockBuilder;
  private readonly indexBlock: BlockBuilder;
  private readonly bloom: BloomFilterBuilder;
  private readonly compress: boolean;

  /** Staging buffer for file writes; `stagedBytes` of it are pending. */
  /** Taken from the spares last in the constructor: a constructor that throws loses none. */
  private staging: Buffer;
  private stagedBytes = 0;
  /** Bytes already handed to file.write(). */
  private writtenBytes = 0;

  private lastKey: Buffer = Buffer.allocUnsafeSlow(256);
  private lastKeyLength = 0;
  private separator: Buffer = Buffer.allocUnsafeSlow(256);
  private smallest: Buffer | null = null;
  /** Handle of the last data block written, waiting for the next key to choose its index key. */
  private pendingIndexEntry = false;
  private readonly pendingHandle: BlockHandle = { offset: 0, sizeBytes: 0 };
  private readonly handleScratch: Buffer = Buffer.allocUnsafeSlow(BLOCK_HANDLE_BYTES_MAX);

  private entryCount = 0;
  private deletionCount = 0;
  private dataBlockCount = 0;
  /** Data blocks stored compressed: any makes the table format version 2. */
  private compressedBlockCount = 0;
  private rawKeyBytes = 0;
  private rawValueBytes = 0;
  private smallestSeq = Number.MAX_SAFE_INTEGER;
  private largestSeq = 0;
  private state: BuilderState = 'open';
  private failure: unknown = null;

  constructor(file: FileHandle, opts: TableBuilderOptions) {
    const restartInterval = opts.restartInterval ?? RESTART_INTERVAL_DEFAULT;
    assert(Number.isInteger(opts.blockSizeBytes), 'blockSizeBytes must be an integer');
    assert(opts.blockSizeBytes >= BLOCK_SIZE_BYTES_MIN, 'blockSizeBytes below minimum');
    assert(opts.blockSizeBytes <= BLOCK_SIZE_BYTES_MAX, 'blockSizeBytes above maximum');
    const compression = opts.compression ?? 'none';
    assert(compression === 'none' || compression === 'lz', 'unknown table compression');
    this.compress = compression === 'lz';
    this.file = file;
    this.blockSizeBytes = opts.blockSizeBytes;
    this.restartInterval = restartInterval;
    this.bloomBitsPerKey = opts.bloomBitsPerKey;
    this.dataBlock = new BlockBuilder(restartInterval, Math.max(4096, opts.blockSizeBytes * 2));
    this.bloom = new BloomFilterBuilder(opts.bloomBitsPerKey, opts.bloomLayout ?? 'cache-local');
    this.indexBlock = new BlockBuilder(INDEX_RESTART_INTERVAL, 4096, spareIndexBuffers.pop() ?? null);
    this.staging = takeSpare(spareStaging, WRITE_BATCH_BYTES);
  }

  /**
   * Appends an entry. Requires: the builder is open; `ikey` is an internal key strictly greater
   * than the previous one. Throws IO_ERROR / DISK_FULL if a block write fails; the builder is then
   * unusable (abandon it).
   */
  add(ikey: Buffer, value: Buffer): void {
    this.addRange(ikey, 0, ikey.length, value, 0, value.length);
  }

  /**
   * add() of an entry whose internal key is `buf[keyStart, keyStart + keyLength)` and whose value
   * of `valueLength` bytes follows it directly (the layout of a flush's sorted export): no views
   * per entry, and one copy of key tail and value into the block.
   */
  addAdjacent(buf: Buffer, keyStart: number, keyLength: number, valueLength: number): void {
    const keyEnd = keyStart + keyLength;
    this.addRange(buf, keyStart, keyEnd, buf, keyEnd, keyEnd + valueLength);
  }

  private addRange(kb: Buffer, ks: number, ke: number, vb: Buffer, vs: number, ve: number): void {
    this.checkOpen();
    assert(ke - ks >= TRAILER_BYTES, 'table key shorter than an internal key trailer');
    // The previous key: the data block's last one, or (right after a block was cut) this.lastKey.
    const block = this.dataBlock;
    const prev = block.isEmpty() ? this.lastKey : block.lastKeyBuffer();
    const prevLength = block.isEmpty() ? this.lastKeyLength : block.lastKeyBytes();
    if (this.entryCount === 0) {
      this.smallest = copyOfRange(kb, ks, ke);
    } else {
      const c = compareInternalKeyRanges(prev, 0, prevLength, kb, ks, ke);
      assert(c < 0, 'table keys must be strictly increasing');
      if (this.pendingIndexEntry) this.addIndexEntry(ks === 0 && ke === kb.length ? kb : kb.subarray(ks, ke));
    }
    this.addToFilter(kb, ks, ke, prev, prevLength);
    block.addRange(kb, ks, ke, vb, vs, ve);
    this.countEntry(kb, ke, ke - ks, ve - vs);
    if (block.estimatedSizeBytes() >= this.blockSizeBytes) this.flushDataBlock();
  }

  /** Rough size of the file if finish() were called now (for cutting compaction outputs). */
  estimatedSizeBytes(): number {
    return (
      this.writtenBytes +
      this.stagedBytes +
      (this.dataBlock.isEmpty() ? 0 : this.dataBlock.estimatedSizeBytes() + BLOCK_TRAILER_BYTES) +
      this.indexBlock.estimatedSizeBytes() +
      this.bloom.estimatedSizeBytes() +
      FOOTER_BYTES
    );
  }

  /**
   * Writes the remaining data block, filter, meta and index blocks and the footer. Requires: the
   * builder is open and at least one entry was added. Does not fsync: the caller syncs the file
   * before recording it anywhere.
   */
  finish(): TableInfo {
    this.checkOpen();
    assert(this.entryCount > 0, 'finish() of an empty table');
    const smallest = this.smallest;
    assert(smallest !== null, 'smallest key missing');
    let largest: Buffer;
    try {
      if (!this.dataBlock.isEmpty()) this.flushDataBlock();
      // The last block's index key is its last key: no following key to separate from.
      if (this.pendingIndexEntry) this.addIndexEntryWithKey(this.lastKey, this.lastKeyLength);
      largest = Buffer.from(this.lastKey.subarray(0, this.lastKeyLength));
      const filter = this.stageBlock(this.bloom.finishShared());
      const meta = this.stageBlock(encodeProperties(this.properties(smallest, largest)));
      const index = this.stageBlock(this.indexBlock.finish());
      this.reserveStaging(FOOTER_BYTES);
      this.stagedBytes = putFooter(this.staging, this.stagedBytes, { filter, meta, index, version: this.formatVersion() });
      this.writeStaged();
    } catch (e) {
      this.fail(e);
    }
    this.state = 'finished';
    const info: TableInfo = {
      fileSizeBytes: this.writtenBytes,
      entryCount: this.entryCount,
      smallest: Buffer.from(smallest),
      largest,
      smallestSeq: this.smallestSeq,
      largestSeq: this.largestSeq,
    };
    assert(this.stagedBytes === 0, 'staged bytes left after finish');
    assert(this.file.size() === info.fileSizeBytes, 'table file has bytes not written by us');
    this.releaseBuffers();
    return info;
  }

  /** Hands the staging and index buffers to the next builder on this thread (writes are synchronous and copy). */
  private releaseBuffers(): void {
    giveSpare(spareStaging, this.staging);
    giveSpare(spareIndexBuffers, this.indexBlock.buffer());
    this.staging = EMPTY_STAGING;
  }

  /**
   * Stops building: nothing more is written. The caller closes and deletes the file. Idempotent;
   * allowed after a failed add() or finish(), not after a successful finish().
   */
  abandon(): void {
    assert(this.state !== 'finished', 'abandon() after finish()');
    if (this.state === 'abandoned') return;
    this.state = 'abandoned';
    this.stagedBytes = 0;
    this.releaseBuffers();
    this.bloom.release();
  }

  /** Version 2 only if needed: a table without compressed blocks is a plain version 1 table. */
  private formatVersion(): number {
    return this.compressedBlockCount > 0 ? TABLE_FORMAT_VERSION_2 : TABLE_FORMAT_VERSION_1;
  }

  private properties(smallest: Buffer, largest: Buffer): TableProperties {
    return {
      formatVersion: this.formatVersion(),
      entryCount: this.entryCount,
      rawKeyBytes: this.rawKeyBytes,
      rawValueBytes: this.rawValueBytes,
      dataBlockCount: this.dataBlockCount,
      deletionCount: this.deletionCount,
      smallestSeq: this.smallestSeq,
      largestSeq: this.largestSeq,
      smallest,
      largest,
      restartInterval: this.restartInterval,
      bloomBitsPerKey: this.bloomBitsPerKey,
    };
  }

  private checkOpen(): void {
    if (this.state === 'failed') throw this.failure;
    assert(this.state === 'open', `table builder is ${this.state}`);
  }

  /** An I/O error while writing fails the builder permanently with that error. */
  private fail(e: unknown): never {
    this.state = 'failed';
    this.failure = fromIoError(e, 'write', this.file.path);
    throw this.failure;
  }

  /**
   * Adds the user key of `kb[ks, ke)` to the filter unless it equals the user key of the previous
   * entry, `prev[0, prevLength)`.
   */
  private addToFilter(kb: Buffer, ks: number, ke: number, prev: Buffer, prevLength: number): void {
    const userLength = ke - ks - TRAILER_BYTES;
    if (this.entryCount > 0 && prevLength - TRAILER_BYTES === userLength) {
      // Same user key as the previous entry iff the internal keys differ only in the trailer.
      const c = compareUserKeyRanges(kb, ks, ks + userLength, prev, 0, userLength);
      if (c === 0) return;
    }
    this.bloom.addKey(kb, ks, ks + userLength);
  }

  /** Counts an entry whose internal key of `keyLength` bytes ends at `kb[keyEnd]`. */
  private countEntry(kb: Buffer, keyEnd: number, keyLength: number, valueLength: number): void {
    const trailer = trailerOf(kb, keyEnd);
    const seq = seqOfTrailer(trailer);
    if (seq < this.smallestSeq) this.smallestSeq = seq;
    if (seq > this.largestSeq) this.largestSeq = seq;
    if (kindOfTrailer(trailer) === KIND_DELETE) this.deletionCount++;
    this.entryCount++;
    this.rawKeyBytes += keyLength;
    this.rawValueBytes += valueLength;
  }

  /** Keeps the last key of the block being cut (the data block's own copy goes with its reset). */
  private rememberLastKey(key: Buffer, keyLength: number): void {
    if (this.lastKey.length < keyLength) {
      this.lastKey = Buffer.allocUnsafeSlow(Math.max(keyLength, this.lastKey.length * 2));
    }
    copyBytes(key, 0, keyLength, this.lastKey, 0);
    this.lastKeyLength = keyLength;
  }

  private flushDataBlock(): void {
    assert(!this.dataBlock.isEmpty(), 'flushing an empty data block');
    assert(!this.pendingIndexEntry, 'previous block still lacks its index entry');
    try {
      const block = this.dataBlock.finish();
      if (this.compress) this.stageDataBlockCompressed(block, this.pendingHandle);
      else this.stageBlock(block, this.pendingHandle);
    } catch (e) {
      this.fail(e);
    }
    this.rememberLastKey(this.dataBlock.lastKeyBuffer(), this.dataBlock.lastKeyBytes());
    this.dataBlock.reset();
    this.dataBlockCount++;
    this.pendingIndexEntry = true;
  }

  /** Indexes the pending block under a short key between its last key and `nextKey`. */
  private addIndexEntry(nextKey: Buffer): void {
    if (this.separator.length < this.lastKeyLength) {
      const bytes = Math.max(this.lastKeyLength, this.separator.length * 2);
      this.separator = Buffer.allocUnsafeSlow(bytes);
    }
    const sep = this.separator;
    const length = findShortestSeparator(this.lastKey, this.lastKeyLength, nextKey, sep);
    const lastVsSep = compareInternalKeyRanges(this.lastKey, 0, this.lastKeyLength, sep, 0, length);
    assert(lastVsSep <= 0, 'index separator below the last key of its block');
    const sepVsNext = compareInternalKeyRanges(sep, 0, length, nextKey, 0, nextKey.length);
    assert(sepVsNext < 0, 'index separator not below the first key of the next block');
    this.addIndexEntryWithKey(sep, length);
  }

  private addIndexEntryWithKey(key: Buffer, keyLength: number): void {
    assert(this.pendingIndexEntry, 'no pending index entry');
    const { offset, sizeBytes } = this.pendingHandle;
    const handleEnd = putBlockHandle(this.handleScratch, 0, offset, sizeBytes);
    this.indexBlock.add(key.subarray(0, keyLength), this.handleScratch.subarray(0, handleEnd));
    this.pendingIndexEntry = false;
  }

  /** Copies a finished block plus its trailer into the staging buffer; returns its handle. */
  private stageBlock(
    block: Buffer,
    handle: BlockHandle = { offset: 0, sizeBytes: 0 },
  ): BlockHandle {
    this.reserveStaging(block.length + BLOCK_TRAILER_BYTES);
    const start = this.stagedBytes;
    handle.offset = this.writtenBytes + start;
    handle.sizeBytes = block.length;
    copyBytes(block, 0, block.length, this.staging, start);
    this.stagedBytes = putBlockTrailer(this.staging, start, block.length, COMPRESSION_NONE);
    if (this.stagedBytes >= WRITE_BATCH_BYTES) this.writeStaged();
    return handle;
  }

  /**
   * Compresses a finished data block straight into the staging buffer, plus its trailer (type
   * LZ); if it does not shrink enough, stages it raw instead. Fills `handle` (stored size).
   */
  private stageDataBlockCompressed(block: Buffer, handle: BlockHandle): void {
    // The compressed form is never longer than the block (else it is stored raw): reserve that.
    this.reserveStaging(block.length + BLOCK_TRAILER_BYTES);
    const start = this.stagedBytes;
    const stored = compressBlock(block, 0, block.length, this.staging, start);
    if (stored < 0) {
      this.stageBlock(block, handle);
      return;
    }
    handle.offset = this.writtenBytes + start;
    handle.sizeBytes = stored;
    this.stagedBytes = putBlockTrailer(this.staging, start, stored, COMPRESSION_LZ);
    this.compressedBlockCount++;
    if (this.stagedBytes >= WRITE_BATCH_BYTES) this.writeStaged();
  }

  /** Makes room for `bytes` more staged bytes, writing out what is staged if needed. */
  private reserveStaging(bytes: number): void {
    if (this.stagedBytes + bytes <= this.staging.length) return;
    this.writeStaged();
    if (bytes > this.staging.length) this.staging = Buffer.allocUnsafeSlow(bytes);
  }

  private writeStaged(): void {
    if (this.stagedBytes === 0) return;
    this.file.write(this.staging, 0, this.stagedBytes, this.writtenBytes);
    this.writtenBytes += this.stagedBytes;
    this.stagedBytes = 0;
  }
}
