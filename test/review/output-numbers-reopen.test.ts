/**
 * Review regression (found failing, fixed in eab16b3): runCompaction reserves 2 * ceil(inputBytes / targetFileBytes) + inputs + 4
 * output file numbers up front (src/compaction/compaction-job.ts), with inputBytes the inputs' ON-DISK
 * (possibly LZ-compressed) sizes. The outputs can need far more: they are cut on the builder's
 * estimate, which counts the current data block UNCOMPRESSED, and they may be written with other
 * options than the inputs were (compression 'none', a smaller blockSize, more bloom bits, a smaller
 * targetFileSize). The merge then hits `assert(numbersUsed < outputNumberCount)` in
 * merge-tables.ts OutputWriter.openNext: an AssertionError that surfaces as IO_ERROR, is retried
 * three times and leaves the database in the 'failed' background state (writes rejected until
 * reopen) — and the same compaction failed again after every reopen with these options. Now the
 * merge runs again with one number per input entry; these cases must compact cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

function key(i: number): string {
  return `k${String(i).padStart(6, '0')}`;
}

const cases: [string, OpenOptions, OpenOptions][] = [
  ['compression lz -> none', { compression: 'lz' }, { compression: 'none', targetFileSize: 64 * 1024 }],
  ['blockSize 64 KiB -> 64 B', { blockSize: 65536 }, { blockSize: 64, targetFileSize: 4096 }],
  ['bloomBitsPerKey 0 -> 30', { bloomBitsPerKey: 0 }, { bloomBitsPerKey: 30, targetFileSize: 4096 }],
  ['targetFileSize 8 MiB -> 4 KiB (same compression)', {}, { targetFileSize: 4096 }],
];

for (const [name, first, second] of cases) {
  test(`compaction after reopening with other table options: ${name}`, async () => {
    const mem = new MemFs();
    let db = await open('/db', { fs: mem, sync: false, ...first });
    const ops = [];
    for (let i = 0; i < 20_000; i++) ops.push({ type: 'put' as const, key: key(i), value: 'a'.repeat(50) });
    await db.batch(ops);
    await db.compactRange(); // one compressed table at the bottom
    await db.close();
    db = await open('/db', { fs: mem, sync: false, ...second });
    try {
      await db.put(key(0), 'b');
      await db.compactRange(); // rewrites the bottom table with the new options
      assert.equal(db.stats().backgroundError, null);
      assert.equal(db.getSync(key(0))?.toString(), 'b');
      assert.equal(db.getSync(key(19_999))?.toString(), 'a'.repeat(50));
    } finally {
      await db.close().catch(() => {});
    }
  });
}

test('the same through the compaction worker (node:fs)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-numbers-'));
  try {
    let db = await open(dir, { sync: false, compression: 'lz', compactionThread: 'worker' });
    const ops = [];
    for (let i = 0; i < 20_000; i++) ops.push({ type: 'put' as const, key: key(i), value: 'a'.repeat(1000) });
    await db.batch(ops);
    await db.compactRange();
    await db.close();
    db = await open(dir, { sync: false, compression: 'none', targetFileSize: 64 * 1024, compactionThread: 'worker' });
    try {
      await db.put(key(0), 'b');
      await db.compactRange();
      assert.equal(db.stats().backgroundError, null);
    } finally {
      await db.close().catch(() => {});
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
