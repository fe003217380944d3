/**
 * Review (session 10): flushes compress with the DB's `compression`, and runCompaction moves ANY
 * single non-overlapping input down as it is, L0 files included (pickL0Inputs: the oldest L0
 * file plus every L0 file overlapping it, transitively).
 *
 * A seeded model test on MemFs mixes what makes L0 files move alone and what makes them overlap:
 * ascending runs over fresh key ranges (one non-overlapping L0 table per flush), random
 * overwrites and deletes of older keys (overlapping L0 tables, and shadowed versions in the
 * levels below), snapshots held across flushes and moves (their reads must not change),
 * idle() / compactRange() / reopen, and every reopen toggles compression between 'lz' and 'none'
 * (raw tables of 'none', and of the versions before compressed flushes, are moved as they are).
 * After every step, point reads (live and at each snapshot) and, at checkpoints, full scans match
 * the model; the run must have made trivial moves out of L0 with compression on.
 *
 * Targeted: L0 tables that overlap only by RANGE (no common key) next to tables sharing a key,
 * drained with l0CompactionTrigger 1 after a reopen: reads and a scan see the newest versions.
 * (Moving the OLDEST L0 table alone is always safe for L0 ordering; what must never happen is a
 * newer table moving below an older overlapping one left in L0 — pickL0Inputs starts from the
 * oldest, and the model test would see such a shadowing through its reads.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { collect } from '../harness/api-helpers.js';

invariants.enabled = true;

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

interface HeldSnapshot {
  snap: Snapshot;
  model: Map<string, string>;
}

async function checkAll(db: Database, model: Map<string, string>, snaps: HeldSnapshot[], what: string): Promise<void> {
  const expected = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  assert.deepEqual(await collect(db.iterator()), expected, `${what}: scan`);
  for (const [i, s] of snaps.entries()) {
    const exp = [...s.model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(await collect(s.snap.iterator()), exp, `${what}: snapshot ${i} scan`);
  }
}

function checkSome(db: Database, model: Map<string, string>, snaps: HeldSnapshot[], keys: string[], what: string): void {
  for (const k of keys) {
    assert.equal(db.getSync(k)?.toString('latin1'), model.get(k), `${what}: get ${k}`);
    for (const [i, s] of snaps.entries()) {
      assert.equal(s.snap.getSync(k)?.toString('latin1'), s.model.get(k), `${what}: snapshot ${i} get ${k}`);
    }
  }
}

test('session10: L0 tables moved down as they are (lz and none, toggled per reopen) keep every read right', async () => {
  await withSeed('session10 l0 moves', async (seed) => {
    for (let round = 0; round < 3; round++) await l0MoveRound(seed + round);
  });
});

async function l0MoveRound(roundSeed: number): Promise<void> {
  {
    const r = new Random(roundSeed);
    const fs = new MemFs();
    let compression: 'lz' | 'none' = r.nextInt(2) === 0 ? 'lz' : 'none';
    const base: OpenOptions = { fs, memtableSize: 8 * 1024, blockSize: 256, sync: false, levelBaseSize: 32 * 1024, targetFileSize: 8 * 1024, levelMultiplier: 4 };
    const optsFor = (): OpenOptions => ({ ...base, compression, l0CompactionTrigger: 1 + r.nextInt(3), seed: r.nextInt(1000) });
    let db = await open('/db', optsFor());
    const model = new Map<string, string>();
    let snaps: HeldSnapshot[] = [];
    let nextFresh = 1_000_000; // ascending fresh keys: non-overlapping L0 tables
    let movesWithLz = 0;
    let lastMoves = 0;
    const touched: string[] = [];
    const value = (k: string, step: number): string => `${k}|${step}|${'v'.repeat(r.nextInt(3) === 0 ? 300 : r.nextInt(40))}`;
    for (let step = 0; step < 260; step++) {
      const what = `round seed ${roundSeed} step ${step} (${compression})`;
      const roll = r.nextInt(100);
      const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
      if (roll < 45) {
        // An ascending run of fresh keys.
        const n = 20 + r.nextInt(120);
        for (let i = 0; i < n; i++) {
          const k = key(nextFresh++);
          ops.push({ type: 'put', key: k, value: value(k, step) });
        }
      } else if (roll < 75) {
        // Overwrites / deletes of older keys (including keys already moved down).
        const n = 1 + r.nextInt(40);
        for (let i = 0; i < n; i++) {
          const k = r.nextInt(3) === 0 ? key(r.nextInt(400)) : key(1_000_000 + r.nextInt(Math.max(1, nextFresh - 1_000_000)));
          ops.push(r.nextInt(4) === 0 ? { type: 'del', key: k } : { type: 'put', key: k, value: value(k, step) });
        }
      } else if (roll < 82) {
        if (snaps.length < 4) snaps.push({ snap: db.snapshot(), model: new Map(model) });
        else (snaps.shift() as HeldSnapshot).snap.release();
      } else if (roll < 88) {
        await db.idle();
      } else if (roll < 92) {
        const a = key(1_000_000 + r.nextInt(Math.max(1, nextFresh - 1_000_000)));
        await db.compactRange(a, a < key(1_500_000) ? key(1_500_000) : a);
      } else if (roll < 96) {
        const st = db.stats().compactions.trivialMoves;
        if (compression === 'lz') movesWithLz += st - lastMoves;
        await db.close();
        for (const s of snaps) assert.throws(() => s.snap.getSync('x'));
        snaps = [];
        compression = compression === 'lz' ? 'none' : 'lz';
        db = await open('/db', optsFor());
        lastMoves = 0;
        await checkAll(db, model, snaps, `${what}: after reopen`);
      } else {
        await checkAll(db, model, snaps, what);
      }
      if (ops.length > 0) {
        await db.batch(ops.map((o) => (o.type === 'put' ? { type: 'put' as const, key: o.key, value: o.value as string } : { type: 'del' as const, key: o.key })));
        for (const o of ops) {
          if (o.type === 'put') model.set(o.key, o.value as string);
          else model.delete(o.key);
          touched.push(o.key);
        }
      }
      const sample: string[] = [];
      for (let i = 0; i < 12 && touched.length > 0; i++) sample.push(touched[r.nextInt(touched.length)] as string);
      sample.push(key(r.nextInt(2_000_000)));
      checkSome(db, model, snaps, sample, what);
    }
    await db.idle();
    await checkAll(db, model, snaps, 'end');
    if (compression === 'lz') movesWithLz += db.stats().compactions.trivialMoves - lastMoves;
    for (const s of snaps) s.snap.release();
    await db.close();
    db = await open('/db', { ...base, compression });
    await checkAll(db, model, [], 'final reopen');
    await db.close();
    assert.ok(movesWithLz > 0, `round seed ${roundSeed}: no trivial moves with compression on (${movesWithLz})`);
  }
}

test('session10: L0 tables overlapping only by range, drained after a reopen, read their newest versions', async () => {
  for (const compression of ['lz', 'none'] as const) {
    const fs = new MemFs();
    // No automatic compaction while L0 is built up.
    const hold: OpenOptions = { fs, compression, memtableSize: 64 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, sync: false };
    let db = await open('/db', hold);
    // Oldest: 'm' (range m..m). Newer: 'b' and 'y' (range b..y, covers m, no common key). Newest: 'm' again.
    await db.put('m', 'old-m');
    await db.compactRange('zz', 'zz'); // flush only
    await db.batch([{ type: 'put', key: 'b', value: 'b1' }, { type: 'put', key: 'y', value: 'y1' }]);
    await db.compactRange('zz', 'zz');
    await db.put('m', 'new-m');
    await db.compactRange('zz', 'zz');
    assert.equal(db.stats().levels[0]?.files, 3);
    await db.close();
    db = await open('/db', { fs, compression, l0CompactionTrigger: 1, memtableSize: 64 * 1024, sync: false });
    await db.idle();
    assert.equal(db.getSync('m')?.toString(), 'new-m', `${compression}: newest m`);
    assert.equal(db.getSync('b')?.toString(), 'b1');
    assert.equal(db.getSync('y')?.toString(), 'y1');
    assert.deepEqual(await collect(db.iterator()), [['b', 'b1'], ['m', 'new-m'], ['y', 'y1']]);
    await db.close();
  }
});
