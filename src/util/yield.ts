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
 * setImmediate turn instead, and results called while it waits join it (see `delayed`): reads
 * settle in the order they were called, as they did when all of them settled in microtasks. One
 * pacer per thread: the event loop is the thread's, and reads of several databases add up.
 */
export class ReadPacer {
  private calls = 0;
  private lastTurnMs = performance.now();

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

/**
 * Results the pacer delayed, in call order: settle functions (a promise's resolve or reject) and
 * what to settle with. The first waits for a setImmediate turn; every result or error called
 * while it waits joins it, and the turn settles them all at once, in order, before any of their
 * callers' code runs. So reads keep their call order, and a read called after the turn settles
 * at once again (chaining each delayed result to the one before kept a chain alive under
 * concurrent callers, and every read paid for it: 5-10% of a transaction workload).
 */
const delayedSettlers: ((outcome: unknown) => void)[] = [];
const delayedOutcomes: unknown[] = [];

function settleDelayed(): void {
  // Everything is taken first: a settled caller's next read finds the queue empty.
  const settlers = delayedSettlers.splice(0);
  const outcomes = delayedOutcomes.splice(0);
  for (let i = 0; i < settlers.length; i++) (settlers[i] as (outcome: unknown) => void)(outcomes[i]);
}

function delayed<T>(outcome: unknown, rejects: boolean): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (delayedSettlers.length === 0) setImmediate(settleDelayed);
    delayedSettlers.push(rejects ? reject : (resolve as (outcome: unknown) => void));
    delayedOutcomes.push(outcome);
  });
}

/** An async read's result: at once, or after a turn of the event loop (see ReadPacer). */
export function pacedResult<T>(value: T): Promise<T> {
  if (delayedSettlers.length === 0 && !readPacer.due()) return Promise.resolve(value);
  return delayed<T>(value, false);
}

/** An async read's failure, after any delayed result still waiting (in call order). */
export function pacedRejection(error: unknown): Promise<never> {
  if (delayedSettlers.length === 0) return Promise.reject(error);
  return delayed<never>(error, true);
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
