/**
 * Lets the event loop run one turn (timers, I/O callbacks) before continuing: what long
 * main-thread work (flushes and merges in slices, a stream of non-durable writes) awaits so the
 * application and our own background work are not starved.
 */
/**
 * Most key and value bytes a sliced flush or merge handles between yields, whatever its entry
 * count: with large values an entry count alone would make one slice hundreds of MiB.
 */
export const SLICE_BYTES_MAX = 256 * 1024;

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
