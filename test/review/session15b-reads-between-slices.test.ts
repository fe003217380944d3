/**
 * Reviewer tests (session 15b): main-thread flushes now also end their slices by bytes, so with
 * large values they yield many more times (before: only every 1,024 entries, so a memtable of
 * fewer entries was built without a single turn); merges likewise. Everything the application
 * does between two slices must see a consistent database: gets, snapshot reads, iterators created
 * before or during the work and stepped one entry per turn across many slices, and further
 * writes (which fill the next memtable and may rotate it while a flush of the previous one is
 * between slices).
 *
 * A seeded workload on MemFs (everything on the main thread) with values of 0 bytes to 300 KiB
 * (larger than SLICE_BYTES_MAX), keys of 1 byte to 4 KiB, deletes, snapshots; readers run in their
 * own setImmediate loops and check every result against a model. The test also counts reads that
 * happened while a flush or a merge was in progress, to show that the readers really ran between
 * slices (structural, no timing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type LightningIterator, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { hex } from '../harness/model.js';

/** Key (hex) -> value. */
type ModelState = Map<string, Buffer>;

/** Entries a full scan must return, in order. */
function modelScan(state: ModelState, r: { reverse?: boolean }): [string, Buffer][] {
  const keys = [...state.keys()].map((k) => Buffer.from(k, 'hex')).sort(Buffer.compare);
  const out = keys.map((k) => [k.toString('hex'), state.get(k.toString('hex')) as Buffer] as [string, Buffer]);
  if (r.reverse === true) out.reverse();
  return out;
}

function same(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

function makeKey(rng: Random): Buffer {
  const shape = rng.nextInt(10);
  const id = rng.nextInt(400);
  if (shape < 5) return Buffer.from(`k${String(id).padStart(4, '0')}`);
  if (shape < 8) return Buffer.from(`${'p'.repeat(40)}${String(id % 150).padStart(4, '0')}`); // > 32 bytes
  if (shape < 9) return Buffer.concat([Buffer.alloc(3000 + (id % 7) * 150, 0x71), Buffer.from(String(id % 60))]);
  return Buffer.from([0x20 + (id % 90)]); // 1 byte
}

function makeValue(rng: Random, tag: number): Buffer {
  const shape = rng.nextInt(20);
  let len: number;
  if (shape < 2) len = 0;
  else if (shape < 12) len = 1 + rng.nextInt(200);
  else if (shape < 18) len = 20_000 + rng.nextInt(50_000);
  else len = 200_000 + rng.nextInt(100_000);
  const v = Buffer.allocUnsafe(len);
  v.fill(tag & 0xff);
  if (len >= 8) v.writeDoubleLE(tag, 0);
  for (let i = 8; i + 4 <= len && i < 4096; i += 4) v.writeUInt32LE(rng.nextUint32(), i);
  return v;
}

interface OpenIter {
  it: LightningIterator;
  want: [string, Buffer][];
  at: number;
  what: string;
}

for (const where of ['MemFs', 'node:fs, compactionThread main'] as const) test(`gets, snapshots and iterators stay correct across the slices of main-thread flushes and merges of large values (${where})`, { timeout: 120_000 }, async () => {
  await withSeed(`reads between slices (${where})`, async (seed) => {
    const rng = new Random(seed);
    const tmp = where === 'MemFs' ? null : nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15b-reads-'));
    const compression = rng.nextInt(2) === 0 ? 'lz' : 'none';
    const opsTotal = where === 'MemFs' ? 1200 : 700;
    const db: Database = await open(tmp ?? '/db', {
      ...(tmp === null ? { fs: new MemFs({ capacityBytes: 8 * 1024 * 1024 * 1024 }) } : { compactionThread: 'main' as const }),
      memtableSize: 2 * 1024 * 1024,
      compression,
      l0CompactionTrigger: 2,
      l0SlowdownTrigger: 8,
      l0StopTrigger: 12,
      levelBaseSize: 4 * 1024 * 1024,
      targetFileSize: 1024 * 1024,
      blockSize: [512, 4096][rng.nextInt(2)] as number,
      sync: false,
    });
    const model: ModelState = new Map();
    /** Key (hex) of the write in flight and its value after the write (undefined: delete). */
    let inFlight: { key: string; before: Buffer | undefined; after: Buffer | undefined } | null = null;
    const snaps: { snap: Snapshot; state: ModelState }[] = [];
    const iters: OpenIter[] = [];
    let readsDuringWork = 0;
    let reads = 0;
    let stop = false;
    let failure: unknown = null;

    const busy = (): boolean => {
      const s = db.stats();
      return s.compactions.running || s.immutableMemtables > 0;
    };

    const checkGet = (k: Buffer): void => {
      const h = hex(k);
      const got = db.getSync(k);
      if (inFlight !== null && inFlight.key === h) {
        assert.ok(same(got, inFlight.before) || same(got, inFlight.after), `get of the key being written: neither old nor new value`);
      } else {
        assert.equal(got?.length, model.get(h)?.length, `get ${h.slice(0, 40)}: length`);
        assert.ok(same(got, model.get(h)), `get ${h.slice(0, 40)}: wrong value`);
      }
    };

    const reader = (): void => {
      if (stop || failure !== null) return;
      try {
        const work = busy();
        // A few point reads.
        for (let i = 0; i < 2; i++) checkGet(makeKey(rng));
        // A snapshot read.
        if (snaps.length > 0) {
          const s = snaps[rng.nextInt(snaps.length)] as { snap: Snapshot; state: ModelState };
          const k = makeKey(rng);
          const got = s.snap.getSync(k);
          assert.ok(same(got, s.state.get(hex(k))), `snapshot ${s.snap.sequence} get`);
        }
        // Create an iterator now and then, only when no write is in flight (its view is then the model).
        if (inFlight === null && iters.length < 4 && rng.nextInt(20) === 0) {
          const useSnap = snaps.length > 0 && rng.nextInt(2) === 0;
          const s = useSnap ? (snaps[rng.nextInt(snaps.length)] as { snap: Snapshot; state: ModelState }) : null;
          const reverse = rng.nextInt(3) === 0;
          const it = s !== null ? s.snap.iterator({ reverse }) : db.iterator({ reverse });
          iters.push({ it, want: modelScan(s !== null ? s.state : model, { reverse }), at: 0, what: `${s !== null ? 'snapshot ' : ''}iterator${reverse ? ' (reverse)' : ''}` });
        }
        // Step every open iterator by one or two entries.
        for (let j = iters.length - 1; j >= 0; j--) {
          const o = iters[j] as OpenIter;
          for (let step = 0; step < 2; step++) {
            const e = o.it.nextSync();
            const w = o.want[o.at];
            if (e === undefined) {
              assert.equal(o.at, o.want.length, `${o.what} ended after ${o.at} of ${o.want.length} entries`);
              iters.splice(j, 1);
              break;
            }
            assert.ok(w !== undefined, `${o.what} returned more than ${o.want.length} entries`);
            assert.ok(hex(e[0]) === w[0], `${o.what} entry ${o.at}: key`);
            assert.ok(e[1].equals(w[1]), `${o.what} entry ${o.at}: value (${e[1].length} bytes, want ${w[1].length})`);
            o.at++;
          }
        }
        reads++;
        if (work) readsDuringWork++;
      } catch (e) {
        failure = e;
        return;
      }
      setImmediate(reader);
    };
    setImmediate(reader);
    setImmediate(reader); // two reader loops

    try {
      let compacting: Promise<void> | null = null;
      for (let op = 0; op < opsTotal && failure === null; op++) {
        const k = makeKey(rng);
        const h = hex(k);
        const r = rng.nextInt(100);
        if (r < 70) {
          const v = makeValue(rng, op);
          inFlight = { key: h, before: model.get(h), after: v };
          await db.put(k, v);
          model.set(h, v);
        } else if (r < 85) {
          inFlight = { key: h, before: model.get(h), after: undefined };
          await db.delete(k);
          model.delete(h);
        } else if (r < 90) {
          inFlight = null;
          if (snaps.length < 3) snaps.push({ snap: db.snapshot(), state: new Map(model) });
        } else if (r < 94) {
          inFlight = null;
          const s = snaps.splice(rng.nextInt(Math.max(1, snaps.length)), 1)[0];
          s?.snap.release();
        } else if (r < 96) {
          inFlight = null;
          // A compactRange of a random span, not awaited: it runs between the following writes.
          if (compacting === null) {
            const a = makeKey(rng);
            const b = makeKey(rng);
            const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
            compacting = db.compactRange(lo, hi).finally(() => {
              compacting = null;
            });
          }
        }
        inFlight = null;
        // Let the readers and the background work run.
        if (rng.nextInt(3) === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      inFlight = null;
      if (compacting !== null) await compacting;
      await db.compactRange();
      // Drain the readers' iterators.
      while (failure === null && iters.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      stop = true;
      if (failure !== null) throw failure;
      const s = db.stats();
      console.log(`${where}, ${compression}: ${reads} reader turns, ${readsDuringWork} while a flush or merge ran; ${s.flushes.count} flushes, ${s.compactions.count} compactions (${s.compactions.entriesDropped} entries dropped), thread ${s.compactions.thread}`);
      assert.equal(s.backgroundError, null);
      assert.ok(s.flushes.count >= 5 && s.compactions.count >= 2, 'the workload flushed and compacted');
      assert.ok(readsDuringWork >= 20, `readers ran only ${readsDuringWork} times while a flush or merge was in progress`);
      // Final contents.
      const all = [...db.iterator()].map(([k, v]) => [hex(k), v] as [string, Buffer]);
      assert.deepEqual(all.map((e) => e[0]), modelScan(model, {}).map((e) => e[0]), 'final keys');
      assert.ok(all.every(([k, v]) => same(model.get(k), v)), 'final values');
      for (const x of snaps) {
        const got = [...x.snap.iterator()].map(([k, v]) => [hex(k), v] as [string, Buffer]);
        const want = modelScan(x.state, {});
        assert.equal(got.length, want.length, 'snapshot contents after compaction');
        assert.ok(got.every((e, i) => e[0] === want[i]?.[0] && same(e[1], want[i]?.[1])), 'snapshot contents after compaction');
      }
    } finally {
      stop = true;
      for (const o of iters) o.it.close();
      for (const x of snaps) x.snap.release();
      await db.close();
      if (tmp !== null) nodeFs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
