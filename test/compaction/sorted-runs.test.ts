/**
 * A compaction reads a level >= 1's inputs as one sorted run (one merging-heap child that opens one
 * table at a time) instead of one child per table. The outputs must be byte-identical to merging
 * the same tables as separate children, with and without subcompaction bounds; a run keeps at most
 * one of its tables open; a run whose tables overlap is refused before anything is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type BatchOperation } from '../../src/index.js';
import { mergeTables, type MergeOutcome, type MergeSpec, type RunTableSpec } from '../../src/compaction/merge-tables.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { tableFileName } from '../../src/base/file-names.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;

/** Writes `tables` overlapping L0 tables of puts, overwrites and deletes over one key range. */
async function makeL0Tables(fs: MemFs, rng: Random, tables: number, perTable: number): Promise<void> {
  const db = await open(DIR, { fs, memtableSize: 64 * 1024 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  for (let t = 0; t < tables; t++) {
    const ops: BatchOperation[] = [];
    for (let i = 0; i < perTable; i++) {
      const k = key(rng.nextInt(perTable * 3));
      if (rng.nextInt(6) === 0) ops.push({ type: 'del', key: k });
      else ops.push({ type: 'put', key: k, value: `${t}.${i}:`.repeat(1 + rng.nextInt(20)) });
    }
    await db.batch(ops);
    await db.compactRange(key(99_999_999), key(99_999_999)); // flush only
  }
  await db.close();
}

function tables(fs: MemFs): { number: number; sizeBytes: number }[] {
  return fs
    .readdir(DIR)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.stat(`${DIR}/${n}`).size }));
}

function spec(inputs: MergeSpec['inputs'], sortedRuns: RunTableSpec[][] | undefined, first: number, extra: Partial<MergeSpec> = {}): MergeSpec {
  return {
    dir: DIR,
    inputs,
    ...(sortedRuns === undefined ? {} : { sortedRuns }),
    firstOutputNumber: first,
    outputNumberCount: 10_000,
    smallestSnapshot: 1e9,
    deeperLevels: [],
    blockSizeBytes: 1024,
    bloomBitsPerKey: 10,
    compression: 'lz',
    targetFileBytes: 16 * 1024,
    ...extra,
  };
}

function assertSameTables(fs: MemFs, got: MergeOutcome, want: MergeOutcome, what: string): void {
  assert.equal(got.outputs.length, want.outputs.length, `${what}: output count`);
  assert.equal(got.entriesDropped, want.entriesDropped, `${what}: entries dropped`);
  for (let i = 0; i < want.outputs.length; i++) {
    const g = got.outputs[i]!;
    const w = want.outputs[i]!;
    assert.equal(g.entryCount, w.entryCount, `${what}: output ${i} entries`);
    const gb = fs.readFileRaw(`${DIR}/${tableFileName(g.number)}`);
    const wb = fs.readFileRaw(`${DIR}/${tableFileName(w.number)}`);
    assert.ok(gb.equals(wb), `${what}: output ${i} bytes differ`);
  }
}

test('sorted runs: merging a run as one child writes the same tables as one child per table, with and without bounds', async () => {
  await withSeed('sorted runs', async (seed) => {
    const rng = new Random(seed);
    const fs = new MemFs();
    await makeL0Tables(fs, rng, 6, 1500);
    const all = tables(fs);
    // The first 3 tables merged into many small disjoint tables: a sorted run, like a level >= 1.
    const l1 = await mergeTables(fs, spec(all.slice(0, 3), undefined, 1000, { smallestSnapshot: 0 }), 0);
    assert.ok(l1.outputs.length >= 4, `a run of several tables (got ${l1.outputs.length})`);
    const run: RunTableSpec[] = l1.outputs.map((f) => ({ number: f.number, sizeBytes: f.sizeBytes, smallest: f.smallest, largest: f.largest }));
    const l0 = all.slice(3);
    const runAsInputs = run.map((t) => ({ number: t.number, sizeBytes: t.sizeBytes }));
    let first = 2000;
    const boundsCases: Partial<MergeSpec>[] = [{}, { smallestSnapshot: 0 }];
    // Bounds at, between and outside run tables' ranges.
    for (let i = 0; i < 4; i++) {
      const b = Buffer.from(key(rng.nextInt(1500 * 3)));
      boundsCases.push({ lowerBound: b }, { upperBound: b });
    }
    boundsCases.push({ lowerBound: Buffer.from(key(100)), upperBound: Buffer.from(key(3000)) });
    for (const extra of boundsCases) {
      const what = JSON.stringify({ lower: extra.lowerBound?.toString(), upper: extra.upperBound?.toString(), snap: extra.smallestSnapshot });
      const want = await mergeTables(fs, spec([...l0, ...runAsInputs], undefined, first, extra), 0);
      first += 1000;
      const got = await mergeTables(fs, spec(l0, [run], first, extra), 0);
      first += 1000;
      assertSameTables(fs, got, want, what);
      // The run alone, split in two runs, and with an empty run: the same again.
      const half = run.length >> 1;
      const split = await mergeTables(fs, spec(l0, [run.slice(0, half), [], run.slice(half)], first, extra), 0);
      first += 1000;
      assertSameTables(fs, split, want, `${what} (two runs)`);
    }
  });
});

test('sorted runs: a run keeps at most one of its tables open', async () => {
  const fs = new MemFs();
  const rng = new Random(7);
  await makeL0Tables(fs, rng, 4, 1500);
  const all = tables(fs);
  const l1 = await mergeTables(fs, spec(all, undefined, 1000, { smallestSnapshot: 0 }), 0);
  const runNumbers = new Set(l1.outputs.map((f) => f.number));
  assert.ok(runNumbers.size >= 4);
  let openNow = 0;
  let openMax = 0;
  let opened = 0;
  const counting = wrapOpen(fs, (path: string, h: FileHandle): FileHandle => {
    const n = Number(path.slice(DIR.length + 1, -4));
    if (!runNumbers.has(n)) return h;
    openNow++;
    opened++;
    openMax = Math.max(openMax, openNow);
    const close = h.close.bind(h);
    h.close = () => {
      openNow--;
      close();
    };
    return h;
  });
  const run = l1.outputs.map((f) => ({ number: f.number, sizeBytes: f.sizeBytes, smallest: f.smallest, largest: f.largest }));
  const out = await mergeTables(counting, spec([], [run], 5000, { smallestSnapshot: 0 }), 0);
  assert.equal(out.outputs.reduce((s, f) => s + f.entryCount, 0), l1.outputs.reduce((s, f) => s + f.entryCount, 0));
  assert.equal(opened, run.length, 'every run table opened once');
  assert.equal(openMax, 1, 'one run table open at a time');
  assert.equal(openNow, 0, 'every run table closed');
  // A merge limited to the upper half never opens the tables below its bound.
  opened = 0;
  const lowerBound = Buffer.from(run[run.length - 1]!.smallest.subarray(0, run[run.length - 1]!.smallest.length - 8));
  await mergeTables(counting, spec([], [run], 6000, { lowerBound }), 0);
  assert.equal(opened, 1, 'only the last table opened');
});

test('sorted runs: overlapping tables in a run are refused before any output is written', async () => {
  const fs = new MemFs();
  await makeL0Tables(fs, new Random(3), 2, 500);
  const [a, b] = tables(fs);
  const before = fs.readdir(DIR).length;
  // Two L0 tables over the same key range are not a sorted run.
  const { TableReader } = await import('../../src/sstable/table-reader.js');
  const range = (t: { number: number; sizeBytes: number }): RunTableSpec => {
    const r = TableReader.open(fs.open(`${DIR}/${tableFileName(t.number)}`, 'r'), t.number, t.sizeBytes, null);
    try {
      const it = r.iterator(false);
      it.first();
      const smallest = Buffer.from(it.key());
      it.last();
      const largest = Buffer.from(it.key());
      it.close();
      return { ...t, smallest, largest };
    } finally {
      r.close();
    }
  };
  await assert.rejects(mergeTables(fs, spec([], [[range(a!), range(b!)]], 9000), 0), /overlaps/);
  assert.equal(fs.readdir(DIR).length, before, 'no output left behind');
});
