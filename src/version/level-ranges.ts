/**
 * The user-key ranges of one sorted, disjoint level (L1+), packed into one buffer: used by point
 * reads (Version.findFile) and by compaction's tombstone rule (the levels below a merge's output,
 * posted to the worker as plain data: one buffer per level to copy, not one per key).
 *
 * Searches compare four bytes at a time through a DataView (compareBytesView): a point read
 * binary-searches every level, and this is ~2.5x faster than comparing FileMetadata key buffers
 * byte by byte.
 */
import { compareBytesView } from '../base/internal-key.js';
import { KeyProbe, viewOf } from '../base/key-probe.js';

/**
 * `keys` holds smallest0, largest0, smallest1, largest1, ... back to back and `ends[i]` is where
 * key i ends. Structured-clonable.
 */
export interface PackedLevelRanges {
  keys: Uint8Array;
  ends: number[];
}

/** Packs user-key ranges, given as [smallest, largest] pairs in key order. */
export function packLevelRanges(ranges: readonly (readonly [Uint8Array, Uint8Array])[]): PackedLevelRanges {
  let total = 0;
  for (const [a, b] of ranges) total += a.length + b.length;
  // Not from the shared pool: structured clone copies a view's whole ArrayBuffer.
  const keys = Buffer.allocUnsafeSlow(total);
  const ends: number[] = [];
  let at = 0;
  for (const [a, b] of ranges) {
    keys.set(a, at);
    at += a.length;
    ends.push(at);
    keys.set(b, at);
    at += b.length;
    ends.push(at);
  }
  return { keys, ends };
}

/** The search key of find() (searches are synchronous and never re-enter; one per thread). */
const probe = new KeyProbe();

/** Binary search over PackedLevelRanges. */
export class LevelRanges {
  readonly packed: PackedLevelRanges;
  private readonly view: DataView;
  /** Key i is [starts[i], ends[i]) in the packed keys. */
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  /** Number of ranges (files). */
  private readonly count: number;

  constructor(packed: PackedLevelRanges) {
    this.packed = packed;
    this.view = viewOf(packed.keys);
    this.ends = Int32Array.from(packed.ends);
    this.starts = new Int32Array(this.ends.length);
    for (let i = 1; i < this.ends.length; i++) this.starts[i] = this.ends[i - 1] as number;
    this.count = this.ends.length / 2;
  }

  /** Index of the range that holds `userKey`, or -1. */
  find(userKey: Uint8Array): number {
    probe.set(userKey);
    const n = probe.length;
    const probeView = probe.view;
    const v = this.view;
    const starts = this.starts;
    const ends = this.ends;
    // First range whose largest key (key 2i+1) is >= userKey.
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const j = 2 * mid + 1;
      if (compareBytesView(v, starts[j] as number, ends[j] as number, probeView, 0, n) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.count) return -1;
    const j = 2 * lo;
    return compareBytesView(v, starts[j] as number, ends[j] as number, probeView, 0, n) > 0 ? -1 : lo;
  }
}
