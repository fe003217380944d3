/**
 * Review (session 9): open() starts the compaction a recovered tree needs
 * (Database.startBackgroundWork). Attacked on MemFs / FaultFs:
 *   - close() right after open() while that compaction runs; reads and writes racing it;
 *   - readOnly opens of a tree that needs compaction: nothing is written, reads are right;
 *   - every filesystem operation of open + the open-time compaction + close failed in turn (EIO
 *     and ENOSPC): open rejects with a LightningError or the failure becomes the background
 *     state; never an unhandled rejection / uncaught exception; close settles; a reopen without
 *     the fault has exactly the data;
 *   - reopen cycles with shrinking L0 triggers and more writes in between.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, LightningError, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, countOps, failNth, type FaultCode } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, describeError, collect } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

const HIGH: OpenOptions = { l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, memtableSize: 64 * 1024, blockSize: 256, sync: false };
const LOW: OpenOptions = { l0CompactionTrigger: 2, l0SlowdownTrigger: 8, l0StopTrigger: 12, memtableSize: 64 * 1024, blockSize: 256, sync: false, levelBaseSize: 16 * 1024, targetFileSize: 8 * 1024 };

function key(i: number): string {
  return `key${String(i).padStart(6, '0')}`;
}

/** A database whose L0 holds `tables` overlapping tables (compaction never ran). */
async function backlog(seed: number, tables: number, perTable = 120): Promise<{ fs: MemFs; model: Map<string, string> }> {
  const rng = new Random(seed);
  const fs = new MemFs();
  const model = new Map<string, string>();
  const db = await open('/db', { ...HIGH, fs });
  for (let t = 0; t < tables; t++) {
    const ops = [];
    for (let i = 0; i < perTable; i++) {
      const k = key(rng.nextInt(perTable * 3));
      if (rng.nextInt(6) === 0) {
        ops.push({ type: 'del' as const, key: k });
        model.delete(k);
      } else {
        const v = `${t}.${i}.${'x'.repeat(rng.nextInt(60))}`;
        ops.push({ type: 'put' as const, key: k, value: v });
        model.set(k, v);
      }
    }
    await db.batch(ops);
    await db.compactRange('zzzz', 'zzzz'); // flush only: nothing overlaps
  }
  assert.equal(db.stats().levels[0]?.files, tables, 'backlog in L0');
  await db.close();
  return { fs, model };
}

async function contentsOf(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [k, v] of await collect(db.iterator())) out.set(k, v);
  return out;
}

function assertSameMap(got: Map<string, string>, want: Map<string, string>, what: string): void {
  if (got.size !== want.size) assert.fail(`${what}: ${got.size} keys, want ${want.size}`);
  for (const [k, v] of want) if (got.get(k) !== v) assert.fail(`${what}: ${k} = ${got.get(k)}, want ${v}`);
}

test('close() right after open() while the open-time compaction runs; reopen has the data', async () => {
  await withSeed('close after open', async (seed) => {
    const { fs: base, model } = await backlog(seed, 6);
    // Each cycle starts from the backlog (close() waits for the compaction, which then finishes).
    for (let cycle = 0; cycle < 3; cycle++) {
      const copy = base.crashClone();
      const db = await open('/db', { ...LOW, fs: copy });
      assert.equal(db.stats().compactions.running, true, `cycle ${cycle}: open started a compaction`);
      await db.close();
      assert.equal(db.stats().state, 'closed');
      const again = await open('/db', { ...LOW, fs: copy, readOnly: true });
      assertSameMap(await contentsOf(again), model, `cycle ${cycle}: after close during the open-time compaction`);
      await again.close();
    }
    const fs = base;
    const db = await open('/db', { ...LOW, fs });
    await db.idle();
    assert.ok(db.stats().compactions.count >= 1);
    assert.ok((db.stats().levels[0]?.files ?? 0) < 2, `L0 after idle: ${db.stats().levels[0]?.files}`);
    assertSameMap(await contentsOf(db), model, 'after compaction at open');
    await db.close();
    await recorder.settle();
    recorder.assertNone();
  });
});

test('reads, writes, iterators and snapshots race the open-time compaction', async () => {
  await withSeed('race open compaction', async (seed) => {
    const rng = new Random(seed ^ 0x5a5a);
    const { fs, model } = await backlog(seed, 8);
    const db = await open('/db', { ...LOW, fs });
    assert.equal(db.stats().compactions.running, true);
    const it = db.iterator();
    const snap = db.snapshot();
    const frozen = new Map(model);
    for (let step = 0; step < 300; step++) {
      const k = key(rng.nextInt(400));
      const r = rng.nextInt(4);
      if (r === 0) {
        const v = `late.${step}`;
        await db.put(k, v);
        model.set(k, v);
      } else if (r === 1) {
        await db.delete(k);
        model.delete(k);
      } else {
        assert.equal(db.getSync(k)?.toString(), model.get(k), `get ${k} at step ${step}`);
        assert.equal((await snap.get(k))?.toString(), frozen.get(k), `snapshot get ${k}`);
      }
    }
    const fromIt = new Map<string, string>();
    for (const [k, v] of it) fromIt.set(k.toString('latin1'), v.toString('latin1'));
    assertSameMap(fromIt, frozen, 'iterator opened before the compaction');
    snap.release();
    await db.idle();
    assertSameMap(await contentsOf(db), model, 'after idle');
    await db.close();
    const again = await open('/db', { ...LOW, fs });
    assertSameMap(await contentsOf(again), model, 'after reopen');
    await again.close();
    await recorder.settle();
    recorder.assertNone();
  });
});

test('readOnly open of a tree that needs compaction: no compaction, nothing written, reads right', async () => {
  await withSeed('readOnly backlog', async (seed) => {
    const { fs, model } = await backlog(seed, 5);
    const before = fs.listAll().map((p) => `${p}:${fs.readFileRaw(p).length}`);
    const db = await open('/db', { ...LOW, fs, readOnly: true });
    assert.equal(db.stats().compactions.running, false);
    assertSameMap(await contentsOf(db), model, 'readOnly contents');
    await db.idle();
    assert.equal(db.stats().compactions.count, 0);
    await db.close();
    assert.deepEqual(fs.listAll().map((p) => `${p}:${fs.readFileRaw(p).length}`), before, 'a readOnly open changed files');
    await recorder.settle();
    recorder.assertNone();
  });
});

/** Opens with `fs`, lets background work finish, writes a little, closes. Returns what it wrote. */
async function faultedSession(fs: FaultFs | MemFs, what: string): Promise<{ written: Map<string, string>; opened: boolean }> {
  const written = new Map<string, string>();
  let db: Database;
  try {
    db = await open('/db', { ...LOW, fs });
  } catch (e) {
    assert.ok(e instanceof LightningError, `${what}: open rejected with ${describeError(e)}`);
    return { written, opened: false };
  }
  await db.idle(); // background errors do not reject idle()
  const s = db.stats();
  if (s.backgroundError !== null) {
    assert.equal(s.state, 'degraded', `${what}: a background error shows as degraded`);
    assert.ok(['IO_ERROR', 'DISK_FULL', 'CORRUPTION'].includes(s.backgroundError.code), `${what}: code ${s.backgroundError.code}`);
  }
  // reads work whatever happened in the background
  for (let i = 0; i < 20; i++) {
    try {
      db.getSync(key(i * 7));
    } catch (e) {
      assert.ok(e instanceof LightningError, `${what}: get threw ${describeError(e)}`);
    }
  }
  try {
    await db.put('after-open', 'yes', { sync: true });
    written.set('after-open', 'yes');
  } catch (e) {
    assert.ok(e instanceof LightningError, `${what}: put rejected with ${describeError(e)}`);
  }
  try {
    await db.close();
  } catch (e) {
    assert.ok(e instanceof LightningError, `${what}: close rejected with ${describeError(e)}`);
  }
  return { written, opened: true };
}

for (const code of ['EIO', 'ENOSPC'] as FaultCode[]) {
  test(`every filesystem operation of open + open-time compaction + close failed in turn (${code})`, { timeout: 120_000 }, async () => {
    await withSeed(`open compaction sweep ${code}`, async (seed) => {
      const { fs: base, model } = await backlog(seed, 4, 60);
      const counter = countOps();
      const counted = await faultedSession(new FaultFs(base.crashClone(), counter), 'count');
      assert.ok(counted.opened);
      const total = counter.count;
      assert.ok(total > 20, `ops: ${total}`);
      let fired = 0;
      for (let n = 0; n < total; n++) {
        const fs = base.crashClone();
        const inj = failNth(n, code);
        const what = `${code} at op ${n}/${total}`;
        const r = await faultedSession(new FaultFs(fs, inj), what);
        if (inj.fired) fired++;
        await recorder.settle();
        recorder.assertNone();
        const db = await open('/db', { ...LOW, fs });
        await db.idle();
        const want = new Map(model);
        for (const [k, v] of r.written) want.set(k, v);
        const got = await contentsOf(db);
        got.delete('after-open'); // a failed put may or may not have reached the WAL
        want.delete('after-open');
        assertSameMap(got, want, what);
        if (r.written.has('after-open')) assert.equal(db.getSync('after-open')?.toString(), 'yes', `${what}: acked write lost`);
        await db.close();
      }
      assert.ok(fired > total / 2, `faults fired: ${fired}/${total}`);
    });
  });
}

test('reopen cycles: backlog, open (compaction starts), more writes, close — data always matches', async () => {
  await withSeed('reopen cycles', async (seed) => {
    const rng = new Random(seed);
    const { fs, model } = await backlog(seed, 5);
    for (let cycle = 0; cycle < 8; cycle++) {
      const trigger = 2 + (cycle % 3);
      const db = await open('/db', { ...LOW, l0CompactionTrigger: trigger, fs });
      assertSameMap(await contentsOf(db), model, `cycle ${cycle} at open`);
      const n = rng.nextInt(3) * 200;
      for (let i = 0; i < n; i++) {
        const k = key(rng.nextInt(2000));
        const v = `c${cycle}.${i}.${'y'.repeat(rng.nextInt(200))}`;
        await db.put(k, v);
        model.set(k, v);
      }
      if (rng.nextInt(2) === 0) await db.idle();
      await db.close();
    }
    const db = await open('/db', { ...LOW, fs });
    await db.idle();
    assertSameMap(await contentsOf(db), model, 'final');
    await db.close();
    await recorder.settle();
    recorder.assertNone();
  });
});
