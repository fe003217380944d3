/**
 * Isolation anomalies, each in every (mode, isolation) combination, with explicit interleavings:
 *   - lost update: impossible everywhere (first committer wins, or the lock serializes);
 *   - dirty read: impossible everywhere (uncommitted writes are never visible);
 *   - write skew: possible under snapshot isolation, impossible under serializable;
 *   - phantoms: a serializable scan conflicts with an insert or delete in the range it covered
 *     (only up to the last key returned when it stopped early), and an absent-key read conflicts
 *     with the key's creation.
 * Plus a randomized concurrent version of lost update and write skew with the callback form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Database, Transaction } from '../../src/index.js';
import { isLightningError } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, rejectsCode } from '../harness/api-helpers.js';
import { KINDS, kindName, openMem, randomYield, settle, str, track, type TxnKind } from './txn-helpers.js';

const recorder = new ProcessErrorRecorder();

/** Commits, returning true on success and false on CONFLICT (anything else fails the test). */
async function tryCommit(tx: Transaction, what: string): Promise<boolean> {
  try {
    await tx.commit();
    return true;
  } catch (e) {
    assertLightning(e, 'CONFLICT', what);
    return false;
  }
}

// ------------------------------------------------------------------------------- lost update

test('lost update is impossible: read-modify-write by two transactions (plain reads)', async () => {
  for (const kind of KINDS) {
    for (const concurrentCommit of [false, true]) {
      const name = `${kindName(kind)} concurrentCommit=${concurrentCommit}`;
      const { db } = await openMem();
      await db.put('x', '0');
      const t1 = db.beginTransaction(kind);
      const t2 = db.beginTransaction(kind);
      const v1 = Number(str(await t1.get('x')));
      const v2 = Number(str(await t2.get('x')));
      t1.put('x', String(v1 + 1));
      t2.put('x', String(v2 + 1));
      let ok: boolean[];
      if (concurrentCommit) {
        // Both commits enter the same group commit (pessimistic: t2 waits for t1's lock).
        const results = await Promise.allSettled([t1.commit(), t2.commit()]);
        ok = results.map((r, i) => {
          if (r.status === 'fulfilled') return true;
          assertLightning(r.reason, 'CONFLICT', `${name} t${i + 1}`);
          return false;
        });
      } else {
        ok = [await tryCommit(t1, name), await tryCommit(t2, name)];
      }
      const committed = ok.filter(Boolean).length;
      assert.equal(committed, 1, `${name}: exactly one of two increments from the same read commits`);
      assert.equal(str(await db.get('x')), String(committed), name);
      assert.equal(db.stats().activeTransactions, 0);
      await db.close();
    }
  }
});

test('lost update is impossible with getForUpdate: pessimistic waits, optimistic conflicts', async () => {
  for (const kind of KINDS) {
    const name = kindName(kind);
    const { db } = await openMem();
    await db.put('x', '0');
    const t1 = db.beginTransaction(kind);
    const t2 = db.beginTransaction(kind);
    const v1 = Number(str(await t1.getForUpdate('x')));
    const r2 = track(t2.getForUpdate('x'));
    await settle();
    if (kind.mode === 'pessimistic') assert.equal(r2.settled(), false, `${name}: t2 waits for t1's lock`);
    t1.put('x', String(v1 + 1));
    await t1.commit();
    const v2 = Number(str(await r2.promise));
    t2.put('x', String(v2 + 1));
    const ok2 = await tryCommit(t2, name);
    if (kind.mode === 'pessimistic') {
      assert.equal(v2, 1, `${name}: the lock holder's commit is visible after the wait`);
      assert.ok(ok2, `${name}: no conflict after a locked read`);
    } else {
      assert.equal(ok2, false, `${name}: optimistic conflicts`);
    }
    assert.equal(str(await db.get('x')), ok2 ? '2' : '1');
    await db.close();
  }
});

test('lost update, randomized: concurrent increments under every kind; value = number of commits', async () => {
  await withSeed('concurrent increments', async (seed) => {
    const rng = new Random(seed);
    for (const kind of KINDS) {
      for (const useForUpdate of [false, true]) {
        const { db } = await openMem();
        await db.put('x', '0');
        let commits = 0;
        const worker = async (): Promise<void> => {
          for (let i = 0; i < 15; i++) {
            const tx = db.beginTransaction(kind);
            try {
              await randomYield(rng);
              const v = Number(str(useForUpdate ? await tx.getForUpdate('x') : await tx.get('x')));
              await randomYield(rng);
              tx.put('x', String(v + 1));
              await randomYield(rng);
              await tx.commit();
              commits++;
            } catch (e) {
              assert.ok(isLightningError(e, 'CONFLICT'), `${kindName(kind)}: ${String(e)}`);
              await tx.rollback();
            }
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        assert.equal(str(await db.get('x')), String(commits), `${kindName(kind)} forUpdate=${useForUpdate}`);
        if (kind.mode === 'pessimistic' && useForUpdate) assert.equal(commits, 60, 'locked increments never conflict');
        await db.close();
      }
    }
  });
});

// ------------------------------------------------------------------------------- dirty read

test('dirty read is impossible: uncommitted and rolled-back writes are never visible', async () => {
  for (const writerKind of KINDS) {
    for (const readerKind of KINDS) {
      const name = `writer ${kindName(writerKind)}, reader ${kindName(readerKind)}`;
      const { db } = await openMem();
      await db.put('x', 'clean');
      const w = db.beginTransaction(writerKind);
      w.put('x', 'dirty');
      w.put('y', 'dirty');
      const r = db.beginTransaction(readerKind);
      assert.equal(str(await r.get('x')), 'clean', name);
      assert.equal(r.getSync('y'), undefined, name);
      const seen: string[] = [];
      for await (const [, v] of r.iterator()) seen.push(v.toString());
      assert.deepEqual(seen, ['clean'], name);
      assert.equal(str(await db.get('x')), 'clean');
      // A locking read of a key locked by the writer waits, then sees only committed data.
      const gfu = track(r.getForUpdate('x'));
      await settle();
      if (writerKind.mode === 'pessimistic' && readerKind.mode === 'pessimistic') assert.equal(gfu.settled(), false, name);
      await w.rollback();
      assert.equal(str(await gfu.promise), 'clean', name);
      await r.commit();
      assert.equal(str(await db.get('x')), 'clean');
      assert.equal(await db.get('y'), undefined);
      await db.close();
    }
  }
});

// ------------------------------------------------------------------------------- write skew

/** Two on-call doctors; each goes off call if the other is still on call. Constraint: x + y >= 1. */
async function writeSkewInterleaved(db: Database, kind: TxnKind): Promise<boolean[]> {
  await db.batch([
    { type: 'put', key: 'x', value: '1' },
    { type: 'put', key: 'y', value: '1' },
  ]);
  const t1 = db.beginTransaction(kind);
  const t2 = db.beginTransaction(kind);
  const sum1 = Number(str(await t1.get('x'))) + Number(str(await t1.get('y')));
  const sum2 = Number(str(await t2.get('x'))) + Number(str(await t2.get('y')));
  assert.equal(sum1, 2);
  assert.equal(sum2, 2);
  t1.put('x', '0');
  t2.put('y', '0');
  return [await tryCommit(t1, kindName(kind)), await tryCommit(t2, kindName(kind))];
}

test('write skew: possible under snapshot isolation, impossible under serializable', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    const ok = await writeSkewInterleaved(db, kind);
    const x = Number(str(await db.get('x')));
    const y = Number(str(await db.get('y')));
    if (kind.isolation === 'snapshot') {
      assert.deepEqual(ok, [true, true], `${kindName(kind)}: both commit`);
      assert.equal(x + y, 0, 'the skew happened');
    } else {
      assert.deepEqual(ok, [true, false], `${kindName(kind)}: the second commit conflicts`);
      assert.equal(x + y, 1, 'the constraint holds');
    }
    await db.close();
  }
});

test('write skew, randomized: serializable callbacks keep the constraint under any interleaving', async () => {
  await withSeed('write skew random', async (seed) => {
    const rng = new Random(seed);
    for (const kind of KINDS.filter((k) => k.isolation === 'serializable')) {
      for (let round = 0; round < 20; round++) {
        const { db } = await openMem();
        const doctors = ['d0', 'd1', 'd2'];
        await db.batch(doctors.map((d) => ({ type: 'put' as const, key: d, value: '1' })));
        const goOff = (me: string): Promise<boolean> =>
          db.transaction(
            async (tx) => {
              let onCall = 0;
              for (const d of doctors) {
                await randomYield(rng);
                onCall += Number(str(await tx.get(d)));
              }
              await randomYield(rng);
              if (onCall < 2 || str(await tx.get(me)) !== '1') return false;
              tx.put(me, '0');
              return true;
            },
            { ...kind, retries: 20 },
          );
        const results = await Promise.all(doctors.map(goOff));
        let onCall = 0;
        for (const d of doctors) onCall += Number(str(await db.get(d)));
        assert.ok(onCall >= 1, `${kindName(kind)}: constraint violated (${results.join(',')})`);
        assert.equal(onCall, doctors.length - results.filter(Boolean).length);
        await db.close();
      }
    }
  });
});

// ------------------------------------------------------------------------------- phantoms

async function seedRange(db: Database): Promise<void> {
  await db.batch(['p/a', 'p/b', 'p/c', 'p/d'].map((key) => ({ type: 'put' as const, key, value: '1' })));
}

async function countAndCommit(
  db: Database,
  kind: TxnKind,
  scan: Parameters<Transaction['iterator']>[0],
  interfere: () => Promise<void>,
): Promise<boolean> {
  const tx = db.beginTransaction(kind);
  let n = 0;
  for await (const _ of tx.iterator(scan)) n++;
  tx.put('count', String(n));
  await interfere();
  return tryCommit(tx, kindName(kind));
}

test('phantoms: a serializable scan conflicts with an insert or delete in its range', async () => {
  for (const kind of KINDS) {
    const name = kindName(kind);
    const serializable = kind.isolation === 'serializable';
    const cases: [string, (db: Database) => Promise<void>, boolean][] = [
      ['insert inside', (db) => db.put('p/bb', '1'), true],
      ['delete inside', (db) => db.delete('p/c'), true],
      ['update inside', (db) => db.put('p/a', '2'), true],
      ['insert outside', (db) => db.put('q/a', '1'), false],
      ['delete of an absent key inside', (db) => db.delete('p/zz'), true], // a tombstone is a change
    ];
    for (const [what, interfere, inRange] of cases) {
      const { db } = await openMem();
      await seedRange(db);
      const ok = await countAndCommit(db, kind, { prefix: 'p/' }, () => interfere(db));
      assert.equal(ok, !(serializable && inRange), `${name}: ${what}`);
      await db.close();
    }
  }
});

test('phantoms: a scan stopped early covers only up to the last key it returned', async () => {
  for (const kind of KINDS.filter((k) => k.isolation === 'serializable')) {
    const name = kindName(kind);
    const cases: [string, Parameters<Transaction['iterator']>[0], string, boolean][] = [
      ['forward limit 2, insert after the last key', { prefix: 'p/', limit: 2 }, 'p/bb', false],
      ['forward limit 2, insert before the last key', { prefix: 'p/', limit: 2 }, 'p/aa', true],
      ['forward limit 2, insert at the lower edge', { gte: 'p/', lt: 'p/z', limit: 2 }, 'p/', true],
      ['reverse limit 2, insert before the last key', { prefix: 'p/', reverse: true, limit: 2 }, 'p/bb', false],
      ['reverse limit 2, insert after the last key', { prefix: 'p/', reverse: true, limit: 2 }, 'p/cc', true],
      ['limit 0 observes nothing', { prefix: 'p/', limit: 0 }, 'p/aa', false],
    ];
    for (const [what, scan, insert, conflicts] of cases) {
      const { db } = await openMem();
      await seedRange(db);
      const ok = await countAndCommit(db, kind, scan, () => db.put(insert, '1'));
      assert.equal(ok, !conflicts, `${name}: ${what}`);
      await db.close();
    }
    // Breaking out of a loop: the covered range ends at the last key seen.
    for (const [insert, conflicts] of [['p/bb', false], ['p/ab', true]] as const) {
      const { db } = await openMem();
      await seedRange(db);
      const tx = db.beginTransaction(kind);
      for await (const [k] of tx.iterator({ prefix: 'p/' })) if (k.toString() === 'p/b') break;
      tx.put('seen', 'b');
      await db.put(insert, '1');
      assert.equal(await tryCommit(tx, name), !conflicts, `${name}: break, insert ${insert}`);
      await db.close();
    }
  }
});

test('phantoms: an absent key read under serializable conflicts with its creation', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    const tx = db.beginTransaction(kind);
    assert.equal(await tx.get('ghost'), undefined);
    tx.put('other', '1');
    await db.put('ghost', 'boo');
    assert.equal(await tryCommit(tx, kindName(kind)), kind.isolation === 'snapshot', kindName(kind));
    await db.close();
  }
});

test('own writes in a scanned range do not make a serializable transaction conflict with itself', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    await seedRange(db);
    const tx = db.beginTransaction({ ...kind, isolation: 'serializable' });
    tx.put('p/new', '1');
    tx.delete('p/a');
    const keys: string[] = [];
    for (const [k] of tx.iterator({ prefix: 'p/' })) keys.push(k.toString());
    assert.deepEqual(keys, ['p/b', 'p/c', 'p/d', 'p/new']);
    await tx.commit();
    await db.close();
  }
});

test('a CONFLICT leaves nothing written and frees the transaction', async () => {
  const { db } = await openMem();
  await db.put('x', '0');
  const tx = db.beginTransaction();
  await tx.get('x');
  tx.put('x', '1');
  tx.put('side', 'effect');
  await db.put('x', 'other');
  await rejectsCode(() => tx.commit(), 'CONFLICT', 'conflict');
  assert.equal(tx.state, 'rolled-back');
  assert.equal(await db.get('side'), undefined);
  assert.equal(db.stats().activeTransactions, 0);
  assert.equal(db.stats().openSnapshots, 0);
  await db.close();
});

test('no unhandled rejections or uncaught exceptions', async () => {
  await settle();
  recorder.assertNone();
  recorder.dispose();
});
