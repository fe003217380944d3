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
import type { FileSystem } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';

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

/**
 * A FileSystem whose table-file syncs wait while `held` is set: a flush then stays unfinished, so
 * the rotated WAL stays live next to the new one.
 */
function holdTableSyncs(inner: MemFs): { fs: FileSystem; hold(on: boolean): void } {
  let held = false;
  const waiting: (() => void)[] = [];
  const fs = wrapOpen(inner, (path, handle) => {
    if (!path.endsWith('.sst')) return handle;
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      if (held) await new Promise<void>((resolve) => waiting.push(resolve));
      return sync();
    };
    return handle;
  });
  return {
    fs,
    hold(on: boolean) {
      held = on;
      if (!on) for (const release of waiting.splice(0)) release();
    },
  };
}

test('durable writes in the WAL after a rotation survive a crash before the rotated memtable is flushed', async () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (let trial = 0; trial < 5; trial++) {
    const mem = new MemFs();
    const gate = holdTableSyncs(mem);
    const db = await open(DIR, { fs: gate.fs, memtableSize: 4096 });
    const acknowledged: string[] = [];
    const put = async (i: number): Promise<void> => {
      const key = `k${trial}-${String(i).padStart(4, '0')}`;
      await db.put(key, `v${i}-${'x'.repeat(20 + rng.nextInt(100))}`, { sync: true });
      acknowledged.push(key);
    };
    const logs = (fs: MemFs): number => fs.readdir(DIR).filter((n) => n.endsWith('.log')).length;
    let image: MemFs;
    try {
      gate.hold(true);
      let i = 0;
      while (logs(mem) < 2) await put(i++); // the last of these rotated; its flush is held
      await put(i++); // a durable write in the new WAL
      image = mem.crashClone();
      assert.equal(logs(image), 2, 'the crash image holds the rotated WAL and the new one');
    } finally {
      gate.hold(false);
      await db.close();
    }
    const again = await open(DIR, { fs: image }).catch((e: unknown) => {
      assert.fail(`seed ${seed}, trial ${trial}: strict reopen failed: ${String(e)}`);
    });
    try {
      for (const k of acknowledged) assert.ok(again.getSync(k) !== undefined, `seed ${seed}: ${k} survives`);
    } finally {
      await again.close();
    }
  }
});
