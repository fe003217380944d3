/**
 * Reads one SSTable written by TableBuilder (format: docs/formats/sstable.md).
 *
 * open() reads and checks the footer, then loads the filter, meta and index blocks into memory
 * (each CRC-checked) and cross-checks the index against the meta block. Data blocks are read on
 * demand with positioned reads, CRC-checked on every read from disk, decompressed if they are
 * stored compressed (format version 2), and kept — uncompressed — in the shared BlockCache when
 * one is given. All reads are synchronous (see env/file-system.ts).
 *
 * Point lookups: the DB calls mayContainHash(bloomHash(userKey)) and then find(makeInternalKey(
 * userKey, snapshotSeq, KIND_SEEK), search), and checks that the key found has the same user key.
 * find() searches the block in place (block-point-search.ts): a lookup allocates no iterator, key,
 * view or result object.
 */
import { assert } from '../util/assert.js';
import { corruption, fromIoError } from '../base/errors.js';
import { TRAILER_BYTES } from '../base/internal-key.js';
import type { FileHandle } from '../env/file-system.js';
import type { InternalIterator } from '../iter/internal-iterator.js';
import type { BlockCache } from './block-cache.js';
import { BlockPointSearch } from './block-point-search.js';
import { BLOCK_TRAILER_BYTES, checkBlockTrailer, COMPRESSION_NONE } from './block-trailer.js';
import { mayContain, mayContainHash } from './bloom-filter.js';
import { decodeFooter, FOOTER_BYTES, TABLE_FORMAT_VERSION_1, type Footer } from './footer.js';
import { decompressBlock, lzErrorMessage, LzPrefixDecoder, lzUncompressedLength } from './lz-codec.js';
import { decodeProperties, type TableProperties } from './properties.js';
import { TableIterator, type TableBlockSource } from './table-iterator.js';
import { IndexArray } from './index-array.js';
import type { Readahead } from './readahead.js';

/** An entry found by a point lookup. Both are views; see TableReader.seekGE for lifetimes. */
export interface TableEntry {
  key: Buffer;
  value: Buffer;
}

/** The filter of a reader opened for scans only: empty, so every key may be present. */
const NO_FILTER = Buffer.alloc(0);

/** The search behind seekGE (lookups are synchronous and never re-enter; one per thread). */
const sharedSearch = new BlockPointSearch();

export class TableReader implements TableBlockSource {
  readonly path: string;
  readonly fileNumber: number;
  readonly fileSizeBytes: number;
  readonly indexBlock: Buffer;
  readonly indexOffset: number;
  /** Table format version (footer): 1 = every block raw; 2 = data blocks may be compressed. */
  readonly formatVersion: number;
  private readonly file: FileHandle;
  private readonly cache: BlockCache | null;
  private readonly filter: Buffer;
  private readonly props: TableProperties;
  /** Data blocks lie in [0, dataEndOffset): the filter block starts there. */
  private readonly dataEndOffset: number;
  /**
   * The index decoded for point lookups (the index block itself serves iterators); null in a
   * reader opened for scans only.
   */
  private readonly indexArray: IndexArray | null;
  private closed = false;

  private constructor(
    file: FileHandle,
    fileNumber: number,
    fileSizeBytes: number,
    cache: BlockCache | null,
    footer: Footer,
    blocks: { filter: Buffer; index: Buffer; props: TableProperties; indexArray: IndexArray | null },
  ) {
    this.file = file;
    this.path = file.path;
    this.fileNumber = fileNumber;
    this.fileSizeBytes = fileSizeBytes;
    this.cache = cache;
    this.filter = blocks.filter;
    this.props = blocks.props;
    this.indexBlock = blocks.index;
    this.indexOffset = footer.index.offset;
    this.formatVersion = footer.version;
    this.dataEndOffset = footer.filter.offset;
    this.indexArray = blocks.indexArray;
  }

  /**
   * Opens the table in `file`, whose size the caller knows (from the manifest). Throws CORRUPTION
   * (naming the file and offset) if the footer, filter, meta or index block is bad or the file is
   * shorter than `fileSizeBytes`, IO_ERROR if a read fails. On success the reader owns `file` and
   * closes it in close(); on failure the caller still owns it.
   *
   * `scanOnly` (compaction inputs, read once from start to end by an iterator) skips what only
   * point lookups use: the filter block is not read (mayContain answers true; a damaged filter goes
   * unnoticed, and a merge writes a fresh one) and the index is checked as decode() would check it
   * but not decoded for find() (which must not be called). A merge opening a dozen inputs saves
   * ~0.5 MiB of buffers per 8 MiB input that became garbage when it ended.
   */
  static open(
    file: FileHandle,
    fileNumber: number,
    fileSizeBytes: number,
    cache: BlockCache | null,
    scanOnly = false,
  ): TableReader {
    assert(Number.isSafeInteger(fileNumber) && fileNumber >= 0, 'bad file number');
    assert(Number.isSafeInteger(fileSizeBytes) && fileSizeBytes >= 0, 'bad file size');
    if (fileSizeBytes < FOOTER_BYTES) {
      throw corruption(file.path, 0, 'file too small to be an SSTable');
    }
    const footerOffset = fileSizeBytes - FOOTER_BYTES;
    const footerBuf = Buffer.allocUnsafe(FOOTER_BYTES);
    readFully(file, footerBuf, FOOTER_BYTES, footerOffset, 'footer');
    const footer = decodeFooter(footerBuf, file.path, footerOffset);
    const filter = scanOnly ? NO_FILTER : readVerifiedBlock(file, footer.filter.offset, footer.filter.sizeBytes);
    const meta = readVerifiedBlock(file, footer.meta.offset, footer.meta.sizeBytes);
    const props = decodeProperties(meta, file.path, footer.meta.offset);
    const index = readVerifiedBlock(file, footer.index.offset, footer.index.sizeBytes);
    checkProperties(props, footer.version, file.path, footer.meta.offset);
    let indexArray: IndexArray | null = null;
    if (scanOnly) IndexArray.check(index, file.path, footer.index.offset, footer.filter.offset, props.dataBlockCount);
    else indexArray = IndexArray.decode(index, file.path, footer.index.offset, footer.filter.offset, props.dataBlockCount);
    const blocks = { filter, index, props, indexArray };
    return new TableReader(file, fileNumber, fileSizeBytes, cache, footer, blocks);
  }

  /** False only if no entry of the table has this user key (bloom filter; true without one). */
  mayContain(userKey: Buffer): boolean {
    assert(!this.closed, 'table reader used after close');
    return mayContain(this.filter, userKey);
  }

  /** mayContain for a user key whose `bloomHash` is `hash`. */
  mayContainHash(hash: number): boolean {
    assert(!this.closed, 'table reader used after close');
    return mayContainHash(this.filter, hash);
  }

  /**
   * Point search for the first entry with internal key >= seekKey: returns the (uncompressed) block
   * holding it, with the entry's key and value position in `search`, or null if there is none.
   * The block is valid until the next block read through any table or the block cache (see
   * readDataBlock). `seekKey` must not be a view of search.keyBuffer.
   */
  find(seekKey: Buffer, search: BlockPointSearch): Buffer | null {
    assert(!this.closed, 'table reader used after close');
    assert(seekKey.length >= TRAILER_BYTES, 'seek key must be an internal key');
    const index = this.indexArray;
    assert(index !== null, 'find() on a table reader opened for scans only');
    // The first block whose separator is >= seekKey holds the answer, unless every key in it is
    // below seekKey (separators may exceed a block's last key): then it is the next block's first.
    for (let i = index.findGE(seekKey); i < index.count; i++) {
      const block = this.findInBlock(index.blockOffsets[i] as number, index.blockSizes[i] as number, seekKey, search);
      if (block !== null) return block;
    }
    return null;
  }

  /**
   * find() in one data block: returns the block if it holds an entry >= seekKey. A compressed
   * block read from the file that the cache would not admit (most misses of random reads over data
   * larger than the cache) is decoded only up to the entry found: half of it, on average.
   */
  private findInBlock(offset: number, sizeBytes: number, seekKey: Buffer, search: BlockPointSearch): Buffer | null {
    const cache = this.cache;
    let block = cache !== null ? cache.get(this.fileNumber, offset) : undefined;
    if (block === undefined) {
      this.checkDataHandle(offset, sizeBytes);
      const raw = readCheckedDataBlock(this.file, offset, sizeBytes);
      if (readType === COMPRESSION_NONE || this.formatVersion === TABLE_FORMAT_VERSION_1) {
        block = uncompressedDataBlock(raw, 0, sizeBytes, readType, this.path, offset, this.formatVersion > TABLE_FORMAT_VERSION_1);
      } else {
        const length = prefixDecoder.begin(raw, 0, sizeBytes);
        if (length >= 0 && length <= SHARED_READ_BYTES_MAX && (cache === null || !cache.admits(this.fileNumber, offset, length))) {
          const out = sharedOutput(length);
          try {
            prefixDecoder.into(out, 0);
            return search.seekGEInPrefix(prefixDecoder, out, seekKey, this.path, offset) ? out : null;
          } finally {
            prefixDecoder.clear(); // a large block's own read buffer must not stay reachable
          }
        }
        prefixDecoder.clear();
        block = decompressDataBlock(raw, 0, sizeBytes, this.path, offset);
      }
      if (cache !== null) block = cache.insert(this.fileNumber, offset, block);
    }
    return search.seekGE(block, seekKey, this.path, offset) ? block : null;
  }

  /**
   * find() with views: returns false if there is no entry >= seekKey; otherwise fills `out` with
   * views of its key and value, valid until the next block read through any table or the block
   * cache and the next seekGE on any reader: copy what you keep.
   */
  seekGE(seekKey: Buffer, out: TableEntry): boolean {
    const search = sharedSearch;
    // A caller may seek to a key it got from here: the search would overwrite it mid-compare.
    if (seekKey.buffer === search.keyBuffer.buffer) seekKey = Buffer.from(seekKey);
    const block = this.find(seekKey, search);
    if (block === null) return false;
    out.key = search.keyBuffer.subarray(0, search.keyLength);
    out.value = block.subarray(search.valueStart, search.valueEnd);
    return true;
  }

  /** Allocating convenience over seekGE: a fresh result with copies of the key and value. */
  get(seekKey: Buffer): TableEntry | undefined {
    const out: TableEntry = { key: seekKey, value: seekKey };
    if (!this.seekGE(seekKey, out)) return undefined;
    return { key: Buffer.from(out.key), value: Buffer.from(out.value) };
  }

  /**
   * A new two-level iterator over the whole table; close it before closing the reader. `useCache`
   * false bypasses the block cache (for compaction inputs, read once).
   */
  iterator(useCache = true): InternalIterator {
    assert(!this.closed, 'table reader used after close');
    return new TableIterator(this, useCache);
  }

  /** The table's meta block (entry counts, key range, sequence range, ...). Do not modify. */
  properties(): Readonly<TableProperties> {
    return this.props;
  }

  /**
   * A verified data block from the cache, or read from the file (and then cached). The result is
   * a view that is only valid until the next block read through any table or the block cache:
   * use it at once or copy it (TableIterator copies it into a buffer of its own). Throws
   * CORRUPTION if the handle points outside the data area, the read is short, the CRC is wrong, or
   * a compressed block does not decompress to exactly the length it states. Callers always get
   * the uncompressed block; the cache holds uncompressed blocks.
   *
   * A sequential reader passes its `readahead`: blocks then come out of its window when it holds
   * them, and a run of consecutive reads fetches the following blocks in one read (readahead.ts).
   * Only a run's first blocks from windows are added to the cache (a long scan would flush the
   * hot set).
   */
  readDataBlock(offset: number, sizeBytes: number, useCache = true, readahead: Readahead | null = null): Buffer {
    assert(!this.closed, 'table reader used after close');
    const total = sizeBytes + BLOCK_TRAILER_BYTES;
    this.checkDataHandle(offset, sizeBytes);
    const cache = useCache ? this.cache : null;
    if (cache !== null) {
      const cached = cache.get(this.fileNumber, offset);
      if (cached !== undefined) {
        readahead?.passed(offset, total);
        return cached;
      }
    }
    const compressedAllowed = this.formatVersion > TABLE_FORMAT_VERSION_1;
    let block: Buffer;
    if (readahead === null) {
      block = readVerifiedDataBlock(this.file, offset, sizeBytes, compressedAllowed);
    } else {
      let at = readahead.find(offset, total);
      if (at >= 0) {
        readahead.passed(offset, total);
      } else {
        const windowBytes = readahead.plan(offset, total, this.dataEndOffset - offset);
        if (windowBytes > 0) {
          const buf = readahead.prepare(offset, windowBytes);
          readFully(this.file, buf, windowBytes, offset, 'block');
          readahead.filled(windowBytes);
          at = 0;
        }
      }
      if (at >= 0) {
        block = verifiedDataBlock(readahead.buffer as Buffer, at, sizeBytes, this.path, offset, compressedAllowed);
        // Past its first blocks a sequential run is not cached: a long scan neither evicts the
        // blocks point reads keep hot nor pays the insert and eviction work per block.
        if (!readahead.takeBlock()) return block;
      } else {
        block = readVerifiedDataBlock(this.file, offset, sizeBytes, compressedAllowed);
      }
    }
    return cache !== null ? cache.insert(this.fileNumber, offset, block) : block;
  }

  /** Throws CORRUPTION unless the data block (and trailer) at offset lies in the data area. */
  private checkDataHandle(offset: number, sizeBytes: number): void {
    if (offset + sizeBytes + BLOCK_TRAILER_BYTES > this.dataEndOffset) {
      throw corruption(this.path, this.indexOffset, 'data block handle out of range');
    }
  }

  /** Closes the file. Cached blocks stay (they are still valid); the DB evicts them on delete. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }
}

/** Reads exactly `length` bytes at `position` into buf; a short read is CORRUPTION. */
function readFully(
  file: FileHandle,
  buf: Buffer,
  length: number,
  position: number,
  what: string,
): void {
  let n: number;
  try {
    n = file.read(buf, 0, length, position);
  } catch (e) {
    throw fromIoError(e, 'read', file.path);
  }
  if (n < length) throw corruption(file.path, position, `${what} truncated (short read)`);
}

/**
 * Blocks up to this size (stored, and uncompressed) go through the shared buffers below; larger
 * ones get buffers of their own.
 */
const SHARED_READ_BYTES_MAX = 256 * 1024;
/** The shared read buffer (reads are synchronous and never re-enter; one per thread). */
let sharedRead = Buffer.allocUnsafeSlow(16 * 1024);
/** The shared buffer compressed blocks are decompressed into (same rules as sharedRead). */
let sharedUncompressed = Buffer.allocUnsafeSlow(16 * 1024);

/** Trailer type of the block readCheckedDataBlock read last. */
let readType = COMPRESSION_NONE;

/**
 * Reads a data block and its trailer into the shared read buffer (unless the block is large) and
 * checks the trailer (CRC); returns the buffer, the block at its start, its type in `readType`.
 * The buffer is valid until the next call.
 */
function readCheckedDataBlock(file: FileHandle, offset: number, sizeBytes: number): Buffer {
  const total = sizeBytes + BLOCK_TRAILER_BYTES;
  let buf: Buffer;
  if (total > SHARED_READ_BYTES_MAX) {
    buf = Buffer.allocUnsafeSlow(total);
  } else {
    if (total > sharedRead.length) sharedRead = Buffer.allocUnsafeSlow(Math.min(SHARED_READ_BYTES_MAX, Math.max(total, 2 * sharedRead.length)));
    buf = sharedRead;
  }
  readFully(file, buf, total, offset, 'block');
  readType = checkBlockTrailer(buf, 0, sizeBytes, file.path, offset);
  return buf;
}

/**
 * Reads a data block and its trailer and returns it verified and uncompressed (verifiedDataBlock):
 * a view valid until the next call.
 */
function readVerifiedDataBlock(file: FileHandle, offset: number, sizeBytes: number, compressedAllowed: boolean): Buffer {
  const buf = readCheckedDataBlock(file, offset, sizeBytes);
  return uncompressedDataBlock(buf, 0, sizeBytes, readType, file.path, offset, compressedAllowed);
}

/**
 * Checks the trailer of the data block stored at `buf[start, start + sizeBytes)` (read from `path`
 * at `offset`) and returns it uncompressed (uncompressedDataBlock).
 */
function verifiedDataBlock(buf: Buffer, start: number, sizeBytes: number, path: string, offset: number, compressedAllowed: boolean): Buffer {
  const type = checkBlockTrailer(buf, start, sizeBytes, path, offset);
  return uncompressedDataBlock(buf, start, sizeBytes, type, path, offset, compressedAllowed);
}

/**
 * The checked data block at `buf[start, start + sizeBytes)`, of trailer type `type`: a view of it,
 * or, if it is stored compressed and `compressedAllowed` (format version 2), its decompressed
 * bytes (in the shared output buffer unless large). Valid until the next call or until `buf` is
 * reused.
 */
function uncompressedDataBlock(buf: Buffer, start: number, sizeBytes: number, type: number, path: string, offset: number, compressedAllowed: boolean): Buffer {
  if (type === COMPRESSION_NONE) return buf.subarray(start, start + sizeBytes);
  if (!compressedAllowed) {
    throw corruption(path, offset + sizeBytes, `compression type ${type} in a version 1 table`);
  }
  return decompressDataBlock(buf, start, sizeBytes, path, offset);
}

/**
 * Decompresses the LZ block in `buf[start, start + sizeBytes)`, read from `path` at `offset`.
 * Throws CORRUPTION unless it decodes to exactly the length it states. The stated length is
 * bounded (lzUncompressedLength), so a bad block cannot make this allocate without limit.
 */
function decompressDataBlock(buf: Buffer, start: number, sizeBytes: number, path: string, offset: number): Buffer {
  const end = start + sizeBytes;
  const length = lzUncompressedLength(buf, start, end);
  if (length < 0) throw corruption(path, offset, lzErrorMessage(length));
  const out = length > SHARED_READ_BYTES_MAX ? Buffer.allocUnsafeSlow(length) : sharedOutput(length);
  // Whole buffers, not subarrays: the codec caches a DataView per buffer object.
  const r = decompressBlock(buf, start, end, out, 0, length);
  if (r < 0) throw corruption(path, offset, lzErrorMessage(r));
  return out.subarray(0, length);
}

/** The shared output buffer, grown to hold `length` (at most SHARED_READ_BYTES_MAX) bytes. */
function sharedOutput(length: number): Buffer {
  if (length > sharedUncompressed.length) {
    sharedUncompressed = Buffer.allocUnsafeSlow(Math.min(SHARED_READ_BYTES_MAX, Math.max(length, 2 * sharedUncompressed.length)));
  }
  return sharedUncompressed;
}

/** Decodes the compressed blocks point lookups search part way (see TableReader.findInBlock). */
const prefixDecoder = new LzPrefixDecoder();

/**
 * Reads a filter, meta or index block and its trailer into a buffer of its own and checks the
 * trailer (these blocks are never compressed). Returns the block bytes without the trailer.
 */
function readVerifiedBlock(file: FileHandle, offset: number, sizeBytes: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(sizeBytes + BLOCK_TRAILER_BYTES);
  readFully(file, buf, buf.length, offset, 'block');
  const type = checkBlockTrailer(buf, 0, sizeBytes, file.path, offset);
  if (type !== COMPRESSION_NONE) {
    throw corruption(file.path, offset + sizeBytes, `compression type ${type} on a filter, meta or index block`);
  }
  return buf.subarray(0, sizeBytes);
}

function checkProperties(props: TableProperties, footerVersion: number, path: string, metaOffset: number): void {
  if (props.formatVersion !== footerVersion) {
    const what = `meta block format version ${props.formatVersion} disagrees with the footer`;
    throw corruption(path, metaOffset, what);
  }
  if (props.entryCount === 0 || props.dataBlockCount === 0) {
    throw corruption(path, metaOffset, 'meta block says the table is empty');
  }
  if (props.smallestSeq > props.largestSeq) {
    throw corruption(path, metaOffset, 'meta block sequence range is inverted');
  }
}

