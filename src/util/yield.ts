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
 * finishing) would wait for the whole loop. Every EVENT_LOOP_SHARE_MS of such calls (the clock,
 * monotonic, is read once per READS_PER_CLOCK_READ calls) a result is delivered after one
 * setImmediate turn instead. While such a delivery is pending, every later result (or error)
 * waits behind it, in call order: reads settle in the order they were called, as they did when
 * all of them settled in microtasks. One pacer per thread: the event loop is the thread's, and
 * reads of several databases add up.
 */
export class ReadPacer {
  private calls = 0;
  private lastTurnMs = performance.now();
  /** Results handed to setImmediate and not yet delivered. */
  waiting = 0;

  due(): boolean {
    if ((++this.calls & (READS_PER_CLOCK_READ - 1)) !== 0) return false;
    const now = performance.now();
    if (now - this.lastTurnMs < EVENT_LOOP_SHARE_MS) return false;
    this.lastTurnMs = now;
    return true;
  }
}

/** A power of two: how many paced calls share one clock read. */
const READS_PER_CLOCK_READ = 64;

/** This thread's read pacer. */
export const readPacer = new ReadPacer();

function deliver<T>(resolve: (v: T) => void, value: T): void {
  readPacer.waiting--;
  resolve(value);
}

function deliverError(reject: (e: unknown) => void, error: unknown): void {
  readPacer.waiting--;
  reject(error);
}

/** An async read's result: at once, or after a turn of the event loop (see ReadPacer). */
export function pacedResult<T>(value: T): Promise<T> {
  if (readPacer.waiting === 0 && !readPacer.due()) return Promise.resolve(value);
  readPacer.waiting++;
  return new Promise((resolve) => setImmediate(deliver, resolve, value));
}

/** An async read's failure, after any paced result still waiting (in call order). */
export function pacedRejection(error: unknown): Promise<never> {
  if (readPacer.waiting === 0) return Promise.reject(error);
  readPacer.waiting++;
  return new Promise((_, reject) => setImmediate(deliverError, reject, error));
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
