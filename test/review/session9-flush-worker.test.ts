/**
 * Review (session 9): flushes that build their L0 table in a worker thread (node:fs), with the
 * memtable export transferred there and handed back for the next flush (Database.spareExport).
 *   - many flushes whose entry counts and sizes swing (tiny entries, then values of megabytes,
 *     then tiny again), so the reused export is sometimes too small in bytes, sometimes in
 *     entries, sometimes both; iterators, snapshots, compactRange and idle run during flushes;
 *   - close() while a flush is in the worker;
 *   - the flush worker killed after a seeded number of event-loop turns (before, during or after
 *     its job): one retry, then main-thread flushes; no acknowledged write lost;
 *   - every read is checked against a model, after idle and after reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-flush-'));
}

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

/** A value whose content identifies it (checked whole, not just its prefix). */
function valueOf(tag: string, len: number): string {
  let s = `${tag}|`;
  while (s.length < len) s += `${tag}.`;
  return s.slice(0, Math.max(len, tag.length + 1));
}

async function contents(db: Database | Snapshot): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

/** Reopens `dir` and checks it holds exactly `model`. */
async function assertAfterReopen(dir: string, opts: OpenOptions, model: Map<string, string>, label: string): Promise<void> {
  const again = await open(dir, opts);
  assertSameMap(await contents(again), model, label);
  await again.close();
}

function assertSameMap(got: Map<string, string>, want: Map<string, string>, what: string): void {
  if (got.size !== want.size) {
    const missing = [...want.keys()].filter((k) => !got.has(k)).slice(0, 5);
    const extra = [...got.keys()].filter((k) => !want.has(k)).slice(0, 5);
    assert.fail(`${what}: ${got.size} keys, want ${want.size}; missing ${missing.join(',')} extra ${extra.join(',')}`);
  }
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g !== v) assert.fail(`${what}: ${k} = ${g?.slice(0, 40)}...(${g?.length}), want ${v.slice(0, 40)}...(${v.length})`);
  }
}

const OPTS: OpenOptions = { memtableSize: 256 * 1024, blockSize: 1024, targetFileSize: 256 * 1024, levelBaseSize: 1024 * 1024, sync: false, compactionThread: 'worker' };

test('flushes of swinging sizes reuse (or outgrow) the returned export; readers and compactRange in between', { timeout: 120_000 }, async () => {
  await withSeed('flush export reuse', async (seed) => {
    const rng = new Random(seed);
    const dir = tempDir();
    try {
      const db = await open(dir, OPTS);
      const model = new Map<string, string>();
      const held: { snap: Snapshot; frozen: Map<string, string> }[] = [];
      let flushesSeen = 0;
      // phase: [batches, entries per batch, value length range]
      const phases: [number, number, number, number][] = [
        [30, 200, 0, 20], // many tiny entries: a big entries array
        [6, 2, 200_000, 900_000], // few huge values: a big bytes array, few entries
        [30, 300, 1, 8], // many tiny again: entries outgrow the export, bytes do not
        [4, 1, 1_500_000, 3_000_000], // values larger than the memtable
        [20, 100, 100, 3000],
      ];
      let n = 0;
      for (let round = 0; round < 2; round++) {
        for (const [batches, perBatch, minLen, maxLen] of phases) {
          for (let b = 0; b < batches; b++) {
            const ops = [];
            for (let i = 0; i < perBatch; i++) {
              const k = key(rng.nextInt(5000));
              if (rng.nextInt(10) === 0) {
                ops.push({ type: 'del' as const, key: k });
                model.delete(k);
              } else {
                const v = valueOf(`${n++}`, minLen + rng.nextInt(maxLen - minLen + 1));
                ops.push({ type: 'put' as const, key: k, value: v });
                model.set(k, v);
              }
            }
            await db.batch(ops);
            const s = db.stats();
            if (s.immutableMemtables > 0 && rng.nextInt(3) === 0) {
              // A flush is running: read through the immutable memtable and the tables.
              const probe = key(rng.nextInt(5000));
              assert.equal(db.getSync(probe)?.toString(), model.get(probe), `get ${probe} during a flush`);
              if (held.length < 3) held.push({ snap: db.snapshot(), frozen: new Map(model) });
            }
            if (rng.nextInt(25) === 0) await db.compactRange(key(rng.nextInt(5000)), key(rng.nextInt(5000) + 100));
            if (rng.nextInt(30) === 0) await db.idle();
            if (rng.nextInt(20) === 0 && held.length > 0) {
              const h = held.shift() as { snap: Snapshot; frozen: Map<string, string> };
              assertSameMap(await contents(h.snap), h.frozen, 'snapshot taken during a flush');
              h.snap.release();
            }
          }
          flushesSeen = db.stats().flushes.count;
        }
      }
      assert.ok(flushesSeen >= 20, `flushes: ${flushesSeen}`);
      for (const h of held) {
        assertSameMap(await contents(h.snap), h.frozen, 'snapshot at the end');
        h.snap.release();
      }
      await db.idle();
      const s = db.stats();
      assert.equal(s.flushes.thread, 'worker');
      assert.equal(s.backgroundError, null);
      assertSameMap(await contents(db), model, 'after idle');
      await db.close();
      await assertAfterReopen(dir, OPTS, model, 'after reopen');
      await recorder.settle();
      recorder.assertNone();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('close() while a flush builds its table in the worker; reopen has every write', async () => {
  await withSeed('close during worker flush', async (seed) => {
    const rng = new Random(seed);
    for (let attempt = 0; attempt < 3; attempt++) {
      const dir = tempDir();
      try {
        const db = await open(dir, OPTS);
        const model = new Map<string, string>();
        let caught = false;
        for (let b = 0; b < 200 && !caught; b++) {
          const ops = [];
          for (let i = 0; i < 100; i++) {
            const k = key(rng.nextInt(20_000));
            const v = valueOf(`${attempt}.${b}.${i}`, 10 + rng.nextInt(300));
            ops.push({ type: 'put' as const, key: k, value: v });
            model.set(k, v);
          }
          await db.batch(ops);
          caught = db.stats().immutableMemtables > 0;
        }
        assert.ok(caught, 'a flush was running');
        // Writes queued behind the close: they resolve or fail with CLOSED, never hang.
        const late = db.put('late', 'x').then(
          () => true,
          (e: unknown) => {
            assertLightning(e, 'CLOSED', 'write during close');
            return false;
          },
        );
        await db.close();
        if (await late) model.set('late', 'x');
        await assertAfterReopen(dir, OPTS, model, `attempt ${attempt}: after reopen`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    await recorder.settle();
    recorder.assertNone();
  });
});

test('the flush worker killed at a seeded point: writes keep their data, flushes continue on the main thread', { timeout: 120_000 }, async () => {
  await withSeed('killed flush worker', async (seed) => {
    const rng = new Random(seed);
    for (let attempt = 0; attempt < 6; attempt++) {
      const dir = tempDir();
      try {
        const db = await open(dir, OPTS);
        const model = new Map<string, string>();
        // where the worker dies: k event-loop turns after it starts (before its first reply), on
        // its first reply (idle, between jobs), or right as its second job is posted
        const mode = (['turns', 'after-reply', 'second-post'] as const)[attempt % 3] as 'turns' | 'after-reply' | 'second-post';
        const turns = rng.nextInt(6);
        const holder = db as unknown as { flushThread: CompactionThread | null };
        holder.flushThread = new CompactionThread('flush');
        type W = { terminate(): Promise<number>; postMessage(m: unknown, t?: unknown): void; on(ev: string, f: () => void): void };
        const t = holder.flushThread as unknown as { start(): W };
        const start = t.start.bind(t);
        t.start = () => {
          const w = start();
          if (mode === 'turns') {
            let left = turns;
            const tick = (): void => {
              if (left-- > 0) setImmediate(tick);
              else void w.terminate();
            };
            setImmediate(tick);
          } else if (mode === 'after-reply') {
            w.on('message', () => void w.terminate());
          } else {
            const post = w.postMessage.bind(w);
            let posts = 0;
            w.postMessage = (m: unknown, tr?: unknown) => {
              post(m, tr);
              if (++posts === 2) void w.terminate();
            };
          }
          return w;
        };
        let failures = 0;
        for (let b = 0; b < 60; b++) {
          const ops = [];
          for (let i = 0; i < 100; i++) {
            const k = key(rng.nextInt(8000));
            ops.push({ type: 'put' as const, key: k, value: valueOf(`${attempt}.${b}.${i}`, 20 + rng.nextInt(200)) });
          }
          try {
            await db.batch(ops);
            for (const op of ops) model.set(op.key, op.value);
          } catch (e) {
            // the failed flush is the background error: writes fail fast until the retry
            assertLightning(e, 'IO_ERROR', 'write after the worker died');
            failures++;
            await db.resume();
          }
        }
        await db.idle();
        const s = db.stats();
        assert.equal(s.backgroundError, null, `attempt ${attempt}: ${JSON.stringify(s.backgroundError)}`);
        assertSameMap(await contents(db), model, `attempt ${attempt} (${mode}, turns ${turns}, failures ${failures}): after idle`);
        await db.close();
        const again = await open(dir, { ...OPTS });
        assertSameMap(await contents(again), model, `attempt ${attempt}: after reopen`);
        await again.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    await recorder.settle();
    recorder.assertNone();
  });
});

test('memtable sizes at the edges with worker flushes: tiny memtable, a batch far larger than it', async () => {
  await withSeed('memtable edges', async (seed) => {
    const rng = new Random(seed);
    for (const memtableSize of [1024, 64 * 1024 + 1, 3 * 1024 * 1024]) {
      const dir = tempDir();
      try {
        const opts: OpenOptions = { ...OPTS, memtableSize };
        const db = await open(dir, opts);
        const model = new Map<string, string>();
        for (let b = 0; b < 12; b++) {
          const big = b % 4 === 3;
          const ops = [];
          const count = big ? 2000 : 1 + rng.nextInt(20);
          for (let i = 0; i < count; i++) {
            const k = key(rng.nextInt(3000));
            const v = valueOf(`${memtableSize}.${b}.${i}`, big ? 1 + rng.nextInt(3000) : 1 + rng.nextInt(50_000));
            ops.push({ type: 'put' as const, key: k, value: v });
            model.set(k, v);
          }
          await db.batch(ops);
          if (b % 5 === 0) {
            const k = key(rng.nextInt(3000));
            assert.equal(db.getSync(k)?.toString(), model.get(k));
          }
        }
        await db.idle();
        assertSameMap(await contents(db), model, `memtableSize ${memtableSize}`);
        assert.ok(db.stats().flushes.count >= 1);
        await db.close();
        await assertAfterReopen(dir, opts, model, `memtableSize ${memtableSize}: after reopen`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    await recorder.settle();
    recorder.assertNone();
  });
});
