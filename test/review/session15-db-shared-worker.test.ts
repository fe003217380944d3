/**
 * Reviewer tests (session 15): databases whose flushes and merges share one background worker.
 *   - stats().flushes.thread / compactions.thread once the shared worker broke through the other
 *     kind of job (the role's field is still null then);
 *   - a seeded write/delete workload with small memtables and aggressive compaction (write stalls
 *     and slowdowns), snapshots and iterators held across flushes and merges, compactRange: one
 *     worker alive at most, contents equal a model, after reopen too;
 *   - the shared worker killed (after WorkerReady) at a seeded moment, preferably with a flush and
 *     a merge both in flight: acknowledged writes survive, the retries succeed, later jobs run on
 *     the main thread, reopen gives the model.
 * Background errors must never become unhandled rejections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type BatchOperation, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => {
  unhandled.push(e);
});
function assertNoUnhandled(what: string): void {
  assert.deepEqual(
    unhandled.splice(0).map((e) => String((e as Error)?.stack ?? e)),
    [],
    `${what}: unhandled rejections`,
  );
}

const MIB = 1024 * 1024;
const WORKER_FILE = new URL('../../src/compaction/compaction-worker.js', import.meta.url);

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-db-'));
}
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;

type Internals = { sharedThread: CompactionThread | null; flushThread: CompactionThread | null; compactionThread: CompactionThread | null };
const internals = (db: Database): Internals => db as unknown as Internals;

async function contents(db: Database | Snapshot): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

function assertSameMap(got: Map<string, string>, want: Map<string, string>, what: string): void {
  if (got.size !== want.size) {
    const missing = [...want.keys()].filter((k) => !got.has(k)).slice(0, 5);
    const extra = [...got.keys()].filter((k) => !want.has(k)).slice(0, 5);
    assert.fail(`${what}: ${got.size} keys, want ${want.size}; missing ${missing.join(',')} extra ${extra.join(',')}`);
  }
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g !== v) assert.fail(`${what}: ${k} = ${g?.slice(0, 40)}...(${g?.length}), want ${v.slice(0, 40)}...(${v.length})`);
  }
}

/**
 * Real workers, counted (alive at once, started), each killed right after the `killAt`-th job
 * posted to this factory's workers once it is ready (a death mid-job, after WorkerReady).
 */
interface Factory {
  make: () => Worker;
  started: () => number;
  maxAlive: () => number;
  posted: () => number;
  killedWith: () => number | null;
}
function workerFactory(opts: { killAtJob?: number; preferBothInFlight?: boolean } = {}): Factory {
  let started = 0;
  let alive = 0;
  let maxAlive = 0;
  let posted = 0;
  let inFlight = 0;
  let killedWith: number | null = null;
  let killed = false;
  return {
    make: () => {
      const w = new Worker(WORKER_FILE, { resourceLimits: { maxYoungGenerationSizeMb: 4 } });
      started++;
      alive++;
      maxAlive = Math.max(maxAlive, alive);
      w.once('exit', () => alive--);
      let ready = false;
      let armed = false;
      const kill = (): void => {
        if (killed) return;
        killed = true;
        killedWith = inFlight;
        void w.terminate();
      };
      w.on('message', (m: { ready?: boolean }) => {
        if (m.ready === true) {
          ready = true;
          if (armed) kill();
        } else inFlight--;
      });
      const post = w.postMessage.bind(w);
      w.postMessage = (m: unknown): void => {
        post(m);
        posted++;
        inFlight++;
        const k = opts.killAtJob;
        if (k === undefined || killed) return;
        const due = opts.preferBothInFlight === true ? (inFlight >= 2 && posted >= k) || posted >= 3 * k : posted >= k;
        if (!due) return;
        if (ready) kill();
        else armed = true;
      };
      return w;
    },
    started: () => started,
    maxAlive: () => maxAlive,
    posted: () => posted,
    killedWith: () => killedWith,
  };
}

test('stats: once a flush killed the shared worker, compactions.thread says main (the next merge runs there)', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const opts: OpenOptions = { compactionThread: 'worker', memtableSize: 4 * MIB, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, sync: false };
    const db = await open(dir, opts);
    const factory = workerFactory({ killAtJob: 1 });
    internals(db).sharedThread = new CompactionThread('background', factory.make);
    const model = new Map<string, string>();
    let b = 0;
    const writeMiB = async (mib: number): Promise<void> => {
      for (let i = 0; i < mib * 1024; i++) {
        const k = key(b * 100_000 + i);
        const v = `${b}.${i}`.padEnd(1000, '.');
        // A write may fail (IO_ERROR) while the killed flush waits for its retry: resume, write again.
        for (;;) {
          try {
            await db.put(k, v);
            break;
          } catch (e) {
            assert.equal((e as { code?: string }).code, 'IO_ERROR', String(e));
            await db.resume().catch(() => undefined);
          }
        }
        model.set(k, v);
      }
      b++;
    };
    // A full memtable: its flush goes to the shared worker, which is killed with the flush in it.
    await writeMiB(5);
    await db.resume().catch(() => undefined);
    await db.idle();
    const shared = internals(db).sharedThread;
    assert.equal(shared?.broken, true, 'the shared worker died');
    assert.equal(internals(db).compactionThread, null, 'no merge has run yet');
    const s = db.stats();
    assert.equal(s.flushes.thread, 'main');
    const startedBefore = factory.started();
    // Where will the next merge run? On the main thread: the database's one worker is broken.
    const reported = s.compactions.thread;
    await writeMiB(2);
    await db.compactRange();
    await db.idle();
    assert.equal(factory.started(), startedBefore, 'the merge started no worker');
    assert.equal(db.stats().compactions.thread, 'main', 'after the merge');
    assertSameMap(await contents(db), model, 'contents');
    await db.close();
    assert.equal(
      reported,
      'main',
      "stats().compactions.thread said 'worker' while the database's only background thread was broken (the next merge ran on the main thread): threadKind(this.compactionThread) looks at a field that is still null",
    );
    assertNoUnhandled('flush killed the shared worker');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('stats: once a merge killed the shared worker, flushes.thread says main (the next flush runs there)', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  try {
    const opts: OpenOptions = { compactionThread: 'worker', memtableSize: 4 * MIB, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, sync: false };
    const db = await open(dir, opts);
    const model = new Map<string, string>();
    // Part-full memtables flushed by compactRange are "small": built on the main thread, so the
    // flush role never takes the shared thread.
    for (let t = 0; t < 4; t++) {
      const ops: BatchOperation[] = [];
      for (let i = 0; i < 500; i++) {
        const k = key(i * 4 + t);
        const v = `${t}.${i}`.padEnd(900, '-');
        ops.push({ type: 'put', key: k, value: v });
        model.set(k, v);
      }
      await db.batch(ops);
      await db.compactRange(key(9_999_999), key(9_999_999)); // flush only
    }
    assert.equal(db.stats().levels[0]?.files, 4);
    assert.equal(internals(db).flushThread, null, 'no flush went to a worker');
    const factory = workerFactory({ killAtJob: 1 });
    internals(db).sharedThread = new CompactionThread('background', factory.make);
    await assert.rejects(db.compactRange(), (e: unknown) => (e as { code?: string }).code === 'IO_ERROR');
    await db.resume();
    assert.equal(internals(db).sharedThread?.broken, true, 'the shared worker died');
    const s = db.stats();
    assert.equal(s.compactions.thread, 'main');
    const reported = s.flushes.thread;
    const startedBefore = factory.started();
    // A full memtable's flush (not a small one): it would use the worker, which is broken.
    for (let i = 0; i < 5 * 1024; i++) {
      const k = key(100_000 + i);
      const v = `${i}`.padEnd(1000, '+');
      await db.put(k, v);
      model.set(k, v);
    }
    await db.idle();
    assert.ok(db.stats().flushes.count >= 5);
    assert.equal(factory.started(), startedBefore, 'the flush started no worker');
    assert.equal(db.stats().flushes.thread, 'main', 'after the flush');
    assertSameMap(await contents(db), model, 'contents');
    await db.close();
    assert.equal(
      reported,
      'main',
      "stats().flushes.thread said 'worker' while the database's only background thread was broken (the next flush ran on the main thread): threadKind(this.flushThread) looks at a field that is still null",
    );
    assertNoUnhandled('merge killed the shared worker');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const AGGRESSIVE: OpenOptions = {
  compactionThread: 'worker',
  memtableSize: 2 * MIB,
  blockSize: 1024,
  levelBaseSize: 4 * MIB,
  levelMultiplier: 4,
  targetFileSize: 512 * 1024,
  l0CompactionTrigger: 2,
  l0SlowdownTrigger: 3,
  l0StopTrigger: 4,
  compression: 'lz',
  sync: false,
};

interface WorkloadResult {
  model: Map<string, string>;
  rejected: number;
}

/**
 * Seeded batches of puts and deletes with ~1 KB values over `keys` keys; snapshots and open
 * iterators held across flushes and merges and checked against frozen copies; the odd
 * compactRange. A write that fails (a background error after a kill) is not in the model; the
 * database is resumed and the workload goes on.
 */
async function workload(db: Database, rng: Random, batches: number, keys: number): Promise<WorkloadResult> {
  const model = new Map<string, string>();
  const held: { snap: Snapshot; frozen: Map<string, string> }[] = [];
  const iters: { it: AsyncIterator<[Buffer, Buffer]>; frozen: [string, string][]; at: number }[] = [];
  let rejected = 0;
  for (let b = 0; b < batches; b++) {
    const ops: BatchOperation[] = [];
    const n = 20 + rng.nextInt(200);
    const staged = new Map<string, string | null>();
    for (let i = 0; i < n; i++) {
      const k = key(rng.nextInt(keys));
      if (rng.nextInt(6) === 0) {
        ops.push({ type: 'del', key: k });
        staged.set(k, null);
      } else {
        const v = `${b}.${i}.`.padEnd(600 + rng.nextInt(800), String.fromCharCode(97 + rng.nextInt(26)));
        ops.push({ type: 'put', key: k, value: v });
        staged.set(k, v);
      }
    }
    try {
      await db.batch(ops);
      for (const [k, v] of staged) {
        if (v === null) model.delete(k);
        else model.set(k, v);
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      assert.ok(code === 'IO_ERROR', `write rejected with ${code}: ${String(e)}`);
      rejected++;
      await db.resume().catch(() => undefined);
    }
    const r = rng.nextInt(100);
    if (r < 3 && held.length < 4) held.push({ snap: db.snapshot(), frozen: new Map(model) });
    else if (r < 6 && held.length > 0) {
      const h = held.splice(rng.nextInt(held.length), 1)[0] as { snap: Snapshot; frozen: Map<string, string> };
      assertSameMap(await contents(h.snap), h.frozen, `snapshot at batch ${b}`);
      h.snap.release();
    } else if (r < 9 && iters.length < 3) {
      const frozen = [...model.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
      iters.push({ it: db.iterator()[Symbol.asyncIterator]() as AsyncIterator<[Buffer, Buffer]>, frozen, at: 0 });
    } else if (r < 30 && iters.length > 0) {
      // Step an open iterator a little: it reads the version it was opened on.
      const x = iters[rng.nextInt(iters.length)] as (typeof iters)[number];
      for (let s = 0; s < 50; s++) {
        const next = await x.it.next();
        const want = x.frozen[x.at];
        if (next.done === true) {
          assert.equal(want, undefined, `iterator ended early at ${x.at} of ${x.frozen.length}`);
          iters.splice(iters.indexOf(x), 1);
          break;
        }
        assert.ok(want !== undefined, 'iterator returned more than its snapshot');
        assert.equal(next.value[0].toString(), want[0], `iterator key ${x.at}`);
        assert.equal(next.value[1].toString(), want[1], `iterator value ${x.at}`);
        x.at++;
      }
    } else if (r === 99) {
      const lo = rng.nextInt(keys);
      await db.compactRange(key(lo), key(lo + rng.nextInt(keys / 4))).catch(async (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'IO_ERROR', String(e));
        await db.resume().catch(() => undefined);
      });
    }
  }
  for (const h of held) {
    assertSameMap(await contents(h.snap), h.frozen, 'snapshot at the end');
    h.snap.release();
  }
  for (const x of iters) await x.it.return?.();
  return { model, rejected };
}

test('a seeded workload with stalls, snapshots and iterators through one shared worker: one worker alive, both kinds ran there, model and reopen agree', { timeout: 120_000 }, async () => {
  await withSeed('shared worker workload', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    try {
      const db = await open(dir, AGGRESSIVE);
      const factory = workerFactory();
      internals(db).sharedThread = new CompactionThread('background', factory.make);
      const { model, rejected } = await workload(db, rng, 900, 12_000);
      await db.idle();
      const s = db.stats();
      console.log(`workload: flushes ${s.flushes.count}, merges ${s.compactions.count - s.compactions.trivialMoves}, stalls ${s.writes.stalls}, slowdowns ${s.writes.slowdowns}, workers started ${factory.started()}, jobs ${factory.posted()}`);
      assert.equal(rejected, 0);
      assert.equal(s.backgroundErrors, 0);
      assert.equal(s.flushes.thread, 'worker');
      assert.equal(s.compactions.thread, 'worker');
      assert.ok(s.flushes.count >= 10, `flushes ${s.flushes.count}`);
      assert.ok(s.compactions.count - s.compactions.trivialMoves >= 3, 'merges ran');
      assert.equal(factory.maxAlive(), 1, 'never more than one worker alive');
      assert.equal(internals(db).flushThread, internals(db).sharedThread);
      assert.equal(internals(db).compactionThread, internals(db).sharedThread);
      assertSameMap(await contents(db), model, 'after idle');
      await db.close();
      const again = await open(dir, { ...AGGRESSIVE, compactionThread: 'main' });
      assertSameMap(await contents(again), model, 'after reopen');
      await again.close();
      assertNoUnhandled('workload');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the shared worker killed at a seeded job (a flush and a merge in flight if possible): no acknowledged write lost, retries succeed, then main-thread jobs', { timeout: 120_000 }, async () => {
  await withSeed('shared worker killed', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    try {
      const db = await open(dir, AGGRESSIVE);
      const killAt = 2 + rng.nextInt(12);
      const factory = workerFactory({ killAtJob: killAt, preferBothInFlight: true });
      internals(db).sharedThread = new CompactionThread('background', factory.make);
      const { model, rejected } = await workload(db, rng, 700, 12_000);
      await db.resume().catch(() => undefined);
      await db.idle();
      const s = db.stats();
      console.log(`killed at job ${killAt} with ${factory.killedWith()} in flight; ${rejected} writes rejected; backgroundErrors ${s.backgroundErrors}; flushes ${s.flushes.count} (${s.flushes.thread}), merges ${s.compactions.count - s.compactions.trivialMoves} (${s.compactions.thread})`);
      assert.ok(factory.killedWith() !== null, `the worker was never killed (${factory.posted()} jobs)`);
      assert.equal(s.backgroundError, null, `still failing: ${s.backgroundError?.message}`);
      assert.equal(internals(db).sharedThread?.broken, true);
      assert.equal(factory.started(), 1, 'a broken thread starts no new worker');
      assertSameMap(await contents(db), model, 'after idle');
      await db.close();
      const again = await open(dir, { ...AGGRESSIVE, compactionThread: 'main' });
      assertSameMap(await contents(again), model, 'after reopen');
      await again.close();
      assertNoUnhandled('killed worker');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('close() right after writes that left a flush and a merge in the shared worker: close waits for both, no CLOSED job, reopen gives the model', { timeout: 120_000 }, async () => {
  await withSeed('close with both in flight', async (seed) => {
    const rng = new Random(seed);
    let bothSeen = 0;
    for (let round = 0; round < 6; round++) {
      const dir = tempDir();
      try {
        const db = await open(dir, AGGRESSIVE);
        const factory = workerFactory();
        internals(db).sharedThread = new CompactionThread('background', factory.make);
        const model = new Map<string, string>();
        const batches = 40 + rng.nextInt(120);
        let sawBoth = false;
        for (let b = 0; b < batches; b++) {
          const ops: BatchOperation[] = [];
          for (let i = 0; i < 100; i++) {
            const k = key(rng.nextInt(6000));
            const v = `${round}.${b}.${i}`.padEnd(500 + rng.nextInt(1000), 'q');
            ops.push({ type: 'put', key: k, value: v });
            model.set(k, v);
          }
          await db.batch(ops);
          const t = internals(db).sharedThread as unknown as { pending: Map<number, { kind: string }> };
          if (t.pending.size === 2) sawBoth = true;
        }
        const t = internals(db).sharedThread as unknown as { pending: Map<number, { kind: string }> };
        if (t.pending.size === 2 || sawBoth) bothSeen++;
        await db.close(); // must neither reject nor hang
        assert.equal(factory.maxAlive(), 1);
        const again = await open(dir, { ...AGGRESSIVE, compactionThread: 'main' });
        assertSameMap(await contents(again), model, `round ${round}: after reopen`);
        assert.equal(again.stats().backgroundError, null);
        await again.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    console.log(`rounds with a flush and a merge in flight together: ${bothSeen} of 6`);
    assertNoUnhandled('close with both in flight');
  });
});

/**
 * A worker that never gets ready (its code "cannot load"): it fails once it holds two jobs (or
 * after a while, so that a run with one job cannot hang), before posting WorkerReady.
 */
const failsBeforeReady = (): Worker =>
  new Worker(
    `const { parentPort } = require('node:worker_threads');
     let n = 0;
     const die = () => { throw new Error('cannot load the worker code'); };
     parentPort.on('message', () => { if (++n === 2) die(); });
     setTimeout(die, 3000);`,
    { eval: true },
  );

test('a shared worker that fails before ready with a merge and a flush in flight: both run again on the main thread, no background error, no write fails', { timeout: 60_000 }, async () => {
  await withSeed('start failure with both in flight', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    try {
      const opts: OpenOptions = { ...AGGRESSIVE, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 };
      const db = await open(dir, opts);
      const model = new Map<string, string>();
      // L0 tables made by small (main-thread) flushes: the worker is not involved yet.
      for (let t = 0; t < 3; t++) {
        const ops: BatchOperation[] = [];
        for (let i = 0; i < 300; i++) {
          const k = key(rng.nextInt(5000));
          const v = `${t}.${i}`.padEnd(700, 'a');
          ops.push({ type: 'put', key: k, value: v });
          model.set(k, v);
        }
        await db.batch(ops);
        await db.compactRange(key(9_999_999), key(9_999_999));
      }
      const thread = new CompactionThread('background', failsBeforeReady);
      (thread as unknown as { prestart(): void }).prestart = () => undefined;
      internals(db).sharedThread = thread;
      const kinds = new Set<string>();
      const t = thread as unknown as { pending: Map<number, { kind: string }> };
      // The merge (compactRange) and a full memtable's flush, at once.
      const compacting = db.compactRange();
      for (let i = 0; i < 3000; i++) {
        const k = key(10_000 + rng.nextInt(5000));
        const v = `w${i}`.padEnd(1000, 'b');
        await db.put(k, v); // must not reject
        model.set(k, v);
        for (const p of t.pending.values()) kinds.add(p.kind);
      }
      await compacting;
      await db.idle();
      const s = db.stats();
      console.log(`kinds seen in flight: ${[...kinds].join(',')}; flushes ${s.flushes.count} (${s.flushes.thread}), merges ${s.compactions.count} (${s.compactions.thread}), backgroundErrors ${s.backgroundErrors}`);
      assert.equal(thread.broken, true);
      assert.equal(s.backgroundErrors, 0, 'jobs that never started are rerun here, not failed');
      assert.equal(s.flushes.thread, 'main');
      assert.equal(s.compactions.thread, 'main');
      assertSameMap(await contents(db), model, 'after idle');
      await db.close();
      const again = await open(dir, { ...opts, compactionThread: 'main' });
      assertSameMap(await contents(again), model, 'after reopen');
      await again.close();
      assertNoUnhandled('start failure with both in flight');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
