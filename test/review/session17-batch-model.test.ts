/**
 * Session 17 (review of the one-pass batch encoder; PendingWrite keeps opCount, not the ops):
 * puts, deletes, batches (some empty, some rejected by a throwing getter) and optimistic
 * transactions issued in the same tick, so that they share group commits. Checked after every
 * round, against a model built from the outcomes in issue order:
 *   - the visible sequence number advanced by exactly the operations of the writes that resolved
 *     (batch: its operations, duplicates included; transaction: its distinct keys);
 *   - reads, scans, and every snapshot / iterator taken earlier see exactly their versions;
 *   - a power cut after a final durable write, then reopen: exactly the model, same sequence.
 * Guards: all expected to hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type BatchOperation } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import type { Snapshot } from '../../src/db/snapshot.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { describeError } from '../harness/api-helpers.js';

type Op = { t: 'put'; key: string; value: string } | { t: 'del'; key: string };
interface Issued {
  kind: 'put' | 'del' | 'batch' | 'txn' | 'bad-batch';
  ops: Op[];
  /** Sequence numbers the write consumes if it commits. */
  seqs: number;
  outcome?: 'ok' | string;
}

type State = Map<string, string>;

function scan(it: Iterable<[Buffer, Buffer]>): string {
  const out: string[] = [];
  for (const [k, v] of it) out.push(`${k.toString()}=${v.toString()}`);
  return out.join(' ');
}

function describe(state: State): string {
  return [...state.entries()]
    .sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

function applyOps(state: State, ops: Op[]): void {
  for (const o of ops) {
    if (o.t === 'put') state.set(o.key, o.value);
    else state.delete(o.key);
  }
}

function userOps(ops: Op[]): BatchOperation[] {
  return ops.map((o) => (o.t === 'put' ? { type: 'put', key: Buffer.from(o.key), value: Buffer.from(o.value) } : { type: 'del', key: o.key }));
}

function issue(db: Database, rng: Random, i: number, sync: boolean): { w: Issued; p: Promise<void> } {
  const key = (): string => `k${rng.nextInt(16).toString().padStart(2, '0')}`;
  const value = (): string => `v${i}-${'x'.repeat(rng.nextInt(5) === 0 ? 200 + rng.nextInt(3000) : rng.nextInt(40))}`;
  const op = (): Op => (rng.nextInt(4) === 0 ? { t: 'del', key: key() } : { t: 'put', key: key(), value: value() });
  const r = rng.nextInt(20);
  if (r < 6) {
    const o = op();
    const w: Issued = { kind: o.t, ops: [o], seqs: 1 };
    return { w, p: o.t === 'put' ? db.put(o.key, o.value, { sync }) : db.delete(o.key, { sync }) };
  }
  if (r < 13) {
    const n = rng.nextInt(3) === 0 ? 0 : 1 + rng.nextInt(rng.nextInt(4) === 0 ? 300 : 8);
    const ops: Op[] = [];
    for (let j = 0; j < n; j++) ops.push(op());
    const w: Issued = { kind: 'batch', ops, seqs: n };
    // The caller's buffers are scribbled on right after the call.
    const u = userOps(ops);
    const p = db.batch(u, { sync });
    for (const o of u) if (Buffer.isBuffer(o.key)) o.key.fill(0x21);
    return { w, p };
  }
  if (r < 15) {
    const ops: Op[] = [op(), op(), op()];
    const u: unknown[] = userOps(ops);
    u.splice(1 + rng.nextInt(2), 0, {
      type: 'put',
      key: 'never',
      get value() {
        throw new Error('getter failed');
      },
    });
    const w: Issued = { kind: 'bad-batch', ops: [], seqs: 0 };
    return { w, p: db.batch(u as BatchOperation[], { sync }) };
  }
  const tx = db.beginTransaction({ sync });
  const ops: Op[] = [];
  const n = 1 + rng.nextInt(5);
  for (let j = 0; j < n; j++) {
    const o = op();
    ops.push(o);
    if (o.t === 'put') tx.put(o.key, o.value);
    else tx.delete(o.key);
  }
  const distinct = new Set(ops.map((o) => o.key)).size;
  return { w: { kind: 'txn', ops, seqs: distinct }, p: tx.commit() };
}

test('mixed writes in shared group commits: sequence numbers, snapshots, iterators and recovery match the model', async () => {
  await withSeed('session17-batch-model', async (seed) => {
    const rng = new Random(seed);
    const fs = new MemFs();
    const db = await open('/db', { fs, compactionThread: 'main', memtableSize: 16 * 1024 + rng.nextInt(64 * 1024), blockSize: 256, sync: false, seed: rng.nextUint32() });
    const state: State = new Map();
    const held: { snap: Snapshot; want: string; round: number }[] = [];
    let i = 0;
    try {
      for (let round = 0; round < 60; round++) {
        const seqBefore = db.visibleSequence;
        const pinned = db.iterator(); // opened before the round: must not see it
        const pinnedWant = describe(state);
        const issued: { w: Issued; p: Promise<void> }[] = [];
        const n = 1 + rng.nextInt(12);
        for (let j = 0; j < n; j++) issued.push(issue(db, rng, i++, rng.nextInt(5) === 0));
        await Promise.all(issued.map(({ w, p }) => p.then(() => void (w.outcome = 'ok'), (e: unknown) => void (w.outcome = describeError(e)))));
        let consumed = 0;
        for (const { w } of issued) {
          if (w.kind === 'bad-batch') {
            assert.match(w.outcome ?? '', /INVALID_ARGUMENT/, `round ${round}: a batch whose getter throws`);
            continue;
          }
          if (w.kind === 'txn' && w.outcome !== 'ok') {
            assert.match(w.outcome ?? '', /CONFLICT/, `round ${round}: txn`);
            continue;
          }
          assert.equal(w.outcome, 'ok', `round ${round}: ${w.kind}`);
          applyOps(state, w.ops);
          consumed += w.seqs;
        }
        assert.equal(db.visibleSequence - seqBefore, consumed, `round ${round}: sequence advanced by the committed operations`);
        assert.equal(scan(pinned), pinnedWant, `round ${round}: iterator opened before the round`);
        pinned.close();
        const want = describe(state);
        assert.equal(scan(db.iterator()), want, `round ${round}: scan`);
        for (const k of ['k00', 'k07', 'k15']) assert.equal(db.getSync(k)?.toString(), state.get(k), `round ${round}: get ${k}`);
        if (rng.nextInt(4) === 0) held.push({ snap: db.snapshot(), want, round });
        for (const h of held) assert.equal(scan(h.snap.iterator()), h.want, `round ${round}: snapshot from round ${h.round}`);
        if (held.length > 4) (held.shift() as (typeof held)[number]).snap.release();
      }
      for (const h of held) h.snap.release();
      held.length = 0;
      await db.put('zz-final', 'durable', { sync: true });
      state.set('zz-final', 'durable');
      const seqAtCut = db.visibleSequence;
      const cut = fs.crashClone({ rng, tearLastWrite: true, keepUnsyncedProbability: 0.5 });
      const again = await open('/db', { fs: cut, compactionThread: 'main' });
      try {
        assert.equal(scan(again.iterator()), describe(state), 'after power cut: everything (the last write was durable)');
        assert.equal(again.visibleSequence, seqAtCut, 'after power cut: the same sequence number');
        await again.batch([{ type: 'put', key: 'after', value: '1' }]);
        assert.equal(again.visibleSequence, seqAtCut + 1);
      } finally {
        await again.close();
      }
    } finally {
      for (const h of held) h.snap.release();
      await db.close();
    }
  });
});

test('a batch queued in the same group before a transaction\'s commit makes it CONFLICT on a written key; one after it does not', async () => {
  const db = await open('/db', { fs: new MemFs(), compactionThread: 'main' });
  try {
    await db.put('a', '0');
    const tx = db.beginTransaction();
    tx.put('a', 'tx');
    tx.put('b', 'tx');
    const seq0 = db.visibleSequence;
    const pBatch = db.batch([
      { type: 'put', key: 'z', value: '1' },
      { type: 'del', key: 'a' },
    ]);
    const pTx = tx.commit();
    const pAfter = db.batch([{ type: 'put', key: 'b', value: 'after' }]);
    const [rb, rt, ra] = await Promise.allSettled([pBatch, pTx, pAfter]);
    assert.equal(rb.status, 'fulfilled');
    assert.equal(ra.status, 'fulfilled');
    assert.equal(rt.status, 'rejected');
    assert.match(describeError((rt as PromiseRejectedResult).reason), /CONFLICT/);
    assert.equal(db.visibleSequence - seq0, 3, 'two batch ops + one; the conflicting transaction consumed none');
    assert.equal(scan(db.iterator()), 'b=after z=1');

    const tx2 = db.beginTransaction();
    tx2.put('c', 'tx2');
    tx2.delete('z');
    const p2 = tx2.commit();
    const p3 = db.batch([{ type: 'put', key: 'z', value: '2' }]); // after the commit: not a conflict
    await Promise.all([p2, p3]);
    assert.equal(scan(db.iterator()), 'b=after c=tx2 z=2');
    assert.equal(db.visibleSequence - seq0, 6);
  } finally {
    await db.close();
  }
});
