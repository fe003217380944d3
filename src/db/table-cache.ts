/**
 * Open SSTable readers, at most `maxOpenFiles` at once (LRU). A reader handed out is reference
 * counted: eviction closes a reader only once no iterator or lookup still holds it, so a table is
 * never closed under a reader's feet.
 */
import { fromIoError } from '../base/errors.js';
import { joinPath, type FileSystem } from '../env/file-system.js';
import { tableFileName } from '../base/file-names.js';
import { assert } from '../util/assert.js';
import { TableReader } from '../sstable/table-reader.js';
import type { BlockCache } from '../sstable/block-cache.js';
import type { FileMetadata } from '../version/file-metadata.js';

class CachedTable {
  refs = 1; // the cache's own reference
  evicted = false;
  /** Logical time of the last acquire: eviction takes the least recent (rare: only on opens). */
  lastUse = 0;
  constructor(readonly reader: TableReader) {}
}

export class TableCache {
  private readonly open = new Map<number, CachedTable>();
  private clock = 0;
  /** Every reader not yet closed, including evicted ones still in use. */
  private readonly byReader = new Map<TableReader, CachedTable>();
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly blockCache: BlockCache | null;
  private readonly capacity: number;
  opens = 0;

  constructor(fs: FileSystem, dir: string, blockCache: BlockCache | null, maxOpenFiles: number) {
    assert(maxOpenFiles > 0, 'maxOpenFiles must be positive');
    this.fs = fs;
    this.dir = dir;
    this.blockCache = blockCache;
    this.capacity = maxOpenFiles;
  }

  get openCount(): number {
    return this.open.size;
  }

  /** A reader for `meta`, opened if needed. Requires: pair with release(). Throws LightningError. */
  acquire(meta: FileMetadata): TableReader {
    let t = this.open.get(meta.number);
    if (t === undefined) {
      t = new CachedTable(this.openTable(meta));
      t.lastUse = ++this.clock; // the newest: never the one evicted to make room for itself
      this.open.set(meta.number, t);
      this.byReader.set(t.reader, t);
      this.evictOverflow();
      assert(this.open.get(meta.number) === t, 'a table was evicted as it opened');
    } else {
      t.lastUse = ++this.clock;
    }
    t.refs++;
    return t.reader;
  }

  /**
   * A reader for `meta` for immediate, synchronous use, without a reference: valid only until the
   * next call into this cache (which may evict and close it). Point reads use it — they finish
   * before anything else can touch the cache — and skip the acquire/release bookkeeping.
   */
  peek(meta: FileMetadata): TableReader {
    const t = this.open.get(meta.number);
    if (t !== undefined) {
      t.lastUse = ++this.clock;
      return t.reader;
    }
    const reader = this.acquire(meta);
    this.release(reader); // the cache's own reference keeps it open
    return reader;
  }

  release(reader: TableReader): void {
    const t = this.byReader.get(reader);
    assert(t !== undefined, 'release of a reader the cache does not know');
    this.unref(t);
  }

  /** Drops a table from the cache (file about to be deleted). */
  evict(fileNumber: number): void {
    // Its blocks go too when its reader was closed meanwhile (maxOpenFiles): they would only wait
    // in the cache to age out. A file with none cached costs one lookup.
    this.blockCache?.evictFile(fileNumber);
    const t = this.open.get(fileNumber);
    if (t === undefined) return;
    this.open.delete(fileNumber);
    t.evicted = true;
    this.unref(t);
  }

  /** Closes every reader not in use and forgets the rest (closed when released). */
  closeAll(): void {
    for (const n of [...this.open.keys()]) this.evict(n);
  }

  private openTable(meta: FileMetadata): TableReader {
    const path = joinPath(this.dir, tableFileName(meta.number));
    let file;
    try {
      file = this.fs.open(path, 'r');
    } catch (e) {
      throw fromIoError(e, 'open', path);
    }
    try {
      const reader = TableReader.open(file, meta.number, meta.sizeBytes, this.blockCache);
      this.opens++;
      return reader;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Closes least recently used tables beyond the capacity (a scan: runs only when opening). */
  private evictOverflow(): void {
    while (this.open.size > this.capacity) {
      let n = -1;
      let oldest = Infinity;
      for (const [number, c] of this.open) {
        if (c.lastUse < oldest) {
          oldest = c.lastUse;
          n = number;
        }
      }
      const t = this.open.get(n) as CachedTable;
      this.open.delete(n);
      t.evicted = true;
      this.unref(t);
    }
  }

  private unref(t: CachedTable): void {
    t.refs--;
    assert(t.refs >= 0, 'table reference count went negative');
    if (t.refs === 0) {
      this.byReader.delete(t.reader);
      t.reader.close();
    }
  }
}
