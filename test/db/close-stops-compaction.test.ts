/**
 * close() stops a running compaction merge at its next slice instead of waiting for it to finish
 * (seconds for a large merge): the merge removes its outputs, its inputs stay in the tree, nothing
 * counts as a background error, a compactRange() that was waiting on it rejects with CLOSED, and
 * the reopened database holds every write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, LightningError, type BatchOperation, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { FileHandle, FileSystem } from '../../src/env/file-system.js';
import { wrapOpen } from '../harness/wrap-open.js';
import { yieldToEventLoop } from '../../src/util/yield.js';

const key = (i: number): string => `key${String(i).padStart(8, '0')}`;
const value = (i: number, round: number): string => `${round}:${i}:`.padEnd(100, 'v');

/** `rounds` L0 tables over one key range (each key in every table: a merge must read them all). */
async function fill(db: Database, rounds: number, perRound: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (let b = 0; b < perRound; b += 1000) {
      const ops: BatchOperation[] = [];
      for (let i = b; i < b + 1000; i++) ops.push({ type: 'put', key: key(i), value: value(i, r) });
      await db.batch(ops, { sync: false });
    }
    await db.compactRange(key(99_999_999), key(99_999_999)); // flush only
  }
}

function tableNumbers(names: string[]): number[] {
  return names.filter((n) => n.endsWith('.sst')).map((n) => Number(n.slice(0, -4))).sort((a, b) => a - b);
}

async function expectAll(db: Database, rounds: number, perRound: number): Promise<void> {
  for (let i = 0; i < perRound; i += 997) assert.equal(db.getSync(key(i))?.toString(), value(i, rounds - 1), `key ${i}`);
  let n = 0;
  for (const [k, v] of db.iterator()) {
    assert.equal(v.toString(), value(n, rounds - 1), `entry ${k.toString()}`);
    n++;
  }
  assert.equal(n, perRound);
}

const shape = { l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, memtableSize: 64 * 1024 * 1024 };

test('close() stops a running merge (main thread): outputs removed, inputs kept, no background error, data intact', async () => {
  const ROUNDS = 4;
  const PER = 20_000;
  let tables: number[] = [];
  let outputStarted: (() => void) | null = null;
  const started = new Promise<void>((resolve) => (outputStarted = resolve));
  const mem = new MemFs();
  const fs: FileSystem = wrapOpen(mem, (p: string, h: FileHandle): FileHandle => {
    // The merge's first output: a table numbered above every input.
    const m = /(\d+)\.sst$/.exec(p);
    if (m !== null && tables.length > 0 && Number(m[1]) > (tables[tables.length - 1] as number)) outputStarted?.();
    return h;
  });
  const db = await open('/db', { fs, compactionThread: 'main', ...shape });
  await fill(db, ROUNDS, PER);
  tables = tableNumbers(mem.readdir('/db'));
  assert.equal(db.stats().levels[0]?.files, ROUNDS);
  const compacting = db.compactRange();
  const compactResult = compacting.then(
    () => 'resolved',
    (e: unknown) => (e instanceof LightningError ? e.code : `raw ${String(e)}`),
  );
  await started;
  await db.close();
  assert.equal(await compactResult, 'CLOSED', 'compactRange reports the close');
  const s = db.stats();
  assert.equal(s.backgroundErrors, 0, 'a stopped merge is not a background error');
  assert.equal(s.compactions.count, 0, 'the merge did not complete');
  assert.deepEqual(tableNumbers(mem.readdir('/db')), tables, 'only the inputs are left');
  const again = await open('/db', { fs: mem, compactionThread: 'main', ...shape });
  try {
    assert.equal(again.stats().levels[0]?.files, ROUNDS);
    await expectAll(again, ROUNDS, PER);
    await again.compactRange();
    await expectAll(again, ROUNDS, PER);
  } finally {
    await again.close();
  }
});

test('close() stops a running merge in the worker thread (node:fs)', async () => {
  const ROUNDS = 4;
  const PER = 60_000;
  const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-close-stop-'));
  try {
    const opts = { compactionThread: 'worker' as const, ...shape };
    const db = await open(dir, opts);
    await fill(db, ROUNDS, PER);
    const tables = tableNumbers(nodeFs.readdirSync(dir));
    assert.equal(tables.length, ROUNDS);
    const compactResult = db.compactRange().then(
      () => 'resolved',
      (e: unknown) => (e instanceof LightningError ? e.code : `raw ${String(e)}`),
    );
    // Wait (turning the event loop, no timer) until the worker has created its first output.
    const last = tables[tables.length - 1] as number;
    while (!tableNumbers(nodeFs.readdirSync(dir)).some((n) => n > last)) await yieldToEventLoop();
    await db.close();
    assert.equal(await compactResult, 'CLOSED');
    assert.equal(db.stats().backgroundErrors, 0);
    assert.equal(db.stats().compactions.count, 0, 'the merge did not complete');
    assert.deepEqual(tableNumbers(nodeFs.readdirSync(dir)), tables, 'only the inputs are left');
    const again = await open(dir, opts);
    try {
      await expectAll(again, ROUNDS, PER);
    } finally {
      await again.close();
    }
  } finally {
    nodeFs.rmSync(dir, { recursive: true, force: true });
  }
});
