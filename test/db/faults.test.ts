/**
 * Contract under filesystem faults (FaultFs over MemFs): a failed WAL write/fsync or flush surfaces
 * as a LightningError (DISK_FULL / IO_ERROR) to the writer, the database turns `degraded` (reads
 * keep working, writes fail fast while the fault lasts; DISK_FULL and flush IO_ERRORs are
 * 'retrying' and resume, a failed WAL fsync is 'failed' until reopen), close() does not blow up,
 * nothing is thrown into the void, and a reopen without the fault finds every acknowledged write
 * and nothing of a failed one. The fail-op-i sweep fails each filesystem operation of a scripted
 * workload in turn. Checks of the degraded state run while the fault is still injected, so the
 * engine's automatic retry timer cannot race them.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { open, LightningError, type ErrorCode } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import {
  FaultFs,
  countOps,
  failNth,
  failWhile,
  opIn,
  pathEndsWith,
  type FaultCode,
  type FaultFilter,
  type FaultInjector,
} from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { CrashAtOp } from '../harness/crash-at-op.js';
import { ProcessErrorRecorder, assertLightning, collect, describeError, k, rejectsCode, throwsCode } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

function both(a: FaultFilter, b: FaultFilter): FaultFilter {
  return (op, p) => a(op, p) && b(op, p);
}

const noFault: FaultInjector = { maybeFail: () => null };

/** close() must settle; a rejection must be a LightningError. Returns the error, if any. */
async function closeQuietly(db: Database, what: string): Promise<LightningError | undefined> {
  try {
    await db.close();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof LightningError, `${what}: close() rejected with ${describeError(e)}`);
    return e;
  }
}

/** Degraded: reported in stats, and writes fail with `code`. Call while the fault is still on. */
async function checkDegraded(db: Database, code: ErrorCode, mode?: 'retrying' | 'failed'): Promise<void> {
  const s = db.stats();
  assert.equal(s.state, 'degraded');
  assert.equal(s.backgroundError?.code, code);
  if (mode !== undefined) assert.equal(s.backgroundError?.mode, mode);
  assert.ok(s.backgroundErrors >= 1);
  await rejectsCode(() => db.put('later', 'x'), code, 'put while degraded');
  await rejectsCode(() => db.delete('later'), code, 'delete while degraded');
  await rejectsCode(() => db.batch([{ type: 'put', key: 'later', value: 'x' }]), code, 'batch while degraded');
}

// ================================================================================ WAL write faults

for (const shortWrite of [false, true]) {
  test(`ENOSPC on the WAL write (shortWrite: ${shortWrite}) → DISK_FULL, degraded, reads work, resume(), reopen has exactly the acked writes`, async () => {
    const mem = new MemFs();
    const fault = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
    fault.enabled = false;
    const db = await open('/db', { fs: new FaultFs(mem, fault, { shortWrite }) });
    const acked = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      await db.put(k(i), `v${i}`, { sync: i % 2 === 0 });
      acked.set(k(i), `v${i}`);
    }
    await db.batch([
      { type: 'put', key: 'batched', value: 'yes' },
      { type: 'del', key: k(3) },
    ]);
    acked.set('batched', 'yes');
    acked.delete(k(3));
    fault.enabled = true;
    await rejectsCode(() => db.put('failed', 'x'.repeat(100)), 'DISK_FULL', 'put on a full disk');
    // A group of concurrent writers all fail, none becomes visible.
    const group = [db.put('g1', '1'), db.put('g2', '2'), db.delete(k(0)), db.batch([{ type: 'put', key: 'g3', value: '3' }])];
    for (const p of group) await rejectsCode(() => p, 'DISK_FULL', 'grouped write on a full disk');
    for (const [key, v] of acked) assert.equal((await db.get(key))?.toString(), v, `read ${key} while degraded`);
    for (const key of ['failed', 'g1', 'g2', 'g3']) assert.equal(db.getSync(key), undefined, `${key} not visible`);
    assert.deepEqual(await collect(db.iterator()), [...acked.entries()].sort());
    const snap = db.snapshot();
    assert.equal((await snap.get(k(1)))?.toString(), 'v1');
    snap.release();
    await checkDegraded(db, 'DISK_FULL', 'retrying');
    await rejectsCode(() => db.resume(), 'DISK_FULL', 'resume while the disk is still full');
    fault.enabled = false; // space is back
    await db.resume();
    assert.equal(db.stats().state, 'open');
    assert.equal(db.stats().backgroundError, null);
    for (const key of ['failed', 'g1', 'g2', 'g3']) assert.equal(db.getSync(key), undefined, `${key} stays invisible after resume`);
    await db.put('after-resume', 'ok', { sync: true });
    acked.set('after-resume', 'ok');
    assert.deepEqual(await collect(db.iterator()), [...acked.entries()].sort());
    await closeQuietly(db, 'close after ENOSPC');
    const db2 = await open('/db', { fs: mem });
    assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort(), 'reopen: exactly the acked writes');
    assert.equal(db2.stats().state, 'open');
    await db2.put('fresh', 'works');
    await db2.close();
    recorder.assertNone();
  });

  test(`ENOSPC on the WAL write (shortWrite: ${shortWrite}), closed without resuming → reopen has exactly the acked writes`, async () => {
    const mem = new MemFs();
    const fault = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
    fault.enabled = false;
    const db = await open('/db', { fs: new FaultFs(mem, fault, { shortWrite }), memtableSize: 4096 });
    const acked = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      await db.put(k(i), `v${i}-${'s'.repeat(30)}`, { sync: i % 3 === 0 });
      acked.set(k(i), `v${i}-${'s'.repeat(30)}`);
    }
    fault.enabled = true;
    await rejectsCode(() => db.put('failed', 'x'.repeat(100)), 'DISK_FULL', 'put on a full disk');
    await closeQuietly(db, 'close while the disk is full');
    fault.enabled = false;
    const db2 = await open('/db', { fs: mem });
    assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort(), 'reopen: exactly the acked writes');
    await db2.close();
    recorder.assertNone();
  });
}

test('EIO on the WAL fsync → IO_ERROR, degraded, reads work, reopen has every acked write (the failed one is not half-applied)', async () => {
  const mem = new MemFs();
  const fault = failWhile(both(opIn('sync'), pathEndsWith('.log')), 'EIO');
  fault.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, fault) });
  const acked = new Map<string, string>();
  for (let i = 0; i < 20; i++) {
    await db.put(k(i), `v${i}`, { sync: true });
    acked.set(k(i), `v${i}`);
  }
  fault.enabled = true;
  await rejectsCode(() => db.batch([{ type: 'put', key: 'f1', value: 'x' }, { type: 'del', key: k(1) }]), 'IO_ERROR', 'durable batch with a failing fsync');
  fault.enabled = false;
  assert.equal(db.getSync('f1'), undefined, 'a failed write is never visible before reopen');
  assert.equal(db.getSync(k(1))?.toString(), 'v1');
  for (const [key, v] of acked) assert.equal(db.getSync(key)?.toString(), v);
  // After a failed fsync the WAL cannot be trusted: 'failed' until reopen, even with the fault gone.
  await checkDegraded(db, 'IO_ERROR', 'failed');
  await rejectsCode(() => db.resume(), 'IO_ERROR', 'resume after a failed WAL fsync');
  await checkDegraded(db, 'IO_ERROR', 'failed');
  await closeQuietly(db, 'close after fsync EIO');
  const db2 = await open('/db', { fs: mem });
  // The failed batch reached the file before its fsync failed: after reopen it may be there (in
  // full, atomically) or not at all; everything acknowledged must be there.
  const f1 = db2.getSync('f1')?.toString();
  const got1 = db2.getSync(k(1))?.toString();
  assert.ok((f1 === undefined && got1 === 'v1') || (f1 === 'x' && got1 === undefined), `batch atomic: f1=${f1} k1=${got1}`);
  for (const [key, v] of acked) if (key !== k(1)) assert.equal(db2.getSync(key)?.toString(), v, key);
  await db2.close();
  recorder.assertNone();
});

// Regression: rotateMemTable() used not to record the old WAL's sync failure as the background
// error: stats().state stayed 'open' while every later write failed with IO_ERROR.
test('a failed WAL fsync during memtable rotation → IO_ERROR, degraded, reopen has every acked write', async () => {
  const mem = new MemFs();
  const fault = failWhile(both(opIn('sync'), pathEndsWith('.log')), 'EIO');
  fault.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 1024, sync: false });
  fault.enabled = true;
  const acked = new Map<string, string>();
  let failed: unknown;
  for (let i = 0; i < 200 && failed === undefined; i++) {
    try {
      await db.put(k(i), 'v'.repeat(50)); // sync:false: only a rotation fsyncs the WAL
      acked.set(k(i), 'v'.repeat(50));
    } catch (e) {
      failed = e;
    }
  }
  assertLightning(failed, 'IO_ERROR', 'write that triggered the rotation');
  fault.enabled = false;
  for (const [key, v] of acked) assert.equal(db.getSync(key)?.toString(), v);
  await checkDegraded(db, 'IO_ERROR', 'failed');
  await rejectsCode(() => db.resume(), 'IO_ERROR', 'resume after a failed WAL fsync');
  await closeQuietly(db, 'close');
  const db2 = await open('/db', { fs: mem });
  assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort());
  await db2.close();
  recorder.assertNone();
});

test('DISK_FULL (short WAL write), then resume(): power loss at every op of the recovery loses no durable acked write', { timeout: 60_000 }, async () => {
  await withSeed('resume crash sweep', async (seed) => {
    const rng = new Random(seed);
    for (const keep of [false, true]) {
      let crashedSomewhere = true;
      let crashes = 0;
      for (let atOp = 1; crashedSomewhere && atOp < 300; atOp++) {
        const what = `crash at op ${atOp} of resume (keep unsynced: ${keep})`;
        const mem = new MemFs();
        const full = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
        full.enabled = false;
        const ffs = new FaultFs(mem, full, { shortWrite: true, rng });
        const db = await open('/db', { fs: ffs, memtableSize: 64 * 1024 });
        const acked = new Map<string, string>();
        for (let i = 0; i < 12; i++) {
          await db.put(k(i), `v${i}`, { sync: true });
          acked.set(k(i), `v${i}`);
        }
        full.enabled = true;
        await rejectsCode(() => db.put('failed', 'x'.repeat(64), { sync: true }), 'DISK_FULL', what);
        const crash = new CrashAtOp(mem, atOp, keep ? { keepUnsyncedProbability: 1, rng } : {});
        ffs.injector = crash;
        try {
          await db.resume();
          await db.put('after', 'resume', { sync: true });
          acked.set('after', 'resume');
        } catch (e) {
          assert.ok(e instanceof LightningError, `${what}: ${describeError(e)}`);
        }
        await closeQuietly(db, what);
        const image = crash.crashed ?? mem.crashClone();
        crashedSomewhere = crash.crashed !== undefined;
        if (crashedSomewhere) crashes++;
        let db2: Database;
        try {
          db2 = await open('/db', { fs: image });
        } catch (e) {
          assert.fail(`${what}: reopen failed: ${describeError(e)}\n${image.describe()}`);
        }
        try {
          const got = new Map(await collect(db2.iterator()));
          for (const [key, v] of acked) assert.equal(got.get(key), v, `${what}: durable acked ${key}`);
          assert.equal(got.get('failed'), undefined, `${what}: the failed write must not appear`);
        } finally {
          await db2.close();
        }
      }
      assert.ok(crashes >= 5, `resume() and the write after it do some I/O (${crashes} crash points)`);
    }
  });
  recorder.assertNone();
});

test('DISK_FULL, then EIO at every filesystem op of resume(): errors are LightningErrors, a later resume works, nothing acked is lost', async () => {
  let fired = true;
  let points = 0;
  for (let j = 0; fired && j < 200; j++) {
    const what = `EIO at op ${j} of resume()`;
    const mem = new MemFs();
    const full = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
    full.enabled = false;
    const ffs = new FaultFs(mem, full, { shortWrite: true });
    const db = await open('/db', { fs: ffs, memtableSize: 64 * 1024 });
    const acked = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      await db.put(k(i), `v${i}`, { sync: i % 2 === 0 });
      acked.set(k(i), `v${i}`);
    }
    full.enabled = true;
    await rejectsCode(() => db.put('failed', 'x'.repeat(64)), 'DISK_FULL', what);
    const nth = failNth(j, 'EIO');
    ffs.injector = nth;
    try {
      await db.resume();
    } catch (e) {
      assertLightning(e, ['IO_ERROR', 'DISK_FULL'], `${what}: resume`);
    }
    fired = nth.fired;
    if (fired) points++;
    ffs.injector = noFault;
    try {
      await db.resume();
      await db.put('after', 'resume', { sync: true });
      acked.set('after', 'resume');
    } catch (e) {
      // An EIO during recovery may leave the DB 'failed' until reopen: allowed, if reported properly.
      assertLightning(e, 'IO_ERROR', `${what}: second resume`);
      assert.equal(db.stats().backgroundError?.mode, 'failed', `${what}: a refused resume means mode failed`);
    }
    await closeQuietly(db, what);
    const db2 = await open('/db', { fs: mem });
    try {
      const got = new Map(await collect(db2.iterator()));
      for (const [key, v] of acked) assert.equal(got.get(key), v, `${what}: acked ${key}`);
      assert.equal(got.get('failed'), undefined, `${what}: the failed write must not appear`);
    } finally {
      await db2.close();
    }
  }
  assert.ok(points >= 5, `resume() does some I/O (${points} fault points)`);
  recorder.assertNone();
});

test('a snapshot and an open iterator keep their view across DISK_FULL, resume() and compactRange()', async () => {
  const mem = new MemFs();
  const full = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
  full.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, full, { shortWrite: true }), memtableSize: 2048 });
  const old = new Map<string, string>();
  for (let i = 0; i < 50; i++) {
    await db.put(k(i), `old${i}`, { sync: false });
    old.set(k(i), `old${i}`);
  }
  const snap = db.snapshot();
  const it = db.iterator();
  for (let i = 0; i < 50; i += 2) await db.put(k(i), `new${i}`, { sync: false });
  for (let i = 1; i < 50; i += 4) await db.delete(k(i), { sync: false });
  full.enabled = true;
  await rejectsCode(() => db.put('zz', 'fail'), 'DISK_FULL');
  full.enabled = false;
  await db.resume();
  await db.compactRange();
  for (const [key, v] of old) assert.equal(snap.getSync(key)?.toString(), v, `snapshot ${key}`);
  const want = [...old.entries()].sort();
  assert.deepEqual(await collect(it), want, 'iterator created before the failure');
  assert.deepEqual(await collect(snap.iterator()), want, 'snapshot iterator');
  snap.release();
  assert.equal(db.getSync(k(0))?.toString(), 'new0');
  assert.equal(db.getSync(k(1)), undefined);
  assert.equal(db.getSync('zz'), undefined);
  await db.close();
  recorder.assertNone();
});

// ================================================================================ flush faults

const flushFaults: [string, FaultFilter][] = [
  ['write of the .sst', both(opIn('write'), pathEndsWith('.sst'))],
  ['fsync of the .sst', both(opIn('sync'), pathEndsWith('.sst'))],
  ['write of the MANIFEST', (op, p) => op === 'write' && p.includes('MANIFEST')],
  ['fsync of the MANIFEST', (op, p) => op === 'sync' && p.includes('MANIFEST')],
];

for (const [name, filter] of flushFaults) {
  test(`EIO on the ${name} during a flush → background error, next write IO_ERROR, reopen recovers all acked`, async () => {
    const mem = new MemFs();
    const fault = failWhile(filter, 'EIO');
    fault.enabled = false;
    const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 1024, blockSize: 128 });
    fault.enabled = true;
    const acked = new Map<string, string>();
    let failed: unknown;
    for (let i = 0; i < 500 && failed === undefined; i++) {
      try {
        await db.put(k(i), `value-${i}-${'f'.repeat(40)}`, { sync: i % 4 === 0 });
        acked.set(k(i), `value-${i}-${'f'.repeat(40)}`);
      } catch (e) {
        failed = e;
      }
    }
    assert.ok(failed !== undefined, 'a write eventually failed');
    assertLightning(failed, 'IO_ERROR', 'write after the failed flush');
    assert.ok(acked.size > 0);
    // Everything acknowledged is readable, including what sits in the unflushed memtable.
    for (const [key, v] of acked) assert.equal(db.getSync(key)?.toString(), v, `read ${key}`);
    assert.deepEqual(await collect(db.iterator()), [...acked.entries()].sort());
    await checkDegraded(db, 'IO_ERROR');
    // A flush failure is transient: once the fault is gone, resume() redoes the flush.
    fault.enabled = false;
    await db.resume();
    assert.equal(db.stats().state, 'open');
    await db.put('after-resume', 'ok');
    acked.set('after-resume', 'ok');
    assert.deepEqual(await collect(db.iterator()), [...acked.entries()].sort());
    await closeQuietly(db, 'close after failed flush');
    const db2 = await open('/db', { fs: mem });
    assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort(), 'reopen recovers every acked write');
    await db2.close();
    // And once more after a clean close (now everything is in tables).
    const db3 = await open('/db', { fs: mem });
    assert.equal((await collect(db3.iterator())).length, acked.size);
    await db3.close();
    recorder.assertNone();
  });
}

/** Advances mocked setTimeout by `rounds` × 10 s, letting I/O promises settle in between. */
async function tickRetries(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    mock.timers.tick(10_000);
    for (let j = 0; j < 5; j++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

test('a flush that keeps failing is retried, then the DB gives up (mode failed): resume rejects, reopen recovers all acked', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const mem = new MemFs();
    const fault = failWhile(both(opIn('write'), pathEndsWith('.sst')), 'EIO');
    fault.enabled = false;
    const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 1024 });
    fault.enabled = true;
    const acked = new Map<string, string>();
    let failed: unknown;
    for (let i = 0; i < 300 && failed === undefined; i++) {
      try {
        await db.put(k(i), `v${i}-${'r'.repeat(40)}`, { sync: false });
        acked.set(k(i), `v${i}-${'r'.repeat(40)}`);
      } catch (e) {
        failed = e;
      }
    }
    assertLightning(failed, 'IO_ERROR', 'write after the failed flush');
    assert.equal(db.stats().backgroundError?.mode, 'retrying');
    const failuresBefore = db.stats().backgroundErrors;
    await tickRetries(10);
    const s = db.stats();
    assert.equal(s.backgroundError?.mode, 'failed', 'gives up after repeated failures');
    assert.ok(s.backgroundErrors > failuresBefore, 'the retries ran (and failed)');
    fault.enabled = false;
    await rejectsCode(() => db.resume(), 'IO_ERROR', 'resume once failed');
    await rejectsCode(() => db.put('x', 'y'), 'IO_ERROR', 'write once failed');
    for (const [key, v] of acked) assert.equal(db.getSync(key)?.toString(), v);
    await closeQuietly(db, 'close');
    const db2 = await open('/db', { fs: mem });
    assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort());
    await db2.close();
  } finally {
    mock.timers.reset();
  }
  recorder.assertNone();
});

test('DISK_FULL: concurrent resume() calls both settle; close() with a retry pending does no I/O afterwards', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const mem = new MemFs();
    const full = failWhile(both(opIn('write'), pathEndsWith('.log')), 'ENOSPC');
    full.enabled = false;
    let opsAfterClose = 0;
    let closed = false;
    const ffs = new FaultFs(mem, {
      maybeFail(op, path) {
        if (closed) opsAfterClose++;
        return full.maybeFail(op, path);
      },
    });
    const db = await open('/db', { fs: ffs });
    await db.put('a', '1');
    full.enabled = true;
    await rejectsCode(() => db.put('b', '2'), 'DISK_FULL');
    full.enabled = false;
    await Promise.all([db.resume(), db.resume()]);
    assert.equal(db.stats().backgroundError, null);
    await db.put('c', '3');
    full.enabled = true;
    await rejectsCode(() => db.put('d', '4'), 'DISK_FULL');
    assert.equal(db.stats().backgroundError?.mode, 'retrying'); // a retry timer is now pending
    await closeQuietly(db, 'close while retrying');
    closed = true;
    full.enabled = false;
    await tickRetries(5);
    assert.equal(opsAfterClose, 0, 'no filesystem call after close()');
    const db2 = await open('/db', { fs: mem });
    assert.deepEqual(await collect(db2.iterator()), [['a', '1'], ['c', '3']]);
    await db2.close();
  } finally {
    mock.timers.reset();
  }
  recorder.assertNone();
});

test('a failing read surfaces as IO_ERROR from get/getSync/iterator and does not degrade the DB', async () => {
  const mem = new MemFs();
  const db0 = await open('/db', { fs: mem, memtableSize: 1024 });
  for (let i = 0; i < 100; i++) await db0.put(k(i), `v${i}`, { sync: false });
  await db0.close();
  const fault = failWhile(both(opIn('read'), pathEndsWith('.sst')), 'EIO');
  fault.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, fault), blockCacheSize: 0 });
  await db.idle(); // the compaction open() starts reads tables too: let it finish first
  fault.enabled = true;
  await rejectsCode(() => db.get(k(5)), 'IO_ERROR', 'get');
  throwsCode(() => db.getSync(k(6)), 'IO_ERROR', 'getSync');
  let iterErr: unknown;
  try {
    await collect(db.iterator());
  } catch (e) {
    iterErr = e;
  }
  assertLightning(iterErr, 'IO_ERROR', 'iterator');
  assert.equal(db.stats().openIterators, 0, 'a failed iterator is released');
  fault.enabled = false;
  assert.equal(db.stats().state, 'open', 'a read error is not sticky');
  assert.equal((await db.get(k(5)))?.toString(), 'v5');
  await db.put('still', 'writable');
  assert.equal((await collect(db.iterator())).length, 101);
  await db.close();
  recorder.assertNone();
});

// ============================================================================= fail-op-i sweep

interface Issued {
  ops: { key: string; value: string | null }[];
  sync: boolean;
  acked: boolean;
}

function apply(state: Map<string, string>, w: Issued): void {
  for (const o of w.ops) {
    if (o.value === null) state.delete(o.key);
    else state.set(o.key, o.value);
  }
}

function stateKey(m: Map<string, string>): string {
  return JSON.stringify([...m.entries()].sort());
}

/**
 * The scripted workload: sequential puts (mixed durability), a batch, deletes, a group of 8
 * concurrent writers, a few reads, with a tiny memtable so rotations, flushes and compactions run.
 * Stops issuing at the first error. Returns the db (if open) and the first error.
 */
async function workload(
  fs: FaultFs,
  issued: Issued[],
  onFirstError: () => void,
): Promise<{ db: Database | undefined; error: unknown }> {
  let db: Database;
  try {
    db = await open('/db', { fs, memtableSize: 1024, blockSize: 128, l0CompactionTrigger: 2 });
  } catch (e) {
    onFirstError();
    return { db: undefined, error: e };
  }
  let error: unknown;
  const write = async (w: Issued, p: () => Promise<void>): Promise<boolean> => {
    issued.push(w);
    try {
      await p();
      w.acked = true;
      return true;
    } catch (e) {
      if (error === undefined) {
        error = e;
        onFirstError();
      }
      return false;
    }
  };
  const value = (i: number): string => `val-${i}-${'w'.repeat(i % 5 === 0 ? 120 : 24)}`;
  const script = async (): Promise<void> => {
    for (let i = 0; i < 36; i++) {
      const w: Issued = { ops: [{ key: k(i), value: value(i) }], sync: i % 3 === 0, acked: false };
      if (!(await write(w, () => db.put(k(i), value(i), { sync: w.sync })))) return;
    }
    const b: Issued = {
      ops: [
        { key: 'batch-a', value: 'A' },
        { key: k(1), value: null },
        { key: 'batch-b', value: 'B' },
      ],
      sync: true,
      acked: false,
    };
    if (!(await write(b, () => db.batch([{ type: 'put', key: 'batch-a', value: 'A' }, { type: 'del', key: k(1) }, { type: 'put', key: 'batch-b', value: 'B' }])))) return;
    const d: Issued = { ops: [{ key: k(2), value: null }], sync: false, acked: false };
    if (!(await write(d, () => db.delete(k(2), { sync: false })))) return;
    // Reads in the middle (tables and memtable).
    try {
      if (db.getSync(k(7))?.toString() !== value(7)) throw new Error('wrong value for a key in a table');
      const n = (await collect(db.iterator({ gte: k(10), lt: k(20) }))).length;
      if (n !== 10) throw new Error(`range scan returned ${n} entries`);
    } catch (e) {
      if (!(e instanceof LightningError)) throw e;
      error = e;
      onFirstError();
      return;
    }
    const group: Promise<boolean>[] = [];
    for (let i = 100; i < 108; i++) {
      const w: Issued = { ops: [{ key: k(i), value: value(i) }], sync: i % 2 === 0, acked: false };
      group.push(write(w, () => db.put(k(i), value(i), { sync: w.sync })));
    }
    const ok = await Promise.all(group);
    if (ok.includes(false)) return;
    for (let i = 36; i < 60; i++) {
      const w: Issued = { ops: [{ key: k(i), value: value(i) }], sync: i % 4 === 0, acked: false };
      if (!(await write(w, () => db.put(k(i), value(i), { sync: w.sync })))) return;
    }
  };
  await script();
  return { db, error };
}

/**
 * The state must be the result of a prefix W[0..j) of the issued writes with j >= `required`
 * (writes are issued in order; a failed write may or may not have landed; nothing after it did).
 */
function assertPrefixState(actual: Map<string, string>, issued: Issued[], required: number, what: string): void {
  const state = new Map<string, string>();
  const candidates = new Set<string>();
  for (let j = 0; j <= issued.length; j++) {
    if (j >= required) candidates.add(stateKey(state));
    const w = issued[j];
    if (w !== undefined) apply(state, w);
  }
  assert.ok(
    candidates.has(stateKey(actual)),
    `${what}: state is not a prefix of the issued writes with at least ${required} of ${issued.length}\n` +
      `actual: ${stateKey(actual).slice(0, 2000)}`,
  );
}

async function readAll(db: Database): Promise<Map<string, string>> {
  return new Map(await collect(db.iterator()));
}

interface SweepContext {
  phase: string;
  mem: MemFs | undefined;
  crashed: MemFs | undefined;
}

/** failNth that also remembers which operation it failed. */
interface RecordingNth extends FaultInjector {
  readonly fired: boolean;
  firedOp: string | undefined;
}

function recordingNth(n: number, code: FaultCode, filter: FaultFilter): RecordingNth {
  const inner = failNth(n, code, filter);
  const rec: RecordingNth = {
    get fired() {
      return inner.fired;
    },
    firedOp: undefined,
    maybeFail(op, path) {
      const r = inner.maybeFail(op, path);
      if (r !== null) rec.firedOp = `${op} ${path}`;
      return r;
    },
  };
  return rec;
}

interface SweepFailure {
  i: number;
  firedOp: string | undefined;
  message: string;
}

interface SweepResult {
  runs: number;
  failedRuns: number;
  failures: SweepFailure[];
}

/**
 * Runs the workload once per filesystem operation, failing that operation. Checks per run: the
 * error is a LightningError with `expected`; close settles; a reopen of the live filesystem and a
 * reopen after a power loss at the moment of the failure both succeed and hold a prefix of the
 * issued writes that includes every acknowledged (resp. every durable acknowledged) write.
 * Collects every violation instead of stopping at the first.
 */
async function sweep(code: FaultCode, expected: ErrorCode, filter: FaultFilter, shortWrite: boolean, rng: Random): Promise<SweepResult> {
  // Count the operations of a fault-free run.
  const counter = countOps(filter);
  {
    const mem = new MemFs();
    const issued: Issued[] = [];
    const { db, error } = await workload(new FaultFs(mem, counter), issued, () => undefined);
    assert.equal(error, undefined, `fault-free workload failed: ${describeError(error)}`);
    assert.ok(db !== undefined);
    await db.close();
  }
  const total = counter.count;
  assert.ok(total > 50, `the workload does some I/O (${total} ops)`);
  const result: SweepResult = { runs: 0, failedRuns: 0, failures: [] };
  // Timing (background flush/compaction) can shift the op count a little: go a bit past it.
  for (let i = 0; i <= total + 10; i++) {
    const what = `${code} at op ${i}/${total}`;
    const ctx: SweepContext = { phase: 'workload', mem: undefined, crashed: undefined };
    const injector = recordingNth(i, code, filter);
    try {
      await sweepOne(what, ctx, injector);
    } catch (e) {
      result.failures.push({
        i,
        firedOp: injector.firedOp,
        message:
          `${what} (failed op: ${injector.firedOp ?? 'none'}), during ${ctx.phase}: ${describeError(e)}\n` +
          `live files:\n${ctx.mem?.describe() ?? '-'}\nfiles at the failure (power loss):\n${ctx.crashed?.describe() ?? '-'}`,
      });
    }
  }
  return result;

  async function sweepOne(what: string, ctx: SweepContext, injector: RecordingNth): Promise<void> {
    const mem = new MemFs();
    ctx.mem = mem;
    const issued: Issued[] = [];
    let crashed: MemFs | undefined;
    const ffs = new FaultFs(mem, injector, { shortWrite, rng });
    const { db, error } = await workload(ffs, issued, () => {
      // Power loss right at the failure: what is on "disk" now must reopen too.
      crashed = mem.crashClone();
      ctx.crashed = crashed;
    });
    result.runs++;
    if (error !== undefined) {
      result.failedRuns++;
      assert.ok(injector.fired, `${what}: an error without an injected fault: ${describeError(error)}`);
      assertLightning(error, expected, what);
    }
    ctx.phase = 'close';
    if (db !== undefined) {
      const closeErr = await closeQuietly(db, what);
      if (closeErr !== undefined) assertLightning(closeErr, [expected, 'IO_ERROR'], `${what}: close`);
    }
    const acked = issued.filter((w) => w.acked).length;
    assert.ok(issued.slice(0, acked).every((w) => w.acked), `${what}: acks are in order`);
    // 1. Reopen the live filesystem (the process went on; no power loss).
    ctx.phase = 'reopen of the live filesystem';
    ffs.injector = noFault;
    const db2 = await open('/db', { fs: mem });
    try {
      assertPrefixState(await readAll(db2), issued, acked, `${what}: reopen`);
      await db2.put('post', 'reopen');
    } finally {
      await db2.close();
    }
    // 2. Power loss at the moment of the failure: every durable acknowledged write survives.
    if (crashed !== undefined) {
      ctx.phase = 'reopen after power loss at the failure';
      let lastDurable = 0;
      issued.forEach((w, idx) => {
        if (w.acked && w.sync) lastDurable = idx + 1;
      });
      const db3 = await open('/db', { fs: crashed });
      try {
        assertPrefixState(await readAll(db3), issued, lastDurable, `${what}: reopen after power loss`);
      } finally {
        await db3.close();
      }
    }
  }
}

function assertNoFailures(failures: SweepFailure[]): void {
  assert.equal(failures.length, 0, `${failures.length} failing runs; first ones:\n${failures.slice(0, 3).map((f) => f.message).join('\n\n')}`);
}

for (const [name, code, expected, filter, shortWrite] of [
  ['EIO at every filesystem operation', 'EIO', 'IO_ERROR', () => true, false],
  ['ENOSPC (short writes) at every write/fsync/create', 'ENOSPC', 'DISK_FULL', opIn('write', 'sync', 'syncDir', 'open', 'rename'), true],
] as [string, FaultCode, ErrorCode, FaultFilter, boolean][]) {
  test(`fail-op-i sweep: ${name} of a workload`, { timeout: 120_000 }, async () => {
    await withSeed(`${code} sweep`, async (seed) => {
      const r = await sweep(code, expected, filter, shortWrite, new Random(seed));
      assert.ok(r.failedRuns > 0);
      assertNoFailures(r.failures);
    });
    await recorder.settle();
    recorder.assertNone();
  });
}

// Regression: runCompaction() used to unlink its outputs when logAndApply failed even though the
// edit had reached the MANIFEST (the fsync failed after the write), so a reopen referenced a deleted
// table and removed the inputs as orphans.
test('EIO on the MANIFEST fsync of a compaction: a reopen (no power loss) still has every acked write', async () => {
  const mem = new MemFs();
  // Fail only a MANIFEST fsync that follows a compaction's table reads and output writes.
  let sstRead = false;
  let compactionWrite = false;
  let fired = false;
  const fault: FaultInjector = {
    maybeFail(op, path) {
      if (op === 'read' && path.endsWith('.sst')) sstRead = true;
      if (op === 'write' && path.endsWith('.sst') && sstRead) compactionWrite = true;
      if (!fired && op === 'sync' && path.includes('MANIFEST') && compactionWrite) {
        fired = true;
        return 'EIO';
      }
      if (op === 'sync' && path.includes('MANIFEST')) {
        sstRead = false;
        compactionWrite = false;
      }
      return null;
    },
  };
  const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 1024, blockSize: 128, l0CompactionTrigger: 2 });
  const acked = new Map<string, string>();
  for (let i = 0; i < 400 && db.stats().backgroundError === null; i++) {
    try {
      // Scattered keys: overlapping tables, so compactions merge (sequential keys are only moved).
      const key = k((i * 7919) % 400);
      await db.put(key, `v${i}-${'c'.repeat(30)}`, { sync: false });
      acked.set(key, `v${i}-${'c'.repeat(30)}`);
    } catch (e) {
      assertLightning(e, 'IO_ERROR', 'write after the failed compaction');
    }
  }
  assert.ok(fired, 'a compaction ran and its MANIFEST fsync failed');
  assert.equal(db.stats().backgroundError?.code, 'IO_ERROR');
  await closeQuietly(db, 'close after the failed compaction');
  const db2 = await open('/db', { fs: mem });
  try {
    assert.deepEqual(await collect(db2.iterator()), [...acked.entries()].sort());
  } finally {
    await db2.close();
  }
});

test('no unhandled rejections or uncaught exceptions were recorded in this file', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});

test('obsolete tables and WALs are deleted in the background: failed deletions leave orphans the next open removes, never an error', async () => {
  const mem = new MemFs();
  const fault = failWhile(opIn('unlink'), 'EIO');
  const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 4096, sync: false });
  const model = new Map<string, string>();
  for (let i = 0; i < 600; i++) {
    model.set(k(i % 150), `v${i}`);
    await db.put(k(i % 150), `v${i}`);
  }
  await db.compactRange();
  await db.idle(); // waits for the (failed) deletions too
  assert.equal(db.stats().state, 'open', 'a failed deletion is not a background error');
  assert.equal(db.stats().backgroundError, null);
  const sstOnDisk = mem.listAll().filter((p) => p.endsWith('.sst')).length;
  const sstLive = db.stats().levels.reduce((n, l) => n + l.files, 0);
  assert.ok(sstOnDisk > sstLive, `replaced tables stay behind while unlink fails (${sstOnDisk} on disk, ${sstLive} live)`);
  await db.close();
  fault.enabled = false;
  const again = await open('/db', { fs: mem });
  assert.ok(again.stats().recovery.orphansRemoved > 0, 'the next open removes the leftovers');
  const sstAfter = mem.listAll().filter((p) => p.endsWith('.sst')).length;
  assert.equal(sstAfter, again.stats().levels.reduce((n, l) => n + l.files, 0));
  for (const [key, v] of model) assert.equal(again.getSync(key)?.toString(), v);
  await again.close();
  recorder.assertNone();
});
