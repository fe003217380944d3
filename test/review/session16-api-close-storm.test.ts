/**
 * Session 16 (API review): close() in the middle of everything, on a real directory with the
 * default worker thread. Writes (durable and not), batches, open iterators stepped sync and async,
 * snapshots, optimistic and pessimistic transactions (one waiting for a lock held by another),
 * db.transaction() callbacks, compactRange and idle are all in flight when close() is called (twice).
 * Every promise must settle with success or a LightningError of an expected code; close() resolves;
 * every acknowledged write is there after reopen; no unhandled rejection or uncaught exception.
 * Replay: SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, LightningError, type ErrorCode } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { ProcessErrorRecorder, describeError } from '../harness/api-helpers.js';
import { withSeed } from '../harness/seed.js';

const recorder = new ProcessErrorRecorder();

const OK_CODES: readonly ErrorCode[] = ['CLOSED', 'CONFLICT', 'DEADLOCK', 'TIMEOUT', 'INVALID_ARGUMENT'];

test('session16: close() racing writes, iterators, snapshots, transactions, compactRange and idle on a real dir settles everything with typed outcomes', async () => {
  await withSeed('session16-close-storm', async (seed) => {
    console.log(`session16-close-storm SEED=${seed}`);
    const rng = new Random(seed);
    for (let round = 0; round < 4; round++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-s16-storm-'));
      try {
        const db = await open(dir, { memtableSize: 64 * 1024, targetFileSize: 16 * 1024 });
        const acked = new Map<string, string>();
        for (let i = 0; i < 300; i++) await db.put(`pre${i}`, 'v'.repeat(200), { sync: false });
        for (let i = 0; i < 300; i++) acked.set(`pre${i}`, 'v'.repeat(200));
        const outcomes: Promise<string>[] = [];
        const track = (what: string, p: Promise<unknown>): void => {
          outcomes.push(
            p.then(
              () => 'ok',
              (e: unknown) => {
                if (e instanceof LightningError && OK_CODES.includes(e.code)) return e.code;
                return `${what}: ${describeError(e)}`;
              },
            ),
          );
        };
        // Writes whose acknowledgement we record.
        for (let i = 0; i < 200; i++) {
          const k = `w${i}`;
          const v = `v${i}-${rng.nextUint32()}`;
          track('put', db.put(k, v, { sync: rng.nextUint32() % 3 === 0 }).then(() => void acked.set(k, v)));
        }
        track('batch', db.batch([{ type: 'put', key: 'b1', value: '1' }, { type: 'del', key: 'pre0' }]).then(() => {
          acked.set('b1', '1');
          acked.delete('pre0');
        }));
        const it1 = db.iterator({ gte: 'pre' });
        const it2 = db.iterator({ reverse: true, limit: 50 });
        const snap = db.snapshot();
        const txA = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 60_000 });
        txA.put('locked', 'A');
        const txB = db.beginTransaction({ mode: 'pessimistic', timeoutMs: 60_000 });
        track('txB.getForUpdate (waits for A)', txB.getForUpdate('locked'));
        const txC = db.beginTransaction({ isolation: 'serializable' });
        txC.put('c', '1');
        track('txC.commit', txC.commit());
        track(
          'db.transaction',
          db.transaction(async (tx) => {
            for await (const [k] of tx.iterator({ prefix: 'pre', limit: 5 })) tx.put(Buffer.concat([k, Buffer.from('!')]), 'x');
            return 1;
          }),
        );
        track('compactRange', db.compactRange());
        track('idle', db.idle());
        // Step the iterators a random amount, interleaved with the close.
        const steps = rng.nextUint32() % 40;
        for (let i = 0; i < steps; i++) it1.nextSync();
        track('it2.next', it2.next());
        const c1 = db.close();
        const c2 = db.close();
        track('put after close', db.put('late', 'x'));
        track('snapshot.get during close', snap.get('pre1'));
        track('it1.next during close', it1.next());
        track('txA.commit during close', txA.commit());
        await c1;
        await c2;
        const results = await Promise.all(outcomes);
        const bad = results.filter((r) => !(r === 'ok' || (OK_CODES as readonly string[]).includes(r)));
        assert.deepEqual(bad, [], `round ${round}: untyped outcomes`);
        // After close: every handle is dead with CLOSED, synchronously for sync methods.
        assert.throws(() => it1.nextSync(), (e: unknown) => e instanceof LightningError && e.code === 'CLOSED');
        assert.throws(() => snap.getSync('pre1'), (e: unknown) => e instanceof LightningError && e.code === 'CLOSED');
        assert.throws(() => txB.put('x', 'y'), (e: unknown) => e instanceof LightningError && (e.code === 'CLOSED' || e.code === 'INVALID_ARGUMENT'));
        await txB.rollback();
        await txA.rollback().catch(() => undefined);
        snap.release();
        snap.release();
        // Acknowledged writes survived.
        const db2 = await open(dir, { readOnly: true });
        try {
          for (const [k, v] of acked) assert.equal(db2.getSync(k)?.toString(), v, `round ${round}: acknowledged ${k}`);
        } finally {
          await db2.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

test('session16 (close storm): no unhandled rejections or uncaught exceptions', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
