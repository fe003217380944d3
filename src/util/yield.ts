/**
 * Lets the event loop run one turn (timers, I/O callbacks) before continuing: what long
 * main-thread work (flushes and merges in slices, a stream of non-durable writes) awaits so the
 * application and our own background work are not starved.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The longest a stream of calls that complete in microtasks alone keeps the event loop. */
export const EVENT_LOOP_SHARE_MS = 2;

/**
 * Paces async reads that complete without I/O (a get of cached or page-cached data, a step of
 * `for await` over an iterator). Their promises settle in microtasks, so a loop of them never
 * lets the event loop turn: timers, sockets and the worker's messages (flushes and compactions
 * finishing) would wait for the whole loop. `due()` says when a result should instead be
 * delivered after one turn (afterEventLoopTurn): every EVENT_LOOP_SHARE_MS, with the clock read
 * once per READS_PER_CLOCK_READ calls. One pacer per thread: the event loop is the thread's, and
 * reads of several databases add up.
 */
export class ReadPacer {
  private calls = 0;
  private lastTurnMs = Date.now();

  due(): boolean {
    if ((++this.calls & (READS_PER_CLOCK_READ - 1)) !== 0) return false;
    const now = Date.now();
    if (now - this.lastTurnMs < EVENT_LOOP_SHARE_MS) return false;
    this.lastTurnMs = now;
    return true;
  }
}

/** A power of two: how many paced calls share one clock read. */
const READS_PER_CLOCK_READ = 64;

/** This thread's read pacer. */
export const readPacer = new ReadPacer();

/** `value`, delivered after one turn of the event loop. */
export function afterEventLoopTurn<T>(value: T): Promise<T> {
  return new Promise((resolve) => setImmediate(resolve, value));
}

/** An async read's result: at once, or after a turn of the event loop when the pacer says so. */
export function pacedResult<T>(value: T): Promise<T> {
  return readPacer.due() ? afterEventLoopTurn(value) : Promise.resolve(value);
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
