/**
 * Review (session 12): memtable buffers handed to the next memtable (MemTable.retire /
 * Database.spareMemTable). A seeded random workload against a model, with many rotations, that
 * keeps readers of every kind open across flushes and checks every byte they return:
 *   - user iterators (forward, reverse, bounded, prefix, limit) opened at random points and
 *     stepped a little after each operation, so each spans several flushes; some are closed early,
 *     some twice, some only by db.close();
 *   - snapshot point reads and snapshot iterators;
 *   - transactions holding an iterator across flushes, with their own writes merged in;
 *   - point reads after every operation; compactRange and idle() at random points;
 *   - concurrent un-awaited writes (group commits racing rotations);
 *   - finally a full scan, close, reopen and full scan again.
 * Values carry their key and version, so bytes of another memtable would show as a mismatch.
 * Runs with main-thread flushes (MemFs) and with the flush worker (node:fs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type LightningIterator, type OpenOptions, type Snapshot, type Transaction, type TransactionIterator } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning } from '../harness/api-helpers.js';

invariants.enabled = true;
const recorder = new ProcessErrorRecorder();

type Model = Map<string, string>;

interface Range {
  gte?: string;
  lt?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

interface Scan {
  label: string;
  it: LightningIterator | TransactionIterator;
  want: [string, string][];
  pos: number;
  done: boolean;
  txn?: Transaction;
}

interface HeldSnapshot {
  snap: Snapshot;
  model: Model;
}

function expected(model: Model, r: Range): [string, string][] {
  let keys = [...model.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  keys = keys.filter((k) => (r.gte === undefined || k >= r.gte) && (r.lt === undefined || k < r.lt) && (r.prefix === undefined || k.startsWith(r.prefix)));
  if (r.reverse === true) keys.reverse();
  if (r.limit !== undefined) keys = keys.slice(0, r.limit);
  return keys.map((k) => [k, model.get(k) as string]);
}

function key(rng: Random, space: number): string {
  // Two prefixes so prefix scans have something to select.
  const n = rng.nextInt(space);
  return `${n % 3 === 0 ? 'a' : 'b'}${String(n).padStart(6, '0')}`;
}

class Workload {
  private readonly rng: Random;
  private readonly model: Model = new Map();
  private readonly scans: Scan[] = [];
  private readonly snaps: HeldSnapshot[] = [];
  private version = 0;
  private scanCount = 0;
  private txCount = 0;
  checks = 0;

  constructor(
    private readonly db: Database,
    seed: number,
    private readonly label: string,
    private readonly valueMax: number,
    private readonly space: number,
  ) {
    this.rng = new Random(seed);
  }

  private value(k: string): string {
    const v = ++this.version;
    const fill = String.fromCharCode(97 + (v % 26));
    return `${k}@${v}:${fill.repeat(this.rng.nextInt(this.valueMax))}`;
  }

  private randomRange(): Range {
    const r: Range = {};
    const rng = this.rng;
    if (rng.nextInt(3) === 0) r.gte = key(rng, this.space);
    if (rng.nextInt(3) === 0) r.lt = key(rng, this.space);
    if (rng.nextInt(5) === 0) r.prefix = rng.nextInt(2) === 0 ? 'a' : 'b';
    if (rng.nextInt(2) === 0) r.reverse = true;
    if (rng.nextInt(6) === 0) r.limit = 1 + rng.nextInt(200);
    return r;
  }

  private stepScan(s: Scan, n: number): void {
    for (let i = 0; i < n && !s.done; i++) {
      const e = s.it.nextSync();
      if (e === undefined) {
        assert.equal(s.pos, s.want.length, `${this.label}: ${s.label} ended after ${s.pos} of ${s.want.length} entries`);
        s.done = true;
        return;
      }
      const w = s.want[s.pos];
      const gk = e[0].toString('latin1');
      const gv = e[1].toString('latin1');
      if (w === undefined || w[0] !== gk || w[1] !== gv) {
        assert.fail(`${this.label}: ${s.label} entry ${s.pos}: got ${gk}=${gv.slice(0, 40)} (${gv.length}B), want ${w?.[0]}=${w?.[1].slice(0, 40)} (${w?.[1].length}B)`);
      }
      // The caller owns what it got: scribbling on it must not change anything the engine holds.
      e[1].fill(0x21);
      s.pos++;
      this.checks++;
    }
  }

  private checkGet(k: string): void {
    const got = this.db.getSync(k);
    assert.equal(got?.toString('latin1'), this.model.get(k), `${this.label}: get ${k} (version ${this.version})`);
    got?.fill(0x21);
    this.checks++;
  }

  private async writeOne(): Promise<void> {
    const rng = this.rng;
    const n = 1 + rng.nextInt(rng.nextInt(4) === 0 ? 60 : 8);
    const ops: ({ type: 'put'; key: string; value: string } | { type: 'del'; key: string })[] = [];
    for (let i = 0; i < n; i++) {
      const k = key(rng, this.space);
      if (rng.nextInt(6) === 0) ops.push({ type: 'del', key: k });
      else ops.push({ type: 'put', key: k, value: this.value(k) });
    }
    await this.db.batch(ops);
    for (const op of ops) {
      if (op.type === 'put') this.model.set(op.key, op.value);
      else this.model.delete(op.key);
    }
  }

  /** Several un-awaited writes at once: they commit as groups, racing any rotation. */
  private async concurrentWrites(): Promise<void> {
    const ps: Promise<void>[] = [];
    const applied: [string, string][] = [];
    const k0 = 2 + this.rng.nextInt(10);
    for (let i = 0; i < k0; i++) {
      const k = key(this.rng, this.space);
      const v = this.value(k);
      applied.push([k, v]);
      ps.push(this.db.put(k, v));
    }
    // A scan opened while they are queued sees a state between "none" and "all": checked at the end only.
    await Promise.all(ps);
    for (const [k, v] of applied) this.model.set(k, v);
  }

  private openScan(): void {
    const r = this.randomRange();
    const useSnap = this.snaps.length > 0 && this.rng.nextInt(3) === 0;
    const held = useSnap ? (this.snaps[this.rng.nextInt(this.snaps.length)] as HeldSnapshot) : null;
    const it = held === null ? this.db.iterator(r) : held.snap.iterator(r);
    const want = expected(held === null ? this.model : held.model, r);
    this.scans.push({ label: `scan#${this.scanCount++}${held ? ' (snapshot)' : ''} ${JSON.stringify(r)}`, it, want, pos: 0, done: false });
  }

  private openTxnScan(): void {
    const tx = this.db.beginTransaction();
    const id = this.txCount++;
    const own = new Map(this.model);
    for (let i = 0; i < 1 + this.rng.nextInt(4); i++) {
      const k = `b${String(this.space + id * 10 + i).padStart(6, '0')}`; // keys nobody else writes
      const v = `${k}@tx${id}:${'t'.repeat(this.rng.nextInt(this.valueMax))}`;
      tx.put(k, v);
      own.set(k, v);
    }
    // An own delete of an existing key hides it in the merged view.
    const del = key(this.rng, this.space);
    if (this.rng.nextInt(2) === 0) {
      tx.delete(del);
      own.delete(del);
    }
    const r = this.randomRange();
    const it = tx.iterator(r);
    this.scans.push({ label: `txn#${id} scan ${JSON.stringify(r)}`, it, want: expected(own, r), pos: 0, done: false, txn: tx });
  }

  private async finishScan(s: Scan, early: boolean): Promise<void> {
    if (!early) while (!s.done) this.stepScan(s, 1000);
    s.it.close();
    if (this.rng.nextInt(2) === 0) s.it.close(); // twice: must not release the memtable twice
    this.scans.splice(this.scans.indexOf(s), 1);
    if (s.txn !== undefined) await s.txn.rollback();
  }

  async run(rounds: number): Promise<void> {
    const rng = this.rng;
    for (let round = 0; round < rounds; round++) {
      const a = rng.nextInt(100);
      if (a < 45) await this.writeOne();
      else if (a < 55) await this.concurrentWrites();
      else if (a < 65) this.openScan();
      else if (a < 69) this.openTxnScan();
      else if (a < 75 && this.scans.length > 0) await this.finishScan(this.scans[rng.nextInt(this.scans.length)] as Scan, rng.nextInt(2) === 0);
      else if (a < 79) this.snaps.push({ snap: this.db.snapshot(), model: new Map(this.model) });
      else if (a < 82 && this.snaps.length > 0) {
        const i = rng.nextInt(this.snaps.length);
        (this.snaps[i] as HeldSnapshot).snap.release();
        this.snaps.splice(i, 1);
      } else if (a < 84) await this.db.compactRange(rng.nextInt(2) === 0 ? undefined : key(rng, this.space), undefined);
      else if (a < 86) await this.db.idle();
      else await this.writeOne();
      // Every open reader advances a little, so each one spans several flushes.
      for (const s of this.scans) this.stepScan(s, 1 + rng.nextInt(6));
      for (let i = 0; i < 3; i++) this.checkGet(key(rng, this.space));
      if (this.snaps.length > 0) {
        const h = this.snaps[rng.nextInt(this.snaps.length)] as HeldSnapshot;
        const k = key(rng, this.space);
        assert.equal(h.snap.getSync(k)?.toString('latin1'), h.model.get(k), `${this.label}: snapshot@${h.snap.sequence} get ${k}`);
        this.checks++;
      }
    }
    // Finish half of the open scans; leave the rest for close() to release.
    for (const s of [...this.scans]) if (rng.nextInt(2) === 0) await this.finishScan(s, false);
  }

  /** Scans still open when the database closes must fail with CLOSED, never return other data. */
  afterClose(): void {
    for (const s of this.scans) {
      if (s.done) continue;
      try {
        const e = s.it.nextSync();
        assert.equal(e, undefined, `${this.label}: ${s.label} returned data after db.close()`);
      } catch (e) {
        assertLightning(e, ['CLOSED', 'INVALID_ARGUMENT'], `${this.label}: ${s.label} after close`);
      }
    }
  }

  finalModel(): Model {
    return this.model;
  }

  async checkAll(db: Database, what: string): Promise<void> {
    const want = expected(this.model, {});
    const got: [string, string][] = [];
    for (const [k, v] of db.iterator()) got.push([k.toString('latin1'), v.toString('latin1')]);
    assert.equal(got.length, want.length, `${this.label}: ${what}: entries`);
    for (let i = 0; i < want.length; i++) {
      const g = got[i] as [string, string];
      const w = want[i] as [string, string];
      if (g[0] !== w[0] || g[1] !== w[1]) assert.fail(`${this.label}: ${what}: entry ${i}: got ${g[0]}=${g[1].slice(0, 40)}, want ${w[0]}=${w[1].slice(0, 40)}`);
    }
    const rev: string[] = [];
    for (const [k] of db.iterator({ reverse: true })) rev.push(k.toString('latin1'));
    assert.deepEqual(rev, want.map((e) => e[0]).reverse(), `${this.label}: ${what}: reverse keys`);
  }
}

async function runOnce(openDb: () => Promise<Database>, seed: number, label: string, valueMax: number, rounds: number, minFlushes: number): Promise<void> {
  let db = await openDb();
  const w = new Workload(db, seed, label, valueMax, 1500);
  try {
    await w.run(rounds);
    const flushes = db.stats().flushes.count;
    assert.ok(flushes >= minFlushes, `${label}: only ${flushes} flushes`);
    await w.checkAll(db, 'before close');
  } finally {
    await db.close();
  }
  w.afterClose();
  db = await openDb();
  try {
    await w.checkAll(db, 'after reopen');
  } finally {
    await db.close();
  }
  assert.ok(w.checks > 1000, `${label}: only ${w.checks} checks`);
}

test('session12: readers of every kind across many memtable reuses see exact data (main-thread flushes)', { timeout: 120_000 }, async () => {
  await withSeed('session12 memtable reuse model, MemFs', async (seed) => {
    for (let r = 0; r < 3; r++) {
      const s = (seed + r * 0x9e3779b9) >>> 0;
      const memfs = new MemFs();
      const opts: OpenOptions = { fs: memfs, memtableSize: 24 * 1024, blockSize: 512, sync: false, seed: s, l0CompactionTrigger: 3, targetFileSize: 16 * 1024, levelBaseSize: 64 * 1024 };
      await runOnce(() => open('/db', opts), s, `SEED=${seed} run ${r} MemFs`, 300, 700, 15);
    }
  });
  await recorder.settle();
  recorder.assertNone();
});

test('session12: readers of every kind across many memtable reuses see exact data (worker flushes)', { timeout: 120_000 }, async () => {
  await withSeed('session12 memtable reuse model, worker', async (seed) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-s12-model-'));
    try {
      // Large enough that flushes go to the worker (usedBytes >= 1 MiB); big values fill it fast.
      const opts: OpenOptions = { memtableSize: 2 * 1024 * 1024, blockSize: 4096, sync: false, seed, compactionThread: 'worker', l0CompactionTrigger: 3 };
      await runOnce(() => open(dir, opts), seed, `SEED=${seed} worker`, 24 * 1024, 700, 8);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  await recorder.settle();
  recorder.assertNone();
});
