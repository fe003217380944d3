/**
 * Reviewer tests (session 16): faults and power cuts during compactions whose level >= 1 inputs
 * are merged as sorted runs (main thread, MemFs). The tree has levels of many tiny tables, so a
 * compactRange() runs level >= 1 merges with long runs, opening run tables mid-merge.
 *
 *   - EIO / ENOSPC at every open of a table file during the compactRange, and at a sample of all
 *     other operations: compactRange rejects with a LightningError (or succeeds, when the failed
 *     operation was one the engine may ignore); every handle is closed after close(); reopening
 *     the plain filesystem reads exactly the model, with levels disjoint;
 *   - a power cut at a sample of operations of the compactRange (torn unsynced tails): reopening
 *     the crashed filesystem gives no error and loses no acknowledged (synced) write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failNth, switchable, type FaultCode, type FaultFilter, type FaultInjector, type FaultOp } from '../../src/env/fault-fs.js';
import type { FileHandle, FileSystem } from '../../src/env/file-system.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';
import { CrashAtOp } from '../harness/crash-at-op.js';

const SHAPE: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 24 * 1024,
  levelMultiplier: 2,
  targetFileSize: 2 * 1024,
  l0CompactionTrigger: 4,
  compactionThread: 'main',
  sync: false,
};

type Internals = { versions: { current(): { files(level: number): readonly FileMetadata[] } } };

const key = (i: number): string => `k${String(i).padStart(5, '0')}`;
const userKey = (ik: Uint8Array): Buffer => Buffer.from(ik.subarray(0, ik.length - TRAILER_BYTES));

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

function assertLevelsDisjoint(db: Database, what: string): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      assert.ok(Buffer.compare(userKey(files[i - 1]!.largest), userKey(files[i]!.smallest)) < 0, `${what}: L${level} files overlap`);
    }
  }
}

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

interface Base {
  mem: MemFs;
  model: Map<string, string>;
  /** The batch each trial writes (synced) before its compactRange. */
  extra: { key: string; value: string }[];
}

/** A closed database whose levels 1.. hold many tiny tables. */
async function prepare(seed: number): Promise<Base> {
  const rng = new Random(seed);
  const mem = new MemFs();
  const model = new Map<string, string>();
  const db = await open('/db', { ...SHAPE, fs: mem });
  for (let round = 0; round < 4; round++) {
    const ops = [];
    for (let i = 0; i < 700; i++) {
      const k = key(rng.nextInt(2000));
      if (rng.nextInt(7) === 0) {
        model.delete(k);
        ops.push({ type: 'del' as const, key: k });
      } else {
        const v = `${round}.${i}`.padEnd(20 + rng.nextInt(40), 'v');
        model.set(k, v);
        ops.push({ type: 'put' as const, key: k, value: v });
      }
    }
    await db.batch(ops);
    if (round < 3) await db.compactRange();
  }
  await db.idle();
  const levels = [1, 2, 3, 4].map((l) => (db as unknown as Internals).versions.current().files(l).length);
  await db.close();
  assert.ok(levels.filter((n) => n >= 3).length >= 1, `levels of several tables: ${levels}`);
  const extra = [];
  for (let i = 0; i < 300; i++) extra.push({ key: key(rng.nextInt(2000)), value: `x${i}`.padEnd(30, 'x') });
  return { mem, model, extra };
}

/** One trial: open over `inj` (enabled only during compactRange), write `extra`, compactRange. */
async function trial(base: Base, inj: FaultInjector & { enabled: boolean }, what: string): Promise<{ mem: MemFs; err: unknown; handlesOpen: string[] }> {
  const mem = base.mem.crashClone(); // a copy (everything was durable at close)
  const counting = countingFs(new FaultFs(mem, inj));
  inj.enabled = false;
  const db = await open('/db', { ...SHAPE, fs: counting.fs });
  await db.batch(base.extra.map((e) => ({ type: 'put' as const, key: e.key, value: e.value })), { sync: true });
  inj.enabled = true;
  let err: unknown = null;
  try {
    await db.compactRange();
  } catch (e) {
    err = e;
  }
  if (err !== null) assert.ok(isLightningError(err), `${what}: a LightningError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  inj.enabled = false;
  try {
    await db.close();
  } catch (e) {
    assert.ok(isLightningError(e), `${what}: close threw a non-LightningError ${String(e)}`);
  }
  return { mem, err, handlesOpen: [...counting.open.keys()] };
}

function modelAfter(base: Base): Map<string, string> {
  const m = new Map(base.model);
  for (const e of base.extra) m.set(e.key, e.value);
  return m;
}

test('session16-runs: EIO/ENOSPC at every table open (and sampled ops) of a run-merging compactRange: typed, nothing lost, no handle left', { timeout: 60_000 }, async (t) => {
  await withSeed('session16-runs db faults', async (seed) => {
    console.log(`session16-runs db faults seed ${seed}`);
    const rng = new Random(seed ^ 0x5eed);
    const base = await prepare(seed);
    const want = modelAfter(base);
    const isSstOpen: FaultFilter = (op, p) => op === 'open' && p.endsWith('.sst');
    const any: FaultFilter = () => true;
    // Count the operations of a clean trial.
    let sstOpens = 0;
    let allOps = 0;
    const counter: FaultInjector & { enabled: boolean } = {
      enabled: false,
      maybeFail: (op: FaultOp, p: string) => {
        if (counter.enabled) {
          allOps++;
          if (isSstOpen(op, p)) sstOpens++;
        }
        return null;
      },
    };
    const clean = await trial(base, counter, 'count');
    assert.equal(clean.err, null, 'the clean trial succeeds');
    t.diagnostic(`seed ${seed}: compactRange does ${sstOpens} table opens in ${allOps} operations`);
    assert.ok(sstOpens >= 10, `table opens: ${sstOpens}`);
    const cases: { n: number; filter: FaultFilter; label: string }[] = [];
    for (let n = 0; n < sstOpens; n++) cases.push({ n, filter: isSstOpen, label: 'sst open' });
    for (let i = 0; i < 40; i++) cases.push({ n: rng.nextInt(allOps), filter: any, label: 'op' });
    let failures = 0;
    for (const c of cases) {
      const code: FaultCode = rng.nextInt(2) === 0 ? 'EIO' : 'ENOSPC';
      const inner = failNth(c.n, code, c.filter);
      const inj = switchable(inner, false);
      const what = `seed ${seed}: ${code} at ${c.label} #${c.n}`;
      const r = await trial(base, inj, what);
      if (r.err !== null) failures++;
      assert.deepEqual(r.handlesOpen, [], `${what}: handles open after close`);
      const db = await open('/db', { ...SHAPE, fs: r.mem });
      try {
        assert.deepEqual(await contents(db), want, `${what}: contents after reopen`);
        assertLevelsDisjoint(db, what);
        await db.compactRange();
        assert.deepEqual(await contents(db), want, `${what}: contents after a clean compactRange`);
      } finally {
        await db.close();
      }
    }
    t.diagnostic(`seed ${seed}: ${failures}/${cases.length} trials failed their compactRange`);
    assert.ok(failures >= sstOpens / 2, 'most table-open faults fail the compaction');
  });
});

test('session16-runs: a power cut at sampled operations of a run-merging compactRange loses no synced write', { timeout: 60_000 }, async () => {
  await withSeed('session16-runs db crash', async (seed) => {
    console.log(`session16-runs db crash seed ${seed}`);
    const rng = new Random(seed ^ 0xc0ffee);
    const base = await prepare(seed);
    const want = modelAfter(base);
    let allOps = 0;
    const counter: FaultInjector & { enabled: boolean } = {
      enabled: false,
      maybeFail: () => {
        if (counter.enabled) allOps++;
        return null;
      },
    };
    await trial(base, counter, 'count');
    const points = new Set<number>();
    while (points.size < Math.min(30, allOps)) points.add(1 + rng.nextInt(allOps));
    for (const k of [...points].sort((a, b) => a - b)) {
      const what = `seed ${seed}: power cut at op ${k}/${allOps}`;
      const mem0 = base.mem.crashClone();
      // The crash is taken on the trial's own copy: build the injector over it lazily.
      let crash: CrashAtOp | null = null;
      const inj: FaultInjector & { enabled: boolean } = {
        enabled: false,
        maybeFail: (op: FaultOp, p: string) => (inj.enabled && crash !== null ? crash.maybeFail(op, p) : null),
      };
      const counting = countingFs(new FaultFs(mem0, inj));
      const db = await open('/db', { ...SHAPE, fs: counting.fs });
      await db.batch(base.extra.map((e) => ({ type: 'put' as const, key: e.key, value: e.value })), { sync: true });
      crash = new CrashAtOp(mem0, k, { rng: new Random(seed + k), tearLastWrite: true });
      inj.enabled = true;
      try {
        await db.compactRange();
      } catch (e) {
        assert.ok(isLightningError(e), `${what}: typed error, got ${String(e)}`);
      }
      try {
        await db.close();
      } catch {
        // the old instance is dead (every operation fails)
      }
      const crashed = crash.crashed ?? mem0.crashClone();
      let again: Database;
      try {
        again = await open('/db', { ...SHAPE, fs: crashed });
      } catch (e) {
        assert.fail(`${what}: reopen failed: ${String(e)}`);
      }
      try {
        assert.deepEqual(await contents(again), want, `${what}: contents after the crash`);
        assertLevelsDisjoint(again, what);
      } finally {
        await again.close();
      }
    }
  });
});
