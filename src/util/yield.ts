/**
 * Lets the event loop run one turn (timers, I/O callbacks) before continuing: what long
 * main-thread work (flushes and merges in slices, a stream of non-durable writes) awaits so the
 * application and our own background work are not starved.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Most key and value bytes a sliced flush or merge handles between yields, whatever its entry
 * count: with large values an entry count alone would make one slice hundreds of MiB.
 */
export const SLICE_BYTES_MAX = 256 * 1024;

/**
 * Where a sliced loop (flush or merge) ends its slices: after `maxEntries` entries or
 * SLICE_BYTES_MAX bytes, whichever comes first.
 */
export class Slices {
  private entries = 0;
  private bytes = 0;

  constructor(private readonly maxEntries: number) {}

  /** Counts one entry of `bytes`; true when the slice is over (the next one starts). */
  step(bytes: number): boolean {
    this.bytes += bytes;
    if (++this.entries < this.maxEntries && this.bytes < SLICE_BYTES_MAX) return false;
    this.entries = 0;
    this.bytes = 0;
    return true;
  }
}
