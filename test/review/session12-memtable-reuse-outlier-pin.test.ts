/**
 * Review (session 12): a flushed memtable's arena, rows and filter go to Database.spareMemTable
 * and wait there for the NEXT rotation (newMemTable), where SkipList's constructor drops an arena
 * or rows larger than 2 x arenaBytes. The size check happens only at that next rotation, so the
 * buffers of one outsized memtable (a single batch far above memtableSize) stay pinned from its
 * flush until the next memtable rotation -- in a read-mostly or idle database, for the rest of the
 * session. The export this replaced was checked at flush time (Database.flushImmutable's `keep`)
 * and dropped at once.
 *
 * The session-9 test (session9-spare-export-retention) only checks the state after 40 further
 * ordinary flushes, which hides this. Here: outlier, flush, idle -> the spare must already be of
 * the order of memtableSize. Fails at 089f28a (~25 MB kept); passes since f932a8f (release()
 * keeps only arrays worth reusing).
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

const MEMTABLE = 64 * 1024;
/** Generous: an arena and rows of 2 x arenaBytes each, plus the filter. */
const BOUND = 8 * MEMTABLE;

async function outlierThenIdle(db: Database): Promise<number> {
  await db.batch([
    { type: 'put', key: 'big-a', value: Buffer.alloc(12 * 1024 * 1024, 1) },
    { type: 'put', key: 'big-b', value: Buffer.alloc(12 * 1024 * 1024, 2) },
  ]);
  await db.put('trigger', 'x'); // rotates the outsized memtable; its flush starts
  await db.idle(); // flushed: its buffers are now the spare
  assert.equal(db.stats().flushes.count, 1);
  // The database stays idle (or serves reads only): no rotation comes to drop the spare.
  assert.equal((await db.get('big-a'))?.length, 12 * 1024 * 1024);
  return spareBytes(db);
}

test('session12: an outsized memtable does not stay pinned as the spare after its flush (main-thread flush)', async () => {
  const opts: OpenOptions = { fs: new MemFs(), memtableSize: MEMTABLE, sync: false };
  const db = await open('/db', opts);
  try {
    const kept = await outlierThenIdle(db);
    assert.ok(kept <= BOUND, `after the outlier's flush the idle database keeps ${kept} bytes of spare memtable buffers (memtableSize ${MEMTABLE}, bound ${BOUND})`);
  } finally {
    await db.close();
  }
});

test('session12: an outsized memtable does not stay pinned as the spare after its flush (worker flush)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-s12-pin-'));
  const db = await open(dir, { memtableSize: MEMTABLE, sync: false, compactionThread: 'worker' });
  try {
    const kept = await outlierThenIdle(db);
    assert.equal(db.stats().flushes.thread, 'worker');
    assert.ok(kept <= BOUND, `after the outlier's flush the idle database keeps ${kept} bytes of spare memtable buffers (memtableSize ${MEMTABLE}, bound ${BOUND})`);
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('session12: an outsized memtable read by an open iterator does not become a pinned spare when the iterator closes', async () => {
  const opts: OpenOptions = { fs: new MemFs(), memtableSize: MEMTABLE, sync: false };
  const db = await open('/db', opts);
  try {
    await db.batch([{ type: 'put', key: 'big', value: Buffer.alloc(20 * 1024 * 1024, 7) }]);
    const it = db.iterator();
    await db.put('trigger', 'x');
    await db.idle();
    assert.equal(spareBytes(db), 0, 'the iterator still reads the flushed memtable: nothing handed on yet');
    const first = it.nextSync();
    assert.equal(first?.[0].toString(), 'big');
    assert.equal(first?.[1].length, 20 * 1024 * 1024);
    it.close(); // the deferred retire hands the buffers on now
    const kept = spareBytes(db);
    assert.ok(kept <= BOUND, `after the iterator closed the spare holds ${kept} bytes (memtableSize ${MEMTABLE}, bound ${BOUND})`);
  } finally {
    await db.close();
  }
});
