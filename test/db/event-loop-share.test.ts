/**
 * Async reads of cached data settle in microtasks alone, so a loop of them would never let the
 * event loop turn: the host's timers and sockets, and our worker's messages (a flush or compaction
 * finishing), would wait for the whole loop. util/yield.ts ReadPacer delivers a result after one
 * turn every few milliseconds. Each test runs a read loop that stops as soon as a setImmediate
 * callback has run, and fails if the loop reaches its (large) bound first: no timing is asserted,
 * only that the event loop turned at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

const KEYS = 20_000;

function key(i: number): string {
  return `key${String(i).padStart(6, '0')}`;
}

async function filled(): Promise<Database> {
  const db = await open('/db', { fs: new MemFs(), sync: false });
  for (let i = 0; i < KEYS; i += 1000) {
    const ops = [];
    for (let j = i; j < i + 1000; j++) ops.push({ type: 'put' as const, key: key(j), value: `value${j}` });
    await db.batch(ops);
  }
  return db;
}

/** Runs `step` (awaited) until a setImmediate scheduled first has run; returns how many steps. */
async function stepsUntilTurn(bound: number, step: (i: number) => Promise<boolean>): Promise<number> {
  let turned = false;
  setImmediate(() => {
    turned = true;
  });
  let n = 0;
  while (!turned && n < bound) {
    if (!(await step(n))) break;
    n++;
  }
  assert.ok(turned, `the event loop never turned during ${n} awaited reads`);
  return n;
}

test('a loop of awaited db.get, snapshot.get and transaction get lets the event loop turn', async () => {
  const db = await filled();
  try {
    await stepsUntilTurn(2_000_000, async (i) => (await db.get(key(i % KEYS))) !== undefined);
    const snap = db.snapshot();
    await stepsUntilTurn(2_000_000, async (i) => (await snap.get(key(i % KEYS))) !== undefined);
    snap.release();
    const txn = db.beginTransaction();
    await stepsUntilTurn(2_000_000, async (i) => (await txn.get(key(i % KEYS))) !== undefined);
    await txn.rollback();
  } finally {
    await db.close();
  }
});

test('a for-await over a database or transaction iterator lets the event loop turn, and sees every entry', async () => {
  const db = await filled();
  try {
    for (const source of ['db', 'txn'] as const) {
      const txn = source === 'txn' ? db.beginTransaction() : null;
      // Ten passes over the range at most; the loop ends once the event loop has turned.
      let seen = 0;
      let it = (txn ?? db).iterator()[Symbol.asyncIterator]();
      await stepsUntilTurn(10 * KEYS, async () => {
        let r = await it.next();
        if (r.done === true) {
          assert.equal(seen % KEYS, 0, `${source}: a pass ended after ${seen % KEYS} of ${KEYS} entries`);
          it = (txn ?? db).iterator()[Symbol.asyncIterator]();
          r = await it.next();
        }
        seen++;
        return r.done !== true;
      });
      await it.return?.();
      if (txn !== null) await txn.rollback();
    }
    // Paced or not, a full pass yields every entry once, in order.
    let i = 0;
    for await (const [k] of db.iterator()) assert.equal(k.toString(), key(i++));
    assert.equal(i, KEYS);
  } finally {
    await db.close();
  }
});
