/**
 * Reviewer tests (session 14c) for the flush worker's prestart (Database.warmFlushWorker,
 * CompactionThread.prestart) and the main-thread fallback of a flush or merge whose worker cannot
 * start (CompactionThread's thread factory). Real temp dirs, compactionThread 'worker'.
 * Background errors must never become unhandled rejections.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { CompactionThread, WORKER_IDLE_RETIRE_MS } from '../../src/compaction/compaction-thread.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

const SEED = testSeed();
console.log(`session14c-worker-fallback SEED=${SEED}`);

const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => {
  unhandled.push(e);
});

const MIB = 1024 * 1024;
const WORKER_FILE = new URL('../../src/compaction/compaction-worker.js', import.meta.url);

const BASE: OpenOptions = {
  compactionThread: 'worker',
  memtableSize: 2 * MIB,
  blockSize: 4096,
  levelBaseSize: 8 * MIB,
  targetFileSize: 2 * MIB,
  l0CompactionTrigger: 2,
  sync: false,
};

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev14c-'));
}
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;

interface Holder {
  flushThread: CompactionThread | null;
  compactionThread: CompactionThread | null;
}
interface ThreadInternals {
  worker: Worker | null;
  broken: boolean;
}
const internals = (t: CompactionThread | null): ThreadInternals | null => t as unknown as ThreadInternals | null;

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** Seeded puts and deletes over `keys` keys with ~1 KB values; every write must succeed. */
async function load(db: Database, rng: Random, model: Map<string, string>, n: number, keys: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = key(rng.nextInt(keys));
    if (rng.nextInt(6) === 0) {
      await db.delete(k);
      model.delete(k);
    } else {
      const v = `${tag}.${i}.`.padEnd(800 + rng.nextInt(400), String.fromCharCode(97 + rng.nextInt(26)));
      await db.put(k, v);
      model.set(k, v);
    }
  }
}

async function flushNow(db: Database): Promise<void> {
  await db.compactRange(key(99_999_999), key(99_999_999));
}

function assertNoUnhandled(what: string): void {
  assert.deepEqual(
    unhandled.map((e) => String((e as Error)?.stack ?? e)),
    [],
    `${what}: unhandled rejections`,
  );
}

/** A real compaction worker (as the engine starts one). */
const realWorker = (): Worker => new Worker(WORKER_FILE, { resourceLimits: { maxYoungGenerationSizeMb: 4 } });

test('a factory that always throws: prestart is silent, every flush and merge runs on the main thread, no write fails', async () => {
  const rng = new Random(SEED);
  const dir = tempDir();
  try {
    const db = await open(dir, BASE);
    let calls = 0;
    const failing = (): never => {
      calls++;
      throw new Error('no more threads');
    };
    const h = db as unknown as Holder;
    h.flushThread = new CompactionThread('flush', failing);
    h.compactionThread = new CompactionThread('compaction', failing);
    const model = new Map<string, string>();
    await load(db, rng, model, 7000, 3000, 'a');
    await db.idle();
    const s = db.stats();
    assert.ok(s.flushes.count >= 2, `flushes ${s.flushes.count}`);
    assert.ok(s.compactions.count >= 1, `compactions ${s.compactions.count}`);
    assert.equal(s.flushes.thread, 'main');
    assert.equal(s.compactions.thread, 'main');
    assert.equal(s.backgroundError, null);
    assert.equal(s.backgroundErrors, 0, "no background error was ever reported");
    assert.ok(calls >= 2, `the factory was tried: ${calls}`);
    // Once broken, neither prestart nor a job calls the factory again.
    const callsAfter = calls;
    await load(db, rng, model, 3000, 3000, 'b');
    await db.idle();
    assert.equal(calls, callsAfter, 'a broken thread is not started again');
    assert.deepEqual(await contents(db), model);
    await db.close();
    assertNoUnhandled('always-throwing factory');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a factory that succeeds once, then throws (the worker retired when idle): the next jobs run on the main thread', async () => {
  const rng = new Random(SEED ^ 0x11);
  const dir = tempDir();
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const db = await open(dir, BASE);
    const h = db as unknown as Holder;
    const made = { flush: 0, compaction: 0 };
    const onceThen = (name: 'flush' | 'compaction') => (): Worker => {
      if (made[name]++ === 0) return realWorker();
      throw new Error(`${name}: thread limit`);
    };
    h.flushThread = new CompactionThread('flush', onceThen('flush'));
    h.compactionThread = new CompactionThread('compaction', onceThen('compaction'));
    const model = new Map<string, string>();
    await load(db, rng, model, 2500, 2000, 'a');
    await flushNow(db);
    await db.idle();
    assert.equal(db.stats().flushes.thread, 'worker', 'the first worker ran the flush');
    assert.equal(made.flush, 1);
    // Retire the idle workers, so the next job needs a new thread, which cannot start.
    mock.timers.tick(WORKER_IDLE_RETIRE_MS);
    assert.equal(internals(h.flushThread)?.worker ?? null, null, 'flush worker retired');
    await load(db, rng, model, 6000, 2000, 'b');
    await db.idle();
    const s = db.stats();
    assert.equal(s.flushes.thread, 'main', `the factory was called ${made.flush} times`);
    assert.equal(s.backgroundError, null);
    assert.deepEqual(await contents(db), model);
    await db.close();
    const again = await open(dir, { ...BASE, compactionThread: 'main' });
    assert.deepEqual(await contents(again), model, 'after reopen');
    await again.close();
    assertNoUnhandled('succeeds-once factory');
  } finally {
    mock.timers.reset();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The thread starts, then its code throws at load: the failure arrives as an 'error' event, before any reply. */
const diesAtLoad = (): Worker => new Worker('throw new Error("cannot load the worker code")', { eval: true });

test('a flush worker that starts but fails before its first reply (async start failure) is not a background error', async () => {
  const rng = new Random(SEED ^ 0x22);
  const dir = tempDir();
  try {
    const db = await open(dir, BASE);
    const h = db as unknown as Holder;
    const thread = new CompactionThread('flush', diesAtLoad);
    // No prestart: the flush job itself is the first to start the thread (as after a retirement).
    (thread as unknown as { prestart(): void }).prestart = () => undefined;
    h.flushThread = thread;
    const model = new Map<string, string>();
    const rejected: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const k = key(rng.nextInt(2000));
      const v = `${i}`.padEnd(1000, 'z');
      try {
        await db.put(k, v);
        model.set(k, v);
      } catch (e) {
        rejected.push((e as { code?: string }).code ?? String(e));
        await db.resume().catch(() => undefined);
      }
    }
    await db.resume().catch(() => undefined);
    await db.idle();
    const s = db.stats();
    console.log(`flush worker async start failure: ${rejected.length} writes rejected (${[...new Set(rejected)].join(',')}), backgroundErrors=${s.backgroundErrors}, flushes=${s.flushes.count} on ${s.flushes.thread}`);
    assert.deepEqual(await contents(db), model, 'data intact');
    assertNoUnhandled('flush worker async start failure');
    assert.equal(s.flushes.thread, 'main', 'the failed worker is not used again');
    assert.equal(s.backgroundError, null);
    await db.close();
    // The commit's promise: a flush whose worker cannot start runs on the main thread at once.
    assert.equal(s.backgroundErrors, 0, `a flush whose worker never started became a background error (${rejected.length} writes rejected)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('compactRange with a compaction worker that fails before its first reply (async start failure) resolves', async () => {
  const rng = new Random(SEED ^ 0x23);
  const dir = tempDir();
  try {
    const db = await open(dir, { ...BASE, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    const model = new Map<string, string>();
    for (let b = 0; b < 3; b++) {
      await load(db, rng, model, 600, 3000, `b${b}`);
      await flushNow(db);
    }
    (db as unknown as Holder).compactionThread = new CompactionThread('compaction', diesAtLoad);
    const outcome = await db.compactRange().then(
      () => 'ok',
      (e: unknown) => `${(e as { code?: string }).code}: ${(e as Error).message}`,
    );
    await db.resume().catch(() => undefined);
    await db.compactRange();
    assert.deepEqual(await contents(db), model, 'data intact');
    assert.equal(db.stats().compactions.thread, 'main');
    await db.close();
    assertNoUnhandled('compaction worker async start failure');
    assert.equal(outcome, 'ok', 'a merge whose worker never started should run on the main thread, not fail compactRange');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a prestarted worker that fails while idle: the flush it was started for runs on the main thread, no write fails', async () => {
  const rng = new Random(SEED ^ 0x33);
  const dir = tempDir();
  try {
    const db = await open(dir, BASE);
    const h = db as unknown as Holder;
    let started: Worker | null = null;
    h.flushThread = new CompactionThread('flush', () => (started = new Worker('throw new Error("boom at load")', { eval: true })));
    const model = new Map<string, string>();
    // Fill past half a memtable: the worker is prestarted...
    while (db.stats().memtable.bytes < 1.1 * MIB) await load(db, rng, model, 50, 4000, 'a');
    assert.notEqual(started, null, 'prestarted at half a memtable');
    // ...and dies at load, before any job: wait for its exit (an event, not a timer).
    // The worker is unref'd: keep the loop alive meanwhile (a no-op timer, not a wait).
    const keepAlive = setInterval(() => undefined, 1000);
    await new Promise<void>((resolve) => (started as unknown as Worker).once('exit', () => resolve()));
    clearInterval(keepAlive);
    assert.equal(internals(h.flushThread)?.broken, true, 'a worker failing while idle marks the thread broken');
    await load(db, rng, model, 3000, 4000, 'b'); // must not reject
    await db.idle();
    assert.equal(db.stats().flushes.thread, 'main');
    assert.equal(db.stats().backgroundError, null);
    assert.deepEqual(await contents(db), model);
    await db.close();
    assertNoUnhandled('prestarted worker failing while idle');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('close() while the prestarted worker is starting, or idle, resolves and leaves data intact', async () => {
  const rng = new Random(SEED ^ 0x44);
  for (const when of ['starting', 'idle', 'twice'] as const) {
    const dir = tempDir();
    try {
      const db = await open(dir, BASE);
      const h = db as unknown as Holder;
      let started: Worker | null = null;
      let online = false;
      h.flushThread = new CompactionThread('flush', () => {
        const w = realWorker();
        w.once('online', () => (online = true));
        return (started = w);
      });
      const model = new Map<string, string>();
      while (started === null) await load(db, rng, model, 40, 4000, when);
      const keepAlive = setInterval(() => undefined, 1000); // the worker is unref'd
      if (when === 'idle') await new Promise<void>((resolve) => (online ? resolve() : (started as unknown as Worker).once('online', () => resolve())));
      const exited = new Promise<number>((resolve) => (started as unknown as Worker).once('exit', resolve));
      const closing = when === 'twice' ? Promise.all([db.close(), db.close()]) : db.close();
      await closing;
      await exited; // the prestarted worker is gone after close
      clearInterval(keepAlive);
      const again = await open(dir, { ...BASE, compactionThread: 'main' });
      assert.deepEqual(await contents(again), model, `${when}: after reopen`);
      await again.close();
      assertNoUnhandled(`close while ${when}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('many open/close cycles with a prestarted flush worker (and a flush through it): the child process exits by itself', async () => {
  const dir = tempDir();
  try {
    const lib = new URL('../../src/index.js', import.meta.url).href;
    // No close on the last cycle: an idle prestarted worker must not hold the process either.
    const script = `
      const { open } = await import(${JSON.stringify(lib)});
      const dir = ${JSON.stringify(dir)};
      let unhandled = 0;
      process.on('unhandledRejection', () => { unhandled++; });
      let n = 0;
      for (let cycle = 0; cycle < 12; cycle++) {
        const db = await open(dir, { memtableSize: 2 * 1024 * 1024, sync: false });
        const target = cycle % 3 === 0 ? 1.6 : 1.1;
        while (db.stats().memtable.bytes < target * 1024 * 1024) await db.put('k' + (n++ % 5000), 'v'.repeat(1000));
        if (cycle % 4 === 1) await db.compactRange('zzz', 'zzz');
        if (cycle < 11) await db.close();
      }
      console.log(JSON.stringify({ unhandled }));
    `;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`child did not exit cleanly: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    assert.deepEqual(JSON.parse(out.trim()), { unhandled: 0 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
