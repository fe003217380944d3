/**
 * Kills a background worker in the middle of a job: once the job's first output table exists
 * (polled every event-loop turn), the worker of `thread()` is terminated. Resolves true if it
 * was, false if `job` settled first (the job ended before a turn saw its table, or never wrote
 * one).
 *
 * No turn limit: a fixed number of turns is a clock in disguise, and on a loaded machine (8 test
 * files at once) a worker still starting outlasted 100,000 turns (session 18). Callers must treat
 * false as "the job won the race", not as a failure.
 */
import fs from 'node:fs';
import type { CompactionThread } from '../../src/compaction/compaction-thread.js';

export function killWorkerWhenFileExists(thread: () => CompactionThread | null, file: string, job: Promise<unknown>): Promise<boolean> {
  let settled = false;
  job.then(
    () => (settled = true),
    () => (settled = true),
  );
  return new Promise((resolve) => {
    const poll = (): void => {
      if (settled) return resolve(false);
      const w = (thread() as unknown as { worker: { terminate(): Promise<number> } | null } | null)?.worker ?? null;
      if (w !== null && fs.existsSync(file)) {
        void w.terminate();
        resolve(true);
        return;
      }
      setImmediate(poll);
    };
    poll();
  });
}
