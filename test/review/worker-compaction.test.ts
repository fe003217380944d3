/**
 * Review: compaction merges in the worker thread (node:fs), attacked from the outside.
 *   - close() while a merge runs in the worker, then reopen: contents intact, no process errors;
 *   - many open/compact/close cycles: no leaked worker keeps the process alive (node --test would
 *     time out), every cycle sees its data;
 *   - tombstones over older data in deeper levels, with keys of odd lengths, bytes >= 0x80,
 *     prefixes of each other and 64 KiB keys at the edges of the deeper files' ranges (the packed
 *     ranges cross the thread boundary): deleted keys must stay deleted, snapshots keep what they
 *     saw;
 *   - an input table that vanished: the failure is a LightningError with a stable code, reads keep
 *     working, and close() is clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-worker-'));
}

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

async function fill(db: Database, from: number, to: number, tag: string, valueBytes = 100): Promise<void> {
  for (let i = from; i < to; i += 500) {
    const ops = [];
    for (let j = i; j < Math.min(to, i + 500); j++) ops.push({ type: 'put' as const, key: key(j), value: `${tag}:${j}:${'x'.repeat(valueBytes)}` });
    await db.batch(ops, { sync: false });
  }
}

test('close() while a worker merge runs, then reopen: contents intact, no process-level errors', async () => {
  const rec = new ProcessErrorRecorder();
  const dir = tempDir();
  try {
    const opts = { memtableSize: 256 * 1024, targetFileSize: 64 * 1024, sync: false, compactionThread: 'worker' as const };
    let db = await open(dir, opts);
    await fill(db, 0, 20_000, 'a');
    await db.close();
    db = await open(dir, opts);
    await fill(db, 0, 20_000, 'b');
    // Not awaited: close() must wait for the merge (or stop it cleanly), never strand it.
    const compacting = db.compactRange().then(
      () => 'done',
      (e: unknown) => {
        assertLightning(e, 'CLOSED', 'compactRange cut short by close');
        return 'closed';
      },
    );
    // Wait (by turns of the event loop, not time, and with no turn limit: a limit is a clock in
    // disguise on a loaded machine) until a merge is running or compactRange is over.
    let over = false;
    void compacting.then(() => (over = true));
    while (!over && !db.stats().compactions.running) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.ok(db.stats().compactions.running, 'a compaction is running');
    assert.equal(db.stats().compactions.thread, 'worker');
    await db.close();
    await compacting;
    db = await open(dir, opts);
    for (const i of [0, 1, 9_999, 19_999]) assert.ok(db.getSync(key(i))?.toString().startsWith(`b:${i}:x`), key(i));
    let n = 0;
    for (const [k, v] of db.iterator()) {
      assert.equal(v.toString().slice(0, 2), 'b:', k.toString());
      n++;
    }
    assert.equal(n, 20_000);
    await db.close();
    await rec.settle();
    rec.assertNone();
  } finally {
    rec.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('many reopen cycles with worker merges: each sees its data, nothing is left running', async () => {
  const dir = tempDir();
  try {
    const opts = { memtableSize: 64 * 1024, targetFileSize: 16 * 1024, levelBaseSize: 64 * 1024, sync: false, compactionThread: 'worker' as const };
    for (let cycle = 0; cycle < 12; cycle++) {
      const db = await open(dir, opts);
      // every key gets this cycle's tag; a few are deleted each cycle
      await fill(db, 0, 2_000, `c${cycle}`, 20);
      for (let i = cycle; i < 2_000; i += 97) await db.delete(key(i), { sync: false });
      if (cycle % 3 === 0) await db.compactRange();
      else await db.idle();
      assert.equal(db.stats().backgroundError, null, `cycle ${cycle}`);
      assert.equal(db.getSync(key(cycle))?.toString(), undefined, `cycle ${cycle}: deleted key`);
      const probe = cycle + 1;
      assert.equal(db.getSync(key(probe))?.toString().split(':')[0], `c${cycle}`, `cycle ${cycle}: live key`);
      await db.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Keys meant to land on the edges of deeper files: odd lengths, high bytes, prefixes, 64 KiB. */
function edgeKeys(rng: Random): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  const add = (b: Buffer): void => {
    const h = b.toString('hex');
    if (b.length === 0 || b.length > 64 * 1024 || seen.has(h)) return;
    seen.add(h);
    out.push(b);
  };
  for (let i = 0; i < 300; i++) {
    const len = [1, 2, 3, 5, 7, 9, 13, 255, 257, 301][rng.nextInt(10)] as number;
    const b = Buffer.alloc(len, 0x6b);
    for (let j = Math.max(0, len - 3); j < len; j++) b[j] = [0x00, 0x7f, 0x80, 0xfe, 0xff, 0x61][rng.nextInt(6)] as number;
    add(b);
    add(b.subarray(0, Math.max(1, len - 1)));
  }
  const huge = Buffer.alloc(64 * 1024, 0x6b);
  add(huge);
  const huge2 = Buffer.from(huge);
  huge2[huge2.length - 1] = 0x6c;
  add(huge2);
  add(huge.subarray(0, huge.length - 1));
  add(Buffer.from([0xff, 0xff, 0xff]));
  add(Buffer.from([0x00]));
  return out;
}

async function tombstonesOverDeeperData(db: Database, rng: Random, label: string): Promise<void> {
  const keys = edgeKeys(rng);
  const model = new Map<string, string>();
  // Old data goes all the way down.
  for (const k of keys) {
    await db.put(k, `old:${k.length}`);
    model.set(k.toString('hex'), `old:${k.length}`);
  }
  await db.compactRange();
  const sorted = [...keys].sort(Buffer.compare);
  let fillers = 0;
  /** Deletes a random half and rewrites some, in several flushes, then compacts parts of the tree. */
  const churn = async (): Promise<void> => {
    let n = 0;
    for (const k of keys) {
      const r = rng.nextInt(4);
      if (r < 2) {
        await db.delete(k);
        model.delete(k.toString('hex'));
      } else if (r === 2) {
        const v = `new${n}`;
        await db.put(k, v);
        model.set(k.toString('hex'), v);
      }
      // push memtables out, so L0 -> L1 merges see the tombstones while older versions sit deeper
      if (++n % 40 === 0) await db.put(Buffer.from(`filler${fillers++}`), 'f'.repeat(2000));
    }
    await db.idle();
    for (let i = 0; i < 4; i++) {
      const a = sorted[rng.nextInt(sorted.length)] as Buffer;
      const b = sorted[rng.nextInt(sorted.length)] as Buffer;
      const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
      await db.compactRange(lo, hi);
    }
  };
  const check = (when: string, snap?: { s: ReturnType<Database['snapshot']>; model: Map<string, string> }): void => {
    for (const k of keys) {
      const got = db.getSync(k)?.toString();
      assert.equal(got, model.get(k.toString('hex')), `${label} ${when}: get ${k.length}B ..${k.subarray(-4).toString('hex')}`);
      if (snap !== undefined) {
        const old = snap.s.getSync(k)?.toString();
        assert.equal(old, snap.model.get(k.toString('hex')), `${label} ${when}: snapshot get ${k.length}B ..${k.subarray(-4).toString('hex')}`);
      }
    }
    for (const [k] of db.iterator()) {
      if (k.toString().startsWith('filler')) continue;
      assert.ok(model.has(k.toString('hex')), `${label} ${when}: iterator returned deleted key ${k.length}B`);
    }
  };
  // No snapshot: tombstones may be dropped, but only where no deeper level holds the key.
  await churn();
  check('churn without snapshot');
  await db.compactRange();
  check('full compaction without snapshot');
  // Re-create old data for the deleted keys, push it down, then churn under a snapshot.
  for (const k of keys) {
    if (!model.has(k.toString('hex'))) {
      await db.put(k, 'again');
      model.set(k.toString('hex'), 'again');
    }
  }
  await db.compactRange();
  const snap = { s: db.snapshot(), model: new Map(model) };
  await churn();
  check('churn under a snapshot', snap);
  await db.compactRange();
  check('full compaction under a snapshot', snap);
  snap.s.release();
  await churn();
  await db.compactRange();
  check('after release');
}

test('tombstones over deeper data with edge-shaped keys (worker and main thread)', async () => {
  await withSeed('review tombstones worker', async (seed) => {
    for (const compactionThread of ['worker', 'main'] as const) {
      const dir = tempDir();
      try {
        const db = await open(dir, { memtableSize: 48 * 1024, targetFileSize: 2048, blockSize: 256, levelBaseSize: 8 * 1024, levelMultiplier: 2, sync: false, compactionThread });
        try {
          await tombstonesOverDeeperData(db, new Random(seed), compactionThread);
          assert.equal(db.stats().backgroundError, null);
        } finally {
          await db.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

test('an input table missing under a worker merge: LightningError code, reads still work, clean close', async () => {
  const rec = new ProcessErrorRecorder();
  const dir = tempDir();
  try {
    const opts = { memtableSize: 64 * 1024, sync: false, compactionThread: 'worker' as const, l0CompactionTrigger: 4, l0SlowdownTrigger: 8 };
    let db = await open(dir, opts);
    await fill(db, 0, 3000, 'a', 20);
    await db.close();
    db = await open(dir, opts);
    await fill(db, 0, 3000, 'b', 20);
    await db.close();
    db = await open(dir, opts);
    const before = db.stats().levels[0]?.files ?? 0;
    assert.ok(before >= 2, `L0 has ${before} files`);
    // Remove one table behind the database's back (the table cache has not opened it).
    const ssts = fs.readdirSync(dir).filter((n) => n.endsWith('.sst')).sort();
    fs.unlinkSync(path.join(dir, ssts[0] as string));
    let err: unknown;
    try {
      await db.compactRange();
    } catch (e) {
      err = e;
    }
    assert.ok(err !== undefined, 'compactRange must fail');
    assertLightning(err, ['IO_ERROR', 'CORRUPTION'], `compactRange: ${describeError(err)}`);
    const bg = db.stats().backgroundError;
    assert.ok(bg !== null && (bg.code === 'IO_ERROR' || bg.code === 'CORRUPTION'), JSON.stringify(bg));
    // The newest data is in the other table (or the first): reads of present tables still work.
    let readErr: unknown;
    try {
      db.getSync(key(1));
    } catch (e) {
      readErr = e;
    }
    if (readErr !== undefined) assertLightning(readErr, ['IO_ERROR', 'CORRUPTION'], 'read of a missing table');
    await db.close();
    await rec.settle();
    rec.assertNone();
  } finally {
    rec.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
