/**
 * Child process for worker-exit.test.ts: opens the database in argv[2] with worker merges, writes
 * enough for several merges and, depending on argv[3], leaves without closing:
 *   'idle'    — after idle(): the worker sits idle (unref'd) and must not keep the process alive;
 *   'running' — right after starting compactRange (not awaited): the process may stay until the
 *               background work is done, but must then exit by itself.
 * Prints "done" just before main() returns; the parent checks the exit code and that marker.
 */
import { open } from '../../src/index.js';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const mode = process.argv[3];
  if (dir === undefined || (mode !== 'idle' && mode !== 'running')) throw new Error('usage: worker-exit-child <dir> idle|running');
  const db = await open(dir, { memtableSize: 64 * 1024, targetFileSize: 32 * 1024, sync: false, compactionThread: 'worker' });
  for (let b = 0; b < 40; b++) {
    const ops = [];
    for (let i = 0; i < 200; i++) ops.push({ type: 'put' as const, key: `k${String((b * 7919 + i * 104729) % 100_000).padStart(6, '0')}`, value: 'v'.repeat(100) });
    await db.batch(ops);
  }
  if (mode === 'idle') {
    await db.idle();
    if (db.stats().compactions.count === 0) throw new Error('no compaction ran');
  } else {
    void db.compactRange().catch((e: unknown) => process.stderr.write(`compactRange: ${String(e)}\n`));
  }
  process.stdout.write('done\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`child failed: ${String(e)}\n`);
  process.exit(2);
});
