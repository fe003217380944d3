/**
 * A full disk: writes fail with DISK_FULL, reads keep working, nothing acknowledged is lost, and
 * once space is freed the database resumes writes by itself (the retry timer) or on resume().
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { open, isLightningError } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';

const BALLAST = '/ballast';

/** A MemFs of `capacity` bytes with a ballast file taking `ballast` of them. */
function fullishFs(capacity: number, ballast: number): MemFs {
  const mem = new MemFs({ capacityBytes: capacity });
  const h = mem.open(BALLAST, 'create');
  h.write(Buffer.alloc(ballast), 0, ballast, 0);
  h.close();
  return mem;
}

/** Writes until the first DISK_FULL; returns the keys acknowledged before it. */
async function fillUntilFull(db: Database): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  for (let i = 0; i < 100_000; i++) {
    const k = `key${String(i).padStart(7, '0')}`;
    const v = `value-${i}-${'z'.repeat(200)}`;
    try {
      await db.put(k, v, { sync: i % 7 === 0 });
      acked.set(k, v);
    } catch (e) {
      assert.ok(isLightningError(e, 'DISK_FULL'), `expected DISK_FULL, got ${String(e)}`);
      return acked;
    }
  }
  assert.fail('the disk never filled');
}

function checkAll(db: Database, acked: Map<string, string>): void {
  for (const [k, v] of acked) assert.equal(db.getSync(k)?.toString(), v, k);
}

test('DISK_FULL: reads work, writes fail fast, resume() after freeing space, nothing lost', async () => {
  const mem = fullishFs(1024 * 1024, 700 * 1024);
  const db = await open('/db', { fs: mem, memtableSize: 32 * 1024, blockSize: 1024 });
  const acked = await fillUntilFull(db);
  assert.ok(acked.size > 100, `wrote ${acked.size} before the disk filled`);
  const s = db.stats();
  assert.equal(s.state, 'degraded');
  assert.equal(s.backgroundError?.code, 'DISK_FULL');
  assert.equal(s.backgroundError?.mode, 'retrying');
  checkAll(db, acked);
  await assert.rejects(db.put('more', 'x'), (e) => isLightningError(e, 'DISK_FULL'));
  await assert.rejects(db.resume(), (e) => isLightningError(e, 'DISK_FULL'), 'still full');
  mem.unlink(BALLAST);
  await db.resume();
  assert.equal(db.stats().state, 'open');
  await db.put('after', 'space returned');
  checkAll(db, acked);
  await db.close();
  const again = await open('/db', { fs: mem });
  checkAll(again, acked);
  assert.equal(again.getSync('after')?.toString(), 'space returned');
  await again.close();
});

test('DISK_FULL: the database resumes by itself once space returns (retry timer)', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const mem = fullishFs(1024 * 1024, 700 * 1024);
    const db = await open('/db', { fs: mem, memtableSize: 32 * 1024, blockSize: 1024 });
    const acked = await fillUntilFull(db);
    mem.unlink(BALLAST);
    const retriesBefore = db.stats().backgroundRetries;
    // Fire the backoff timers; each retry is async work that needs event-loop turns to finish.
    for (let turn = 0; turn < 200 && db.stats().backgroundError !== null; turn++) {
      mock.timers.tick(10_000);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal(db.stats().backgroundError, null, 'resumed without resume()');
    assert.ok(db.stats().backgroundRetries > retriesBefore);
    await db.put('after', 'auto');
    checkAll(db, acked);
    await db.close();
  } finally {
    mock.timers.reset();
  }
});

test('DISK_FULL on a WAL write: the failed log is replaced and retired, nothing lost', async () => {
  const mem = fullishFs(1024 * 1024, 700 * 1024);
  // A memtable larger than the free space: the WAL append is what hits ENOSPC.
  const db = await open('/db', { fs: mem, memtableSize: 4 * 1024 * 1024 });
  const acked = await fillUntilFull(db);
  assert.equal(db.stats().flushes.count, 0, 'no flush happened: the WAL filled the disk');
  const logsBefore = mem.listAll().filter((p) => p.endsWith('.log'));
  mem.unlink(BALLAST);
  await db.resume();
  const logsAfter = mem.listAll().filter((p) => p.endsWith('.log'));
  assert.equal(logsAfter.length, 1);
  assert.ok(!logsBefore.includes(logsAfter[0] as string), 'a new WAL replaced the failed one');
  assert.equal(db.stats().flushes.count, 1, 'the memtable behind the failed WAL was flushed');
  await db.put('after', 'x', { sync: true });
  checkAll(db, acked);
  await db.close();
  // A power cut after reopen-free recovery still has everything acknowledged.
  const again = await open('/db', { fs: mem.crashClone() });
  checkAll(again, acked);
  assert.equal(again.getSync('after')?.toString(), 'x');
  await again.close();
});

test('ENOSPC while a flush or compaction writes a table: writes pause, then everything resumes', async () => {
  const { FaultFs, failWhile } = await import('../../src/env/fault-fs.js');
  const mem = new MemFs();
  const sstWrites = failWhile((op, path) => op === 'write' && path.endsWith('.sst'), 'ENOSPC');
  sstWrites.enabled = false;
  const db = await open('/db', { fs: new FaultFs(mem, sstWrites), memtableSize: 8 * 1024, l0CompactionTrigger: 2, sync: false });
  const acked = new Map<string, string>();
  for (let i = 0; i < 400; i++) {
    await db.put(`k${i % 150}`, `v${i}`);
    acked.set(`k${i % 150}`, `v${i}`);
  }
  await db.idle();
  sstWrites.enabled = true;
  // Keep writing until a flush or compaction hits the full disk.
  let failed = false;
  for (let i = 0; i < 2000 && !failed; i++) {
    try {
      await db.put(`k${i % 150}`, `w${i}`);
      acked.set(`k${i % 150}`, `w${i}`);
    } catch (e) {
      assert.ok(isLightningError(e, 'DISK_FULL'), String(e));
      failed = true;
    }
  }
  assert.ok(failed, 'the full disk surfaced as DISK_FULL');
  assert.equal(db.stats().backgroundError?.mode, 'retrying');
  checkAll(db, acked);
  sstWrites.enabled = false;
  await db.resume();
  await db.put('after', 'ok');
  await db.compactRange();
  checkAll(db, acked);
  assert.equal(db.stats().backgroundError, null);
  await db.close();
  const again = await open('/db', { fs: mem });
  checkAll(again, acked);
  await again.close();
});
