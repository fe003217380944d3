/**
 * One background worker per database serves flushes and compaction merges (CompactionThread with
 * a job id per request): a flush posted while a merge runs finishes first, a worker that dies with
 * both in flight fails both (and later jobs run on the main thread), and a database never has more
 * than one worker alive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { MergeSpec } from '../../src/compaction/merge-tables.js';
import type { FlushSpec } from '../../src/db/flush-table.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_VALUE } from '../../src/base/internal-key.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const WORKER_FILE = new URL('../../src/compaction/compaction-worker.js', import.meta.url);

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-shared-thread-'));
}

function key(i: number): string {
  return `k${String(i).padStart(8, '0')}`;
}

type Internals = { sharedThread: CompactionThread | null; flushThread: CompactionThread | null; compactionThread: CompactionThread | null };

/** A worker factory that counts the workers alive at once. */
function countingFactory(): { make: () => Worker; started: () => number; maxAlive: () => number } {
  let started = 0;
  let alive = 0;
  let maxAlive = 0;
  return {
    make: () => {
      const w = new Worker(WORKER_FILE);
      started++;
      alive++;
      maxAlive = Math.max(maxAlive, alive);
      w.once('exit', () => alive--);
      return w;
    },
    started: () => started,
    maxAlive: () => maxAlive,
  };
}

test('flushes and merges share one worker: at most one alive, both kinds ran there, same contents', async () => {
  await withSeed('shared background thread', async (seed) => {
    const dir = tempDir();
    const opts: OpenOptions = { memtableSize: 64 * 1024, blockSize: 1024, levelBaseSize: 256 * 1024, targetFileSize: 64 * 1024, sync: false };
    try {
      const db = await open(dir, opts);
      const counting = countingFactory();
      const h = db as unknown as Internals;
      assert.equal(h.sharedThread, null, 'no thread before the first job');
      h.sharedThread = new CompactionThread('background', counting.make);
      const rng = new Random(seed);
      const model = new Map<string, string>();
      for (let b = 0; b < 60; b++) {
        const ops = [];
        for (let i = 0; i < 200; i++) {
          const k = key(rng.nextInt(20_000));
          const v = `${b}:${rng.nextInt(1e9)}`.padEnd(80, '.');
          model.set(k, v);
          ops.push({ type: 'put' as const, key: k, value: v });
        }
        await db.batch(ops);
      }
      await db.idle();
      const s = db.stats();
      assert.ok(s.flushes.count >= 10, `flushes ${s.flushes.count}`);
      assert.ok(s.compactions.count - s.compactions.trivialMoves >= 1, `merges ${s.compactions.count - s.compactions.trivialMoves}`);
      assert.equal(s.flushes.thread, 'worker');
      assert.equal(s.compactions.thread, 'worker');
      assert.equal(h.flushThread, h.sharedThread, 'flushes use the shared thread');
      assert.equal(h.compactionThread, h.sharedThread, 'merges use the shared thread');
      assert.ok(counting.started() >= 1);
      assert.equal(counting.maxAlive(), 1, 'never more than one worker alive');
      const got = new Map<string, string>();
      for await (const [k, v] of db.iterator()) got.set(k.toString(), v.toString());
      assert.deepEqual(got, model);
      await db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Writes L0 tables of `tables` × `perTable` entries (no compaction) and closes; returns their numbers and sizes. */
async function makeInputs(dir: string, tables: number, perTable: number): Promise<{ number: number; sizeBytes: number }[]> {
  const db: Database = await open(dir, {
    memtableSize: 64 * 1024 * 1024,
    l0CompactionTrigger: 100,
    l0SlowdownTrigger: 100,
    l0StopTrigger: 100,
    compactionThread: 'main',
    sync: false,
  });
  const value = 'v'.repeat(60);
  for (let t = 0; t < tables; t++) {
    for (let b = 0; b < perTable; b += 1000) {
      await db.batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: key((b + i) * tables + t), value })));
    }
    await db.compactRange(key(999_999_999), key(999_999_999)); // flush only
  }
  await db.close();
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.statSync(path.join(dir, n)).size }));
}

function mergeSpec(dir: string, inputs: { number: number; sizeBytes: number }[], targetFileBytes = 2 * 1024 * 1024): MergeSpec {
  return {
    dir,
    inputs,
    firstOutputNumber: 100_000,
    outputNumberCount: 1000,
    smallestSnapshot: Number.MAX_SAFE_INTEGER,
    deeperLevels: [],
    blockSizeBytes: 2048,
    bloomBitsPerKey: 10,
    compression: 'lz',
    targetFileBytes,
  };
}

function flushSpec(dir: string, mem: MemTable, fileNumber: number): FlushSpec {
  return { dir, fileNumber, blockSizeBytes: 2048, bloomBitsPerKey: 10, compression: 'lz', sorted: mem.sortedEntries() };
}

function smallMemTable(entries: number): MemTable {
  const mem = new MemTable(1, entries * 64);
  for (let i = 0; i < entries; i++) mem.add(i + 1, KIND_VALUE, Buffer.from(key(i)), Buffer.from(`flushed ${i}`));
  return mem;
}

test('a flush posted while a merge runs in the same worker finishes first, while the merge is mid-table', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const thread = new CompactionThread();
  try {
    const inputs = await makeInputs(dir, 4, 60_000);
    const order: string[] = [];
    // One output table: a merge that never yielded would let the flush in only at that table's
    // fsync, with the table complete.
    const merged = thread.run(mergeSpec(dir, inputs, 1024 * 1024 * 1024)).then((o) => {
      order.push('merge');
      return o;
    });
    let outputBytesAtFlush = -1;
    const output = path.join(dir, '100000.sst');
    const flushed = thread.flush(flushSpec(dir, smallMemTable(2000), 90_000)).then((m) => {
      order.push('flush');
      outputBytesAtFlush = fs.existsSync(output) ? fs.statSync(output).size : 0;
      return m;
    });
    const [outcome, meta] = await Promise.all([merged, flushed]);
    assert.deepEqual(order, ['flush', 'merge'], 'the flush waited for the whole merge');
    assert.equal(outcome.outputs.length, 1);
    assert.equal(outcome.outputs[0]?.entryCount, 240_000);
    const finalBytes = outcome.outputs[0]?.sizeBytes ?? 0;
    assert.ok(outputBytesAtFlush < finalBytes / 2, `the merge had written ${outputBytesAtFlush} of ${finalBytes} bytes when the flush finished`);
    assert.equal(meta.entryCount, 2000);
    assert.equal(thread.broken, false);
  } finally {
    await thread.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker that dies with a merge and a flush in flight fails both; later jobs run on the main thread', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  let worker: Worker | null = null;
  const thread = new CompactionThread('background', () => (worker = new Worker(WORKER_FILE)));
  try {
    const inputs = await makeInputs(dir, 4, 60_000);
    thread.prestart();
    assert.ok(worker !== null, 'prestart started the worker');
    const w: Worker = worker;
    const keepAlive = setInterval(() => undefined, 1000); // the idle worker is unref'd
    await new Promise<void>((resolve) => w.once('message', () => resolve())); // WorkerReady
    clearInterval(keepAlive);
    const merged = thread.run(mergeSpec(dir, inputs));
    const flushed = thread.flush(flushSpec(dir, smallMemTable(100_000), 90_000));
    const outcomes = Promise.allSettled([merged, flushed]);
    await w.terminate();
    for (const r of await outcomes) {
      assert.equal(r.status, 'rejected');
      assert.equal((r as PromiseRejectedResult).reason?.code, 'IO_ERROR');
    }
    assert.equal(thread.broken, true);
    // Both jobs had started: neither is a start failure that orHere would rerun here.
    let ranHere = false;
    await assert.rejects(
      thread.orHere(
        () => thread.run(mergeSpec(dir, inputs)),
        async () => {
          ranHere = true;
          throw Object.assign(new Error('ran here'), { code: 'HERE' });
        },
      ),
      (e: unknown) => (e as { code?: string }).code === 'HERE',
    );
    assert.equal(ranHere, true, 'a broken thread runs later jobs on the caller thread');
  } finally {
    await thread.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
