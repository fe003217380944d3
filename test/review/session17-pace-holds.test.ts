/**
 * Reviewer tests (session 17, read pacing, ae5e049): what holds while a paced result is pending
 * (delivered after a setImmediate turn, during which anything else may run).
 *   - Errors stay rejections with LightningError codes, never synchronous throws: CLOSED db get and
 *     iterator step, released snapshot, finished transaction get and iterator step.
 *   - close() with paced gets and iterator steps pending: they resolve with the value read at the
 *     call, close() resolves, later steps reject CLOSED, no unhandled rejection.
 *   - snapshot.release(), transaction commit/rollback, db writes, flushes and compactRange during a
 *     paced get's turn: the value is the one as of the call (snapshot isolation).
 *   - for-await with break / return() / throw while paced: iterators released, nothing left open.
 *   - Iterators over a real directory (worker thread) while a writer, flushes and compactRange run
 *     in the turns: every entry is the iterator's snapshot, in order, and entries received earlier
 *     are not changed by later block reads (copies).
 *   - fast-check: random interleavings of writes, flushes and unawaited reads (with the pacer forced
 *     due at random calls): each read's value is the model's value at its call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { readPacer } from '../../src/util/yield.js';
import { ProcessErrorRecorder, rejectsCode } from '../harness/api-helpers.js';
import { Random } from '../../src/util/random.js';
import { numRuns, withSeed } from '../harness/seed.js';

const recorder = new ProcessErrorRecorder();

function forceNextPaced(): void {
  const p = readPacer as unknown as { calls: number; lastTurnMs: number };
  p.calls = 63;
  p.lastTurnMs = -1e15;
}

/** Whether `p` settles within the current microtask queue drain (i.e. it was not paced). */
async function settlesInMicrotasks(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return done;
}

const key = (i: number): string => `k${String(i).padStart(5, '0')}`;

async function filled(n = 200): Promise<Database> {
  const db = await open('/db', { fs: new MemFs(), sync: false, memtableSize: 64 * 1024 });
  const ops = [];
  for (let i = 0; i < n; i++) ops.push({ type: 'put' as const, key: key(i), value: `v${i}` });
  await db.batch(ops);
  return db;
}

test('the forced pacer really delays (sanity of the other tests)', async () => {
  const db = await filled();
  try {
    forceNextPaced();
    const paced = db.get(key(1));
    assert.equal(await settlesInMicrotasks(paced), false);
    // Once it is delivered (session 17: later reads wait behind a paced one, in call order)...
    await paced;
    assert.equal(await settlesInMicrotasks(db.get(key(1))), true);
  } finally {
    await db.close();
  }
});

test('errors stay rejections with codes, paced or not', async () => {
  const db = await filled();
  const snap = db.snapshot();
  snap.release();
  forceNextPaced();
  await rejectsCode(() => snap.get(key(1)), 'INVALID_ARGUMENT', 'released snapshot get');
  const tx = db.beginTransaction();
  const txIt = tx.iterator();
  await tx.commit();
  forceNextPaced();
  await rejectsCode(() => tx.get(key(1)), ['INVALID_ARGUMENT', 'CLOSED', 'CONFLICT'], 'finished tx get');
  await rejectsCode(() => txIt.next(), ['INVALID_ARGUMENT', 'CLOSED', 'CONFLICT'], 'finished tx iterator next');
  const it = db.iterator();
  await db.close();
  forceNextPaced();
  await rejectsCode(() => db.get(key(1)), 'CLOSED', 'closed db get');
  await rejectsCode(() => it.next(), 'CLOSED', 'closed db iterator next');
  await recorder.settle();
  recorder.assertNone();
});

test('close() with paced gets and iterator steps pending: they resolve with the values read, close() settles', async () => {
  const db = await filled();
  const it = db.iterator();
  const snap = db.snapshot();
  const tx = db.beginTransaction();
  forceNextPaced();
  const g = db.get(key(5));
  const s = snap.get(key(6));
  const t = tx.get(key(7));
  const n = it.next();
  forceNextPaced();
  const n2 = it.next();
  const closing = db.close();
  const [gv, sv, tv, nv, nv2] = await Promise.all([g, s, t, n, n2]);
  await closing;
  assert.equal(gv?.toString(), 'v5');
  assert.equal(sv?.toString(), 'v6');
  assert.equal(tv?.toString(), 'v7');
  assert.equal(nv.done === true ? 'done' : nv.value[0].toString(), key(0));
  assert.equal(nv2.done === true ? 'done' : nv2.value[0].toString(), key(1));
  await rejectsCode(() => it.next(), 'CLOSED', 'next after close');
  await recorder.settle();
  recorder.assertNone();
});

test('a transaction committed or rolled back while its paced get and iterator step are pending', async () => {
  const db = await filled();
  try {
    for (const end of ['commit', 'rollback'] as const) {
      const tx = db.beginTransaction({ isolation: 'serializable' });
      tx.put(key(3), `own-${end}`);
      const it = tx.iterator({ gte: key(3) });
      forceNextPaced();
      const g = tx.get(key(4));
      forceNextPaced();
      const n = it.next();
      const finished = end === 'commit' ? tx.commit() : tx.rollback();
      assert.equal((await g)?.toString(), 'v4');
      const r = await n;
      assert.equal(r.done === true ? 'done' : r.value[1].toString(), `own-${end}`);
      await finished;
      await rejectsCode(() => it.next(), ['INVALID_ARGUMENT', 'CLOSED'], 'step after the end');
      await rejectsCode(() => tx.get(key(4)), ['INVALID_ARGUMENT', 'CLOSED'], 'get after the end');
    }
    assert.equal((await db.get(key(3)))?.toString(), 'own-commit');
  } finally {
    await db.close();
  }
  await recorder.settle();
  recorder.assertNone();
});

test('snapshot isolation through the turn: release, writes, flush and compaction do not change a pending result', async () => {
  const db = await filled(2000);
  try {
    const snap = db.snapshot();
    forceNextPaced();
    const s = snap.get(key(10));
    forceNextPaced();
    const g = db.get(key(11));
    const tx = db.beginTransaction();
    tx.put(key(12), 'own');
    forceNextPaced();
    const t = tx.get(key(12));
    snap.release();
    await db.batch([
      { type: 'put', key: key(10), value: 'new10' },
      { type: 'del', key: key(11) },
      { type: 'put', key: key(12), value: 'new12' },
    ]);
    const commit = tx.commit().catch((e: unknown) => e);
    await db.compactRange();
    assert.equal((await s)?.toString(), 'v10');
    assert.equal((await g)?.toString(), 'v11');
    assert.equal((await t)?.toString(), 'own');
    await commit;
    // A snapshot taken before, read after writes and compaction, with pacing at every read.
    const snap2 = db.snapshot();
    await db.batch([{ type: 'put', key: key(13), value: 'later' }]);
    await db.compactRange();
    for (let i = 0; i < 200; i++) {
      if (i % 7 === 0) forceNextPaced();
      const v = await snap2.get(key(13));
      assert.equal(v?.toString(), 'v13');
    }
    snap2.release();
  } finally {
    await db.close();
  }
});

test('for-await left by break, throw or return() while steps are paced: iterators are released', async () => {
  const db = await filled(500);
  try {
    for (let round = 0; round < 30; round++) {
      let n = 0;
      const it = db.iterator();
      for await (const [k] of it) {
        if (n % 3 === round % 3) forceNextPaced();
        assert.equal(k.toString(), key(n));
        if (++n === round + 1) break;
      }
      assert.equal(it.closed, true);
      await assert.rejects(async () => {
        for await (const _ of db.iterator({ reverse: true })) {
          forceNextPaced();
          throw new Error('boom');
        }
      }, /boom/);
      const it2 = db.iterator();
      forceNextPaced();
      const pending = it2.next();
      await it2.return();
      const r = await pending;
      assert.equal(r.done === true ? 'done' : r.value[0].toString(), key(0));
      assert.equal((await it2.next()).done, true);
      const tx = db.beginTransaction();
      let m = 0;
      for await (const _ of tx.iterator()) {
        forceNextPaced();
        if (++m === 5) break;
      }
      await tx.rollback();
    }
    assert.equal(db.stats().openIterators, 0);
  } finally {
    await db.close();
  }
});

test('iterators on a real directory while a writer, flushes and compactRange run in the turns: snapshot entries, in order, copies', async () => {
  await withSeed('session17-pace-iter-real', async (seed) => {
    const rng = new Random(seed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev17-pace-'));
    const db = await open(dir, {
      memtableSize: 32 * 1024,
      blockSize: 512,
      targetFileSize: 8 * 1024,
      l0CompactionTrigger: 2,
      compactionThread: 'worker',
      sync: false,
    });
    try {
      const model = new Map<string, string>();
      const write = async (n: number, tag: string): Promise<void> => {
        const ops = [];
        for (let i = 0; i < n; i++) {
          const k = key(rng.nextInt(3000));
          if (rng.nextInt(6) === 0) {
            model.delete(k);
            ops.push({ type: 'del' as const, key: k });
          } else {
            const v = `${tag}.${i}.`.padEnd(20 + rng.nextInt(60), 'x');
            model.set(k, v);
            ops.push({ type: 'put' as const, key: k, value: v });
          }
        }
        await db.batch(ops);
      };
      for (let r = 0; r < 6; r++) await write(500, `init${r}`);
      for (let round = 0; round < 4; round++) {
        const expected = [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        const reverse = round % 2 === 1;
        if (reverse) expected.reverse();
        const it = db.iterator({ reverse });
        let stop = false;
        // The writer runs only in the iterator's paced turns (and its own I/O).
        const writer = (async () => {
          let w = 0;
          while (!stop) {
            await write(50, `r${round}w${w++}`);
            if (w % 10 === 0) await db.compactRange(key(rng.nextInt(3000)), key(rng.nextInt(3000) + 3000));
          }
        })();
        const got: [Buffer, Buffer][] = [];
        for await (const e of it) {
          got.push(e);
          // Other reads in between: block cache and shared buffers are busy.
          if (got.length % 3 === 0) await db.get(key(rng.nextInt(3000)));
          if (got.length % 97 === 0) forceNextPaced();
          // Writes, flushes and compactions certainly run while the iterator is open.
          if (got.length % 200 === 0) await write(50, `r${round}in${got.length}`);
          if (got.length % 700 === 0) await db.compactRange();
        }
        stop = true;
        await writer;
        assert.equal(got.length, expected.length, `round ${round}: entry count`);
        for (let i = 0; i < got.length; i++) {
          const [k, v] = got[i] as [Buffer, Buffer];
          const [ek, ev] = expected[i] as [string, string];
          assert.equal(k.toString(), ek, `round ${round}: key #${i}`);
          assert.equal(v.toString(), ev, `round ${round}: value of ${ek}`);
        }
      }
      assert.equal(db.stats().openIterators, 0);
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('fast-check: unawaited reads interleaved with writes and flushes each see the model as of their call', async () => {
  type Op =
    | { t: 'put'; k: number; v: number }
    | { t: 'del'; k: number }
    | { t: 'get'; k: number; pace: boolean }
    | { t: 'sget'; k: number; pace: boolean }
    | { t: 'snap' }
    | { t: 'txget'; k: number; pace: boolean; own: boolean }
    | { t: 'scan'; pace: number }
    | { t: 'flush' }
    | { t: 'settle' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ t: fc.constant('put' as const), k: fc.nat(40), v: fc.nat(1000) }),
    fc.record({ t: fc.constant('del' as const), k: fc.nat(40) }),
    fc.record({ t: fc.constant('get' as const), k: fc.nat(40), pace: fc.boolean() }),
    fc.record({ t: fc.constant('sget' as const), k: fc.nat(40), pace: fc.boolean() }),
    fc.record({ t: fc.constant('snap' as const) }),
    fc.record({ t: fc.constant('txget' as const), k: fc.nat(40), pace: fc.boolean(), own: fc.boolean() }),
    fc.record({ t: fc.constant('scan' as const), pace: fc.nat(5) }),
    fc.record({ t: fc.constant('flush' as const) }),
    fc.record({ t: fc.constant('settle' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), async (ops) => {
      const db = await open('/db', { fs: new MemFs(), sync: false, memtableSize: 16 * 1024 });
      const model = new Map<string, string>();
      const checks: Promise<void>[] = [];
      let snap: { s: ReturnType<Database['snapshot']>; m: Map<string, string> } | null = null;
      const expectValue = (what: string, p: Promise<Buffer | undefined>, want: string | undefined): void => {
        checks.push(p.then((v) => assert.equal(v?.toString(), want, what)));
      };
      try {
        for (const o of ops) {
          switch (o.t) {
            case 'put':
              model.set(key(o.k), `v${o.v}`);
              checks.push(db.put(key(o.k), `v${o.v}`));
              break;
            case 'del':
              model.delete(key(o.k));
              checks.push(db.delete(key(o.k)));
              break;
            case 'get':
              // Writes issued above but not yet acknowledged may or may not be visible; wait for them.
              await Promise.all(checks);
              if (o.pace) forceNextPaced();
              expectValue(`get ${o.k}`, db.get(key(o.k)), model.get(key(o.k)));
              break;
            case 'sget':
              if (snap === null) break;
              if (o.pace) forceNextPaced();
              expectValue(`snapshot get ${o.k}`, snap.s.get(key(o.k)), snap.m.get(key(o.k)));
              break;
            case 'snap':
              await Promise.all(checks);
              snap?.s.release();
              snap = { s: db.snapshot(), m: new Map(model) };
              break;
            case 'txget': {
              await Promise.all(checks);
              const tx = db.beginTransaction();
              if (o.own) tx.put(key(o.k), 'own');
              if (o.pace) forceNextPaced();
              expectValue(`tx get ${o.k}`, tx.get(key(o.k)), o.own ? 'own' : model.get(key(o.k)));
              checks.push(tx.rollback());
              break;
            }
            case 'scan': {
              await Promise.all(checks);
              const want = [...model.keys()].sort();
              const it = db.iterator();
              const steps: Promise<IteratorResult<[Buffer, Buffer], undefined>>[] = [];
              for (let i = 0; i <= want.length; i++) {
                if (i % (o.pace + 1) === 0) forceNextPaced();
                steps.push(it.next());
              }
              checks.push(
                Promise.all(steps).then((rs) => {
                  const keys = rs.filter((r) => r.done !== true).map((r) => (r.value as [Buffer, Buffer])[0].toString());
                  assert.deepEqual(keys, want, 'scan');
                  assert.equal(rs[rs.length - 1]?.done, true);
                }),
              );
              break;
            }
            case 'flush':
              checks.push(db.compactRange(key(99999), key(99999)));
              break;
            case 'settle':
              await Promise.all(checks);
              break;
          }
        }
        await Promise.all(checks);
        snap?.s.release();
      } finally {
        await db.close();
      }
    }),
    { numRuns: numRuns(40, 400) },
  );
  await recorder.settle();
  recorder.assertNone();
});
