/**
 * Review of 79d4c85 (weak spares): the close paths that hand buffers on, one at a time.
 *
 * - Handles of a closed database (iterators, snapshots, transactions, the database itself) used
 *   after another database took its buffers and wrote the same keys: a typed CLOSED error, never
 *   the other database's bytes. Paced get() and iterator steps pending at the close deliver the
 *   closed database's values.
 * - close() twice and concurrently: each buffer is pooled once (SpareSpy).
 * - readOnly databases (replaying a WAL into a pooled memtable) and a failed open after replay.
 * - close after a background error: the memtable whose flush failed is not pooled.
 * - The spy itself: a deliberately wrong put is reported (so the other tests have teeth).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failWhile, failNth, opIn } from '../../src/env/fault-fs.js';
import { spareMemTableStorage } from '../../src/memtable/memtable.js';
import { readPacer } from '../../src/util/yield.js';
import { SpareSpy, Random, seeded, writeBatch, settle, verify, errorCodeOf, keyOf, KEYS, valueOf, type Tracked } from './session18-spares-helper.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Loose = any;

const SMALL: OpenOptions = { sync: false, memtableSize: 64 * 1024, blockSize: 512, blockCacheSize: 96 * 1024, l0CompactionTrigger: 3 };

/** Makes the next paced read settle after a turn of the event loop (and every read until then join it). */
function forcePacerDelay(): void {
  const p = readPacer as Loose;
  p.calls = 63;
  p.lastTurnMs = -1e12;
}

async function fill(t: Tracked, rng: Random, batches: number): Promise<void> {
  for (let i = 0; i < batches; i++) writeBatch(t, rng, 200);
  await settle(t);
}

/** Writes every key of KEYS with a value of `t`, so another database's bytes would be recognised. */
async function writeAllKeys(t: Tracked, rng: Random): Promise<void> {
  const db = t.db as Database;
  const ops = [];
  for (let i = 0; i < KEYS; i++) {
    const key = keyOf(i);
    const value = valueOf(t.label, key, rng);
    t.model.set(key, value);
    ops.push({ type: 'put' as const, key, value });
  }
  await db.batch(ops);
}

test('handles of a closed database fail with CLOSED after another database took its buffers', async () => {
  await seeded('spares stale handles', 18_101, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const memfs = new MemFs();
      const a: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
      spy.register(a.db as Database, 'A');
      await writeAllKeys(a, rng);
      await fill(a, rng, 12); // several flushes: tables, a spare memtable, cache slabs
      await verify(a, rng, 'A warm', 300);
      const db = a.db as Database;
      const frozen = new Map(a.model);

      // Handles left open across the close.
      const it = db.iterator();
      const firstEntries = [it.nextSync(), it.nextSync()];
      assert.ok(firstEntries.every((e) => e !== undefined));
      const snap = db.snapshot();
      const tx = db.beginTransaction();
      assert.equal(tx.getSync(keyOf(3))?.toString(), frozen.get(keyOf(3)));
      const asyncIt = db.iterator();
      // Paced reads that settle after a turn: issued now, delivered after the close below.
      forcePacerDelay();
      const sample = Array.from({ length: 50 }, (_, i) => keyOf((i * 11) % KEYS));
      const paced = sample.map((k) => db.get(k));
      const pacedSteps = [asyncIt.next(), asyncIt.next(), asyncIt.next()];

      const closing = db.close();
      assert.equal(db.close(), closing, 'a second close shares the first');
      await Promise.all([closing, db.close()]);
      spy.check('A closed');

      // B takes A's buffers and writes the same keys with its own values.
      const b: Tracked = { label: 'B', dir: '/b', db: await open('/b', { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
      spy.register(b.db as Database, 'B');
      assert.ok(spy.memTakes >= 1, `B's first memtable took A's storage (${spy.summary()})`);
      await writeAllKeys(b, rng);
      await fill(b, rng, 6);
      await verify(b, rng, 'B on A spares', 300);
      assert.ok(spy.takes > spy.memTakes, `B's cache took A's slabs (${spy.summary()})`);

      const got = await Promise.all(paced);
      sample.forEach((k, i) => assert.equal(got[i]?.toString(), frozen.get(k), `paced get of ${k} pending at close`));
      const steps = await Promise.allSettled(pacedSteps);
      for (const s of steps) {
        if (s.status === 'rejected') {
          assert.equal((s.reason as { code?: string }).code, 'CLOSED', 'a pending step may only fail with CLOSED');
        } else if (s.value.done !== true) {
          const [k, v] = s.value.value;
          assert.equal(v.toString(), frozen.get(k.toString()), `paced iterator step of ${k.toString()} pending at close`);
        }
      }

      assert.equal(await errorCodeOf(() => it.nextSync()), 'CLOSED', 'iterator step');
      assert.equal(await errorCodeOf(() => it.next()), 'CLOSED', 'async iterator step');
      assert.equal(await errorCodeOf(() => asyncIt.next()), 'CLOSED', 'async iterator step after pending ones');
      assert.equal(await errorCodeOf(() => snap.getSync(keyOf(5))), 'CLOSED', 'snapshot getSync');
      assert.equal(await errorCodeOf(() => snap.get(keyOf(5))), 'CLOSED', 'snapshot get');
      assert.equal(await errorCodeOf(() => snap.iterator()), 'CLOSED', 'snapshot iterator');
      assert.equal(await errorCodeOf(() => tx.getSync(keyOf(5))), 'CLOSED', 'transaction getSync');
      assert.equal(await errorCodeOf(() => tx.get(keyOf(5))), 'CLOSED', 'transaction get');
      assert.equal(await errorCodeOf(() => tx.iterator()), 'CLOSED', 'transaction iterator');
      assert.equal(await errorCodeOf(() => db.getSync(keyOf(5))), 'CLOSED', 'db getSync');
      assert.equal(await errorCodeOf(() => db.get(keyOf(5))), 'CLOSED', 'db get');
      assert.equal(await errorCodeOf(() => db.iterator()), 'CLOSED', 'db iterator');
      assert.equal(await errorCodeOf(() => db.snapshot()), 'CLOSED', 'db snapshot');
      assert.equal(await errorCodeOf(() => db.put('k', 'v')), 'CLOSED', 'db put');
      const stats = db.stats();
      assert.equal(stats.blockCache?.entries, 0, 'a closed database caches nothing');
      assert.equal(stats.blockCache?.usedBytes, 0);

      await verify(b, rng, 'B after A handles were used', 300);
      spy.check('end');
      await (b.db as Database).close();
      // A again, on B's buffers: its data as it was.
      a.db = await open('/a', { ...SMALL, fs: memfs });
      spy.register(a.db, 'A2');
      await verify(a, rng, 'A reopened', 300);
      await a.db.close();
      spy.check('A2 closed');
    } finally {
      spy.remove();
    }
  });
});

test('a readOnly database replaying a WAL into a pooled memtable, and closing, hands on nothing it still uses', async () => {
  await seeded('spares readOnly', 18_102, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const memfs = new MemFs();
      // A: flushed tables plus a durable unflushed WAL tail; a crash copy keeps that WAL.
      const a: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, sync: true, fs: memfs }), model: new Map(), pending: [] };
      spy.register(a.db as Database, 'A');
      await writeAllKeys(a, rng);
      await fill(a, rng, 8);
      const crashed = memfs.crashClone();
      const modelAtCrash = new Map(a.model);
      await (a.db as Database).close(); // pools A's buffers
      spy.check('A closed');
      const takesBefore = spy.memTakes;
      const ro: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, fs: crashed, readOnly: true }), model: modelAtCrash, pending: [] };
      spy.register(ro.db as Database, 'A-readOnly');
      assert.equal(spy.memTakes, takesBefore + 1, 'the readOnly open replays into a pooled memtable');
      assert.ok(((ro.db as Loose).mem.entryCount as number) > 0, 'the WAL tail is in the readOnly memtable');
      await verify(ro, rng, 'readOnly', 300);
      // B opens while the readOnly database is live: it must not get the readOnly memtable.
      const b: Tracked = { label: 'B', dir: '/b', db: await open('/b', { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
      spy.register(b.db as Database, 'B');
      await writeAllKeys(b, rng);
      await fill(b, rng, 6);
      await verify(b, rng, 'B beside readOnly', 200);
      await verify(ro, rng, 'readOnly beside B', 200);
      spy.check('readOnly and B');
      await (ro.db as Database).close();
      spy.check('readOnly closed');
      const c: Tracked = { label: 'C', dir: '/c', db: await open('/c', { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
      spy.register(c.db as Database, 'C');
      await writeAllKeys(c, rng);
      await fill(c, rng, 6);
      await verify(c, rng, 'C', 200);
      await verify(b, rng, 'B beside C', 200);
      spy.check('C');
      await (b.db as Database).close();
      await (c.db as Database).close();
      // The readOnly database's replayed memtable was not pooled while it served reads: reopen
      // the crash copy read-write and check it still has what A acknowledged.
      const again: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, fs: crashed }), model: modelAtCrash, pending: [] };
      spy.register(again.db as Database, 'A-crash-reopened');
      await verify(again, rng, 'crash copy reopened', 300);
      await (again.db as Database).close();
      spy.check('end');
    } finally {
      spy.remove();
    }
  });
});

test('an open that fails after its WAL replay took a pooled memtable leaves the pool consistent', async () => {
  await seeded('spares failed open', 18_103, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const memfs = new MemFs();
      // Two closed databases leave two memtable storages and their slabs in the pools.
      for (const label of ['x', 'y']) {
        const t: Tracked = { label, dir: `/${label}`, db: await open(`/${label}`, { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
        spy.register(t.db as Database, label);
        await writeAllKeys(t, rng);
        await fill(t, rng, 6);
        await verify(t, rng, label, 100);
        await (t.db as Database).close();
      }
      spy.check('x and y closed');
      // A database with a WAL to replay, whose reopen fails creating its new WAL.
      const a: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, sync: true, fs: memfs }), model: new Map(), pending: [] };
      spy.register(a.db as Database, 'A');
      await writeAllKeys(a, rng);
      const crashed = memfs.crashClone();
      const modelAtCrash = new Map(a.model);
      await (a.db as Database).close();
      const faulty = new FaultFs(crashed, failNth(0, 'EIO', (op, p) => op === 'open' && p.endsWith('.log')));
      const memTakes = spy.memTakes;
      assert.notEqual(await errorCodeOf(() => open('/a', { ...SMALL, fs: faulty })), 'none', 'the open fails');
      assert.equal(spy.memTakes, memTakes + 1, 'the failed open had taken a pooled memtable');
      spy.check('after the failed open');
      // Other opens go on from what is left, and the failed database opens on the clean fs.
      const b: Tracked = { label: 'B', dir: '/b', db: await open('/b', { ...SMALL, fs: memfs }), model: new Map(), pending: [] };
      spy.register(b.db as Database, 'B');
      const again: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, fs: crashed }), model: modelAtCrash, pending: [] };
      spy.register(again.db as Database, 'A-again');
      await writeAllKeys(b, rng);
      await fill(b, rng, 6);
      await fill(again, rng, 6);
      await verify(b, rng, 'B', 200);
      await verify(again, rng, 'A after failed open', 200);
      spy.check('B and A');
      await (b.db as Database).close();
      await (again.db as Database).close();
      spy.check('end');
    } finally {
      spy.remove();
    }
  });
});

test('close after a failed flush pools neither the failed memtable nor anything still in use', async () => {
  await seeded('spares background error', 18_104, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const inner = new MemFs();
      const fault = failWhile(opIn('sync'), 'EIO');
      fault.enabled = false;
      const faulty = new FaultFs(inner, fault);
      const a: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...SMALL, fs: faulty }), model: new Map(), pending: [] };
      spy.register(a.db as Database, 'A');
      await writeAllKeys(a, rng);
      await fill(a, rng, 8); // earlier flushes succeed: A keeps a spare memtable
      await (a.db as Database).batch([{ type: 'put', key: 'sync-probe', value: 'x' }], { sync: true });
      a.model.set('sync-probe', 'x');
      const acknowledged = new Map(a.model);
      // Table syncs fail now: the next flush fails and leaves its memtable as imm.
      const failTables = failWhile((op, p) => op === 'sync' && p.endsWith('.sst'), 'EIO');
      faulty.injector = failTables;
      let rejected = 0;
      for (let i = 0; i < 12; i++) {
        const ops = [];
        for (let j = 0; j < 200; j++) {
          const key = keyOf(rng.nextInt(KEYS));
          ops.push({ type: 'put' as const, key, value: valueOf('A', key, rng) });
        }
        try {
          await (a.db as Database).batch(ops);
          for (const op of ops) a.model.set(op.key, op.value);
        } catch {
          rejected++;
          break;
        }
      }
      const st = (a.db as Database).stats();
      assert.ok(rejected > 0 || st.backgroundError !== null, `the flush failed (${JSON.stringify(st.backgroundError)})`);
      spy.check('A failed');
      const closeCode = await errorCodeOf(() => (a.db as Database).close());
      assert.ok(closeCode === 'none' || closeCode === 'IO_ERROR', `close after the failure: ${closeCode}`);
      spy.check('A closed after failure');
      // B takes whatever A pooled and writes; A reopens on the clean filesystem.
      const b: Tracked = { label: 'B', dir: '/b', db: await open('/b', { ...SMALL, fs: inner }), model: new Map(), pending: [] };
      spy.register(b.db as Database, 'B');
      await writeAllKeys(b, rng);
      await fill(b, rng, 8);
      await verify(b, rng, 'B after A failed', 300);
      const again = await open('/a', { ...SMALL, fs: inner });
      spy.register(again, 'A-again');
      for (const [k, v] of acknowledged) {
        const got = again.getSync(k)?.toString();
        // Later writes may or may not have reached the WAL; acknowledged ones before the failure must.
        if (got !== v) assert.ok(got !== undefined && got.startsWith(`A|${k}|`), `A reopened: ${k} = ${String(got)}`);
      }
      for (let i = 0; i < KEYS; i++) {
        const got = again.getSync(keyOf(i))?.toString();
        if (got !== undefined) assert.ok(got.startsWith(`A|${keyOf(i)}|`) || got === 'x', `A's ${keyOf(i)} holds A's bytes: ${got}`);
      }
      spy.check('end');
      await again.close();
      await (b.db as Database).close();
    } finally {
      spy.remove();
    }
  });
});

test('the spy reports a buffer pooled while its database still uses it', async () => {
  const spy = new SpareSpy().install();
  try {
    const memfs = new MemFs();
    const db = await open('/live', { ...SMALL, fs: memfs });
    spy.register(db, 'live');
    await db.put('k', 'v');
    const mem = (db as Loose).mem;
    const storage = { list: { arena: mem.list.arena, rows: mem.list.rows }, filter: mem.filter, index: null };
    spareMemTableStorage.put(storage);
    assert.ok(spy.violations.some((v) => v.includes('still owned by live.mem')), `reported: ${spy.violations.join('; ')}`);
    assert.equal(spareMemTableStorage.take((s) => s === storage), storage);
    spy.violations.length = 0;
    await db.close();
    spy.check('closed');
  } finally {
    spy.remove();
  }
});
