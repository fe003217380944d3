/**
 * Reviewer tests (session 16): mergeTables with MergeSpec.sortedRuns, attacked directly on MemFs.
 *
 *   - differential: L0 inputs + two overlapping sorted runs (an "L1" and an "L2", each of many
 *     small tables with many versions per key) merged as runs give byte-identical outputs to the
 *     same tables merged one child per table, for bounds at every run-table boundary (a table's
 *     smallest / largest user key, and just after its largest), random bounds, and snapshots;
 *     a run keeps at most one of its tables open; every handle is closed at the end;
 *   - a run table that is missing, truncated or corrupt (footer, first / last data block) and
 *     found only MID-merge (after outputs were written): the merge rejects with a LightningError,
 *     leaves no output behind and closes every file it opened;
 *   - fault injection (EIO, ENOSPC) at every filesystem operation of a run merge: a typed
 *     LightningError, no output left, no handle left open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type BatchOperation } from '../../src/index.js';
import { mergeTables, type MergeOutcome, type MergeSpec, type RunTableSpec } from '../../src/compaction/merge-tables.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failNth, type FaultCode, type FaultInjector, type FaultOp } from '../../src/env/fault-fs.js';
import type { FileHandle, FileSystem } from '../../src/env/file-system.js';
import { tableFileName } from '../../src/base/file-names.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import { FOOTER_BYTES } from '../../src/sstable/footer.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;

interface Table {
  number: number;
  sizeBytes: number;
}

/** Writes `tables` overlapping L0 tables of puts, overwrites and deletes over one key range. */
async function makeL0Tables(fs: MemFs, rng: Random, tables: number, perTable: number, keySpace: number): Promise<void> {
  const db = await open(DIR, { fs, memtableSize: 64 * 1024 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  for (let t = 0; t < tables; t++) {
    const ops: BatchOperation[] = [];
    for (let i = 0; i < perTable; i++) {
      const k = key(rng.nextInt(keySpace));
      if (rng.nextInt(6) === 0) ops.push({ type: 'del', key: k });
      else ops.push({ type: 'put', key: k, value: `${t}.${i}:`.repeat(1 + rng.nextInt(20)) });
    }
    await db.batch(ops);
    await db.compactRange(key(99_999_999), key(99_999_999)); // flush only
  }
  await db.close();
}

function tablesOnDisk(fs: MemFs): Table[] {
  return fs
    .readdir(DIR)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.stat(`${DIR}/${n}`).size }))
    .sort((a, b) => a.number - b.number);
}

function spec(inputs: Table[], sortedRuns: RunTableSpec[][] | undefined, first: number, extra: Partial<MergeSpec> = {}): MergeSpec {
  return {
    dir: DIR,
    inputs: inputs.map((t) => ({ number: t.number, sizeBytes: t.sizeBytes })),
    ...(sortedRuns === undefined ? {} : { sortedRuns }),
    firstOutputNumber: first,
    outputNumberCount: 10_000,
    smallestSnapshot: 1e9,
    deeperLevels: [],
    blockSizeBytes: 512,
    bloomBitsPerKey: 10,
    compression: 'lz',
    targetFileBytes: 4 * 1024,
    ...extra,
  };
}

const asRun = (o: MergeOutcome): RunTableSpec[] =>
  o.outputs.map((f) => ({ number: f.number, sizeBytes: f.sizeBytes, smallest: f.smallest, largest: f.largest }));

const userKey = (ik: Uint8Array): Buffer => Buffer.from(ik.subarray(0, ik.length - TRAILER_BYTES));

function assertSameTables(fs: MemFs, got: MergeOutcome, want: MergeOutcome, what: string): void {
  assert.equal(got.outputs.length, want.outputs.length, `${what}: output count`);
  assert.equal(got.entriesDropped, want.entriesDropped, `${what}: entries dropped`);
  for (let i = 0; i < want.outputs.length; i++) {
    const g = got.outputs[i]!;
    const w = want.outputs[i]!;
    assert.equal(g.entryCount, w.entryCount, `${what}: output ${i} entries`);
    assert.ok(Buffer.from(g.smallest).equals(Buffer.from(w.smallest)), `${what}: output ${i} smallest`);
    assert.ok(Buffer.from(g.largest).equals(Buffer.from(w.largest)), `${what}: output ${i} largest`);
    const gb = fs.readFileRaw(`${DIR}/${tableFileName(g.number)}`);
    const wb = fs.readFileRaw(`${DIR}/${tableFileName(w.number)}`);
    assert.ok(gb.equals(wb), `${what}: output ${i} bytes differ`);
  }
}

/** Counts every handle opened through it, overall and per set of table numbers (a run). */
class HandleCounter {
  openNow = 0;
  readonly openPaths = new Map<string, number>();
  readonly perRunNow: number[];
  readonly perRunMax: number[];
  readonly fs: FileSystem;

  constructor(inner: FileSystem, private readonly runs: Set<number>[]) {
    this.perRunNow = runs.map(() => 0);
    this.perRunMax = runs.map(() => 0);
    this.fs = wrapOpen(inner, (path, h) => this.wrap(path, h));
  }

  resetMax(): void {
    for (let i = 0; i < this.perRunMax.length; i++) this.perRunMax[i] = this.perRunNow[i]!;
  }

  private wrap(path: string, h: FileHandle): FileHandle {
    const n = Number(path.slice(path.lastIndexOf('/') + 1, -4));
    const r = this.runs.findIndex((s) => s.has(n));
    this.openNow++;
    this.openPaths.set(path, (this.openPaths.get(path) ?? 0) + 1);
    if (r >= 0) {
      this.perRunNow[r]!++;
      this.perRunMax[r] = Math.max(this.perRunMax[r]!, this.perRunNow[r]!);
    }
    const close = h.close.bind(h);
    let closed = false;
    h.close = () => {
      if (!closed) {
        closed = true;
        this.openNow--;
        const c = (this.openPaths.get(path) ?? 1) - 1;
        if (c === 0) this.openPaths.delete(path);
        else this.openPaths.set(path, c);
        if (r >= 0) this.perRunNow[r]!--;
      }
      close();
    };
    return h;
  }
}

interface Setup {
  fs: MemFs;
  l0: Table[];
  run1: RunTableSpec[];
  run2: RunTableSpec[];
}

/**
 * Two sorted runs that overlap each other (as L1 and L2 do), each of many small tables holding
 * several versions of many keys (smallestSnapshot 0 keeps every version), plus L0 tables on top.
 */
async function setup(seed: number): Promise<Setup> {
  const rng = new Random(seed);
  const fs = new MemFs();
  const KEYS = 3000;
  await makeL0Tables(fs, rng, 7, 1200, KEYS);
  const all = tablesOnDisk(fs);
  // Oldest three become "L2", the next two "L1", the last two stay L0.
  const r2 = await mergeTables(fs, spec(all.slice(0, 3), undefined, 1000, { smallestSnapshot: 0, targetFileBytes: 2048 + rng.nextInt(4096) }), 0);
  const r1 = await mergeTables(fs, spec(all.slice(3, 5), undefined, 2000, { smallestSnapshot: 0, targetFileBytes: 2048 + rng.nextInt(4096) }), 0);
  for (const t of all.slice(0, 5)) fs.unlink(`${DIR}/${tableFileName(t.number)}`);
  return { fs, l0: all.slice(5), run1: asRun(r1), run2: asRun(r2) };
}

test('session16-runs: two overlapping runs + L0 merge byte-identically to one child per table, bounds at every run-table boundary', { timeout: 60_000 }, async () => {
  await withSeed('session16-runs differential', async (seed) => {
    console.log(`session16-runs differential seed ${seed}`);
    const rng = new Random(seed);
    const { fs, l0, run1, run2 } = await setup(seed);
    assert.ok(run1.length >= 5 && run2.length >= 5, `runs of several tables (got ${run1.length}, ${run2.length})`);
    const counter = new HandleCounter(fs, [new Set(run1.map((t) => t.number)), new Set(run2.map((t) => t.number))]);
    const flat = [...l0, ...run1, ...run2].map((t) => ({ number: t.number, sizeBytes: t.sizeBytes }));
    // Bounds: every user key at a run-table boundary, just after a table's largest, plus random keys.
    const points: Buffer[] = [];
    for (const t of [...run1, ...run2]) {
      points.push(userKey(t.smallest), userKey(t.largest), Buffer.concat([userKey(t.largest), Buffer.from([0])]));
    }
    for (let i = 0; i < 6; i++) points.push(Buffer.from(key(rng.nextInt(3200))));
    points.push(Buffer.from('a'), Buffer.from('z'));
    // Pick a sample so the test stays fast, but always include the first and last tables' edges.
    const chosen = new Set<number>([0, 1, 2, points.length - 1, points.length - 2]);
    while (chosen.size < Math.min(points.length, 28)) chosen.add(rng.nextInt(points.length));
    const cases: Partial<MergeSpec>[] = [{}, { smallestSnapshot: 0 }];
    for (const i of chosen) {
      const p = points[i]!;
      cases.push({ lowerBound: p }, { upperBound: p });
      const q = points[rng.nextInt(points.length)]!;
      if (Buffer.compare(p, q) < 0) cases.push({ lowerBound: p, upperBound: q, smallestSnapshot: rng.nextInt(2) === 0 ? 0 : 1e9 });
      else if (Buffer.compare(q, p) < 0) cases.push({ lowerBound: q, upperBound: p });
    }
    let first = 10_000;
    for (const extra of cases) {
      const what = `seed ${seed} ${JSON.stringify({ lower: extra.lowerBound === undefined ? undefined : Buffer.from(extra.lowerBound).toString('latin1'), upper: extra.upperBound === undefined ? undefined : Buffer.from(extra.upperBound).toString('latin1'), snap: extra.smallestSnapshot })}`;
      const want = await mergeTables(fs, spec(flat, undefined, first, extra), 0);
      first += 1000;
      counter.resetMax();
      const got = await mergeTables(counter.fs, spec(l0, [run1, run2], first, extra), rng.nextInt(2) === 0 ? 0 : 1 + rng.nextInt(50));
      first += 1000;
      assertSameTables(fs, got, want, what);
      assert.ok(counter.perRunMax[0]! <= 1 && counter.perRunMax[1]! <= 1, `${what}: a run had ${counter.perRunMax} tables open at once`);
      assert.equal(counter.openNow, 0, `${what}: handles left open: ${[...counter.openPaths.keys()].join(', ')}`);
      // Runs given in the other order, and as one-table runs: the same bytes.
      const got2 = await mergeTables(counter.fs, spec(l0, [run2, [], run1], first, extra), 0);
      first += 1000;
      assertSameTables(fs, got2, want, `${what} (runs swapped)`);
      for (const o of [...got.outputs, ...got2.outputs, ...want.outputs]) fs.unlink(`${DIR}/${tableFileName(o.number)}`);
    }
    // Every run table as a one-table run (the degenerate case).
    const singles = [...run1, ...run2].map((t) => [t]);
    const want = await mergeTables(fs, spec(flat, undefined, first, {}), 0);
    const got = await mergeTables(counter.fs, spec(l0, singles, first + 1000, {}), 0);
    assertSameTables(fs, got, want, 'one-table runs');
    assert.equal(counter.openNow, 0);
  });
});

type Damage = 'missing' | 'truncated' | 'footer' | 'first-block' | 'mid-block' | 'size-too-big';

async function damagedMidMerge(damage: Damage, seed: number): Promise<void> {
  const { fs, l0, run1, run2 } = await setup(seed);
  // Damage a table of run 2 past its middle: the merge has written outputs by then.
  const victim = run2[Math.max(2, Math.floor((run2.length * 2) / 3))]!;
  const path = `${DIR}/${tableFileName(victim.number)}`;
  const runs = [run1, run2.map((t) => ({ ...t }))];
  const size = victim.sizeBytes;
  switch (damage) {
    case 'missing':
      fs.unlink(path);
      break;
    case 'truncated':
      fs.writeFileRaw(path, fs.readFileRaw(path).subarray(0, size - 10), { synced: true });
      break;
    case 'footer':
      fs.flipByte(path, size - FOOTER_BYTES + 3);
      break;
    case 'first-block':
      fs.flipByte(path, 20);
      break;
    case 'mid-block': {
      // The byte just before the filter block start is inside the last data block (or its trailer).
      // Find it by flipping a byte a little before the footer-referenced areas: use 60% of the file.
      fs.flipByte(path, Math.floor(size * 0.45));
      break;
    }
    case 'size-too-big':
      (runs[1]!.find((t) => t.number === victim.number) as RunTableSpec).sizeBytes = size + 100;
      break;
  }
  const before = new Set(fs.readdir(DIR));
  const counter = new HandleCounter(fs, [new Set(run1.map((t) => t.number)), new Set(run2.map((t) => t.number))]);
  let outputsCreated = 0;
  const watching = wrapOpen(counter.fs, (p, h) => {
    if (p.endsWith('.sst') && Number(p.slice(p.lastIndexOf('/') + 1, -4)) >= 50_000) outputsCreated++;
    return h;
  });
  let err: unknown = null;
  try {
    await mergeTables(watching, spec(l0, runs, 50_000, { targetFileBytes: 1024 }), 7);
  } catch (e) {
    err = e;
  }
  const what = `seed ${seed} damage ${damage} table ${victim.number}`;
  assert.ok(err !== null, `${what}: the merge must fail`);
  assert.ok(isLightningError(err), `${what}: a LightningError, got ${String(err)}`);
  assert.ok(['CORRUPTION', 'IO_ERROR', 'NOT_FOUND'].includes(err.code), `${what}: code ${err.code}`);
  assert.ok(outputsCreated >= 2, `${what}: outputs were written before the damage was found (${outputsCreated})`);
  assert.deepEqual(new Set(fs.readdir(DIR)), before, `${what}: files left behind`);
  assert.equal(counter.openNow, 0, `${what}: handles left open: ${[...counter.openPaths.keys()].join(', ')}`);
  assert.ok(counter.perRunMax[0]! <= 1 && counter.perRunMax[1]! <= 1, `${what}: a run had two tables open`);
}

for (const damage of ['missing', 'truncated', 'footer', 'first-block', 'mid-block', 'size-too-big'] as Damage[]) {
  test(`session16-runs: a ${damage} run table found mid-merge fails typed, leaves no output, closes every file`, async () => {
    await withSeed(`session16-runs damage ${damage}`, async (seed) => {
      console.log(`session16-runs damage ${damage} seed ${seed}`);
      await damagedMidMerge(damage, seed);
    });
  });
}

/** Fails the nth operation counted (all operations), with `code`. */
class Nth implements FaultInjector {
  count = 0;
  failed: { op: FaultOp; path: string } | null = null;
  constructor(private readonly n: number, private readonly code: FaultCode) {}
  maybeFail(op: FaultOp, path: string): FaultCode | null {
    this.count++;
    if (this.count === this.n) {
      this.failed = { op, path };
      return this.code;
    }
    return null;
  }
}

test('session16-runs: a fault at every filesystem operation of a run merge fails typed, with no output and no handle left', { timeout: 60_000 }, async () => {
  await withSeed('session16-runs fault sweep', async (seed) => {
    console.log(`session16-runs fault sweep seed ${seed}`);
    const rng = new Random(seed);
    const { fs, l0, run1, run2 } = await setup(seed);
    const runs = [run1.slice(0, 8), run2.slice(0, 8)];
    const lo = [runs[0]![0]!, runs[1]![0]!].map((t) => userKey(t.smallest)).sort(Buffer.compare)[1]!;
    const baseSpec = (first: number): MergeSpec => spec(l0.slice(0, 1), runs, first, { targetFileBytes: 1024, lowerBound: lo, upperBound: userKey(runs[0]![runs[0]!.length - 1]!.largest) });
    // Count the operations of a clean run.
    const probe = new Nth(-1, 'EIO');
    const clean = await mergeTables(new FaultFs(fs, probe), baseSpec(100_000), 0);
    assert.ok(clean.outputs.length >= 3, `a merge of several outputs (${clean.outputs.length})`);
    for (const o of clean.outputs) fs.unlink(`${DIR}/${tableFileName(o.number)}`);
    const total = probe.count;
    const before = new Set(fs.readdir(DIR));
    // Every operation, alternating EIO and ENOSPC at random.
    for (let n = 1; n <= total; n++) {
      const code: FaultCode = rng.nextInt(2) === 0 ? 'EIO' : 'ENOSPC';
      const inj = new Nth(n, code);
      const counter = new HandleCounter(new FaultFs(fs, inj), [new Set(runs[0]!.map((t) => t.number)), new Set(runs[1]!.map((t) => t.number))]);
      let err: unknown = null;
      try {
        await mergeTables(counter.fs, baseSpec(200_000 + n * 100), n % 3 === 0 ? 0 : 5);
      } catch (e) {
        err = e;
      }
      const what = `seed ${seed} fault ${code} at op ${n}/${total} (${inj.failed?.op} ${inj.failed?.path})`;
      assert.ok(err !== null, `${what}: the merge must fail`);
      assert.ok(isLightningError(err), `${what}: a LightningError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      assert.equal(counter.openNow, 0, `${what}: handles left open: ${[...counter.openPaths.keys()].join(', ')}`);
      assert.deepEqual(new Set(fs.readdir(DIR)), before, `${what}: files left behind`);
      assert.ok(counter.perRunMax[0]! <= 1 && counter.perRunMax[1]! <= 1, `${what}: a run had two tables open`);
    }
    void failNth;
  });
});

test('session16-runs: runs of one-user-key tables (every version of a key in its own table) merge like one child per table', { timeout: 60_000 }, async () => {
  await withSeed('session16-runs tiny tables', async (seed) => {
    console.log(`session16-runs tiny tables seed ${seed}`);
    const rng = new Random(seed);
    const fs = new MemFs();
    await makeL0Tables(fs, rng, 6, 400, 250);
    const all = tablesOnDisk(fs);
    // targetFileBytes 1: a cut at every user key, so each table holds exactly one user key's versions.
    const r2 = asRun(await mergeTables(fs, spec(all.slice(0, 3), undefined, 1000, { smallestSnapshot: 0, targetFileBytes: 1 }), 0));
    const r1 = asRun(await mergeTables(fs, spec(all.slice(3, 5), undefined, 3000, { smallestSnapshot: 0, targetFileBytes: 1 }), 0));
    for (const t of all.slice(0, 5)) fs.unlink(`${DIR}/${tableFileName(t.number)}`);
    const l0 = all.slice(5);
    assert.ok(r1.length > 50 && r2.length > 50, `many one-key tables (${r1.length}, ${r2.length})`);
    for (const t of [...r1, ...r2]) assert.ok(userKey(t.smallest).equals(userKey(t.largest)), 'one user key per table');
    const counter = new HandleCounter(fs, [new Set(r1.map((t) => t.number)), new Set(r2.map((t) => t.number))]);
    const flat = [...l0, ...r1, ...r2];
    let first = 10_000;
    const cases: Partial<MergeSpec>[] = [{}, { smallestSnapshot: 0 }, { smallestSnapshot: 1 + rng.nextInt(2000) }];
    for (let i = 0; i < 8; i++) {
      const a = userKey([...r1, ...r2][rng.nextInt(r1.length + r2.length)]!.smallest);
      const b = userKey([...r1, ...r2][rng.nextInt(r1.length + r2.length)]!.largest);
      const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
      cases.push({ lowerBound: lo }, { upperBound: hi }, { lowerBound: lo, upperBound: Buffer.concat([hi, Buffer.from([0])]) });
    }
    for (const extra of cases) {
      const what = `seed ${seed} ${JSON.stringify({ lower: extra.lowerBound === undefined ? undefined : Buffer.from(extra.lowerBound).toString('latin1'), upper: extra.upperBound === undefined ? undefined : Buffer.from(extra.upperBound).toString('latin1'), snap: extra.smallestSnapshot })}`;
      const tf = { targetFileBytes: 1 + rng.nextInt(3000), ...extra };
      const want = await mergeTables(fs, spec(flat, undefined, first, tf), 0);
      first += 2000;
      counter.resetMax();
      const got = await mergeTables(counter.fs, spec(l0, [r1, r2], first, tf), rng.nextInt(3));
      first += 2000;
      assertSameTables(fs, got, want, what);
      assert.ok(counter.perRunMax[0]! <= 1 && counter.perRunMax[1]! <= 1, `${what}: two tables of a run open at once`);
      assert.equal(counter.openNow, 0, `${what}: handles left open`);
      for (const o of [...got.outputs, ...want.outputs]) fs.unlink(`${DIR}/${tableFileName(o.number)}`);
    }
  });
});
