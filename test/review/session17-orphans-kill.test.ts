/**
 * Reviewer tests (session 17, orphan removal, ae5e049): when a flush or merge job rejects, the
 * main thread removes every table numbered in the job's reserved range (removeTablesInRange, from
 * Database.mergeOn and buildFlushTable). Attacks, all on a real directory with worker threads:
 *   - the shared worker killed once a FLUSH's output file exists (mid-build), writes continuing;
 *   - the worker's death taken for a start failure (its ready message "lost", as when the 'error'
 *     event overtakes it): orHere() reruns the SAME spec (same output numbers) on the main thread
 *     over the dead worker's partial file, for a flush and for a merge;
 *   - random kills of the current shared/aside worker during background flushes, compactions
 *     (split merges included) and compactRange, with writes and reads going on.
 * After every failure: every table the current version names exists on disk (no live table was
 * removed), the contents equal the model; after resume, retry and reopen: every acknowledged write
 * is there and no unreferenced table is left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import type { FlushSpec } from '../../src/db/flush-table.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { tableFileName } from '../../src/base/file-names.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { killWorkerWhenFileExists } from '../harness/kill-worker.js';

const SHAPE: OpenOptions = {
  memtableSize: 64 * 1024,
  blockSize: 1024,
  levelBaseSize: 256 * 1024,
  levelMultiplier: 4,
  targetFileSize: 16 * 1024,
  l0CompactionTrigger: 3,
  l0SlowdownTrigger: 20,
  l0StopTrigger: 40,
  subcompactionMinSize: 24 * 1024,
  compactionThread: 'worker',
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  obsoleteTables: Set<number>;
  asideThread: CompactionThread | null;
  sharedThread: CompactionThread | null;
  compactionThread: CompactionThread | null;
  flushThread: CompactionThread | null;
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
  buildFlushTable: (spec: FlushSpec) => Promise<FileMetadata>;
};

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev17-orph-'));
}

function tablesIn(dir: string): Set<number> {
  return new Set(
    fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.sst'))
      .map((n) => Number(n.slice(0, -4))),
  );
}

/** Every table the current version names is on disk. */
function assertLiveTablesExist(db: Database, dir: string, what: string): void {
  const h = db as unknown as Internals;
  const onDisk = tablesIn(dir);
  const version = h.versions.current();
  for (let level = 0; level < 7; level++) {
    for (const f of version.files(level)) assert.ok(onDisk.has(f.number), `${what}: live table ${f.number} (L${level}) is gone`);
  }
}

function unreferenced(db: Database, dir: string): number[] {
  const h = db as unknown as Internals;
  const live = h.versions.liveFileNumbers();
  return [...tablesIn(dir)].filter((n) => !live.has(n) && !h.obsoleteTables.has(n));
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** Makes `thread` forget, after each ready message, that its worker was ready: a death then looks like a start failure. */
function forgetReady(thread: CompactionThread): void {
  const t = thread as unknown as { start(): { on(e: 'message', f: (m: unknown) => void): void }; ready: boolean };
  const start = t.start.bind(t);
  t.start = () => {
    const w = start();
    w.on('message', (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'ready' in m) t.ready = false;
    });
    return w;
  };
}

async function recoverAndCheck(db: Database, dir: string, model: Map<string, string>, what: string): Promise<void> {
  assertLiveTablesExist(db, dir, `${what} (after the failure)`);
  assert.deepEqual(await contents(db), model, `${what}: contents after the failure`);
  if (db.stats().backgroundError !== null) await db.resume();
  await db.compactRange();
  await db.idle();
  assertLiveTablesExist(db, dir, `${what} (after the retry)`);
  assert.deepEqual(await contents(db), model, `${what}: contents after the retry`);
  await db.close();
  const again = await open(dir, SHAPE);
  assert.deepEqual(await contents(again), model, `${what}: after reopen`);
  assert.deepEqual(unreferenced(again, dir), [], `${what}: unreferenced tables after reopen`);
  await again.close();
}

/** One batch of random writes; the model changes only once the batch is acknowledged. */
async function writeSome(db: Database, rng: Random, model: Map<string, string>, n: number, tag: string): Promise<void> {
  const ops: ({ type: 'del'; key: string } | { type: 'put'; key: string; value: string })[] = [];
  for (let i = 0; i < n; i++) {
    const k = key(rng.nextInt(8000));
    if (rng.nextInt(8) === 0) ops.push({ type: 'del', key: k });
    else ops.push({ type: 'put', key: k, value: `${tag}.${i}.`.padEnd(30 + rng.nextInt(90), 'v') });
  }
  await db.batch(ops);
  for (const o of ops) {
    if (o.type === 'del') model.delete(o.key);
    else model.set(o.key, o.value);
  }
}

test('the shared worker killed mid-flush (its table exists): the partial table goes, the retry flushes under a new number, nothing lost', { timeout: 60_000 }, async (t) => {
  await withSeed('session17-orphans mid-flush', async (seed) => {
    const rng = new Random(seed);
    let failures = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      const dir = tempDir();
      try {
        const db = await open(dir, SHAPE);
        const h = db as unknown as Internals;
        const model = new Map<string, string>();
        await writeSome(db, rng, model, 300, 'pre');
        await db.compactRange();
        const build = h.buildFlushTable;
        let killed: Promise<boolean> | null = null;
        let flushNumber = -1;
        h.buildFlushTable = (spec) => {
          const p = build(spec);
          if (killed === null) {
            flushNumber = spec.fileNumber;
            killed = killWorkerWhenFileExists(() => h.sharedThread, path.join(dir, tableFileName(spec.fileNumber)), p);
          }
          return p;
        };
        // Fill the memtable until it rotates; keep writing while the flush runs.
        for (let i = 0; i < 40 && killed === null; i++) await writeSome(db, rng, model, 100, `a${attempt}.${i}`).catch(() => undefined);
        for (let i = 0; i < 10; i++) await writeSome(db, rng, model, 20, `b${attempt}.${i}`).catch(() => undefined);
        assert.notEqual(killed, null, 'no flush started');
        // False when the job ended before a turn saw its table (a loaded machine): what follows must
        // hold either way.
        await killed;
        // Let the flush settle one way or the other.
        await db.idle().catch(() => undefined);
        // The kill may land as the job ends (the worker's answer already sent): then the flush
        // succeeded and its number is live. Judged by the outcome, not by backgroundError, which
        // a death seen after a success also sets (under load, session 18).
        if (!h.versions.liveFileNumbers().has(flushNumber)) {
          failures++;
          assert.ok(!tablesIn(dir).has(flushNumber), `the dead worker's partial flush table ${flushNumber} was left`);
        }
        h.buildFlushTable = build;
        await recoverAndCheck(db, dir, model, `attempt ${attempt}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    t.diagnostic(`flushes killed mid-build: ${failures} of 4`);
  });
});

test('a death taken for a start failure: orHere reruns the same flush spec over the partial table, nothing lost', { timeout: 60_000 }, async (t) => {
  await withSeed('session17-orphans flush rerun', async (seed) => {
    const rng = new Random(seed);
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const dir = tempDir();
      try {
        const db = await open(dir, SHAPE);
        const h = db as unknown as Internals;
        const thread = new CompactionThread();
        forgetReady(thread);
        h.sharedThread = thread;
        const model = new Map<string, string>();
        const build = h.buildFlushTable;
        let killed: Promise<boolean> | null = null;
        h.buildFlushTable = (spec) => {
          const p = build(spec);
          killed ??= killWorkerWhenFileExists(() => h.sharedThread, path.join(dir, tableFileName(spec.fileNumber)), p);
          return p;
        };
        for (let i = 0; i < 40 && killed === null; i++) await writeSome(db, rng, model, 100, `a${attempt}.${i}`).catch(() => undefined);
        for (let i = 0; i < 10; i++) await writeSome(db, rng, model, 20, `b${attempt}.${i}`).catch(() => undefined);
        assert.notEqual(killed, null, 'no flush started');
        // False when the job ended before a turn saw its table (a loaded machine): what follows must
        // hold either way.
        await killed;
        await db.idle().catch(() => undefined);
        outcomes.push(`${thread.broken ? 'broken' : 'ok'}/${db.stats().backgroundError?.code ?? 'healthy'}`);
        h.buildFlushTable = build;
        await recoverAndCheck(db, dir, model, `attempt ${attempt}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    t.diagnostic(`outcomes: ${outcomes.join(', ')}`);
  });
});

test('a death taken for a start failure mid-merge (split and unsplit): the main-thread rerun of the same spec loses nothing', { timeout: 60_000 }, async (t) => {
  await withSeed('session17-orphans merge rerun', async (seed) => {
    const rng = new Random(seed);
    const outcomes: string[] = [];
    for (const split of [false, true]) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const dir = tempDir();
        try {
          const shape = { ...SHAPE, l0CompactionTrigger: 100, l0SlowdownTrigger: 200, l0StopTrigger: 300, levelBaseSize: 8 * 1024 * 1024, subcompactionMinSize: split ? 24 * 1024 : 0 };
          const db0 = await open(dir, shape);
          const model = new Map<string, string>();
          for (let r = 0; r < 8; r++) await writeSome(db0, rng, model, 600, `a${r}`);
          await db0.compactRange();
          for (let r = 0; r < 3; r++) {
            await writeSome(db0, rng, model, 400, `b${r}`);
            await db0.compactRange(key(99_999_999), key(99_999_999));
          }
          await db0.close();
          const db = await open(dir, shape);
          const h = db as unknown as Internals;
          const shared = new CompactionThread();
          forgetReady(shared);
          h.sharedThread = shared;
          const aside = new CompactionThread('subcompaction');
          forgetReady(aside);
          h.asideThread = aside;
          const merge = h.merge.bind(db);
          let killed: Promise<boolean> | null = null;
          h.merge = (spec) => {
            const p = merge(spec);
            killed ??= killWorkerWhenFileExists(() => h.compactionThread, path.join(dir, tableFileName(spec.firstOutputNumber)), p);
            return p;
          };
          const r = await db.compactRange().then(
            () => 'ok',
            (e: unknown) => String((e as { code?: string }).code),
          );
          outcomes.push(`${split ? 'split' : 'one'}:${r}:${String(await killed)}`);
          assertLiveTablesExist(db, dir, 'after compactRange');
          h.merge = merge;
          await recoverAndCheck(db, dir, model, `split=${split} attempt ${attempt}`);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    t.diagnostic(`outcomes: ${outcomes.join(', ')}`);
  });
});

test('random worker kills during background flushes, compactions and compactRange with writes and reads: no live table disappears', { timeout: 60_000 }, async (t) => {
  await withSeed('session17-orphans random kills', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    let kills = 0;
    try {
      const db = await open(dir, SHAPE);
      const h = db as unknown as Internals;
      const model = new Map<string, string>();
      for (let round = 0; round < 12; round++) {
        // Fresh threads each round (a killed one stays broken: later jobs would run here only).
        if (h.sharedThread?.broken === true) {
          h.sharedThread = null;
          h.compactionThread = null;
          h.flushThread = null;
        }
        if (h.asideThread?.broken === true) h.asideThread = null;
        const delayTurns = 1 + rng.nextInt(400);
        const target = rng.nextInt(2);
        let stop = false;
        const killer = (async () => {
          for (let i = 0; i < delayTurns && !stop; i++) await new Promise<void>((r) => setImmediate(r));
          const thread = target === 0 ? h.sharedThread : h.asideThread;
          const w = (thread as unknown as { worker: { terminate(): Promise<number> } | null } | null)?.worker ?? null;
          if (w !== null && !stop) {
            kills++;
            await w.terminate();
          }
        })();
        for (let i = 0; i < 15; i++) {
          // A write refused while the database is in background-error mode is not acknowledged.
          await writeSome(db, rng, model, 80, `r${round}.${i}`).catch(() => undefined);
          if (i % 5 === 4) {
            const k = key(rng.nextInt(8000));
            assert.equal((await db.get(k))?.toString(), model.get(k), `get ${k}`);
          }
        }
        if (rng.nextInt(3) === 0) await db.compactRange().catch(() => undefined);
        stop = true;
        await killer;
        await db.idle().catch(() => undefined);
        assertLiveTablesExist(db, dir, `round ${round}`);
        assert.deepEqual(await contents(db), model, `round ${round}: contents`);
        if (db.stats().backgroundError !== null) await db.resume();
      }
      await recoverAndCheck(db, dir, model, 'random kills');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    t.diagnostic(`workers killed: ${kills}`);
  });
});
