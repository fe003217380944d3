/**
 * Compaction merges in the worker thread (option compactionThread, default with node:fs): same
 * results as main-thread merges, errors keep their codes across the thread boundary, and a worker
 * that dies mid-merge costs one retried compaction, after which merges run on the main thread.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type BatchOperation, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { NodeFs } from '../../src/env/node-fs.js';
import { CompactionThread, WORKER_IDLE_RETIRE_MS } from '../../src/compaction/compaction-thread.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const small: OpenOptions = {
  memtableSize: 32 * 1024,
  blockSize: 1024,
  levelBaseSize: 128 * 1024,
  levelMultiplier: 4,
  targetFileSize: 48 * 1024,
  sync: false,
};

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-cthread-'));
}

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

/** Random puts and deletes (with a snapshot held part of the time); returns the expected contents. */
async function workload(db: Database, seed: number): Promise<Map<string, string>> {
  const rng = new Random(seed);
  const model = new Map<string, string>();
  let snap: ReturnType<Database['snapshot']> | null = null;
  for (let b = 0; b < 120; b++) {
    const ops: BatchOperation[] = [];
    for (let j = 0; j < 100; j++) {
      const k = key(rng.nextInt(4000));
      if (rng.nextInt(5) === 0) {
        ops.push({ type: 'del', key: k });
        model.delete(k);
      } else {
        const v = `${b}.${j}.${'v'.repeat(rng.nextInt(80))}`;
        ops.push({ type: 'put', key: k, value: v });
        model.set(k, v);
      }
    }
    await db.batch(ops);
    if (b === 40) snap = db.snapshot();
    if (b === 80) snap?.release();
  }
  return model;
}

/** A worker thread whose worker is terminated right after it starts (so during its first job). */
/**
 * A thread whose worker is killed as soon as it says it is ready, with the job already posted to
 * it: a death mid-job. (Killed before that, it never ran the job, which then runs on the main
 * thread at once: the cannot-start test below.)
 */
function dyingThread(name: 'compaction' | 'flush'): CompactionThread {
  const thread = new CompactionThread(name);
  const t = thread as unknown as { start(): { terminate(): Promise<number>; once(e: 'message', f: () => void): void } };
  const start = t.start.bind(t);
  t.start = () => {
    const w = start();
    w.once('message', () => void w.terminate());
    return w;
  };
  return thread;
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

test('worker and main-thread compaction give the same database', async () => {
  await withSeed('compaction thread equivalence', async (seed) => {
    const results: Map<string, string>[] = [];
    for (const compactionThread of ['worker', 'main'] as const) {
      const dir = tempDir();
      try {
        const db = await open(dir, { ...small, compactionThread });
        const model = await workload(db, seed);
        await db.idle();
        const s = db.stats();
        assert.equal(s.compactions.thread, compactionThread);
        assert.equal(s.flushes.thread, compactionThread, 'flushes build their tables on the same kind of thread');
        assert.ok(s.flushes.count > 5, `${compactionThread}: ${s.flushes.count} flushes`);
        assert.ok(s.compactions.count - s.compactions.trivialMoves > 0, `${compactionThread}: merges ran`);
        assert.equal(s.backgroundError, null);
        assert.deepEqual(await contents(db), model, `${compactionThread}: contents match the model`);
        await db.compactRange();
        assert.deepEqual(await contents(db), model, `${compactionThread}: after compactRange`);
        await db.close();
        // close() waited for the background deletions: only live tables are left.
        const tablesOnDisk = fs.readdirSync(dir).filter((f) => f.endsWith('.sst')).length;
        const again = await open(dir, { ...small, readOnly: true });
        assert.equal(tablesOnDisk, again.stats().levels.reduce((n, l) => n + l.files, 0), `${compactionThread}: no obsolete table left`);
        assert.deepEqual(await contents(again), model, `${compactionThread}: after reopen`);
        await again.close();
        results.push(model);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.deepEqual(results[0], results[1]);
  });
});

test('a corrupt input table fails a worker merge with CORRUPTION, not a crash', async () => {
  const dir = tempDir();
  try {
    const db = await open(dir, { ...small, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    for (let b = 0; b < 4; b++) {
      await db.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: key(i * 4 + b), value: 'x'.repeat(60) })));
      await db.compactRange(key(0), key(0)); // flushes the memtable to L0 (and compacts just key 0's range)
    }
    await db.close();
    // Flip a byte inside the first data block of the largest table.
    const tables = fs.readdirSync(dir).filter((f) => f.endsWith('.sst'));
    assert.ok(tables.length > 0);
    const victim = tables.map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0] as string;
    const bytes = fs.readFileSync(victim);
    bytes[100] = (bytes[100] as number) ^ 0xff;
    fs.writeFileSync(victim, bytes);
    const db2 = await open(dir, small);
    await assert.rejects(db2.compactRange(), (e: unknown) => (e as { code?: string }).code === 'CORRUPTION');
    assert.equal(db2.stats().backgroundError?.mode, 'failed');
    await db2.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker that dies mid-merge costs one retry; merges then run on the main thread', async () => {
  const dir = tempDir();
  try {
    const db = await open(dir, { ...small, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    const model = new Map<string, string>();
    for (let b = 0; b < 6; b++) {
      const ops = Array.from({ length: 400 }, (_, i) => ({ type: 'put' as const, key: key(i * 6 + b), value: `${b}`.repeat(50) }));
      for (const op of ops) model.set(op.key, op.value);
      await db.batch(ops);
      await db.compactRange(key(999_999), key(999_999)); // flush only
    }
    // Kill the worker as soon as it receives the merge.
    (db as unknown as { compactionThread: CompactionThread | null }).compactionThread = dyingThread('compaction');
    await assert.rejects(db.compactRange(), (e: unknown) => (e as { code?: string }).code === 'IO_ERROR');
    assert.equal(db.stats().compactions.thread, 'main');
    assert.equal(db.stats().backgroundError?.mode, 'retrying');
    await db.resume();
    await db.compactRange();
    await db.idle();
    assert.equal(db.stats().backgroundError, null);
    assert.deepEqual(await contents(db), model);
    assert.equal(db.stats().levels[0]?.files, 0);
    await db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a flush worker that dies mid-flush costs one retry; flushes then run on the main thread', async () => {
  const dir = tempDir();
  try {
    const db = await open(dir, small);
    const model = new Map<string, string>();
    const write = async (b: number): Promise<void> => {
      const ops = Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, key: key(i * 7 + b), value: `${b}`.repeat(40) }));
      for (const op of ops) model.set(op.key, op.value);
      await db.batch(ops);
    };
    await write(0);
    await db.compactRange(key(999_999), key(999_999)); // a flush through the (healthy) worker
    assert.equal(db.stats().flushes.thread, 'worker');
    const flushesBefore = db.stats().flushes.count;
    // Kill the flush worker as soon as it receives its next job.
    (db as unknown as { flushThread: CompactionThread | null }).flushThread = dyingThread('flush');
    await write(1);
    await assert.rejects(db.compactRange(key(999_999), key(999_999)), (e: unknown) => (e as { code?: string }).code === 'IO_ERROR');
    assert.equal(db.stats().flushes.thread, 'main');
    assert.equal(db.stats().backgroundError?.mode, 'retrying');
    await db.resume(); // the retry flushes on the main thread
    assert.equal(db.stats().backgroundError, null);
    assert.ok(db.stats().flushes.count > flushesBefore);
    await write(2);
    await db.idle();
    assert.deepEqual(await contents(db), model);
    await db.close();
    const again = await open(dir, small);
    assert.deepEqual(await contents(again), model, 'after reopen');
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("compactionThread 'worker' needs node:fs", async () => {
  await assert.rejects(open('/db', { fs: new MemFs(), compactionThread: 'worker' }), (e: unknown) => (e as { code?: string }).code === 'INVALID_ARGUMENT');
  await assert.rejects(open('/db', { fs: new MemFs(), compactionThread: 'elsewhere' as 'main' }), (e: unknown) => (e as { code?: string }).code === 'INVALID_ARGUMENT');
  const db = await open('/db', { fs: new MemFs() });
  assert.equal(db.stats().compactions.thread, 'main');
  await db.close();
  // A NodeFs subclass (instrumentation, faults) must see every operation: merges stay on this thread.
  class CountingFs extends NodeFs {}
  const dir = tempDir();
  try {
    const db2 = await open(dir, { fs: new CountingFs() });
    assert.equal(db2.stats().compactions.thread, 'main');
    await db2.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an idle worker is retired after WORKER_IDLE_RETIRE_MS and started again by the next job', async () => {
  const dir = tempDir();
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const db = await open(dir, { ...small, compactionThread: 'worker' });
    const holder = db as unknown as { flushThread: { worker: unknown } | null };
    const model = new Map<string, string>();
    const write = async (b: number): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        const k = key(b * 1000 + i);
        model.set(k, `${b}`.repeat(900));
        await db.put(k, model.get(k) as string);
      }
      await db.compactRange(key(9_999_999), key(9_999_999)); // flush only
    };
    await write(1);
    assert.notEqual(holder.flushThread?.worker ?? null, null, 'the flush ran in a worker, which is still there');
    mock.timers.tick(WORKER_IDLE_RETIRE_MS - 1);
    assert.notEqual(holder.flushThread?.worker ?? null, null, 'not retired early');
    mock.timers.tick(1);
    assert.equal(holder.flushThread?.worker ?? null, null, 'retired once idle');
    await write(2);
    assert.notEqual(holder.flushThread?.worker ?? null, null, 'the next flush started a new worker');
    const s = db.stats();
    assert.equal(s.flushes.thread, 'worker', 'a retirement is not a failure');
    assert.equal(s.backgroundError, null);
    assert.deepEqual(await contents(db), model);
    await db.close();
  } finally {
    mock.timers.reset();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker that cannot start: the same flush or merge runs on the main thread, no write fails', async () => {
  const dir = tempDir();
  try {
    const db = await open(dir, { ...small, compactionThread: 'worker', memtableSize: 2 * 1024 * 1024, l0CompactionTrigger: 2 });
    const failing = (): never => {
      throw new Error('no more threads');
    };
    const holder = db as unknown as { flushThread: CompactionThread | null; compactionThread: CompactionThread | null };
    holder.flushThread = new CompactionThread('flush', failing);
    holder.compactionThread = new CompactionThread('compaction', failing);
    const model = new Map<string, string>();
    for (let i = 0; i < 8000; i++) {
      const k = key(i % 2000);
      model.set(k, `${i}`.padEnd(1000, '.'));
      await db.put(k, model.get(k) as string); // must not reject
    }
    await db.idle();
    const s = db.stats();
    assert.ok(s.flushes.count >= 2, `flushes: ${s.flushes.count}`);
    assert.ok(s.compactions.count >= 1, `compactions: ${s.compactions.count}`);
    assert.equal(s.flushes.thread, 'main');
    assert.equal(s.compactions.thread, 'main');
    assert.equal(s.backgroundError, null);
    assert.deepEqual(await contents(db), model);
    await db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
