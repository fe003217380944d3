/**
 * Child process for session9-flush-exit.test.ts: opens the database in argv[2] with worker flushes
 * (node:fs), writes batches of unique keys and leaves without close(), depending on argv[3]:
 *   'natural'    — returns from main() while a flush runs in the worker: the process must exit by
 *                  itself once the flush is done (the worker is unref'd when idle);
 *   'exit'       — process.exit(0) while a flush runs in the worker (the worker dies mid-job);
 *   'unawaited'  — starts more batches without awaiting them, then returns;
 *   'backlog'    — only opens (the parent left L0 over its trigger: open starts a compaction in
 *                  the compaction worker) and returns at once.
 * Prints "acked <b>" when batch b resolved, and "done" before leaving.
 */
import { fileURLToPath } from 'node:url';
import { open } from '../../src/index.js';

export const BATCHES = 60;
export const PER_BATCH = 50;

export function batchKey(b: number, i: number): string {
  return `b${String(b).padStart(4, '0')}-${String(i).padStart(4, '0')}`;
}

export function batchValue(b: number, i: number): string {
  return `${b}:${i}:${'v'.repeat(((b * 31 + i * 7) % 400) + 1)}`;
}

function ops(b: number): { type: 'put'; key: string; value: string }[] {
  return Array.from({ length: PER_BATCH }, (_, i) => ({ type: 'put' as const, key: batchKey(b, i), value: batchValue(b, i) }));
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const mode = process.argv[3];
  if (dir === undefined || (mode !== 'natural' && mode !== 'exit' && mode !== 'unawaited' && mode !== 'backlog')) throw new Error('usage: <dir> natural|exit|unawaited|backlog');
  const db = await open(dir, { memtableSize: 64 * 1024, sync: false, compactionThread: 'worker' });
  if (mode === 'backlog') {
    if (!db.stats().compactions.running) throw new Error('open started no compaction');
    process.stdout.write('done\n');
    return;
  }
  let b = 0;
  let flushing = false;
  for (; b < BATCHES; b++) {
    await db.batch(ops(b));
    process.stdout.write(`acked ${b}\n`);
    if (b > 10 && db.stats().immutableMemtables > 0 && db.stats().flushes.count > 0) {
      flushing = true;
      b++;
      break;
    }
  }
  if (!flushing) throw new Error('no flush caught in flight');
  if (mode === 'exit') {
    process.stdout.write('done\n');
    process.exit(0);
  }
  if (mode === 'unawaited') {
    for (let extra = 0; extra < 8; extra++, b++) {
      const n = b;
      db.batch(ops(n)).then(
        () => process.stdout.write(`acked ${n}\n`),
        (e: unknown) => process.stderr.write(`batch ${n}: ${String(e)}\n`),
      );
    }
  }
  process.stdout.write('done\n');
}

// Run only as the child (the test imports the key and value helpers from here).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`child failed: ${String(e)}\n`);
    process.exit(2);
  });
}
