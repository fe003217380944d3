/**
 * Child process for kill.test.ts: opens the database in argv[2] on the real filesystem and writes
 * key i = value i with `sync: true`, one after another (plus a few concurrent writers to exercise
 * group commit), printing "ack <i>" after each write's promise resolved. Runs until killed.
 * argv[3] = 'inline' opens it with inlineSync (fdatasync on the event-loop thread).
 */
import { open } from '../../src/index.js';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: kill-child <dir>');
  const db = await open(dir, { memtableSize: 64 * 1024, inlineSync: process.argv[3] === 'inline' });
  process.stdout.write('ready\n');
  for (let i = 0; ; i += 4) {
    const batch = [i, i + 1, i + 2, i + 3];
    await Promise.all(
      batch.map(async (n) => {
        await db.put(`key-${String(n).padStart(8, '0')}`, `value-${n}-${'p'.repeat(n % 200)}`, { sync: true });
        process.stdout.write(`ack ${n}\n`);
      }),
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`child failed: ${String(e)}\n`);
  process.exit(2);
});
