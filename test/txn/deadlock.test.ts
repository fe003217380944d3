/**
 * Pessimistic locking: deadlocks of 2 and of N transactions are detected the moment the cycle
 * would close (the requester is the victim, with DEADLOCK; the others keep waiting and finish once
 * it rolls back), cycles through FIFO queues, lock timeouts (TIMEOUT), FIFO grants, locks released
 * by commit/rollback, waits failed by close (CLOSED), and the callback form retrying deadlock
 * victims. Waiting is observed by settling the event loop, never by sleeping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Transaction } from '../../src/index.js';
import { LightningError } from '../../src/index.js';
import { LockTable, type LockOwner } from '../../src/txn/lock-table.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, rejectsCode } from '../harness/api-helpers.js';
import { openMem, randomYield, settle, str, track } from './txn-helpers.js';

const recorder = new ProcessErrorRecorder();
const PESSIMISTIC = { mode: 'pessimistic' as const };

test('deadlock of two transactions: the one closing the cycle fails with DEADLOCK at once', async () => {
  const { db } = await openMem();
  const t1 = db.beginTransaction(PESSIMISTIC);
  const t2 = db.beginTransaction(PESSIMISTIC);
  await t1.getForUpdate('a');
  await t2.getForUpdate('b');
  const w1 = track(t1.getForUpdate('b'));
  await settle();
  assert.equal(w1.settled(), false, 't1 waits for b');
  const e = await rejectsCode(() => t2.getForUpdate('a'), 'DEADLOCK', 't2 closes the cycle');
  assert.match(e.message, /victim/);
  assert.equal(w1.settled(), false, 't1 still waits');
  // The victim is doomed: later calls fail with the same error, and so does its commit.
  assert.throws(() => t2.put('c', '1'), (x) => x instanceof LightningError && x.code === 'DEADLOCK');
  await rejectsCode(() => t2.commit(), 'DEADLOCK', 'victim commit');
  assert.equal(await w1.promise, undefined, 't1 gets b once t2 is gone');
  t1.put('a', '1');
  t1.put('b', '1');
  await t1.commit();
  assert.equal(str(await db.get('b')), '1');
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
});

test('deadlock of N transactions in a cycle; the others complete after the victim rolls back', async () => {
  for (const n of [3, 5, 12]) {
    const { db } = await openMem();
    const txs: Transaction[] = [];
    for (let i = 0; i < n; i++) txs.push(db.beginTransaction(PESSIMISTIC));
    for (let i = 0; i < n; i++) await txs[i]?.getForUpdate(`k${i}`);
    const waits = [];
    for (let i = 0; i < n - 1; i++) {
      const tx = txs[i] as Transaction;
      tx.put(`k${i}`, `by${i}`);
      waits.push(track(tx.getForUpdate(`k${i + 1}`)));
      await settle(1);
    }
    await settle();
    for (const w of waits) assert.equal(w.settled(), false, `n=${n}: waiting`);
    const last = txs[n - 1] as Transaction;
    const e = await rejectsCode(() => last.getForUpdate('k0'), 'DEADLOCK', `n=${n}: last closes the cycle`);
    assert.match(e.message, new RegExp(`${n} transactions|->`));
    await last.rollback();
    // t(n-2) gets k(n-1) and commits, which releases k(n-2) to t(n-3), and so on down the chain.
    for (let i = n - 2; i >= 0; i--) {
      await waits[i]?.promise;
      const tx = txs[i] as Transaction;
      tx.put(`k${i + 1}`, `by${i}`);
      await tx.commit();
    }
    assert.equal(str(await db.get('k0')), 'by0');
    assert.equal(str(await db.get('k1')), 'by0');
    assert.equal(str(await db.get(`k${n - 1}`)), `by${n - 2}`);
    assert.equal(db.stats().activeTransactions, 0);
    await db.close();
  }
});

test('a cycle through a FIFO queue (waiting behind a waiter) is a deadlock', () => {
  // o1 holds a; o2 waits for a; o2 holds b... o3 holds c, queues for a behind o2; o1 asks for c.
  const locks = new LockTable();
  const o1: LockOwner = { id: 1 };
  const o2: LockOwner = { id: 2 };
  const o3: LockOwner = { id: 3 };
  assert.ok(locks.tryAcquire(o1, 'a'));
  assert.ok(locks.tryAcquire(o3, 'c'));
  assert.equal(locks.tryAcquire(o2, 'a'), false);
  const w2 = locks.wait(o2, 'a', 10_000);
  const w3 = locks.wait(o3, 'a', 10_000); // o3 waits for o1 and for o2 (ahead of it)
  assert.equal(locks.tryAcquire(o1, 'c'), false);
  // o1 -> o3 (holds c) -> o1 (holds a): a cycle, even though o3 is second in a's queue.
  return locks.wait(o1, 'c', 10_000).then(
    () => assert.fail('expected DEADLOCK'),
    async (e: unknown) => {
      assertLightning(e, 'DEADLOCK', 'through queue');
      assert.equal(locks.deadlocks, 1);
      locks.releaseAll(o1);
      await w2; // FIFO: o2 first
      assert.equal(locks.holderOf('a'), o2);
      locks.releaseAll(o2);
      await w3;
      assert.equal(locks.holderOf('a'), o3);
      locks.releaseAll(o3);
      assert.equal(locks.size, 0);
      assert.equal(locks.waitingCount, 0);
    },
  );
});

test('lock waits are granted in FIFO order', async () => {
  const { db } = await openMem();
  const holder = db.beginTransaction(PESSIMISTIC);
  await holder.getForUpdate('hot');
  const order: number[] = [];
  const waiters = [];
  for (let i = 0; i < 5; i++) {
    const tx = db.beginTransaction(PESSIMISTIC);
    waiters.push(
      tx.getForUpdate('hot').then(async () => {
        order.push(i);
        tx.put('hot', String(i));
        await tx.commit();
      }),
    );
    await settle(1);
  }
  await holder.rollback();
  await Promise.all(waiters);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(str(await db.get('hot')), '4');
  await db.close();
});

test('lock timeout: a wait longer than timeoutMs fails with TIMEOUT; 0 means never wait', async () => {
  const { db } = await openMem();
  const holder = db.beginTransaction(PESSIMISTIC);
  holder.put('a', 'held');
  const t0 = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 0 });
  await rejectsCode(() => t0.getForUpdate('a'), 'TIMEOUT', 'timeoutMs 0');
  await rejectsCode(() => t0.commit(), 'TIMEOUT', 'timed-out transaction commit');
  const t1 = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 5 });
  const e = await rejectsCode(() => t1.getForUpdate('a'), 'TIMEOUT', 'timeoutMs 5');
  assert.match(e.message, /"a"/);
  await t1.rollback();
  // A put whose lock wait times out fails the transaction: its commit reports the TIMEOUT.
  const t2 = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 5 });
  t2.put('a', 'mine');
  await rejectsCode(() => t2.commit(), 'TIMEOUT', 'put lock wait');
  await holder.commit();
  assert.equal(str(await db.get('a')), 'held');
  await db.close();
});

test('rollback while waiting withdraws from the queue; commit and rollback release locks', async () => {
  const { db } = await openMem();
  const holder = db.beginTransaction(PESSIMISTIC);
  await holder.getForUpdate('a');
  const quitter = db.beginTransaction(PESSIMISTIC);
  const q = track(quitter.getForUpdate('a'));
  const next = db.beginTransaction(PESSIMISTIC);
  const n = track(next.getForUpdate('a'));
  await settle();
  await quitter.rollback();
  await assert.rejects(q.promise);
  await holder.rollback();
  await n.promise; // skipped the quitter
  next.put('a', 'next');
  await next.commit();
  // Free again after the commit.
  const last = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 0 });
  await last.getForUpdate('a');
  await last.rollback();
  assert.equal(str(await db.get('a')), 'next');
  await db.close();
});

test('a lock granted to a transaction that rolls back before it resumes is released', async () => {
  const { db } = await openMem();
  const holder = db.beginTransaction(PESSIMISTIC);
  await holder.getForUpdate('a');
  const t = db.beginTransaction(PESSIMISTIC);
  const w = t.getForUpdate('a');
  await settle();
  // Same tick: the holder's rollback grants `a` to t, then t rolls back before it resumes.
  void holder.rollback();
  void t.rollback();
  await rejectsCode(() => w, 'INVALID_ARGUMENT', 'the rolled-back waiter');
  const t3 = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 0 });
  await t3.getForUpdate('a'); // free: no TIMEOUT
  await t3.rollback();
  await db.close();
});

test('close() fails lock waits with CLOSED', async () => {
  const { db } = await openMem();
  const holder = db.beginTransaction(PESSIMISTIC);
  await holder.getForUpdate('a');
  const waiter = db.beginTransaction(PESSIMISTIC);
  const w = waiter.getForUpdate('a');
  const w2 = waiter.commit();
  await settle();
  await db.close();
  await rejectsCode(() => w, 'CLOSED', 'wait at close');
  await rejectsCode(() => w2, 'CLOSED', 'commit waiting for a lock at close');
  await holder.rollback();
});

test('non-transactional writes and optimistic commits to a locked key make the holder conflict', async () => {
  const { db } = await openMem();
  await db.put('a', '0');
  const tx = db.beginTransaction(PESSIMISTIC);
  const v = Number(str(await tx.getForUpdate('a')));
  await db.put('a', '100'); // locks do not stop plain writes...
  tx.put('a', String(v + 1));
  await rejectsCode(() => tx.commit(), 'CONFLICT', 'plain write under a lock'); // ...validation catches them
  assert.equal(str(await db.get('a')), '100');
  // ...nor optimistic transactions, which take no locks.
  const holder = db.beginTransaction(PESSIMISTIC);
  const h = Number(str(await holder.getForUpdate('a')));
  const opt = db.beginTransaction({ mode: 'optimistic' });
  opt.put('a', 'optimistic');
  await opt.commit();
  holder.put('a', String(h + 1));
  await rejectsCode(() => holder.commit(), 'CONFLICT', 'optimistic write under a lock');
  assert.equal(str(await db.get('a')), 'optimistic');
  await db.close();
});

test('a moved-forward pessimistic snapshot still sees a deletion compacted away after its read', async () => {
  // tx reads `a` at sequence r, then its snapshot moves past r (a new lock). A plain delete of `a`
  // after r, compacted into the bottom level, could be dropped if nothing pinned r: the commit
  // must still see that `a` changed.
  const { db } = await openMem();
  await db.put('a', 'v');
  const tx = db.beginTransaction(PESSIMISTIC);
  assert.equal(str(await tx.getForUpdate('a')), 'v');
  await db.delete('a');
  tx.put('b', '1'); // lock granted: the snapshot is dropped, to move forward at the next read
  await db.compactRange();
  tx.put('a', 'v2');
  await rejectsCode(() => tx.commit(), 'CONFLICT', 'deletion after the read');
  assert.equal(await db.get('a'), undefined);
  await db.close();
});

test('a doomed pessimistic transaction fails at its next read instead of mixing versions', async () => {
  // Locks keep pessimistic transactions apart, but not plain writes: after one changed a key tx
  // read, tx's snapshot cannot move forward consistently, and its commit could not succeed.
  const { db } = await openMem();
  await db.batch([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'b', value: '1' },
  ]);
  const tx = db.beginTransaction(PESSIMISTIC);
  assert.equal(str(await tx.getForUpdate('a')), '1');
  await db.batch([
    { type: 'put', key: 'a', value: '2' },
    { type: 'put', key: 'b', value: '2' },
  ]);
  await rejectsCode(() => tx.getForUpdate('b'), 'CONFLICT', 'a changed under the lock');
  await rejectsCode(() => tx.commit(), 'CONFLICT', 'doomed');
  // Without interference the snapshot moves forward and the reads agree.
  const t2 = db.beginTransaction(PESSIMISTIC);
  assert.equal(str(await t2.getForUpdate('a')), '2');
  const other = db.beginTransaction(PESSIMISTIC);
  other.put('b', '3');
  await other.commit();
  assert.equal(str(await t2.getForUpdate('b')), '3', 'a newer snapshot after the lock');
  await t2.commit();
  await db.close();
});

test('a pinned pessimistic transaction fails fast when a lock it gets guards a changed key', async () => {
  const { db } = await openMem();
  await db.put('a', '0');
  const reader = db.beginTransaction(PESSIMISTIC);
  await reader.get('z'); // plain read: pins the snapshot
  const writer = db.beginTransaction(PESSIMISTIC);
  writer.put('a', '1');
  const r = track(reader.getForUpdate('a'));
  await settle();
  await writer.commit();
  await rejectsCode(() => r.promise, 'CONFLICT', 'stale snapshot under the new lock');
  await rejectsCode(() => reader.commit(), 'CONFLICT', 'doomed');
  await db.close();
});

test('callback form: opposite lock orders deadlock, the victim retries, both complete', async () => {
  await withSeed('deadlock retry', async (seed) => {
    const rng = new Random(seed);
    const { db } = await openMem();
    await db.batch([
      { type: 'put', key: 'a', value: '0' },
      { type: 'put', key: 'b', value: '0' },
    ]);
    let deadlocks = 0;
    const bump = (first: string, second: string): Promise<void> =>
      db.transaction(
        async (tx) => {
          try {
            const x = Number(str(await tx.getForUpdate(first)));
            await randomYield(rng);
            await settle(1);
            const y = Number(str(await tx.getForUpdate(second)));
            tx.put(first, String(x + 1));
            tx.put(second, String(y + 1));
          } catch (e) {
            if (e instanceof LightningError && e.code === 'DEADLOCK') deadlocks++;
            throw e;
          }
        },
        { mode: 'pessimistic', retries: 50 },
      );
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) jobs.push(i % 2 === 0 ? bump('a', 'b') : bump('b', 'a'));
    await Promise.all(jobs);
    assert.equal(str(await db.get('a')), '10');
    assert.equal(str(await db.get('b')), '10');
    assert.ok(deadlocks >= 1, 'the interleaving produced at least one deadlock');
    assert.equal(db.stats().activeTransactions, 0);
    await db.close();
  });
});

test('no unhandled rejections or uncaught exceptions', async () => {
  await settle();
  recorder.assertNone();
  recorder.dispose();
});
