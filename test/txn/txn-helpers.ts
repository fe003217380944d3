/**
 * Shared helpers of the transaction tests: the four (mode, isolation) combinations, an in-memory
 * database, and seeded scheduling noise (a random number of microtask / event-loop turns).
 */
import { open, type Database } from '../../src/index.js';
import type { ConcurrencyMode, IsolationLevel } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { Random } from '../../src/util/random.js';

export interface TxnKind {
  mode: ConcurrencyMode;
  isolation: IsolationLevel;
}

export const KINDS: readonly TxnKind[] = [
  { mode: 'optimistic', isolation: 'snapshot' },
  { mode: 'optimistic', isolation: 'serializable' },
  { mode: 'pessimistic', isolation: 'snapshot' },
  { mode: 'pessimistic', isolation: 'serializable' },
];

export function kindName(k: TxnKind): string {
  return `${k.mode}/${k.isolation}`;
}

export async function openMem(options: Record<string, unknown> = {}): Promise<{ db: Database; mem: MemFs }> {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, sync: false, ...options });
  return { db, mem };
}

/** Lets a seeded random number of microtask turns (and sometimes an event-loop turn) pass. */
export async function randomYield(rng: Random): Promise<void> {
  const r = rng.nextInt(8);
  if (r === 0) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return;
  }
  for (let i = 0; i < r; i++) await Promise.resolve();
}

/** Resolves after every pending microtask and a few event-loop turns (never a timer). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Observes a promise's settlement without awaiting it (for "still waiting" assertions). */
export function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  return { settled: () => done, promise: p };
}

export function str(b: Buffer | undefined): string | undefined {
  return b?.toString();
}
