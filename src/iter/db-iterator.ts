/**
 * The user-visible view over an internal iterator: for a snapshot sequence number it yields each
 * user key once, with its newest visible value, hides tombstones and newer writes, and applies the
 * range bounds, direction and limit. Keys and values it returns are copies the caller owns.
 */
import { assert } from '../util/assert.js';
import {
  KIND_DELETE,
  TRAILER_BYTES,
  compareUserKeyOf,
  kindOfTrailer,
  makeInternalKey,
  seqOfTrailer,
  trailerOf,
} from '../base/internal-key.js';
import type { InternalIterator } from './internal-iterator.js';
import { copyBytes, copyOfRange } from '../util/copy-bytes.js';

export interface UserRange {
  /** Inclusive lower bound (user key), or undefined. */
  lower: Buffer | undefined;
  lowerExclusive: boolean;
  /** Upper bound (user key), or undefined. */
  upper: Buffer | undefined;
  upperExclusive: boolean;
  reverse: boolean;
  /** Maximum entries to yield; Infinity for no limit. */
  limit: number;
}

/**
 * True if a[0, n) equals b[0, n). Compares from the end: neighbouring keys in a scan usually share
 * a long prefix and differ near the end, so a mismatch is found in a byte or two.
 */
function sameBytesFromEnd(a: Buffer, b: Buffer, n: number): boolean {
  for (let i = n - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}

function userKeyCompare(ikey: Buffer, userKey: Buffer): number {
  return compareUserKeyOf(ikey, userKey);
}

export class DbIterator {
  private readonly iter: InternalIterator;
  private readonly seq: number;
  private readonly range: UserRange;
  private started = false;
  private done = false;
  private emitted = 0;
  /** Forward iteration has reached the lower bound (see findNext). */
  private pastLower = false;
  /** findNext skips older versions of skipKey[0, skipLength); -1: no key yet. */
  private skipKey: Buffer = Buffer.allocUnsafe(32);
  private skipLength = -1;
  /** Output of the last successful step. */
  key: Buffer = Buffer.alloc(0);
  value: Buffer = Buffer.alloc(0);

  constructor(iter: InternalIterator, seq: number, range: UserRange) {
    this.iter = iter;
    this.seq = seq;
    this.range = range;
  }

  /** Advances to the next entry; false at the end. Throws LightningError on I/O or corruption. */
  step(): boolean {
    if (this.done) return false;
    if (this.emitted >= this.range.limit) return this.finish();
    if (!this.started) {
      this.started = true;
      this.seekStart();
    }
    const ok = this.range.reverse ? this.findPrev() : this.findNext();
    if (!ok) return this.finish();
    this.emitted++;
    return true;
  }

  close(): void {
    this.done = true;
    this.iter.close();
  }

  private finish(): false {
    this.close();
    return false;
  }

  private seekStart(): void {
    const { lower, upper, reverse } = this.range;
    if (!reverse) {
      if (lower === undefined) this.iter.first();
      else this.iter.seekGE(makeInternalKey(lower, this.seq, 1));
    } else {
      // (upper, seq 0, DELETE) sorts after every version of `upper`.
      if (upper === undefined) this.iter.last();
      else this.iter.seekLE(makeInternalKey(upper, 0, KIND_DELETE));
    }
  }

  private aboveUpper(ikey: Buffer): boolean {
    const { upper } = this.range;
    if (upper === undefined) return false;
    const c = userKeyCompare(ikey, upper);
    return c > 0 || (c === 0 && this.range.upperExclusive);
  }

  private isExcludedUpper(userKey: Buffer): boolean {
    const { upper } = this.range;
    return upper !== undefined && this.range.upperExclusive && upper.equals(userKey);
  }

  private belowLower(ikey: Buffer): boolean {
    const { lower } = this.range;
    if (lower === undefined) return false;
    const c = userKeyCompare(ikey, lower);
    return c < 0 || (c === 0 && this.range.lowerExclusive);
  }

  /**
   * Forward: the first entry of each user key (newest first) decides; skip the rest. The key to
   * skip lives in this iterator's own buffer, never in the copy handed to the caller (who owns it
   * and may change it).
   */
  private findNext(): boolean {
    const it = this.iter;
    while (it.valid()) {
      const k = it.key();
      const ulen = k.length - TRAILER_BYTES;
      const t = trailerOf(k, k.length);
      if (seqOfTrailer(t) > this.seq) {
        it.next();
        continue;
      }
      if (this.skipLength === ulen && sameBytesFromEnd(k, this.skipKey, ulen)) {
        it.next();
        continue;
      }
      if (this.aboveUpper(k)) return false;
      this.setSkip(k, ulen);
      // Forward order: once one key is at or above the lower bound, every later one is too.
      if (!this.pastLower) {
        if (this.belowLower(k)) {
          it.next();
          continue;
        }
        this.pastLower = true;
      }
      if (kindOfTrailer(t) === KIND_DELETE) {
        it.next();
        continue;
      }
      this.key = copyOfRange(k, 0, ulen);
      this.value = it.copyValue();
      it.next();
      return true;
    }
    return false;
  }

  /** Remembers user key k[0, ulen) as the one whose older versions findNext skips. */
  private setSkip(k: Buffer, ulen: number): void {
    if (ulen > this.skipKey.length) this.skipKey = Buffer.allocUnsafe(Math.max(ulen, 2 * this.skipKey.length));
    copyBytes(k, 0, ulen, this.skipKey, 0);
    this.skipLength = ulen;
  }

  /** Backward: versions of a user key arrive oldest first; the last visible one seen wins. */
  private findPrev(): boolean {
    const it = this.iter;
    while (it.valid()) {
      const k0 = it.key();
      if (this.belowLower(k0)) return false;
      const userKey = copyOfRange(k0, 0, k0.length - TRAILER_BYTES);
      let bestValue: Buffer | null = null;
      let bestDeleted = true;
      while (it.valid()) {
        const k = it.key();
        if (userKeyCompare(k, userKey) !== 0) break;
        const t = trailerOf(k, k.length);
        if (seqOfTrailer(t) <= this.seq) {
          bestDeleted = kindOfTrailer(t) === KIND_DELETE;
          bestValue = bestDeleted ? null : it.copyValue();
        }
        it.prev();
      }
      // seekLE put us at or below `upper`; only an exclusive bound can still exclude a key.
      if (bestDeleted || this.isExcludedUpper(userKey)) continue;
      assert(bestValue !== null, 'visible value missing');
      this.key = userKey;
      this.value = bestValue;
      return true;
    }
    return false;
  }
}
