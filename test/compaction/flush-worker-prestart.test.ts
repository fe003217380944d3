/**
 * The flush worker is started while the memtable is half full (Database.warmFlushWorker), so the
 * flush does not wait for its start-up. It must then behave like any idle worker: retire when
 * idle, never keep the process alive, and not be started again for the same memtable.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from '../../src/index.js';
import { WORKER_IDLE_RETIRE_MS } from '../../src/compaction/compaction-thread.js';

const MIB = 1024 * 1024;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-prestart-'));
}

const key = (i: number): string => `k${String(i).padStart(7, '0')}`;
const value = (i: number): string => `${i}:`.padEnd(4000, 'v');

test('the flush worker starts at half a memtable, retires when idle, and is not restarted for the same memtable', async () => {
  const dir = tempDir();
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const db = await open(dir, { memtableSize: 4 * MIB, sync: false });
    const holder = db as unknown as { flushThread: { worker: unknown } | null };
    let i = 0;
    while (db.stats().memtable.bytes < 1.5 * MIB) await db.put(key(i), value(i++));
    assert.equal(holder.flushThread?.worker ?? null, null, 'not started below half');
    while (db.stats().memtable.bytes < 2.2 * MIB) await db.put(key(i), value(i++));
    assert.equal(db.stats().flushes.count, 0);
    assert.notEqual(holder.flushThread?.worker ?? null, null, 'started at half, before any flush');
    mock.timers.tick(WORKER_IDLE_RETIRE_MS);
    assert.equal(holder.flushThread?.worker ?? null, null, 'an idle prestarted worker retires');
    await db.put(key(i), value(i++));
    assert.equal(holder.flushThread?.worker ?? null, null, 'not started again for the same memtable');
    while (db.stats().flushes.count === 0) await db.put(key(i), value(i++));
    await db.compactRange(key(99_999_999), key(99_999_999)); // waits for the flush
    assert.equal(db.stats().flushes.thread, 'worker');
    assert.equal(db.stats().backgroundError, null);
    for (const j of [0, 1, i >> 1, i - 1]) assert.equal((await db.get(key(j)))?.toString(), value(j));
    await db.close();
  } finally {
    mock.timers.reset();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no prestart when a full memtable would be flushed on the main thread anyway', async () => {
  const dir = tempDir();
  try {
    const db = await open(dir, { memtableSize: 256 * 1024, sync: false });
    const holder = db as unknown as { flushThread: { worker: unknown } | null };
    for (let i = 0; i < 50; i++) await db.put(key(i), value(i));
    assert.equal(db.stats().flushes.count, 0);
    assert.equal(holder.flushThread, null);
    await db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a prestarted flush worker does not keep the process alive (no close)', async () => {
  const dir = tempDir();
  try {
    const lib = new URL('../../src/index.js', import.meta.url).href;
    const thread = new URL('../../src/compaction/compaction-thread.js', import.meta.url).href;
    // Idle workers are never retired here: only being unref'd lets the child exit (a ref'd one
    // would hold it until the 30 s timeout below fails the test).
    const script = `
      const { CompactionThread } = await import(${JSON.stringify(thread)});
      CompactionThread.prototype.scheduleRetire = () => undefined;
      const { open } = await import(${JSON.stringify(lib)});
      const db = await open(${JSON.stringify(dir)}, { memtableSize: 4 * 1024 * 1024, sync: false });
      for (let i = 0; i < 600; i++) await db.put('k' + i, 'v'.repeat(4000));
      console.log(JSON.stringify({ memtable: db.stats().memtable.bytes, flushes: db.stats().flushes.count }));
    `;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`child did not exit cleanly: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const r = JSON.parse(out.trim()) as { memtable: number; flushes: number };
    assert.ok(r.memtable > 2 * MIB && r.flushes === 0, `half full, no flush yet: ${out}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
