/**
 * Review (session 9): buffers kept for reuse across flushes must not stay sized for one outlier.
 * Then it was the flush export (Database.spareExport); since session 12 it is the last flushed
 * memtable's arena, rows and filter (Database.spareMemTable), handed to the next memtable. One
 * unusually large memtable (a single batch far above memtableSize) must not leave buffers of its
 * size pinned for the rest of the session, as the rest of the engine avoids (TableIterator's block
 * copy, the WAL group buffer, the block-cache slots). This test expects the spare to shrink back
 * to the order of memtableSize once normal-sized flushes follow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { MemTableStorage } from '../../src/memtable/memtable.js';

function spareBytes(db: Database): number {
  const s = (db as unknown as { spareMemTable: MemTableStorage | null }).spareMemTable;
  return s === null ? 0 : (s.list.arena?.byteLength ?? 0) + (s.list.rows?.byteLength ?? 0) + s.filter.byteLength;
}

async function outlierThenNormal(db: Database): Promise<number> {
  // one outlier: a single 24 MiB batch (the memtable takes it whole, then flushes it)
  await db.batch([
    { type: 'put', key: 'big-a', value: Buffer.alloc(12 * 1024 * 1024, 1) },
    { type: 'put', key: 'big-b', value: Buffer.alloc(12 * 1024 * 1024, 2) },
  ]);
  await db.put('trigger', 'x'); // rotates (and flushes) the oversized memtable
  await db.idle();
  // then a long run of ordinary flushes
  for (let b = 0; b < 40; b++) {
    const ops = [];
    for (let i = 0; i < 100; i++) ops.push({ type: 'put' as const, key: `k${b}-${i}`, value: 'v'.repeat(600) });
    await db.batch(ops);
  }
  await db.idle();
  assert.ok(db.stats().flushes.count >= 20, `flushes: ${db.stats().flushes.count}`);
  return spareBytes(db);
}

test('an outlier memtable does not pin its export for the rest of the session (main-thread flushes)', async () => {
  const memtableSize = 64 * 1024;
  const opts: OpenOptions = { fs: new MemFs(), memtableSize, sync: false };
  const db = await open('/db', opts);
  try {
    const kept = await outlierThenNormal(db);
    assert.ok(kept <= 16 * memtableSize, `after 40 ordinary flushes the spare memtable buffers still hold ${kept} bytes (memtableSize ${memtableSize})`);
  } finally {
    await db.close();
  }
});

test('an outlier memtable does not pin its export for the rest of the session (worker flushes)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-spare-'));
  const memtableSize = 64 * 1024;
  const db = await open(dir, { memtableSize, sync: false, compactionThread: 'worker' });
  try {
    const kept = await outlierThenNormal(db);
    assert.equal(db.stats().flushes.thread, 'worker');
    assert.ok(kept <= 16 * memtableSize, `after 40 ordinary flushes the spare memtable buffers still hold ${kept} bytes (memtableSize ${memtableSize})`);
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
