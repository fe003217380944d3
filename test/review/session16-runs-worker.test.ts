/**
 * Reviewer tests (session 16): sorted-run merges in the compaction worker (node:fs, temp dirs).
 *
 *   - A bottom-level table damaged in its data (found only when the worker's run iterator reaches
 *     it, after outputs were written): compactRange rejects with CORRUPTION, the failed merge's
 *     outputs are gone, reads still see every key of undamaged tables, and once the database is
 *     closed no file descriptor into the directory is left open (Linux: /proc/self/fd).
 *   - The worker killed in the middle of a run merge (its first output exists): the database
 *     recovers as before, and after close no descriptor into the directory stays open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import type { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { tableFileName } from '../../src/base/file-names.js';
import { isLightningError } from '../../src/base/errors.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { killWorkerWhenFileExists } from '../harness/kill-worker.js';

const SHAPE: OpenOptions = {
  memtableSize: 32 * 1024,
  blockSize: 512,
  levelBaseSize: 64 * 1024,
  levelMultiplier: 4,
  targetFileSize: 4 * 1024,
  l0CompactionTrigger: 4,
  compactionThread: 'worker',
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] } };
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  sharedThread: CompactionThread | null;
  compactionThread: CompactionThread | null;
};

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

function fdsInto(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc/self/fd');
  } catch {
    return out; // not Linux: nothing to count
  }
  for (const e of entries) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${e}`);
      if (target.startsWith(dir + path.sep)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** Fills the database so its deepest level holds many tables, then puts new versions on top. */
async function prepare(dir: string, seed: number): Promise<Map<string, string>> {
  const rng = new Random(seed);
  const model = new Map<string, string>();
  const db = await open(dir, SHAPE);
  for (let round = 0; round < 3; round++) {
    const ops = [];
    for (let i = 0; i < 3000; i++) {
      const k = key(rng.nextInt(4000));
      const v = `${round}.${i}:`.padEnd(30 + rng.nextInt(40), 'v');
      model.set(k, v);
      ops.push({ type: 'put' as const, key: k, value: v });
    }
    await db.batch(ops);
    await db.compactRange();
  }
  await db.close();
  return model;
}

function deepest(db: Database): { level: number; files: readonly FileMetadata[] } {
  const v = (db as unknown as Internals).versions.current();
  for (let level = 6; level >= 1; level--) if (v.files(level).length > 0) return { level, files: v.files(level) };
  throw new Error('no level >= 1 holds files');
}

test('session16-runs: a damaged run table found mid-merge in the worker: CORRUPTION, no outputs left, no descriptor left after close', { timeout: 60_000 }, async () => {
  await withSeed('session16-runs worker corruption', async (seed) => {
    console.log(`session16-runs worker corruption seed ${seed}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev16-runsw-'));
    try {
      const model = await prepare(dir, seed);
      const db = await open(dir, SHAPE);
      const { level, files } = deepest(db);
      assert.ok(files.length >= 6, `a deep level of many tables (${files.length} at L${level})`);
      // New versions of every key of the level, in L0 (flush only: compactRange of an empty range).
      const ops = [];
      for (const [k, v] of model) ops.push({ type: 'put' as const, key: k, value: `${v}+` });
      await db.batch(ops);
      await db.compactRange('zzz', 'zzz');
      // Damage a data block of a table two thirds into the level (its footer and index stay good,
      // so the run only fails when it reads that block).
      const victim = files[Math.floor((files.length * 2) / 3)]!;
      const victimPath = path.join(dir, tableFileName(victim.number));
      const fd = fs.openSync(victimPath, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, 40);
      b[0] = b[0]! ^ 0xff;
      fs.writeSync(fd, b, 0, 1, 40);
      fs.closeSync(fd);
      // Watch the merges: the failing one's outputs must not stay.
      const h = db as unknown as Internals;
      const orig = h.merge.bind(h);
      const failed: MergeSpec[] = [];
      h.merge = async (spec: MergeSpec): Promise<MergeOutcome> => {
        try {
          return await orig(spec);
        } catch (e) {
          failed.push(spec);
          throw e;
        }
      };
      let err: unknown = null;
      try {
        await db.compactRange();
      } catch (e) {
        err = e;
      }
      assert.ok(isLightningError(err, 'CORRUPTION'), `seed ${seed}: CORRUPTION expected, got ${String(err)}`);
      assert.ok(failed.length >= 1, 'the merge failed');
      const onDisk = new Set(fs.readdirSync(dir));
      for (const spec of failed) {
        assert.ok((spec.sortedRuns ?? []).some((r) => r.some((t) => t.number === victim.number)), 'the failed merge read the victim as a run table');
        for (let n = spec.firstOutputNumber; n < spec.firstOutputNumber + spec.outputNumberCount; n++) {
          assert.ok(!onDisk.has(tableFileName(n)), `seed ${seed}: output ${n} of the failed merge left behind`);
        }
      }
      // The worker is still alive (a failed job does not end it): it must have closed every table
      // it opened. The main thread read no table since open (writes and compactRange only).
      const sstFds = fdsInto(dir).filter((p) => p.endsWith('.sst'));
      assert.deepEqual(sstFds, [], `seed ${seed}: table descriptors open after the failed merge, worker alive`);
      await db.close();
      assert.deepEqual(fdsInto(dir), [], `seed ${seed}: descriptors left open into the directory`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('session16-runs: the worker killed mid run merge: recovery as before, no descriptor into the directory after close', { timeout: 60_000 }, async (t) => {
  await withSeed('session16-runs worker killed', async (seed) => {
    console.log(`session16-runs worker killed seed ${seed}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev16-runsk-'));
    try {
      const model = await prepare(dir, seed);
      const db = await open(dir, SHAPE);
      const ops = [];
      for (const [k, v] of model) {
        model.set(k, `${v}+`);
        ops.push({ type: 'put' as const, key: k, value: `${v}+` });
      }
      await db.batch(ops);
      await db.compactRange('zzz', 'zzz');
      const h = db as unknown as Internals;
      const orig = h.merge.bind(h);
      let killed: Promise<boolean> | null = null;
      h.merge = (spec: MergeSpec): Promise<MergeOutcome> => {
        // The first merge with a run of several tables: kill the worker once its first output exists.
        const p = orig(spec);
        if (killed === null && (spec.sortedRuns ?? []).some((r) => r.length >= 4)) {
          killed = killWorkerWhenFileExists(() => h.sharedThread ?? h.compactionThread, path.join(dir, tableFileName(spec.firstOutputNumber)), p);
        }
        return p;
      };
      let err: unknown = null;
      try {
        await db.compactRange();
      } catch (e) {
        err = e;
      }
      assert.ok(killed !== null, 'a run merge ran');
      const didKill = await (killed as unknown as Promise<boolean>);
      if (err === null) t.diagnostic(`seed ${seed}: the merge finished before the kill landed`);
      else assert.ok(isLightningError(err), `seed ${seed}: typed error, got ${String(err)}`);
      t.diagnostic(`seed ${seed}: killed ${didKill}, error ${String(err)}`);
      assert.deepEqual(await contents(db), model, `seed ${seed}: contents after the kill`);
      await db.close();
      assert.deepEqual(fdsInto(dir), [], `seed ${seed}: descriptors left open into the directory after a worker died`);
      const again = await open(dir, SHAPE);
      assert.deepEqual(await contents(again), model, `seed ${seed}: after reopen`);
      await again.close();
      assert.deepEqual(fdsInto(dir), [], `seed ${seed}: descriptors left open after reopen and close`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
