/**
 * Background WAL syncs (db.ts WAL_BACKGROUND_SYNC_BYTES, RecordWriter.syncInBackground): a
 * non-durable load fdatasyncs its WAL every MiB without waiting, so the sync at a memtable switch
 * has little left to write. What must hold: one background sync at a time; a failing one turns the
 * database degraded (IO_ERROR, 'failed') with nothing thrown into the void; close() waits for one in
 * flight; nothing acknowledged is lost; and the WAL really reaches the disk in steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, LightningError } from '../../src/index.js';
import { FaultFs, failWhile, opIn, pathEndsWith, type FaultFilter } from '../../src/env/fault-fs.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { ProcessErrorRecorder, collect, k, rejectsCode } from '../harness/api-helpers.js';
import { wrapOpen } from '../harness/wrap-open.js';

const recorder = new ProcessErrorRecorder();
const VALUE = 'v'.repeat(200);

function both(a: FaultFilter, b: FaultFilter): FaultFilter {
  return (op, p) => a(op, p) && b(op, p);
}

/** Records in the newest WAL of `fs`. */
function walRecords(fs: MemFs): number {
  const logs = fs.readdir('/db').filter((n) => n.endsWith('.log')).sort();
  const newest = logs[logs.length - 1];
  assert.ok(newest !== undefined, 'a WAL exists');
  const file = fs.open(`/db/${newest}`, 'r');
  try {
    const reader = new RecordReader(file, `/db/${newest}`);
    let n = 0;
    while (reader.next() !== undefined) n++;
    return n;
  } finally {
    file.close();
  }
}

/** Turns of the event loop until `done()`, bounded so that a hang fails instead. */
async function turnsUntil(done: () => boolean, what: string): Promise<void> {
  for (let turn = 0; !done(); turn++) {
    assert.ok(turn < 10_000, `${what} within 10,000 event-loop turns`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

test('RecordWriter: one background sync at a time; settled() waits for it; a failure goes to onError once', async () => {
  const mem = new MemFs();
  mem.mkdir('/db');
  let syncs = 0;
  const fault = failWhile(opIn('sync'), 'EIO');
  fault.enabled = false;
  const fs = new FaultFs(mem, {
    maybeFail: (op, path) => {
      if (op === 'sync') syncs++;
      return fault.maybeFail(op, path);
    },
  });
  const w = RecordWriter.create(fs.open('/db/000003.log', 'truncate'), 3, 'wal');
  w.add(Buffer.alloc(100, 1));
  const errors: LightningError[] = [];
  assert.equal(w.syncInBackground((e) => errors.push(e)), true);
  assert.equal(w.syncInBackground((e) => errors.push(e)), false, 'one is running: no second');
  assert.equal(syncs, 1);
  assert.equal(w.unsyncedBytes(), 0, 'the running sync covers every record so far');
  await w.settled();
  w.add(Buffer.alloc(100, 2));
  fault.enabled = true;
  w.syncInBackground((e) => errors.push(e));
  await w.settled();
  assert.equal(errors.length, 1, 'the failure was reported once');
  assert.equal(errors[0]?.code, 'IO_ERROR');
  assert.equal(w.failed(), errors[0], 'and disabled the writer');
  assert.throws(() => w.add(Buffer.alloc(1)), (e: unknown) => e === errors[0]);
  w.syncInBackground((e) => errors.push(e)); // a failed writer starts nothing
  assert.equal(syncs, 2);
  w.close();
});

test('a non-durable load reaches the disk in steps: a power cut loses at most the unsynced tail', async () => {
  const mem = new MemFs();
  // A memtable larger than the load: no switch, so only background syncs make the WAL durable.
  const db = await open('/db', { fs: mem, memtableSize: 64 * 1024 * 1024, sync: false });
  try {
    const batches = 60; // 60 × 100 × ~220 bytes ≈ 1.3 MiB of WAL
    for (let b = 0; b < batches; b++) {
      const ops = [];
      for (let i = 0; i < 100; i++) ops.push({ type: 'put' as const, key: k(b * 100 + i), value: VALUE });
      await db.batch(ops);
    }
    // The first MiB of records is durable once the background sync it started has finished.
    await turnsUntil(() => walRecords(mem.crashClone()) >= 40, 'the background sync');
    const image = mem.crashClone();
    const writes = db.stats().writes;
    assert.equal(writes.walSyncs, 0, 'no durable write');
    assert.equal(writes.walBackgroundSyncs, 1, 'one background sync, after the first MiB');
    const survived = walRecords(image);
    assert.ok(survived < batches, `a power cut now loses the unsynced tail (${survived} of ${batches})`);
    const again = await open('/db', { fs: image });
    try {
      const got = await collect(again.iterator());
      assert.equal(got.length, survived * 100, 'a prefix of whole batches');
      assert.deepEqual(got[got.length - 1]?.[0], k(survived * 100 - 1));
    } finally {
      await again.close();
    }
  } finally {
    await db.close();
  }
  recorder.assertNone();
});

test('EIO on a background WAL sync → IO_ERROR, degraded (failed), reads work, reopen has every acked write', async () => {
  const mem = new MemFs();
  const fault = failWhile(both(opIn('sync'), pathEndsWith('.log')), 'EIO');
  fault.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, fault), memtableSize: 64 * 1024 * 1024, sync: false });
  fault.enabled = true;
  const acked = new Map<string, string>();
  let failed: unknown;
  for (let i = 0; i < 20_000 && failed === undefined; i++) {
    try {
      await db.put(k(i), VALUE);
      acked.set(k(i), VALUE);
    } catch (e) {
      failed = e;
    }
    if (i % 100 === 99) await new Promise<void>((resolve) => setImmediate(resolve)); // let the sync fail
  }
  assert.ok(failed instanceof LightningError, `a later write failed with a LightningError: ${String(failed)}`);
  assert.equal(failed.code, 'IO_ERROR');
  fault.enabled = false;
  const s = db.stats();
  assert.equal(s.state, 'degraded');
  assert.equal(s.backgroundError?.code, 'IO_ERROR');
  assert.equal(s.backgroundError?.mode, 'failed', 'a WAL whose fsync failed is not trusted again');
  await rejectsCode(() => db.put('later', 'x'), 'IO_ERROR', 'put while degraded');
  for (const key of [k(0), k(acked.size - 1)]) assert.equal(db.getSync(key)?.toString(), VALUE, 'reads work');
  await db.close();
  // No power cut: every acknowledged non-durable write is in the WAL file.
  const db2 = await open('/db', { fs: mem });
  try {
    const got = await collect(db2.iterator());
    const wanted = [...acked.entries()].sort();
    assert.deepEqual(got.slice(0, wanted.length), wanted, 'every acked write is there');
  } finally {
    await db2.close();
  }
  recorder.assertNone();
});

test('close() with a background WAL sync in flight waits for it: no sync on a closed file', async () => {
  const mem = new MemFs();
  let syncsAfterClose = 0;
  let closedPaths = new Set<string>();
  // Holds every WAL sync until released, so close() certainly finds one in flight.
  const held: (() => void)[] = [];
  let holding = false;
  const fs = wrapOpen(mem, (path, handle) => {
    if (!path.endsWith('.log')) return handle;
    const sync = handle.sync.bind(handle);
    const close = handle.close.bind(handle);
    handle.sync = async () => {
      if (holding) await new Promise<void>((resolve) => held.push(resolve));
      if (closedPaths.has(path)) syncsAfterClose++;
      return sync();
    };
    handle.close = () => {
      closedPaths.add(path);
      close();
    };
    return handle;
  });
  const db = await open('/db', { fs, memtableSize: 64 * 1024 * 1024, sync: false });
  holding = true;
  for (let b = 0; b < 60; b++) {
    const ops = [];
    for (let i = 0; i < 100; i++) ops.push({ type: 'put' as const, key: k(b * 100 + i), value: VALUE });
    await db.batch(ops);
  }
  assert.ok(held.length >= 1, 'a background sync is in flight');
  let closed = false;
  const closing = db.close().then(() => (closed = true));
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(closed, false, 'close() waits for the background sync');
  holding = false;
  for (const release of held.splice(0)) release();
  await closing;
  assert.equal(syncsAfterClose, 0, 'no sync ran on a closed WAL');
  closedPaths = new Set();
  const again = await open('/db', { fs: mem });
  try {
    assert.equal((await collect(again.iterator())).length, 6000);
  } finally {
    await again.close();
  }
  recorder.assertNone();
});
