/**
 * Contract tests of the transaction API: own writes and isolation from others, iterators merging
 * own writes (model-checked with fast-check), lifecycle errors (use after commit/rollback, commit
 * after close), option validation, the callback form (result, exceptions, rollback, retries),
 * maxActiveTransactions, stats, and that snapshots and locks are released.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { open, LightningError } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { TXN_COMMITTED_MESSAGE, TXN_ROLLED_BACK_MESSAGE } from '../../src/txn/transaction.js';
import { hex, modelScan, type ModelRange, type ModelState } from '../harness/model.js';
import { numRuns, testSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, collect, collectSync, rejectsCode, throwsCode } from '../harness/api-helpers.js';
import { KINDS, kindName, openMem, settle, str } from './txn-helpers.js';

const recorder = new ProcessErrorRecorder();

test('a transaction reads its own writes; others see nothing until commit', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    await db.put('a', '1');
    await db.put('b', '2');
    const tx = db.beginTransaction(kind);
    assert.equal(str(await tx.get('a')), '1', kindName(kind));
    tx.put('a', '10');
    tx.delete('b');
    tx.put('c', '30');
    assert.equal(str(tx.getSync('a')), '10');
    assert.equal(tx.getSync('b'), undefined);
    assert.equal(str(await tx.getForUpdate('c')), '30');
    assert.equal(str(await db.get('a')), '1', 'uncommitted write invisible to db.get');
    assert.equal(str(await db.get('b')), '2');
    assert.equal(await db.get('c'), undefined);
    assert.deepEqual(await collect(tx.iterator()), [['a', '10'], ['c', '30']]);
    await tx.commit();
    assert.equal(tx.state, 'committed');
    assert.deepEqual(await collect(db.iterator()), [['a', '10'], ['c', '30']]);
    const s = db.stats();
    assert.equal(s.activeTransactions, 0);
    assert.equal(s.openSnapshots, 0, 'the transaction released its snapshot');
    assert.equal(s.openIterators, 0);
    await db.close();
  }
});

test('reads come from the snapshot: later commits by others are invisible', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    await db.put('x', 'old');
    const tx = db.beginTransaction(kind);
    assert.equal(str(tx.getSync('x')), 'old'); // pins the snapshot in pessimistic mode too
    await db.put('x', 'new');
    await db.put('y', 'new');
    assert.equal(str(await tx.get('x')), 'old', kindName(kind));
    assert.equal(await tx.get('y'), undefined);
    assert.deepEqual(await collect(tx.iterator()), [['x', 'old']]);
    await tx.rollback();
    await db.close();
  }
});

test('keys and values are copied at put: mutating the caller buffers afterwards changes nothing', async () => {
  const { db } = await openMem();
  const tx = db.beginTransaction();
  const key = Buffer.from('key');
  const value = Buffer.from('value');
  tx.put(key, value);
  key[0] = 0x7a;
  value[0] = 0x7a;
  const got = tx.getSync('key');
  assert.equal(str(got), 'value');
  if (got !== undefined) got[0] = 0x41; // a returned buffer is the caller's
  assert.equal(str(tx.getSync('key')), 'value');
  await tx.commit();
  assert.equal(str(await db.get('key')), 'value');
  assert.equal(await db.get('zey'), undefined);
  await db.close();
});

// --------------------------------------------------------------------------- iterator vs model

const keyArb = fc.array(fc.constantFrom(0x00, 0x61, 0x62, 0xff), { minLength: 1, maxLength: 3 }).map((a) => Buffer.from(a));
const rangeArb: fc.Arbitrary<ModelRange> = fc
  .record(
    {
      gte: keyArb,
      gt: keyArb,
      lte: keyArb,
      lt: keyArb,
      prefix: keyArb.map((k) => k.subarray(0, 1)),
      reverse: fc.boolean(),
      limit: fc.integer({ min: 0, max: 12 }),
    },
    { requiredKeys: [] },
  )
  .map((r) => {
    const out: ModelRange = { ...r };
    if (out.gt !== undefined && out.gte !== undefined) delete out.gt;
    if (out.lt !== undefined && out.lte !== undefined) delete out.lt;
    return out;
  });
const writeArb = fc.record({ key: keyArb, del: fc.boolean(), value: fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)) });

test('tx.iterator = the snapshot merged with own writes (model, every range option)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(writeArb, { maxLength: 20 }),
      fc.array(writeArb, { maxLength: 20 }),
      fc.array(writeArb, { maxLength: 6 }),
      fc.array(rangeArb, { minLength: 1, maxLength: 4 }),
      fc.constantFrom(...KINDS),
      async (base, own, later, ranges, kind) => {
        const { db } = await openMem({ memtableSize: 1024 });
        const model: ModelState = new Map();
        for (const w of base) {
          if (w.del) {
            await db.delete(w.key);
            model.delete(hex(w.key));
          } else {
            await db.put(w.key, w.value);
            model.set(hex(w.key), hex(w.value));
          }
        }
        const tx = db.beginTransaction(kind);
        tx.iterator().close(); // pins the snapshot here in pessimistic mode as well
        for (const w of own) {
          if (w.del) {
            tx.delete(w.key);
            model.delete(hex(w.key));
          } else {
            tx.put(w.key, w.value);
            model.set(hex(w.key), hex(w.value));
          }
        }
        for (const w of later) await db.put(w.key, Buffer.from('later')); // invisible to tx
        for (const r of ranges) {
          const got = (await collect(tx.iterator(r))).map(([k, v]) => [Buffer.from(k, 'latin1').toString('hex'), Buffer.from(v, 'latin1').toString('hex')]);
          assert.deepEqual(got, modelScan(model, r), `range ${JSON.stringify(r)}`);
          const gotSync = collectSync(tx.iterator(r)).map(([k]) => Buffer.from(k, 'latin1').toString('hex'));
          assert.deepEqual(gotSync, modelScan(model, r).map(([k]) => k));
        }
        await tx.rollback();
        assert.equal(db.stats().openIterators, 0);
        await db.close();
      },
    ),
    { seed: testSeed(), numRuns: numRuns(40, 1000) },
  );
});

test('an iterator captures own writes at creation; breaking out early releases it', async () => {
  const { db } = await openMem();
  await db.batch([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'b', value: '2' },
    { type: 'put', key: 'c', value: '3' },
  ]);
  const tx = db.beginTransaction();
  const it = tx.iterator();
  tx.put('bb', 'new');
  assert.deepEqual(await collect(it), [['a', '1'], ['b', '2'], ['c', '3']]);
  for await (const [k] of tx.iterator()) {
    if (k.toString() === 'b') break;
  }
  assert.equal(db.stats().openIterators, 0);
  const open2 = tx.iterator();
  assert.equal(db.stats().openIterators, 1);
  await tx.commit();
  assert.equal(db.stats().openIterators, 0, 'commit released the open iterator');
  throwsCode(() => open2.nextSync(), 'INVALID_ARGUMENT', 'step after commit');
  await db.close();
});

// --------------------------------------------------------------------------- lifecycle errors

test('use after commit or rollback is INVALID_ARGUMENT with a stable message', async () => {
  const { db } = await openMem();
  const tx = db.beginTransaction();
  tx.put('a', '1');
  await tx.commit();
  const e1 = throwsCode(() => tx.put('b', '2'), 'INVALID_ARGUMENT', 'put after commit');
  assert.match(e1.message, new RegExp(TXN_COMMITTED_MESSAGE));
  throwsCode(() => tx.getSync('a'), 'INVALID_ARGUMENT', 'getSync after commit');
  throwsCode(() => tx.delete('a'), 'INVALID_ARGUMENT', 'delete after commit');
  throwsCode(() => tx.iterator(), 'INVALID_ARGUMENT', 'iterator after commit');
  await rejectsCode(() => tx.get('a'), 'INVALID_ARGUMENT', 'get after commit');
  await rejectsCode(() => tx.getForUpdate('a'), 'INVALID_ARGUMENT', 'getForUpdate after commit');
  await rejectsCode(() => tx.commit(), 'INVALID_ARGUMENT', 'commit twice');
  await rejectsCode(() => tx.rollback(), 'INVALID_ARGUMENT', 'rollback after commit');

  const tx2 = db.beginTransaction();
  tx2.put('z', '1');
  await tx2.rollback();
  await tx2.rollback(); // idempotent
  const e2 = throwsCode(() => tx2.put('b', '2'), 'INVALID_ARGUMENT', 'put after rollback');
  assert.match(e2.message, new RegExp(TXN_ROLLED_BACK_MESSAGE));
  await rejectsCode(() => tx2.commit(), 'INVALID_ARGUMENT', 'commit after rollback');
  assert.equal(await db.get('z'), undefined, 'rolled-back write invisible');

  const tx3 = db.beginTransaction();
  tx3.put('c', '1');
  const committing = tx3.commit();
  throwsCode(() => tx3.put('d', '1'), 'INVALID_ARGUMENT', 'put while committing');
  await rejectsCode(() => tx3.rollback(), 'INVALID_ARGUMENT', 'rollback while committing');
  await committing;
  await db.close();
});

test('bad keys and values throw INVALID_ARGUMENT and leave the transaction usable', async () => {
  const { db } = await openMem();
  const tx = db.beginTransaction();
  throwsCode(() => tx.put('', 'v'), 'INVALID_ARGUMENT', 'empty key');
  throwsCode(() => tx.put(42 as unknown as string, 'v'), 'INVALID_ARGUMENT', 'number key');
  throwsCode(() => tx.put('k', null as unknown as string), 'INVALID_ARGUMENT', 'null value');
  throwsCode(() => tx.iterator({ bogus: 1 } as never), 'INVALID_ARGUMENT', 'bad range');
  await rejectsCode(() => tx.get(''), 'INVALID_ARGUMENT', 'get empty key');
  await rejectsCode(() => tx.getForUpdate(''), 'INVALID_ARGUMENT', 'getForUpdate empty key');
  tx.put('k', 'v');
  await tx.commit();
  assert.equal(str(await db.get('k')), 'v');
  await db.close();
});

test('commit after close is CLOSED; reads after close are CLOSED; nothing is written', async () => {
  for (const kind of KINDS) {
    const mem = new MemFs();
    const db = await open('/db', { fs: mem });
    const tx = db.beginTransaction(kind);
    tx.put('a', '1');
    const ro = db.beginTransaction(kind);
    assert.equal(ro.getSync('a'), undefined);
    await db.close();
    throwsCode(() => tx.getSync('a'), 'CLOSED', 'getSync after close');
    await rejectsCode(() => tx.commit(), 'CLOSED', `${kindName(kind)} commit after close`);
    await rejectsCode(() => ro.commit(), 'CLOSED', 'read-only commit after close');
    throwsCode(() => db.beginTransaction(), 'CLOSED', 'begin after close');
    await rejectsCode(() => db.transaction(() => 1), 'CLOSED', 'transaction() after close');
    const again = await open('/db', { fs: mem });
    assert.equal(await again.get('a'), undefined);
    await again.close();
  }
});

test('options are validated strictly', async () => {
  const { db } = await openMem();
  const bad: unknown[] = [
    { bogus: true },
    { isolation: 'read-committed' },
    { mode: 'locking' },
    { timeoutMs: -1 },
    { timeoutMs: 1.5 },
    { timeoutMs: 3_600_001 },
    { sync: 'yes' },
    { retries: 3 }, // retries belong to db.transaction()
    'snapshot',
    [],
  ];
  for (const o of bad) throwsCode(() => db.beginTransaction(o as never), 'INVALID_ARGUMENT', JSON.stringify(o));
  for (const o of [{ retries: -1 }, { retries: 1.5 }, { retries: 1001 }, { bogus: 1 }, { isolation: 1 }]) {
    await rejectsCode(() => db.transaction(() => 1, o as never), 'INVALID_ARGUMENT', JSON.stringify(o));
  }
  await rejectsCode(() => db.transaction('not a function' as never), 'INVALID_ARGUMENT', 'non-function callback');
  assert.equal(db.stats().activeTransactions, 0);
  for (const bad2 of [0, 1_000_001, 1.5, 'x']) {
    await rejectsCode(() => open('/db2', { fs: new MemFs(), maxActiveTransactions: bad2 as number }), 'INVALID_ARGUMENT', `maxActiveTransactions ${String(bad2)}`);
  }
  const tx = db.beginTransaction({ isolation: 'serializable', mode: 'pessimistic', timeoutMs: 0, sync: true });
  assert.equal(tx.isolation, 'serializable');
  assert.equal(tx.mode, 'pessimistic');
  await tx.rollback();
  await db.close();
});

test('maxActiveTransactions: beyond it beginTransaction throws BUSY; finishing frees a slot', async () => {
  const { db } = await openMem({ maxActiveTransactions: 3 });
  const txs = [db.beginTransaction(), db.beginTransaction(), db.beginTransaction()];
  throwsCode(() => db.beginTransaction(), 'BUSY', 'fourth');
  await rejectsCode(() => db.transaction(() => 1), 'BUSY', 'callback form');
  assert.equal(db.stats().activeTransactions, 3);
  await txs[0]?.rollback();
  txs[1]?.put('a', '1');
  await txs[1]?.commit();
  assert.equal(db.stats().activeTransactions, 1);
  const t4 = db.beginTransaction();
  const t5 = db.beginTransaction();
  throwsCode(() => db.beginTransaction(), 'BUSY', 'full again');
  for (const t of [txs[2], t4, t5]) await t?.rollback();
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
});

test('stats: activeTransactions and oldestTransactionAgeMs', async () => {
  const { db } = await openMem();
  assert.equal(db.stats().activeTransactions, 0);
  assert.equal(db.stats().oldestTransactionAgeMs, 0);
  const tx = db.beginTransaction();
  const s = db.stats();
  assert.equal(s.activeTransactions, 1);
  assert.ok(s.oldestTransactionAgeMs >= 0);
  assert.equal(s.openSnapshots, 1, 'an optimistic transaction holds a snapshot');
  await tx.rollback();
  assert.equal(db.stats().activeTransactions, 0);
  assert.equal(db.stats().openSnapshots, 0);
  await db.close();
});

// --------------------------------------------------------------------------- callback form

test('db.transaction: commits and resolves with the result; a thrown error propagates and writes nothing', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    const r = await db.transaction(async (tx) => {
      tx.put('a', '1');
      return 42;
    }, kind);
    assert.equal(r, 42);
    assert.equal(str(await db.get('a')), '1');
    const boom = new Error('boom');
    await assert.rejects(
      db.transaction(async (tx) => {
        tx.put('b', '1');
        await tx.getForUpdate('a');
        throw boom;
      }, kind),
      (e) => e === boom,
    );
    assert.equal(await db.get('b'), undefined);
    // A synchronous callback works too, and a rollback inside it is an abort.
    const r2 = await db.transaction((tx) => {
      tx.put('c', '1');
      void tx.rollback();
      return 'aborted';
    }, kind);
    assert.equal(r2, 'aborted');
    assert.equal(await db.get('c'), undefined);
    // Committing inside the callback is allowed.
    await db.transaction(async (tx) => {
      tx.put('d', '1');
      await tx.commit();
    }, kind);
    assert.equal(str(await db.get('d')), '1');
    assert.equal(db.stats().activeTransactions, 0);
    assert.equal(db.stats().openSnapshots, 0);
    await db.close();
  }
});

test('db.transaction retries on CONFLICT, re-running the callback, up to `retries` times', async () => {
  const { db } = await openMem();
  await db.put('n', '0');
  let runs = 0;
  const r = await db.transaction(
    async (tx) => {
      runs++;
      const n = Number(str(await tx.get('n')));
      if (runs <= 2) await db.put('n', String(n + 100)); // interfere: this attempt must conflict
      tx.put('n', String(n + 1));
      return n;
    },
    { retries: 5 },
  );
  assert.equal(runs, 3);
  assert.equal(r, 200);
  assert.equal(str(await db.get('n')), '201');

  runs = 0;
  const e = await rejectsCode(
    () =>
      db.transaction(
        async (tx) => {
          runs++;
          const n = Number(str(await tx.get('n')));
          await db.put('n', String(n + 1));
          tx.put('n', 'never');
        },
        { retries: 2 },
      ),
    'CONFLICT',
    'retries exhausted',
  );
  assert.ok(e instanceof LightningError);
  assert.equal(runs, 3, 'first attempt + 2 retries');
  assert.notEqual(str(await db.get('n')), 'never');
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
});

test('a read-only transaction commits without writing', async () => {
  for (const kind of KINDS) {
    const { db } = await openMem();
    await db.put('a', '1');
    const seqBefore = db.stats().sequence;
    const v = await db.transaction(async (tx) => str(await tx.get('a')), kind);
    assert.equal(v, '1');
    assert.equal(db.stats().sequence, seqBefore);
    await db.close();
  }
});

test('optimistic getForUpdate is validated at commit even under snapshot isolation', async () => {
  const { db } = await openMem();
  await db.put('a', '1');
  const tx = db.beginTransaction({ isolation: 'snapshot' });
  await tx.getForUpdate('a');
  tx.put('other', 'x');
  await db.put('a', '2');
  const e = await rejectsCode(() => tx.commit(), 'CONFLICT', 'getForUpdate key changed');
  assert.match(e.message, /"a"/);
  assert.equal(await db.get('other'), undefined);
  // Read-only with getForUpdate: validated too.
  const ro = db.beginTransaction();
  await ro.getForUpdate('a');
  await db.put('a', '3');
  await rejectsCode(() => ro.commit(), 'CONFLICT', 'read-only getForUpdate');
  // Plain reads under snapshot isolation are not validated.
  const tx2 = db.beginTransaction({ isolation: 'snapshot' });
  await tx2.get('a');
  tx2.put('other', 'y');
  await db.put('a', '4');
  await tx2.commit();
  assert.equal(str(await db.get('other')), 'y');
  await db.close();
});

test('a readOnly database runs read-only transactions; writes fail READ_ONLY at commit', async () => {
  const mem = new MemFs();
  const w = await open('/db', { fs: mem });
  await w.put('a', '1');
  await w.close();
  const db = await open('/db', { fs: mem, readOnly: true });
  assert.equal(await db.transaction(async (tx) => str(await tx.get('a'))), '1');
  const tx = db.beginTransaction();
  tx.put('a', '2');
  await rejectsCode(() => tx.commit(), 'READ_ONLY', 'commit on readOnly db');
  await db.close();
});

test('no unhandled rejections or uncaught exceptions', async () => {
  await settle();
  recorder.assertNone();
  recorder.dispose();
});
