/**
 * Builds one block (data or index) of an SSTable: entries sorted by internal key, each key stored
 * as (bytes shared with the previous key, the rest), plus a restart array so a reader can binary
 * search.
 * Byte layout: docs/formats/sstable.md#block-format (frozen).
 *
 *   entry    = varint(shared) varint(unshared) varint(valueLen) keyDelta[unshared] value[valueLen]
 *   block    = entry* fixed32(restart[0]) ... fixed32(restart[n-1]) fixed32(n)
 *
 * Every `restartInterval` entries the key is stored whole (shared = 0) and its offset is recorded
 * as a restart point. The builder owns one growable buffer and one last-key buffer; nothing is
 * allocated per entry once they have grown to the working size.
 */
import { assert, invariants } from '../util/assert.js';
import { putVarint } from '../util/coding.js';
import { TRAILER_BYTES } from '../base/internal-key.js';
import { copyBytes, copyWithViews, viewCopyPays } from '../util/copy-bytes.js';
import { viewOf } from '../base/key-probe.js';
import { compareInternalKeyRanges } from '../base/internal-key.js';

/** Entries between restart points in data blocks: a seek scans at most this many entries. */
export const RESTART_INTERVAL_DEFAULT = 16;
/** Upper bound on the restart interval: beyond this, seeks degrade to long linear scans. */
export const RESTART_INTERVAL_MAX = 1024;
/** Three varints of at most 5 bytes each (lengths are < 2^32). */
const ENTRY_HEADER_BYTES_MAX = 15;
const RESTART_BYTES = 4;

export class BlockBuilder {
  private buf: Buffer;
  /** `buf` as a DataView, for copyWithViews (kept in step when buf grows). */
  private bufView: DataView;
  /** The buffer entries were last added from (a flush's memtable arena) and its view. */
  private lastSource: Buffer | null = null;
  private lastSourceView: DataView = new DataView(new ArrayBuffer(0));
  /** Bytes of entries written so far (the restart array is appended by finish()). */
  private sizeBytes = 0;
  private restarts: Uint32Array;
  private restartCount = 1;
  /** Entries written since the last restart point. */
  private sinceRestart = 0;
  private entryCount = 0;
  private lastKey: Buffer;
  private lastKeyLength = 0;
  private finished = false;

  /** `buffer`: a spare buffer to start in (taken over) instead of allocating one. */
  constructor(
    readonly restartInterval: number = RESTART_INTERVAL_DEFAULT,
    initialCapacityBytes = 4096,
    buffer: Buffer | null = null,
  ) {
    assert(Number.isInteger(restartInterval), 'restart interval must be an integer');
    assert(restartInterval >= 1, 'restart interval must be at least 1');
    assert(restartInterval <= RESTART_INTERVAL_MAX, 'restart interval above maximum');
    assert(initialCapacityBytes > 0, 'initial capacity must be positive');
    this.buf = buffer !== null && buffer.length >= initialCapacityBytes ? buffer : Buffer.allocUnsafeSlow(initialCapacityBytes);
    this.bufView = viewOf(this.buf);
    this.restarts = new Uint32Array(64);
    this.restarts[0] = 0;
    this.lastKey = Buffer.allocUnsafeSlow(256);
  }

  /** Clears the builder for the next block; keeps the grown buffers. */
  reset(): void {
    this.sizeBytes = 0;
    this.restartCount = 1;
    this.restarts[0] = 0;
    this.sinceRestart = 0;
    this.entryCount = 0;
    this.lastKeyLength = 0;
    this.finished = false;
  }

  isEmpty(): boolean {
    return this.entryCount === 0;
  }

  entries(): number {
    return this.entryCount;
  }

  /** Size of the block if finish() were called now. */
  estimatedSizeBytes(): number {
    return this.sizeBytes + this.restartCount * RESTART_BYTES + RESTART_BYTES;
  }

  /**
   * Appends an entry. Requires: not finished; `key` is an internal key greater than every key added
   * since the last reset().
   */
  add(key: Buffer, value: Buffer): void {
    this.addRange(key, 0, key.length, value, 0, value.length);
  }

  /**
   * add() of the key `kb[ks, ke)` and the value `vb[vs, ve)`, without views of them. When the value
   * directly follows the key in the same buffer (a flush's sorted export), the key's unshared tail
   * and the value are copied with one call.
   */
  addRange(kb: Buffer, ks: number, ke: number, vb: Buffer, vs: number, ve: number): void {
    assert(!this.finished, 'add after finish');
    const keyLength = ke - ks;
    assert(keyLength >= TRAILER_BYTES, 'block key shorter than an internal key trailer');
    if (invariants.enabled && this.entryCount > 0) {
      const c = compareInternalKeyRanges(this.lastKey, 0, this.lastKeyLength, kb, ks, ke);
      assert(c < 0, 'block keys must be strictly increasing');
    }
    let shared = 0;
    if (this.sinceRestart < this.restartInterval) {
      const limit = Math.min(this.lastKeyLength, keyLength);
      const last = this.lastKey;
      while (shared < limit && last[shared] === kb[ks + shared]) shared++;
    } else {
      this.addRestart();
    }
    const unshared = keyLength - shared;
    const valueLength = ve - vs;
    this.ensureCapacity(ENTRY_HEADER_BYTES_MAX + unshared + valueLength);
    let off = this.sizeBytes;
    off = putVarint(this.buf, off, shared);
    off = putVarint(this.buf, off, unshared);
    off = putVarint(this.buf, off, valueLength);
    if (vb === kb && vs === ke) {
      // Key tail and value in one copy; 33-256 bytes go four at a time through DataViews (a
      // flush's ~110-byte entries: ~50 instead of ~120 ns each).
      const n = ve - ks - shared;
      if (viewCopyPays(n)) {
        copyWithViews(this.sourceView(kb), ks + shared, this.bufView, off, n);
        off += n;
      } else {
        off += copyBytes(kb, ks + shared, ve, this.buf, off);
      }
    } else {
      off += copyBytes(kb, ks + shared, ke, this.buf, off);
      off += copyBytes(vb, vs, ve, this.buf, off);
    }
    this.sizeBytes = off;
    this.rememberLastKey(kb, ks, ke, shared);
    this.sinceRestart++;
    this.entryCount++;
  }

  /** The last key added since reset(): `lastKeyBuffer()[0, lastKeyBytes())`. Valid until the next add. */
  lastKeyBuffer(): Buffer {
    return this.lastKey;
  }

  lastKeyBytes(): number {
    return this.lastKeyLength;
  }

  /**
   * Appends the restart array and returns the block bytes. The returned view stays valid until the
   * next reset() or add(). Requires: not already finished.
   */
  finish(): Buffer {
    assert(!this.finished, 'finish called twice');
    this.ensureCapacity(this.restartCount * RESTART_BYTES + RESTART_BYTES);
    let off = this.sizeBytes;
    for (let i = 0; i < this.restartCount; i++) {
      off = this.buf.writeUInt32LE(this.restarts[i] as number, off);
    }
    off = this.buf.writeUInt32LE(this.restartCount, off);
    this.finished = true;
    assert(off === this.estimatedSizeBytes(), 'block size accounting is off');
    return this.buf.subarray(0, off);
  }

  /** The (grown) block buffer, for another builder to reuse. Requires: this builder is done with. */
  buffer(): Buffer {
    return this.buf;
  }

  private addRestart(): void {
    if (this.restartCount === this.restarts.length) {
      const grown = new Uint32Array(this.restarts.length * 2);
      grown.set(this.restarts);
      this.restarts = grown;
    }
    this.restarts[this.restartCount++] = this.sizeBytes;
    this.sinceRestart = 0;
  }

  private rememberLastKey(kb: Buffer, ks: number, ke: number, shared: number): void {
    const keyLength = ke - ks;
    if (this.lastKey.length < keyLength) {
      const grown = Buffer.allocUnsafeSlow(Math.max(keyLength, this.lastKey.length * 2));
      this.lastKey.copy(grown, 0, 0, shared);
      this.lastKey = grown;
    }
    // The first `shared` bytes are already equal; copy only the tail.
    copyBytes(kb, ks + shared, ke, this.lastKey, shared);
    this.lastKeyLength = keyLength;
  }

  private ensureCapacity(extraBytes: number): void {
    const need = this.sizeBytes + extraBytes;
    if (need <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.sizeBytes);
    this.buf = grown;
    this.bufView = viewOf(grown);
  }

  /** A DataView of `b`, made once per source buffer. */
  private sourceView(b: Buffer): DataView {
    if (b !== this.lastSource) {
      this.lastSource = b;
      this.lastSourceView = viewOf(b);
    }
    return this.lastSourceView;
  }
}
