/**
 * Fixed in session 17: while a paced result waits for its turn, every later result and error
 * (and return()) waits behind it, in call order (util/yield.ts pacedResult / pacedRejection).
 * Reviewer tests (session 17, read pacing, ae5e049): in what ORDER paced reads settle.
 *
 * BUG (tests marked "BUG" below fail on ae5e049): before the pacer, every async read
 * (db.get, snapshot.get, transaction.get, iterator next()) settled in a microtask, so reads
 * settled in the order they were called (FIFO, like every promise-returning call of this API and
 * like an async generator's next()). pacedResult() (src/util/yield.ts) delivers SOME results after
 * a setImmediate turn and the rest with Promise.resolve: a read called after a paced one now
 * settles BEFORE it. Consequences:
 *   - `tx.get(k).then(set); tx.put(k, 'new'); tx.get(k).then(set)` leaves the OLD value last: the
 *     stale result of the earlier read overwrites the fresher one (any "last settled wins" cache,
 *     UI state or reducer sees time go backwards).
 *   - Two it.next() calls made without awaiting in between (prefetching consumers, Promise.race
 *     based merging of several iterators) settle out of key order: the second entry arrives first,
 *     unlike an async generator, whose next() calls settle in call order.
 *   - it.return() (the `break` path) settles before a still pending next().
 * Expected: results settle in call order. Suspected cause: pacedResult() chooses per call between
 * a macrotask and a microtask delivery; a fix is to make the pacing decision delay every later
 * result too (e.g. once a turn is due, chain later results of the thread behind that turn, or
 * pace by awaiting the turn BEFORE computing the result so nothing computed later overtakes it).
 *
 * The pacer is forced to be due at a chosen call by setting its private counters (readPacer in
 * src/util/yield.ts): deterministic, no timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { readPacer } from '../../src/util/yield.js';

/** Makes the very next paced read (of any kind, this thread) due: it settles after a turn. */
function forceNextPaced(): void {
  const p = readPacer as unknown as { calls: number; lastTurnMs: number };
  p.calls = 63; // ++ makes it 64: the clock is read
  p.lastTurnMs = -1e15; // and a turn is due
}

/** Makes the next 63 paced reads not due (so the test does not depend on where the pacer is). */
function forceNotPaced(): void {
  const p = readPacer as unknown as { calls: number; lastTurnMs: number };
  p.calls = 0;
}

async function filled(n = 200): Promise<Database> {
  const db = await open('/db', { fs: new MemFs(), sync: false });
  const ops = [];
  for (let i = 0; i < n; i++) ops.push({ type: 'put' as const, key: `k${String(i).padStart(4, '0')}`, value: `v${i}` });
  await db.batch(ops);
  return db;
}

test('BUG: db.get calls settle in call order even when one of them is paced', async () => {
  const db = await filled();
  try {
    const order: number[] = [];
    const all: Promise<unknown>[] = [];
    forceNotPaced();
    for (let i = 0; i < 10; i++) {
      if (i === 3) forceNextPaced();
      all.push(db.get(`k${String(i).padStart(4, '0')}`).then(() => order.push(i)));
    }
    await Promise.all(all);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'gets settled out of call order');
  } finally {
    await db.close();
  }
});

test('BUG: a transaction reading a key before and after its own put: the later (fresher) result settles last', async () => {
  const db = await filled();
  try {
    const tx = db.beginTransaction();
    let last: string | undefined;
    forceNextPaced();
    const a = tx.get('k0001').then((v) => {
      last = v?.toString();
    });
    tx.put('k0001', 'new');
    const b = tx.get('k0001').then((v) => {
      last = v?.toString();
    });
    await Promise.all([a, b]);
    assert.equal(last, 'new', 'the stale result of the earlier get overwrote the later one');
    await tx.rollback();
  } finally {
    await db.close();
  }
});

test('BUG: two next() calls without awaiting in between settle in key order (as an async generator would)', async () => {
  const db = await filled();
  try {
    const it = db.iterator();
    const settled: string[] = [];
    forceNextPaced();
    const a = it.next().then((r) => settled.push(r.done === true ? 'done' : r.value[0].toString()));
    const b = it.next().then((r) => settled.push(r.done === true ? 'done' : r.value[0].toString()));
    await Promise.all([a, b]);
    assert.deepEqual(settled, ['k0000', 'k0001'], 'iterator steps settled out of order');
    await it.return();
  } finally {
    await db.close();
  }
});

test('BUG: a transaction iterator: two unawaited next() calls settle in order', async () => {
  const db = await filled();
  try {
    const tx = db.beginTransaction();
    tx.put('k0000a', 'own');
    const it = tx.iterator();
    const settled: string[] = [];
    forceNextPaced();
    const a = it.next().then((r) => settled.push(r.done === true ? 'done' : r.value[0].toString()));
    const b = it.next().then((r) => settled.push(r.done === true ? 'done' : r.value[0].toString()));
    await Promise.all([a, b]);
    assert.deepEqual(settled, ['k0000', 'k0000a']);
    await it.return();
    await tx.rollback();
  } finally {
    await db.close();
  }
});

test('BUG: return() (the break path) does not settle before a pending next()', async () => {
  const db = await filled();
  try {
    const it = db.iterator();
    const settled: string[] = [];
    forceNextPaced();
    const a = it.next().then(() => settled.push('next'));
    const b = it.return().then(() => settled.push('return'));
    await Promise.all([a, b]);
    assert.deepEqual(settled, ['next', 'return']);
    assert.equal(it.closed, true);
  } finally {
    await db.close();
  }
});

test('holds: the VALUES of out-of-order settled reads are each right for their call', async () => {
  const db = await filled();
  try {
    const tx = db.beginTransaction();
    forceNextPaced();
    const a = tx.get('k0001');
    tx.put('k0001', 'new');
    const b = tx.get('k0001');
    assert.equal((await a)?.toString(), 'v1');
    assert.equal((await b)?.toString(), 'new');
    const it = db.iterator({ limit: 3 });
    forceNextPaced();
    const steps = [it.next(), it.next(), it.next(), it.next()];
    const got = (await Promise.all(steps)).map((r) => (r.done === true ? 'done' : r.value[0].toString()));
    assert.deepEqual(got, ['k0000', 'k0001', 'k0002', 'done']);
    await tx.rollback();
  } finally {
    await db.close();
  }
});
