/**
 * Main-thread flushes and merges run in slices that end after a number of entries or
 * SLICE_BYTES_MAX bytes, whichever comes first: with large values an entry count alone would
 * block the event loop for the whole table. Counted as event-loop turns while the work runs on an
 * in-memory filesystem (its I/O completes without a turn, so every turn is a slice's yield).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { SLICE_BYTES_MAX } from '../../src/util/yield.js';

const VALUE_BYTES = 64 * 1024;
const ENTRIES = 100; // far below any entry-count slice (1,024)

function key(i: number): string {
  return `k${String(i).padStart(6, '0')}`;
}

/** Runs `work` while counting event-loop turns (setImmediate callbacks). */
async function turnsDuring(work: () => Promise<void>): Promise<number> {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    if (!running) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    await work();
  } finally {
    running = false;
  }
  return turns;
}

test('a main-thread flush of large values yields about every SLICE_BYTES_MAX bytes', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 16 * 1024 * 1024, compression: 'none' });
  const value = Buffer.alloc(VALUE_BYTES, 7);
  for (let i = 0; i < ENTRIES; i++) await db.put(key(i), value);
  const beyond = key(999_999);
  // compactRange over a key no table holds: it flushes the memtable and merges nothing.
  const turns = await turnsDuring(() => db.compactRange(beyond, beyond));
  assert.equal(db.stats().flushes.count, 1);
  assert.equal(db.stats().flushes.thread, 'main');
  const slices = Math.floor((ENTRIES * VALUE_BYTES) / SLICE_BYTES_MAX);
  assert.ok(turns >= slices / 2, `the flush of ${ENTRIES} x 64 KiB yielded ${turns} times (expected ~${slices})`);
  await db.close();
});

test('a main-thread merge of large values yields about every SLICE_BYTES_MAX bytes', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 4 * 1024 * 1024, compression: 'none', l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  const value = Buffer.alloc(VALUE_BYTES, 9);
  const beyond = key(999_999);
  for (let t = 0; t < 2; t++) {
    for (let i = 0; i < ENTRIES / 2; i++) await db.put(key(2 * i + t), value);
    await db.compactRange(beyond, beyond); // flush only
  }
  assert.equal(db.stats().levels[0]?.files, 2);
  const turns = await turnsDuring(() => db.compactRange());
  assert.equal(db.stats().levels[0]?.files, 0);
  assert.equal(db.stats().compactions.thread, 'main');
  const slices = Math.floor((ENTRIES * VALUE_BYTES) / SLICE_BYTES_MAX);
  assert.ok(turns >= slices / 2, `the merge of ${ENTRIES} x 64 KiB yielded ${turns} times (expected ~${slices})`);
  for (let i = 0; i < ENTRIES; i++) assert.equal((await db.get(key(i)))?.length, VALUE_BYTES);
  await db.close();
});
