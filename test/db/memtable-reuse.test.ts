/**
 * A flushed memtable hands its arena, rows and filter to the next memtable (MemTable.retire), but
 * only once no iterator reads it. These tests keep iterators open across many flushes, whose later
 * memtables would overwrite the old buffers if they were handed on too early, and check every
 * entry the iterators return against the state when they were opened; point reads, which copy,
 * are checked against a model throughout. Main-thread flushes (MemFs) and worker flushes (node:fs,
 * where the worker reads the shared buffers in place).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type LightningIterator, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

interface OpenScan {
  it: LightningIterator;
  want: [string, string][];
  /** Entries read so far (the scan advances a little after every batch). */
  got: [string, string][];
}

function sortedEntries(model: Map<string, string>): [string, string][] {
  return [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function step(scan: OpenScan, n: number): boolean {
  for (let i = 0; i < n; i++) {
    const r = scan.it.nextSync();
    if (r === undefined) return false;
    scan.got.push([r[0].toString(), r[1].toString()]);
  }
  return true;
}

async function churn(db: Database, seed: number, label: string, valueMax: number): Promise<void> {
  const rng = new Random(seed);
  const model = new Map<string, string>();
  const scans: OpenScan[] = [];
  const flushesSeen = db.stats().flushes.count;
  for (let b = 0; b < 120; b++) {
    const ops = [];
    for (let i = 0; i < 40; i++) {
      const k = `k${String(rng.nextInt(3000)).padStart(5, '0')}`;
      const v = `${b}.${i}.${'v'.repeat(rng.nextInt(valueMax))}`;
      ops.push({ type: 'put' as const, key: k, value: v });
      model.set(k, v);
    }
    await db.batch(ops);
    // Every few batches a new scan starts; open scans advance a little, so each spans many flushes.
    if (b % 7 === 0) scans.push({ it: db.iterator(), want: sortedEntries(model), got: [] });
    for (const s of scans) step(s, 3);
    const probe = `k${String(rng.nextInt(3000)).padStart(5, '0')}`;
    assert.equal(db.getSync(probe)?.toString(), model.get(probe), `${label}: get ${probe} after batch ${b}`);
  }
  assert.ok(db.stats().flushes.count - flushesSeen >= 10, `${label}: only ${db.stats().flushes.count - flushesSeen} flushes`);
  await db.idle();
  for (const [i, s] of scans.entries()) {
    while (step(s, 100));
    s.it.close();
    assert.equal(s.got.length, s.want.length, `${label}: scan ${i} length`);
    for (let j = 0; j < s.want.length; j++) {
      const g = s.got[j] as [string, string];
      const w = s.want[j] as [string, string];
      if (g[0] !== w[0] || g[1] !== w[1]) assert.fail(`${label}: scan ${i} entry ${j}: got ${g[0]}=${g[1].slice(0, 20)}, want ${w[0]}=${w[1].slice(0, 20)}`);
    }
  }
}

test('iterators open across many flushes read their memtables intact (main-thread flushes)', { timeout: 120_000 }, async () => {
  await withSeed('memtable reuse, MemFs', async (seed) => {
    const opts: OpenOptions = { fs: new MemFs(), memtableSize: 16 * 1024, blockSize: 512, sync: false, seed };
    const db = await open('/db', opts);
    try {
      await churn(db, seed, `SEED=${seed} MemFs`, 120);
    } finally {
      await db.close();
    }
  });
});

test('iterators open across many flushes read their memtables intact (worker flushes)', { timeout: 120_000 }, async () => {
  await withSeed('memtable reuse, worker', async (seed) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-memtable-reuse-'));
    // Large enough that flushes go to the worker (small ones are built on the main thread).
    const db = await open(dir, { memtableSize: 256 * 1024, blockSize: 1024, sync: false, compactionThread: 'worker', seed });
    try {
      await churn(db, seed, `SEED=${seed} worker`, 1600);
      assert.equal(db.stats().flushes.thread, 'worker');
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
