/**
 * Reviewer tests (session 15c): split merges with node:fs, where the lower half runs in the
 * database's shared worker and the upper half in the aside worker (`asideThread`).
 *   - The aside worker dies as soon as it gets its half (before or just after starting it): the
 *     compaction fails with IO_ERROR, the lower half's outputs are removed, resume() and a retry
 *     succeed (the upper half now on the main thread), nothing is lost, no orphan after reopen.
 *   - The aside worker is killed once its first output file exists (a death mid-half, with a
 *     partly written table on disk): same, and the next open removes that table.
 *   - The shared worker dies mid lower half while the aside worker completes its half.
 *   - close() while a split merge runs in both workers: close() and the compactRange() settle,
 *     the directory reopens with every write and no orphan.
 *   - Writes, gets, snapshots and iterators during background split merges (model).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { tableFileName } from '../../src/base/file-names.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { killWorkerWhenFileExists } from '../harness/kill-worker.js';

const SHAPE: OpenOptions = {
  memtableSize: 64 * 1024,
  blockSize: 1024,
  levelBaseSize: 4 * 1024 * 1024,
  levelMultiplier: 4,
  targetFileSize: 16 * 1024,
  l0CompactionTrigger: 100,
  l0SlowdownTrigger: 200,
  l0StopTrigger: 300,
  subcompactionMinSize: 32 * 1024,
  compactionThread: 'worker',
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  obsoleteTables: Set<number>;
  asideThread: CompactionThread | null;
  sharedThread: CompactionThread | null;
  compactionThread: CompactionThread | null;
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
};

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-'));
}

function tablesIn(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => Number(n.slice(0, -4)));
}

function unreferenced(db: Database, dir: string): number[] {
  const h = db as unknown as Internals;
  const live = h.versions.liveFileNumbers();
  return tablesIn(dir).filter((n) => !live.has(n) && !h.obsoleteTables.has(n));
}

function assertLevelsDisjoint(db: Database, what: string): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1] as FileMetadata;
      const cur = files[i] as FileMetadata;
      const a = prev.largest.subarray(0, prev.largest.length - TRAILER_BYTES);
      const b = cur.smallest.subarray(0, cur.smallest.length - TRAILER_BYTES);
      assert.ok(Buffer.compare(a, b) < 0, `${what}: L${level} files ${prev.number} and ${cur.number} overlap`);
    }
  }
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** L1 of several tables, then L0 tables over it: the next compactRange() is one split merge. */
async function prepare(dir: string, seed: number): Promise<Map<string, string>> {
  const rng = new Random(seed);
  const model = new Map<string, string>();
  const db = await open(dir, SHAPE);
  const write = async (n: number, tag: string): Promise<void> => {
    const ops = [];
    for (let i = 0; i < n; i++) {
      const k = key(rng.nextInt(20_000));
      if (rng.nextInt(7) === 0) {
        model.delete(k);
        ops.push({ type: 'del' as const, key: k });
      } else {
        const v = `${tag}${i}`.padEnd(40 + rng.nextInt(80), 'v');
        model.set(k, v);
        ops.push({ type: 'put' as const, key: k, value: v });
      }
    }
    await db.batch(ops);
  };
  for (let r = 0; r < 10; r++) await write(1000, `a${r}.`);
  await db.compactRange();
  for (let r = 0; r < 3; r++) {
    await write(600, `b${r}.`);
    await db.compactRange(key(9_999_999), key(9_999_999)); // flush only
  }
  assert.ok((db.stats().levels[1]?.files ?? 0) >= 4);
  await db.close();
  return model;
}

/** A thread whose worker is terminated as soon as it posts its first message (ready). */
function dyingThread(name: string): CompactionThread {
  const thread = new CompactionThread(name);
  const t = thread as unknown as { start(): { terminate(): Promise<number>; once(e: 'message', f: () => void): void } };
  const start = t.start.bind(t);
  t.start = () => {
    const w = start();
    w.once('message', () => void w.terminate());
    return w;
  };
  return thread;
}


async function retryAndCheck(db: Database, dir: string, model: Map<string, string>, what: string): Promise<void> {
  assert.equal(db.stats().backgroundError?.mode, 'retrying', `${what}: background state`);
  assert.deepEqual(await contents(db), model, `${what}: contents after the failure`);
  await db.resume();
  await db.compactRange();
  await db.idle();
  assert.equal(db.stats().backgroundError, null);
  assertLevelsDisjoint(db, what);
  assert.deepEqual(await contents(db), model, `${what}: contents after the retry`);
  await db.close();
  const again = await open(dir, SHAPE);
  assert.deepEqual(await contents(again), model, `${what}: after reopen`);
  assert.deepEqual(unreferenced(again, dir), [], `${what}: unreferenced tables after reopen`);
  assertLevelsDisjoint(again, `${what} reopened`);
  await again.close();
}

test('the aside worker dying as it gets its half: IO_ERROR, partner outputs removed, retry succeeds', { timeout: 60_000 }, async () => {
  await withSeed('session15c aside dies', async (seed) => {
    const dir = tempDir();
    try {
      const model = await prepare(dir, seed);
      const db = await open(dir, SHAPE);
      const h = db as unknown as Internals;
      h.asideThread = dyingThread('subcompaction');
      const before = new Set(tablesIn(dir));
      await assert.rejects(db.compactRange(), (e: unknown) => (e as { code?: string }).code === 'IO_ERROR');
      assert.equal(h.asideThread?.broken, true);
      // The lower half (shared worker) finished or failed; either way none of its tables remain.
      const left = unreferenced(db, dir).filter((n) => !before.has(n));
      assert.deepEqual(left, [], 'tables of the failed split merge left behind');
      await retryAndCheck(db, dir, model, 'aside died');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the aside worker dying mid-half (its first output exists): its partial table is removed at once, retry succeeds', { timeout: 60_000 }, async (t) => {
  await withSeed('session15c aside dies mid-half', async (seed) => {
    const dir = tempDir();
    try {
      const model = await prepare(dir, seed);
      const db = await open(dir, SHAPE);
      const h = db as unknown as Internals;
      const aside = h.mergeAside.bind(db);
      let killed: Promise<boolean> | null = null;
      h.mergeAside = (spec) => {
        const p = aside(spec);
        const thread = h.asideThread as CompactionThread;
        killed ??= killWorkerWhenFileExists(() => thread, path.join(dir, tableFileName(spec.firstOutputNumber)), p);
        return p;
      };
      const before = new Set(tablesIn(dir));
      const err = await db.compactRange().then(
        () => null,
        (e: unknown) => e,
      );
      const didKill = await killed;
      if (err === null) {
        // The kill landed after the half had finished (a slow turn): nothing to check here.
        t.diagnostic('the aside half finished before the kill landed');
        assert.deepEqual(await contents(db), model);
        await db.close();
        return;
      }
      assert.ok(didKill, 'the merge failed although no worker was killed');
      assert.equal((err as { code?: string }).code, 'IO_ERROR', String(err));
      const left = unreferenced(db, dir).filter((n) => !before.has(n));
      // Neither the dead worker's partly written table (removed by the main thread when the
      // job rejects, session 17) nor the other half's outputs stay.
      assert.deepEqual(left, [], 'tables of the dead half left behind');
      await retryAndCheck(db, dir, model, 'aside died mid-half');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the shared worker dying mid lower half while the aside half completes: its outputs are removed, retry succeeds', { timeout: 60_000 }, async (t) => {
  await withSeed('session15c shared dies mid-half', async (seed) => {
    const dir = tempDir();
    try {
      const model = await prepare(dir, seed);
      const db = await open(dir, SHAPE);
      const h = db as unknown as Internals;
      const merge = h.merge.bind(db);
      const aside = h.mergeAside.bind(db);
      let asideOutputs: number[] = [];
      let asideDone = false;
      h.mergeAside = async (spec) => {
        const o = await aside(spec);
        asideOutputs = o.outputs.map((f) => f.number);
        asideDone = true;
        return o;
      };
      let killed: Promise<boolean> | null = null;
      h.merge = (spec) => {
        const p = merge(spec);
        if (spec.upperBound !== undefined) killed ??= killWorkerWhenFileExists(() => h.sharedThread, path.join(dir, tableFileName(spec.firstOutputNumber)), p);
        return p;
      };
      const err = await db.compactRange().then(
        () => null,
        (e: unknown) => e,
      );
      const didKill = await killed;
      if (err === null) {
        t.diagnostic('the lower half finished before the kill landed');
        assert.deepEqual(await contents(db), model);
        await db.close();
        return;
      }
      assert.ok(didKill, 'the merge failed although no worker was killed');
      assert.equal((err as { code?: string }).code, 'IO_ERROR', String(err));
      if (asideDone) {
        for (const n of asideOutputs) assert.ok(!fs.existsSync(path.join(dir, tableFileName(n))), `aside output ${n} left behind`);
      }
      await retryAndCheck(db, dir, model, 'shared died mid-half');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('close() while a split merge runs in both workers settles, and the directory reopens intact', { timeout: 60_000 }, async () => {
  await withSeed('session15c close during split', async (seed) => {
    for (const waitFor of ['both started', 'lower done', 'upper done'] as const) {
      const dir = tempDir();
      try {
        const model = await prepare(dir, seed);
        const db = await open(dir, SHAPE);
        const h = db as unknown as Internals;
        const merge = h.merge.bind(db);
        const aside = h.mergeAside.bind(db);
        let started = 0;
        let signal!: () => void;
        const reached = new Promise<void>((r) => (signal = r));
        h.merge = async (spec) => {
          started++;
          if (started === 2 && waitFor === 'both started') signal();
          const o = await merge(spec);
          if (waitFor === 'lower done') signal();
          return o;
        };
        h.mergeAside = async (spec) => {
          started++;
          if (started === 2 && waitFor === 'both started') signal();
          const o = await aside(spec);
          if (waitFor === 'upper done') signal();
          return o;
        };
        const running = db.compactRange().then(
          () => 'ok',
          (e: unknown) => String((e as { code?: string }).code),
        );
        await reached;
        await db.close();
        const r = await running;
        assert.ok(r === 'ok' || r === 'CLOSED', `compactRange after close: ${r}`);
        assert.ok(started >= 2);
        const again = await open(dir, SHAPE);
        assert.deepEqual(await contents(again), model, `${waitFor}: after reopen`);
        assert.deepEqual(unreferenced(again, dir), [], `${waitFor}: unreferenced tables after reopen`);
        assertLevelsDisjoint(again, waitFor);
        await again.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

test('writes, gets, snapshots and iterators during background split merges in two workers', { timeout: 60_000 }, async (t) => {
  await withSeed('session15c workers model', async (seed) => {
    const dir = tempDir();
    try {
      const rng = new Random(seed);
      const db = await open(dir, { ...SHAPE, l0CompactionTrigger: 3, l0SlowdownTrigger: 20, l0StopTrigger: 40, levelBaseSize: 256 * 1024, subcompactionMinSize: 24 * 1024 });
      const model = new Map<string, string>();
      const held: { snap: Snapshot; model: Map<string, string> }[] = [];
      for (let b = 0; b < 120; b++) {
        const ops = [];
        for (let i = 0; i < 150; i++) {
          const k = key(rng.nextInt(8000));
          if (rng.nextInt(6) === 0) {
            model.delete(k);
            ops.push({ type: 'del' as const, key: k });
          } else {
            const v = `${b}.${i}`.padEnd(40 + rng.nextInt(100), 'w');
            model.set(k, v);
            ops.push({ type: 'put' as const, key: k, value: v });
          }
        }
        await db.batch(ops);
        for (let j = 0; j < 10; j++) {
          const k = key(rng.nextInt(8000));
          assert.equal(db.getSync(k)?.toString(), model.get(k), `get ${k}`);
        }
        if (b % 15 === 0) held.push({ snap: db.snapshot(), model: new Map(model) });
        if (b % 25 === 24 && held.length > 0) {
          const hd = held.shift() as { snap: Snapshot; model: Map<string, string> };
          const got = new Map<string, string>();
          for await (const [k, v] of hd.snap.iterator()) got.set(k.toString(), v.toString());
          assert.deepEqual(got, hd.model, 'snapshot scan');
          hd.snap.release();
        }
        for (const hd of held) {
          const k = key(rng.nextInt(8000));
          assert.equal(hd.snap.getSync(k)?.toString(), hd.model.get(k), `snapshot get ${k}`);
        }
        // Let background work progress now and then.
        if (b % 10 === 0) await new Promise<void>((r) => setTimeout(r, 5));
      }
      await db.idle();
      for (const hd of held) {
        const got = new Map<string, string>();
        for await (const [k, v] of hd.snap.iterator()) got.set(k.toString(), v.toString());
        assert.deepEqual(got, hd.model, 'held snapshot scan at end');
        hd.snap.release();
      }
      const s = db.stats();
      t.diagnostic(`split merges ${s.compactions.splitCompactions} of ${s.compactions.count}`);
      assert.ok(s.compactions.splitCompactions >= 2, `split merges: ${s.compactions.splitCompactions}`);
      assert.equal(s.backgroundError, null);
      assertLevelsDisjoint(db, 'end');
      assert.deepEqual(await contents(db), model);
      assert.deepEqual(unreferenced(db, dir), []);
      await db.close();
      const again = await open(dir, SHAPE);
      assert.equal(again.stats().recovery.orphansRemoved, 0);
      assert.deepEqual(await contents(again), model);
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
