/**
 * Regression (found while adding WAL zero-fill): a durable put acknowledged while compactRange()
 * rotated the memtable could be lost in a crash. The put's group commit took the old WAL while the
 * rotation awaited its fsync, then applied its entries to the NEW memtable once the rotation had
 * swapped it in. The old memtable's flush did not hold the put, yet made the old WAL (the only
 * place the put was logged) obsolete. Now a commit waits for a rotation in progress and a rotation
 * waits for a commit in flight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

test('a durable put racing a compactRange rotation survives a crash, at every interleaving', async () => {
  const lost: string[] = [];
  for (const order of ['put first', 'compactRange first'] as const) {
    for (let microtasks = 0; microtasks < 40; microtasks++) {
      const mem = new MemFs();
      const db = await open('/db', { fs: mem });
      await db.put('a', '1', { sync: true });
      let put: Promise<void>;
      let compacted: Promise<void>;
      if (order === 'put first') {
        put = db.put('x', 'y', { sync: true });
        for (let i = 0; i < microtasks; i++) await null;
        compacted = db.compactRange();
      } else {
        compacted = db.compactRange();
        for (let i = 0; i < microtasks; i++) await null;
        put = db.put('x', 'y', { sync: true });
      }
      await put; // acknowledged as durable
      await compacted;
      await db.idle();
      const image = mem.crashClone(); // power cut: only what was synced remains
      await db.close();
      const again = await open('/db', { fs: image });
      try {
        if (again.getSync('x')?.toString() !== 'y') lost.push(`${order}, ${microtasks} microtasks`);
        assert.equal(again.getSync('a')?.toString(), '1');
      } finally {
        await again.close();
      }
    }
  }
  assert.deepEqual(lost, [], 'acknowledged durable puts lost at these interleavings');
});

test('writes and rotations interleaved at random keep every acknowledged durable write', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 8192 });
  const acknowledged: string[] = [];
  const writers: Promise<void>[] = [];
  for (let round = 0; round < 30; round++) {
    for (let w = 0; w < 4; w++) {
      const key = `r${round}-w${w}`;
      writers.push(db.put(key, 'v'.repeat(100), { sync: true }).then(() => void acknowledged.push(key)));
    }
    if (round % 3 === 0) writers.push(db.compactRange());
    for (let i = 0; i < round % 7; i++) await null;
  }
  await Promise.all(writers);
  await db.idle();
  const image = mem.crashClone();
  await db.close();
  const again = await open('/db', { fs: image });
  try {
    const missing = acknowledged.filter((k) => again.getSync(k) === undefined);
    assert.deepEqual(missing, [], 'every acknowledged durable put survives');
    assert.equal(acknowledged.length, 120);
  } finally {
    await again.close();
  }
});
