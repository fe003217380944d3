/**
 * Reviewer tests (session 15c): I/O faults during a split merge (both halves on the main thread,
 * MemFs behind FaultFs). The phase under test is one compactRange() that runs ONE L0 -> L1 merge
 * split in two. For every filesystem operation of that phase in turn, that operation fails (EIO
 * or ENOSPC); then:
 *   - no table created by the phase is left on disk unreferenced (the failed half abandons its
 *     outputs, the other half's are unlinked) — checked before any reopen;
 *   - reads still give the model; resume() (or a reopen, if the error is not retryable) and a
 *     second compactRange() succeed, levels stay disjoint, the model holds after reopen.
 * Also: both halves failing at once (every .sst sync fails), and a failed half whose partner's
 * outputs cannot be unlinked (orphans then, removed by the next open, data intact).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, countOps, failNth, failWhile, type FaultCode, type FaultInjector, type FaultOp } from '../../src/env/fault-fs.js';
import { LightningError } from '../../src/base/errors.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const OPTS: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 1024 * 1024,
  levelMultiplier: 4,
  targetFileSize: 4 * 1024,
  l0CompactionTrigger: 100,
  l0SlowdownTrigger: 200,
  l0StopTrigger: 300,
  subcompactionMinSize: 16 * 1024,
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  obsoleteTables: Set<number>;
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
};

/** How the halves of the phase's split merges ended. */
interface Halves {
  ok: number[]; // outputs of each fulfilled half
  failed: number;
}

function spyHalves(db: Database): Halves {
  const h = db as unknown as Internals;
  const halves: Halves = { ok: [], failed: 0 };
  for (const name of ['merge', 'mergeAside'] as const) {
    const inner = h[name].bind(db);
    h[name] = async (spec) => {
      try {
        const o = await inner(spec);
        if (spec.lowerBound !== undefined || spec.upperBound !== undefined) halves.ok.push(o.outputs.length);
        return o;
      } catch (e) {
        halves.failed++;
        throw e;
      }
    };
  }
  return halves;
}

const key = (i: number): string => `k${String(i).padStart(5, '0')}`;

function tablesOn(mem: MemFs): Set<number> {
  return new Set(
    mem
      .listAll()
      .filter((p) => p.endsWith('.sst'))
      .map((p) => Number(p.slice(p.lastIndexOf('/') + 1, -4))),
  );
}

/** Tables on disk, created after `before` was taken, that no live Version references. */
function newOrphans(db: Database, mem: MemFs, before: Set<number>): number[] {
  const live = (db as unknown as Internals).versions.liveFileNumbers();
  return [...tablesOn(mem)].filter((n) => !before.has(n) && !live.has(n));
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

/** A durable base: L1 of many files, then several L0 tables over it; closed cleanly. */
async function baseState(seed: number): Promise<{ mem: MemFs; model: Map<string, string> }> {
  const rng = new Random(seed);
  const mem = new MemFs();
  const model = new Map<string, string>();
  const db = await open('/db', { ...OPTS, fs: mem });
  const write = async (n: number, tag: string): Promise<void> => {
    const ops = [];
    for (let i = 0; i < n; i++) {
      const k = key(rng.nextInt(3000));
      if (rng.nextInt(6) === 0) {
        model.delete(k);
        ops.push({ type: 'del' as const, key: k });
      } else {
        const v = `${tag}${i}`.padEnd(30 + rng.nextInt(50), 'v');
        model.set(k, v);
        ops.push({ type: 'put' as const, key: k, value: v });
      }
    }
    await db.batch(ops);
  };
  for (let r = 0; r < 6; r++) await write(400, `a${r}.`);
  await db.compactRange(); // L1
  for (let r = 0; r < 4; r++) {
    await write(250, `b${r}.`);
    await db.compactRange(key(99_999), key(99_999)); // flush only: an L0 table
  }
  const s = db.stats();
  assert.ok((s.levels[0]?.files ?? 0) >= 3 && (s.levels[1]?.files ?? 0) >= 4, 'base has L0 tables over a multi-file L1');
  await db.close();
  return { mem, model };
}

interface Outcome {
  failed: boolean;
  code: string | undefined;
  splits: number;
  /** One half failed while the other finished with outputs (which had to be removed). */
  partnerRemoved: boolean;
}

/** Opens a copy of the base on FaultFs, arms `injector` for one compactRange(), then checks everything. */
async function runPhase(base: MemFs, model: Map<string, string>, injector: () => FaultInjector, what: string, expectOrphans = false): Promise<Outcome> {
  const mem = base.crashClone();
  const ffs = new FaultFs(mem, { maybeFail: () => null });
  let db = await open('/db', { ...OPTS, fs: ffs });
  const before = tablesOn(mem);
  const splitsBefore = db.stats().compactions.splitCompactions;
  const halves = spyHalves(db);
  ffs.injector = injector();
  let failed = false;
  let code: string | undefined;
  try {
    await db.compactRange();
  } catch (e) {
    failed = true;
    code = (e as { code?: string }).code;
  }
  ffs.injector = { maybeFail: () => null };
  const splits = db.stats().compactions.splitCompactions - splitsBefore;
  const partnerRemoved = failed && halves.failed === 1 && halves.ok.length === 1 && (halves.ok[0] as number) > 0;
  if (!expectOrphans) assert.deepEqual(newOrphans(db, mem, before), [], `${what}: tables left behind by the phase (failed: ${failed}, ${code})`);
  let reopened = false;
  try {
    assert.deepEqual(await contents(db), model, `${what}: contents after the fault`);
    if (failed || db.stats().backgroundError !== null) await db.resume();
    await db.compactRange();
    await db.idle();
    assertLevelsDisjoint(db, what);
    assert.deepEqual(await contents(db), model, `${what}: contents after the retry`);
    if (!expectOrphans) assert.deepEqual(newOrphans(db, mem, before), [], `${what}: tables left behind after the retry`);
  } catch (e) {
    // Not retryable in place (e.g. a failed manifest write): reopening must recover.
    if (!(e instanceof LightningError)) throw e;
    reopened = true;
  }
  await db.close().catch(() => undefined);
  db = await open('/db', { ...OPTS, fs: mem });
  await db.compactRange();
  await db.idle();
  assertLevelsDisjoint(db, `${what} reopened`);
  assert.deepEqual(await contents(db), model, `${what}: contents after reopen${reopened ? ' (resume failed)' : ''}`);
  const live = (db as unknown as Internals).versions.liveFileNumbers();
  const h = db as unknown as Internals;
  const stray = [...tablesOn(mem)].filter((n) => !live.has(n) && !h.obsoleteTables.has(n));
  assert.deepEqual(stray, [], `${what}: unreferenced tables after reopen`);
  await db.close();
  return { failed, code, splits, partnerRemoved };
}

test('a fault at any operation of a split merge leaves no table behind and loses nothing', { timeout: 120_000 }, async (t) => {
  await withSeed('session15c split merge faults', async (seed) => {
    const { mem: base, model } = await baseState(seed);
    // Count the phase's operations (no fault): it must be one split merge.
    const counter = countOps();
    const clean = await runPhase(base, model, () => counter, 'no fault');
    assert.equal(clean.failed, false);
    assert.equal(clean.splits, 1, 'the phase is one split merge');
    const total = counter.count;
    t.diagnostic(`seed ${seed}: ${total} operations in the phase`);
    assert.ok(total > 20, `ops: ${total}`);
    const rng = new Random(seed ^ 0x5eed);
    const step = Math.max(1, Math.floor(total / 250));
    let failures = 0;
    let partnerRemoved = 0;
    for (let i = rng.nextInt(step); i < total; i += step) {
      const code: FaultCode = rng.nextInt(3) === 0 ? 'ENOSPC' : 'EIO';
      const o = await runPhase(base, model, () => failNth(i, code), `fault ${code} at op ${i}/${total}`);
      if (o.failed) failures++;
      if (o.partnerRemoved) partnerRemoved++;
    }
    t.diagnostic(`phase failed ${failures} times; ${partnerRemoved} times a finished half's outputs had to be removed`);
    assert.ok(failures > 10, `faults that failed the phase: ${failures}`);
    assert.ok(partnerRemoved > 0, 'no fault ever hit one half after the other finished');
  });
});

const sstOp =
  (...ops: FaultOp[]) =>
  (op: FaultOp, path: string): boolean =>
    ops.includes(op) && path.endsWith('.sst');

test('both halves failing (every table sync fails) leaves nothing behind', { timeout: 60_000 }, async () => {
  await withSeed('session15c both halves fail', async (seed) => {
    const { mem: base, model } = await baseState(seed);
    const o = await runPhase(base, model, () => failWhile(sstOp('sync')), 'every .sst sync fails');
    assert.equal(o.failed, true);
    assert.equal(o.code, 'IO_ERROR');
    const o2 = await runPhase(base, model, () => failWhile(sstOp('sync'), 'ENOSPC'), 'every .sst sync fails with ENOSPC');
    assert.equal(o2.failed, true);
  });
});

test('a failed half whose partner cannot be unlinked leaves orphans that the next open removes', { timeout: 60_000 }, async () => {
  await withSeed('session15c unlink fails', async (seed) => {
    const { mem: base, model } = await baseState(seed);
    // The last .sst sync of the phase fails (one half, at its end), and so does every .sst unlink.
    const counter = countOps(sstOp('sync'));
    await runPhase(base, model, () => counter, 'count syncs');
    const syncs = counter.count;
    assert.ok(syncs >= 2);
    for (const n of [0, Math.floor(syncs / 2), syncs - 1]) {
      const injector = (): FaultInjector => {
        const nth = failNth(n, 'EIO', sstOp('sync'));
        return { maybeFail: (op, path) => nth.maybeFail(op, path) ?? (sstOp('unlink')(op, path) ? 'EIO' : null) };
      };
      const o = await runPhase(base, model, injector, `sync ${n}/${syncs} and every unlink fail`, true);
      assert.equal(o.failed, true);
    }
  });
});
