/**
 * Lets the event loop run one turn (timers, I/O callbacks) before continuing: what long
 * main-thread work (flushes and merges in slices, a stream of non-durable writes) awaits so the
 * application and our own background work are not starved.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
