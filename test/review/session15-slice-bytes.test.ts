/**
 * Reviewer test (session 15): the shared worker's merge yields every 4,096 *entries*
 * (compaction-worker.ts MERGE_SLICE_ENTRIES), so that "a flush posted while it runs starts within
 * one slice (a few milliseconds)" (docs/decisions/2026-11-26-one-background-thread.md). A slice is
 * bounded in entries, not in bytes: with large values (here 64 KiB, well within the engine's
 * limits) a merge of fewer than 4,096 entries never yields at all, and a flush posted at its start
 * waits for the whole merge, as if there were no slicing. Before the change the flush had its own
 * worker and never waited for a merge; writers stall on flushes.
 *
 * Structural check (no timing assertion), as in test/compaction/shared-background-thread.test.ts:
 * when the flush finishes, the merge must have written less than half its one output table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { MergeSpec } from '../../src/compaction/merge-tables.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_VALUE } from '../../src/base/internal-key.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const key = (i: number): string => `k${String(i).padStart(8, '0')}`;

test('a flush posted at the start of a merge of large values does not wait for the whole merge (slices bounded in bytes too)', { timeout: 120_000 }, async () => {
  await withSeed('slice bytes', async (seed) => {
    const rng = new Random(seed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-slice-'));
    const thread = new CompactionThread();
    try {
      // Three L0 tables of 700 entries with 64 KiB incompressible values: 2,100 entries, ~131 MiB.
      const db = await open(dir, { memtableSize: 64 * 1024 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, compactionThread: 'main', compression: 'none', sync: false });
      const tables = 3;
      const perTable = 700;
      for (let t = 0; t < tables; t++) {
        for (let b = 0; b < perTable; b += 50) {
          const ops = [];
          for (let i = 0; i < 50; i++) {
            const v = Buffer.allocUnsafe(64 * 1024);
            for (let j = 0; j < v.length; j += 4) v.writeUInt32LE(rng.nextUint32(), j);
            ops.push({ type: 'put' as const, key: key((b + i) * tables + t), value: v });
          }
          await db.batch(ops);
        }
        await db.compactRange(key(999_999_999), key(999_999_999)); // flush only
      }
      await db.close();
      const inputs = fs
        .readdirSync(dir)
        .filter((n) => n.endsWith('.sst'))
        .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.statSync(path.join(dir, n)).size }));
      assert.equal(inputs.length, tables);
      const spec: MergeSpec = {
        dir,
        inputs,
        firstOutputNumber: 100_000,
        outputNumberCount: 10,
        smallestSnapshot: Number.MAX_SAFE_INTEGER,
        deeperLevels: [],
        blockSizeBytes: 4096,
        bloomBitsPerKey: 10,
        compression: 'none',
        targetFileBytes: 1024 * 1024 * 1024, // one output table
      };
      const mem = new MemTable(1, 2000 * 64);
      for (let i = 0; i < 2000; i++) mem.add(i + 1, KIND_VALUE, Buffer.from(key(i)), Buffer.from(`flushed ${i}`));
      // Warm the worker first, so the merge and the flush reach a running worker together.
      const warm = new MemTable(2, 64 * 64);
      warm.add(1, KIND_VALUE, Buffer.from('warm'), Buffer.from('up'));
      await thread.flush({ dir, fileNumber: 80_000, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: warm.sortedEntries() });
      const t0 = Date.now();
      const order: string[] = [];
      const merged = thread.run(spec).then((o) => {
        order.push('merge');
        return o;
      });
      const output = path.join(dir, '100000.sst');
      let outputBytesAtFlush = -1;
      let flushMs = -1;
      const flushed = thread.flush({ dir, fileNumber: 90_000, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: mem.sortedEntries() }).then((m) => {
        order.push('flush');
        flushMs = Date.now() - t0;
        outputBytesAtFlush = fs.existsSync(output) ? fs.statSync(output).size : 0;
        return m;
      });
      const [outcome] = await Promise.all([merged, flushed]);
      const mergeMs = Date.now() - t0;
      const finalBytes = outcome.outputs[0]?.sizeBytes ?? 0;
      console.log(`merge of ${outcome.outputs[0]?.entryCount} entries, ${(finalBytes / 1048576).toFixed(0)} MiB in ${mergeMs} ms; the flush of 2,000 small entries finished after ${flushMs} ms, with ${(outputBytesAtFlush / 1048576).toFixed(0)} MiB of the merge written; order ${order.join(',')}`);
      assert.equal(outcome.outputs[0]?.entryCount, tables * perTable);
      assert.ok(
        outputBytesAtFlush < finalBytes / 2,
        `the flush waited behind the merge: it finished only when the merge had written ${outputBytesAtFlush} of ${finalBytes} bytes (order: ${order.join(' then ')}). ` +
          'The worker yields every 4,096 entries regardless of their size, so a merge of fewer, larger entries never lets a flush in.',
      );
    } finally {
      await thread.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
