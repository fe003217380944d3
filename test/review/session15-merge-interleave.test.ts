/**
 * Reviewer tests (session 15): a merge in the shared background worker yields every 4,096 entries
 * and a flush runs in between, in the same thread, sharing that thread's module-level scratch state
 * (table-builder spares, lz-codec hash table and view cache, table-reader shared read buffers,
 * readahead and block-copy pools, block-iterator key buffers). A merge interrupted by a stream of
 * flushes must write byte-for-byte the tables the same merge writes alone, and every flush must
 * write byte-for-byte the table the same flush writes alone (on the main thread). Seeded inputs
 * with overwrites and deletes, a snapshot boundary (drops), small output files (many builders
 * finishing mid-merge), lz and no compression.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type BatchOperation, type Database } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import { mergeTables, type MergeOutcome, type MergeSpec } from '../../src/compaction/merge-tables.js';
import { buildFlushTable, type FlushSpec } from '../../src/db/flush-table.js';
import { NodeFs } from '../../src/env/node-fs.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import type { TableCompression } from '../../src/sstable/table-builder.js';
import { tableFileName } from '../../src/base/file-names.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-interleave-'));
}

const key = (i: number): string => `key${String(i).padStart(8, '0')}`;

/** A compressible value of random length whose content identifies it. */
function valueOf(rng: Random, tag: string): string {
  const len = 5 + rng.nextInt(300);
  const unit = `${tag}:${'abcdefghij'.slice(0, 1 + rng.nextInt(10))}`;
  return unit.repeat(Math.ceil(len / unit.length)).slice(0, len);
}

/**
 * Writes `tables` overlapping L0 tables (puts, overwrites and deletes over one key range) with a
 * main-thread database and closes it; returns the input tables and the last sequence number.
 */
async function makeInputs(dir: string, rng: Random, tables: number, perTable: number, compression: TableCompression): Promise<{ inputs: { number: number; sizeBytes: number }[]; lastSeq: number }> {
  const db: Database = await open(dir, {
    memtableSize: 64 * 1024 * 1024,
    l0CompactionTrigger: 100,
    l0SlowdownTrigger: 100,
    l0StopTrigger: 100,
    compactionThread: 'main',
    compression,
    sync: false,
  });
  const keySpace = perTable * 2;
  for (let t = 0; t < tables; t++) {
    for (let b = 0; b < perTable; b += 1000) {
      const ops: BatchOperation[] = [];
      for (let i = 0; i < 1000; i++) {
        const k = key(rng.nextInt(keySpace));
        if (rng.nextInt(8) === 0) ops.push({ type: 'del', key: k });
        else ops.push({ type: 'put', key: k, value: valueOf(rng, `${t}.${b + i}`) });
      }
      await db.batch(ops);
    }
    await db.compactRange(key(999_999_999), key(999_999_999)); // flush only
  }
  const lastSeq = db.stats().sequence;
  await db.close();
  const inputs = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.statSync(path.join(dir, n)).size }));
  assert.equal(inputs.length, tables, 'one L0 table per round');
  return { inputs, lastSeq };
}

function mergeSpec(dir: string, inputs: { number: number; sizeBytes: number }[], first: number, smallestSnapshot: number, compression: TableCompression, blockSizeBytes: number): MergeSpec {
  return {
    dir,
    inputs,
    firstOutputNumber: first,
    outputNumberCount: 10_000,
    smallestSnapshot,
    deeperLevels: [],
    blockSizeBytes,
    bloomBitsPerKey: 10,
    compression,
    targetFileBytes: 96 * 1024,
  };
}

/** A memtable of seeded puts and deletes (its own key space, so flushes differ from the merge). */
function randomMemTable(rng: Random, n: number, tag: string): MemTable {
  const mem = new MemTable(rng.nextUint32(), 1024 * 1024 * 32);
  let seq = 1_000_000;
  for (let i = 0; i < n; i++) {
    const k = Buffer.from(`m${String(rng.nextInt(n * 3)).padStart(7, '0')}`);
    if (rng.nextInt(10) === 0) mem.add(seq++, KIND_DELETE, k, Buffer.alloc(0));
    else mem.add(seq++, KIND_VALUE, k, Buffer.from(valueOf(rng, `${tag}.${i}`)));
  }
  return mem;
}

function readTable(dir: string, n: number): Buffer {
  return fs.readFileSync(path.join(dir, tableFileName(n)));
}

function assertSameOutcome(got: MergeOutcome, want: MergeOutcome, dir: string, what: string): void {
  assert.equal(got.outputs.length, want.outputs.length, `${what}: output count`);
  assert.equal(got.entriesDropped, want.entriesDropped, `${what}: entries dropped`);
  for (let i = 0; i < want.outputs.length; i++) {
    const g = got.outputs[i];
    const w = want.outputs[i];
    assert.ok(g !== undefined && w !== undefined);
    assert.equal(g.entryCount, w.entryCount, `${what}: output ${i} entries`);
    assert.equal(g.sizeBytes, w.sizeBytes, `${what}: output ${i} size`);
    assert.ok(Buffer.compare(Buffer.from(g.smallest), Buffer.from(w.smallest)) === 0, `${what}: output ${i} smallest`);
    assert.ok(Buffer.compare(Buffer.from(g.largest), Buffer.from(w.largest)) === 0, `${what}: output ${i} largest`);
    const gb = readTable(dir, g.number);
    const wb = readTable(dir, w.number);
    if (!gb.equals(wb)) {
      let at = 0;
      while (at < gb.length && gb[at] === wb[at]) at++;
      assert.fail(`${what}: output ${i} (${g.number} vs ${w.number}) differs from the merge alone at byte ${at} of ${wb.length}`);
    }
  }
}

for (const compression of ['lz', 'none'] as const) {
  test(`a merge interrupted by a stream of flushes in the same worker writes the same bytes as alone (${compression})`, { timeout: 120_000 }, async () => {
    await withSeed(`merge interleave ${compression}`, async (seed) => {
      const rng = new Random(seed);
      const dir = tempDir();
      const thread = new CompactionThread();
      const nodeFs = new NodeFs();
      try {
        const blockSizeBytes = [512, 1024, 4096][rng.nextInt(3)] as number;
        const { inputs, lastSeq } = await makeInputs(dir, rng, 4, 40_000, compression);
        const snapshot = Math.floor(lastSeq * (0.3 + 0.4 * (rng.nextInt(1000) / 1000)));
        // The merge alone, on this thread, never yielding.
        const alone = await mergeTables(nodeFs, mergeSpec(dir, inputs, 100_000, snapshot, compression, blockSizeBytes), 0);
        assert.ok(alone.outputs.length >= 10, `outputs: ${alone.outputs.length}`);
        assert.ok(alone.entriesDropped > 0, 'the snapshot boundary drops some entries');
        // The same merge in the worker, with flushes posted back to back until it is done.
        let mergeDone = false;
        const merged = thread.run(mergeSpec(dir, inputs, 200_000, snapshot, compression, blockSizeBytes)).finally(() => {
          mergeDone = true;
        });
        const flushed: { spec: FlushSpec; number: number }[] = [];
        let fileNumber = 300_000;
        while (!mergeDone) {
          const mem = randomMemTable(rng, 200 + rng.nextInt(6000), `f${fileNumber}`);
          const spec: FlushSpec = { dir, fileNumber: fileNumber++, blockSizeBytes, bloomBitsPerKey: rng.nextInt(2) === 0 ? 10 : 0, compression, sorted: mem.sortedEntries() };
          const m = await thread.flush(spec);
          assert.equal(m.number, spec.fileNumber);
          flushed.push({ spec, number: m.number });
        }
        const interleaved = await merged;
        console.log(`${compression}: block ${blockSizeBytes}, ${alone.outputs.length} outputs, ${alone.entriesDropped} dropped, ${flushed.length} flushes during the merge`);
        assert.ok(flushed.length >= 3, `only ${flushed.length} flushes ran during the merge`);
        assertSameOutcome(interleaved, alone, dir, 'merge interrupted by flushes');
        // Each flush, again alone on this thread: the same bytes.
        for (const f of flushed) {
          const again = await buildFlushTable(nodeFs, { ...f.spec, fileNumber: f.number + 100_000 }, 0);
          const a = readTable(dir, f.number);
          const b = readTable(dir, again.number);
          assert.ok(a.equals(b), `flush ${f.number} written during the merge differs from the same flush alone`);
        }
        assert.equal(thread.broken, false);
      } finally {
        await thread.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

test('a merge and a flush that both fail in the same worker (missing input, existing output): each gets its own error, the worker goes on', { timeout: 60_000 }, async () => {
  await withSeed('merge and flush errors', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    const thread = new CompactionThread();
    try {
      const { inputs } = await makeInputs(dir, rng, 2, 20_000, 'lz');
      const missing = [...inputs, { number: 77_777, sizeBytes: 1000 }];
      const mem = randomMemTable(rng, 3000, 'x');
      fs.writeFileSync(path.join(dir, tableFileName(400_000)), 'occupied');
      const [m, f] = await Promise.allSettled([
        thread.run(mergeSpec(dir, missing, 100_000, Number.MAX_SAFE_INTEGER, 'lz', 1024)),
        thread.flush({ dir, fileNumber: 400_000, blockSizeBytes: 1024, bloomBitsPerKey: 10, compression: 'lz', sorted: mem.sortedEntries() }),
      ]);
      assert.equal(m.status, 'rejected');
      assert.equal(f.status, 'rejected');
      assert.equal(thread.broken, false, 'job errors do not break the thread');
      // Both kinds run again in the same worker afterwards, and succeed.
      const [m2, f2] = await Promise.all([
        thread.run(mergeSpec(dir, inputs, 100_000, Number.MAX_SAFE_INTEGER, 'lz', 1024)),
        thread.flush({ dir, fileNumber: 400_001, blockSizeBytes: 1024, bloomBitsPerKey: 10, compression: 'lz', sorted: mem.sortedEntries() }),
      ]);
      assert.ok(m2.outputs.length >= 1);
      assert.equal(f2.number, 400_001);
      // The failed merge left no output behind.
      const left = fs.readdirSync(dir).filter((n) => n.endsWith('.sst')).map((n) => Number(n.slice(0, -4)));
      const outputs = new Set(m2.outputs.map((o) => o.number));
      for (const n of left) assert.ok(inputs.some((i) => i.number === n) || outputs.has(n) || n === 400_000 || n === 400_001, `stray table ${n}`);
    } finally {
      await thread.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
