/**
 * Regression (found by review): two memtable rotations could run at once — a write's makeRoom and
 * compactRange()/close() each saw "no rotation yet" while the other awaited its WAL fsync. The
 * second overwrote the memtable being flushed with the new empty one: reads of acknowledged keys
 * returned undefined for a while and the database went degraded ("flush of an empty memtable").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

test('a write that must rotate while compactRange rotates shares the rotation', async () => {
  for (const microtasks of [0, 1, 2, 3, 4, 5, 6, 8, 12]) {
    const db = await open('/db', { fs: new MemFs(), memtableSize: 1024 });
    await db.put('a', 'x'.repeat(2000)); // over memtableSize: the next write group rotates
    let done = false;
    const compacted = db.compactRange().finally(() => (done = true));
    for (let i = 0; i < microtasks; i++) await null;
    const put = db.put('b', 'y');
    // Poll between event-loop turns (flush advances in macrotasks); bounded so a hang fails.
    for (let turn = 0; !done; turn++) {
      assert.ok(turn < 10_000, 'compactRange finished');
      assert.equal(db.getSync('a')?.length, 2000, `acknowledged key readable (microtasks ${microtasks})`);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await compacted;
    await put;
    assert.equal(db.stats().state, 'open');
    await db.put('c', 'z');
    assert.equal(db.getSync('b')?.toString(), 'y');
    await db.close();
  }
});

test('compactRange and close in the same tick: close succeeds, compactRange finishes or is CLOSED', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 4096 });
  for (let i = 0; i < 3000; i++) await db.put(`k${i}`, `v${i}`, { sync: false });
  const compacted = db.compactRange().then(
    () => 'done',
    (e: unknown) => String((e as { code?: string }).code),
  );
  await db.close();
  assert.ok(['done', 'CLOSED'].includes(await compacted), 'compactRange ended cleanly');
  const again = await open('/db', { fs: mem });
  let n = 0;
  for (const _ of again.iterator()) n++;
  assert.equal(n, 3000);
  await again.close();
});
