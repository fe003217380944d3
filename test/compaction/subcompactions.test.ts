/**
 * Subcompactions (option subcompactionMinSize): a merge with enough input bytes is split in two at
 * a next-level file boundary and the halves run at once (a second worker with node:fs, interleaved
 * on the main thread otherwise). The result must be the same database: same contents under a
 * seeded model with overwrites, deletes and snapshots, levels still sorted and non-overlapping,
 * and a failed half leaves no table behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { LightningError } from '../../src/base/errors.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const SHAPE: OpenOptions = {
  memtableSize: 64 * 1024,
  blockSize: 1024,
  levelBaseSize: 256 * 1024,
  levelMultiplier: 4,
  targetFileSize: 32 * 1024,
  l0CompactionTrigger: 4,
  sync: false,
};

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] } };
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
};

/** Seeded puts, overwrites and deletes, with a snapshot held across part of it; returns the model. */
async function workload(db: Database, seed: number, batches: number): Promise<Map<string, string>> {
  const rng = new Random(seed);
  const model = new Map<string, string>();
  let snap: ReturnType<Database['snapshot']> | null = null;
  for (let b = 0; b < batches; b++) {
    const ops = [];
    for (let i = 0; i < 150; i++) {
      const k = key(rng.nextInt(6000));
      if (rng.nextInt(8) === 0) {
        model.delete(k);
        ops.push({ type: 'del' as const, key: k });
      } else {
        const v = `${b}.${i}:`.padEnd(40 + rng.nextInt(80), 'x');
        model.set(k, v);
        ops.push({ type: 'put' as const, key: k, value: v });
      }
    }
    await db.batch(ops);
    if (b === batches / 4) snap = db.snapshot();
    if (b === (3 * batches) / 4) snap?.release();
  }
  return model;
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** Every level below L0 is sorted by user key with no two files sharing one. */
function assertLevelsDisjoint(db: Database): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1] as FileMetadata;
      const cur = files[i] as FileMetadata;
      const prevLargest = prev.largest.subarray(0, prev.largest.length - TRAILER_BYTES);
      const curSmallest = cur.smallest.subarray(0, cur.smallest.length - TRAILER_BYTES);
      assert.ok(Buffer.compare(prevLargest, curSmallest) < 0, `L${level}: file ${prev.number} overlaps or precedes ${cur.number}`);
    }
  }
}

test('split merges on the main thread give the same database as unsplit ones', async () => {
  await withSeed('subcompactions main thread', async (seed) => {
    const results: Map<string, string>[] = [];
    let splits = 0;
    for (const subcompactionMinSize of [0, 64 * 1024]) {
      const mem = new MemFs();
      const db = await open('/db', { ...SHAPE, fs: mem, subcompactionMinSize });
      const model = await workload(db, seed, 80);
      await db.idle();
      await db.compactRange();
      assertLevelsDisjoint(db);
      const got = await contents(db);
      assert.deepEqual(got, model, `contents with subcompactionMinSize ${subcompactionMinSize}`);
      if (subcompactionMinSize > 0) splits = db.stats().compactions.splitCompactions;
      else assert.equal(db.stats().compactions.splitCompactions, 0);
      await db.close();
      const again = await open('/db', { ...SHAPE, fs: mem });
      assert.deepEqual(await contents(again), model, 'after reopen');
      await again.close();
      results.push(got);
    }
    assert.ok(splits >= 3, `only ${splits} split merges`);
    assert.deepEqual(results[1], results[0]);
  });
});

test('split merges in two workers (node:fs) give the model and disjoint levels', async () => {
  await withSeed('subcompactions workers', async (seed) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-subcompact-'));
    try {
      const db = await open(dir, { ...SHAPE, subcompactionMinSize: 64 * 1024 });
      const model = await workload(db, seed, 80);
      await db.idle();
      const s = db.stats();
      assert.ok(s.compactions.splitCompactions >= 2, `split merges: ${s.compactions.splitCompactions}`);
      assert.equal(s.compactions.thread, 'worker');
      assertLevelsDisjoint(db);
      assert.deepEqual(await contents(db), model);
      await db.close();
      const again = await open(dir, SHAPE);
      assert.deepEqual(await contents(again), model, 'after reopen');
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('a failed half fails the compaction, leaves no output behind, and a retry succeeds', async () => {
  const mem = new MemFs();
  const db = await open('/db', { ...SHAPE, fs: mem, subcompactionMinSize: 64 * 1024, l0CompactionTrigger: 50, l0SlowdownTrigger: 50, l0StopTrigger: 50 });
  await workload(db, 7, 60);
  await db.compactRange(key(9_999_999), key(9_999_999)); // flush only
  await db.compactRange(); // builds L1 (nothing below to split at)
  assert.ok((db.stats().levels[1]?.files ?? 0) >= 4, 'L1 has files to split at');
  const before = db.stats().compactions.splitCompactions;
  await workload(db, 8, 30);
  await db.compactRange(key(9_999_999), key(9_999_999));
  const expected = await contents(db);
  const h = db as unknown as Internals;
  const original = h.mergeAside.bind(db);
  let calls = 0;
  h.mergeAside = async () => {
    calls++;
    throw new LightningError('IO_ERROR', 'injected: the second half failed');
  };
  const liveBefore = new Set(mem.listAll().filter((p) => p.endsWith('.sst')));
  await assert.rejects(db.compactRange(), (e: unknown) => (e as { code?: string }).code === 'IO_ERROR');
  assert.ok(calls >= 1, 'the second half ran');
  const tablesAfter = mem.listAll().filter((p) => p.endsWith('.sst'));
  for (const p of tablesAfter) assert.ok(liveBefore.has(p), `${p} was left behind by the failed merge`);
  h.mergeAside = original;
  await db.resume();
  await db.compactRange();
  assert.ok(db.stats().compactions.splitCompactions > before);
  assertLevelsDisjoint(db);
  assert.deepEqual(await contents(db), expected);
  await db.close();
  const again = await open('/db', { ...SHAPE, fs: mem });
  assert.deepEqual(await contents(again), expected, 'after reopen');
  await again.close();
});
