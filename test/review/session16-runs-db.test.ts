/**
 * Reviewer tests (session 16): databases whose compactions merge level >= 1 inputs as sorted runs,
 * against a model. Tiny memtables, target file sizes and level sizes give levels of many small
 * files, so L1->L2 and L2->L3 picks carry many next-level inputs (a long run), and compactRange
 * makes level >= 1 picks of several inputs (a run on each side).
 *
 *   - main thread on MemFs, with and without subcompactions (split merges seek into runs at a
 *     next-level table's smallest user key: a table boundary); worker thread on a temp dir;
 *   - random puts / deletes / overwrites of a hot key (many versions), snapshots held across many
 *     compactions (read by get and by scan), compactRange of random ranges, a reopen mid-way;
 *   - every merge spec the DB runs is checked: runs sorted and disjoint by user key, and the test
 *     asserts that runs of several tables and level >= 1 picks were exercised;
 *   - at the end (MemFs): every file handle the database opened is closed; no orphan at reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { FileHandle, FileSystem } from '../../src/env/file-system.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const SHAPE: OpenOptions = {
  memtableSize: 8 * 1024,
  blockSize: 512,
  levelBaseSize: 16 * 1024,
  levelMultiplier: 2,
  targetFileSize: 2 * 1024,
  l0CompactionTrigger: 3,
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  obsoleteTables: Set<number>;
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
};

const key = (i: number): string => `k${String(i).padStart(5, '0')}`;
const userKey = (ik: Uint8Array): Buffer => Buffer.from(ik.subarray(0, ik.length - TRAILER_BYTES));

interface Coverage {
  merges: number;
  /** Merges with no L0 input and two non-empty runs (a level >= 1 pick with next-level inputs). */
  twoRuns: number;
  longestRun: number;
  bounded: number;
}

/** Checks every merge spec the DB runs and records what was exercised. */
function watchMerges(db: Database, cov: Coverage): void {
  const h = db as unknown as Internals;
  for (const name of ['merge', 'mergeAside'] as const) {
    const orig = h[name].bind(h);
    h[name] = (spec: MergeSpec): Promise<MergeOutcome> => {
      cov.merges++;
      const runs = (spec.sortedRuns ?? []).filter((r) => r.length > 0);
      if (spec.inputs.length === 0 && runs.length === 2) cov.twoRuns++;
      if (spec.lowerBound !== undefined || spec.upperBound !== undefined) cov.bounded++;
      for (const run of runs) {
        cov.longestRun = Math.max(cov.longestRun, run.length);
        for (let i = 1; i < run.length; i++) {
          assert.ok(Buffer.compare(userKey(run[i - 1]!.largest), userKey(run[i]!.smallest)) < 0, `run tables ${run[i - 1]!.number} and ${run[i]!.number} share or overlap user keys`);
        }
      }
      return orig(spec);
    };
  }
}

function assertLevelsDisjoint(db: Database, what: string): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      assert.ok(Buffer.compare(userKey(files[i - 1]!.largest), userKey(files[i]!.smallest)) < 0, `${what}: L${level} files ${files[i - 1]!.number} and ${files[i]!.number} overlap`);
    }
  }
}

async function scan(it: AsyncIterable<[Buffer, Buffer]>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of it) out.set(k.toString(), v.toString());
  return out;
}

interface Held {
  snap: Snapshot;
  model: Map<string, string>;
}

/** Counts handles open through it (MemFs runs: all must be closed after close()). */
function countingFs(inner: FileSystem): { fs: FileSystem; open: Map<string, number> } {
  const openNow = new Map<string, number>();
  const fs = wrapOpen(inner, (p: string, h: FileHandle): FileHandle => {
    openNow.set(p, (openNow.get(p) ?? 0) + 1);
    const close = h.close.bind(h);
    let closed = false;
    h.close = () => {
      if (!closed) {
        closed = true;
        const c = (openNow.get(p) ?? 1) - 1;
        if (c === 0) openNow.delete(p);
        else openNow.set(p, c);
      }
      close();
    };
    return h;
  });
  return { fs, open: openNow };
}

/**
 * The model workload. `reopen()` closes and reopens the database (returns the new one).
 */
async function workload(
  seed: number,
  rounds: number,
  first: Database,
  reopen: (db: Database) => Promise<Database>,
  cov: Coverage,
): Promise<{ db: Database; model: Map<string, string> }> {
  const rng = new Random(seed);
  let db = first;
  const model = new Map<string, string>();
  let held: Held[] = [];
  const KEYS = 1500;
  let tag = 0;
  const checkHeld = async (full: boolean): Promise<void> => {
    for (const h of held) {
      for (let j = 0; j < 15; j++) {
        const k = key(rng.nextInt(KEYS));
        assert.equal(h.snap.getSync(k)?.toString(), h.model.get(k), `seed ${seed}: snapshot get ${k}`);
      }
      if (full) assert.deepEqual(await scan(h.snap.iterator()), h.model, `seed ${seed}: snapshot scan`);
    }
  };
  for (let round = 0; round < rounds; round++) {
    const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
    const hot = rng.nextInt(KEYS);
    const n = 60 + rng.nextInt(160);
    for (let i = 0; i < n; i++) {
      const r = rng.nextInt(12);
      const k = r < 2 ? key(hot) : key(rng.nextInt(KEYS));
      if (r === 2 || r === 3) {
        model.delete(k);
        ops.push({ type: 'del', key: k });
      } else {
        const v = `${tag++}:`.padEnd(10 + rng.nextInt(90), String.fromCharCode(97 + rng.nextInt(26)));
        model.set(k, v);
        ops.push({ type: 'put', key: k, value: v });
      }
    }
    if (rng.nextInt(8) === 0) {
      const s = rng.nextInt(KEYS - 120);
      for (let i = s; i < s + 100; i++) {
        model.delete(key(i));
        ops.push({ type: 'del', key: key(i) });
      }
    }
    await db.batch(ops.map((o) => (o.type === 'del' ? { type: 'del' as const, key: o.key } : { type: 'put' as const, key: o.key, value: o.value as string })));
    if (rng.nextInt(6) === 0) held.push({ snap: db.snapshot(), model: new Map(model) });
    if (held.length > 0 && rng.nextInt(9) === 0) {
      const h = held.splice(rng.nextInt(held.length), 1)[0]!;
      assert.deepEqual(await scan(h.snap.iterator()), h.model, `seed ${seed}: snapshot scan before release`);
      h.snap.release();
    }
    if (rng.nextInt(5) === 0) {
      const a = rng.nextInt(KEYS);
      const b = Math.min(KEYS - 1, a + rng.nextInt(KEYS / 2));
      await db.compactRange(key(a), key(b));
    }
    for (let j = 0; j < 10; j++) {
      const k = key(rng.nextInt(KEYS));
      assert.equal(db.getSync(k)?.toString(), model.get(k), `seed ${seed} round ${round}: get ${k}`);
    }
    if (round % 10 === 9) {
      await checkHeld(round % 20 === 19);
      assertLevelsDisjoint(db, `seed ${seed} round ${round}`);
    }
    if (round === Math.floor(rounds / 2)) {
      await db.idle();
      await checkHeld(true);
      for (const h of held) h.snap.release();
      held = [];
      db = await reopen(db);
      assert.deepEqual(await scan(db.iterator()), model, `seed ${seed}: contents after mid-way reopen`);
    }
  }
  await db.idle();
  await checkHeld(true);
  for (const h of held) h.snap.release();
  await db.compactRange();
  await db.idle();
  assertLevelsDisjoint(db, `seed ${seed} end`);
  assert.deepEqual(await scan(db.iterator()), model, `seed ${seed}: contents at end`);
  void cov;
  return { db, model };
}

for (const sub of [0, 8 * 1024]) {
  test(`session16-runs: main-thread merges (subcompactionMinSize ${sub}) read exactly the model; every handle closed`, { timeout: 60_000 }, async (t) => {
    await withSeed(`session16-runs db main sub=${sub}`, async (seed) => {
      console.log(`session16-runs db main sub=${sub} seed ${seed}`);
      const mem = new MemFs();
      const counting = countingFs(mem);
      const options: OpenOptions = { ...SHAPE, fs: counting.fs, compactionThread: 'main', subcompactionMinSize: sub, compression: seed % 2 === 0 ? 'lz' : 'none' };
      const cov: Coverage = { merges: 0, twoRuns: 0, longestRun: 0, bounded: 0 };
      const first = await open('/db', options);
      watchMerges(first, cov);
      const { db, model } = await workload(seed, 90, first, async (d) => {
        await d.close();
        assert.deepEqual([...counting.open.keys()], [], `seed ${seed}: handles open after close`);
        const again = await open('/db', options);
        watchMerges(again, cov);
        return again;
      }, cov);
      t.diagnostic(`seed ${seed}: ${JSON.stringify(cov)} stats ${JSON.stringify(db.stats().compactions)}`);
      await db.close();
      assert.deepEqual([...counting.open.keys()], [], `seed ${seed}: handles open after close`);
      const again = await open('/db', { ...options, fs: mem });
      assert.equal(again.stats().recovery.orphansRemoved, 0, `seed ${seed}: orphans at reopen`);
      assert.deepEqual(await scan(again.iterator()), model, `seed ${seed}: after reopen`);
      await again.close();
      assert.ok(cov.twoRuns >= 3, `level >= 1 picks with next-level inputs exercised (${cov.twoRuns})`);
      assert.ok(cov.longestRun >= 4, `runs of several tables exercised (${cov.longestRun})`);
      if (sub > 0) assert.ok(cov.bounded >= 2, `split merges exercised (${cov.bounded})`);
    });
  });
}

for (const sub of [0, 8 * 1024]) {
test(`session16-runs: worker-thread merges (subcompactionMinSize ${sub}) on a real directory read exactly the model`, { timeout: 60_000 }, async (t) => {
  await withSeed(`session16-runs db worker sub=${sub}`, async (seed) => {
    console.log(`session16-runs db worker sub=${sub} seed ${seed}`);
    const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev16-runs-'));
    try {
      const options: OpenOptions = { ...SHAPE, memtableSize: 16 * 1024, compactionThread: 'worker', subcompactionMinSize: sub };
      const cov: Coverage = { merges: 0, twoRuns: 0, longestRun: 0, bounded: 0 };
      const first = await open(dir, options);
      watchMerges(first, cov);
      const { db, model } = await workload(seed, 40, first, async (d) => {
        await d.close();
        const again = await open(dir, options);
        watchMerges(again, cov);
        return again;
      }, cov);
      t.diagnostic(`seed ${seed}: ${JSON.stringify(cov)} stats ${JSON.stringify(db.stats().compactions)}`);
      await db.close();
      const again = await open(dir, options);
      assert.equal(again.stats().recovery.orphansRemoved, 0, `seed ${seed}: orphans at reopen`);
      assert.deepEqual(await scan(again.iterator()), model, `seed ${seed}: after reopen`);
      await again.close();
      assert.ok(cov.twoRuns >= 1, `level >= 1 picks with next-level inputs exercised (${cov.twoRuns})`);
      assert.ok(cov.longestRun >= 3, `runs of several tables exercised (${cov.longestRun})`);
      if (sub > 0) assert.ok(cov.bounded >= 2, `split merges exercised (${cov.bounded})`);
    } finally {
      nodeFs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
}
