/**
 * Review (session 13): the memtable key index at the database level. A seeded workload on a small
 * memtable (so memtables rotate, flush, retire and hand their buffers and index arrays on while
 * indexes exist) against a model:
 *   - transfers between hot accounts in transactions (every mode and isolation), one at a time
 *     with retries 0: a spurious CONFLICT (a conflict check that saw a too-new version) fails the
 *     test; in concurrent bursts with retries: balances must equal the initial ones plus the
 *     deltas of the committed transfers (a conflict check that saw a too-old version = a lost
 *     update);
 *   - batches overwriting many keys (short, > 64 bytes, prefixes of each other), deletions;
 *   - point reads, snapshot point reads and reverse scans at held snapshots, reverse iterators
 *     held open and stepped while writes go on, transaction reverse iterators over own writes;
 *   - process-crash copies (all written bytes kept) opened readOnly (reads run on the replayed
 *     memtable, which holds many versions per key and builds its index) and then read-write
 *     (replay, flush).
 */
import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { open, type Database, type LightningIterator, type OpenOptions, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder } from '../harness/api-helpers.js';

invariants.enabled = true;
const recorder = new ProcessErrorRecorder();

type Model = Map<string, string>;
const ACCOUNTS = 12;
const acct = (i: number): string => `acct/${String(i).padStart(3, '0')}`;

function sortedKeys(m: Model): string[] {
  return [...m.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
}

function balanceOf(v: string | undefined): number {
  assert.ok(v !== undefined, 'account missing');
  return Number(v.split(':')[1]);
}

class Workload {
  readonly rng: Random;
  readonly model: Model = new Map();
  private readonly snaps: { snap: Snapshot; model: Model }[] = [];
  private readonly held: { it: LightningIterator; want: [string, string][]; pos: number; label: string }[] = [];
  private version = 0;
  checks = 0;
  commits = 0;
  concurrentCommits = 0;

  constructor(
    public db: Database,
    seed: number,
    private readonly label: string,
    private readonly bigPad = 0,
  ) {
    this.rng = new Random(seed);
  }

  private pad(): string {
    if (this.bigPad > 0 && this.rng.nextInt(2) === 0) return 'P'.repeat(this.rng.nextInt(this.bigPad));
    return 'p'.repeat(this.rng.nextInt(4) === 0 ? 70 + this.rng.nextInt(100) : this.rng.nextInt(20));
  }

  private plainKey(): string {
    const n = this.rng.nextInt(400);
    const r = this.rng.nextInt(5);
    if (r === 0) return `k/${n}`; // k/1 is a prefix of k/10, k/100
    if (r === 1) return `long/${'L'.repeat(66)}${n % 40}`;
    if (r === 2) return `h/${n % 7}`; // hot plain keys
    return `k/${String(n).padStart(4, '0')}`;
  }

  private bal(n: number): string {
    return `bal:${n}:${++this.version}:${this.pad()}`;
  }

  async init(): Promise<void> {
    const ops = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      const v = this.bal(1000);
      ops.push({ type: 'put' as const, key: acct(i), value: v });
      this.model.set(acct(i), v);
    }
    await this.db.batch(ops);
  }

  private async transferOne(): Promise<void> {
    const rng = this.rng;
    const a = rng.nextInt(ACCOUNTS);
    let b = rng.nextInt(ACCOUNTS - 1);
    if (b >= a) b++;
    const x = 1 + rng.nextInt(50);
    const mode = rng.nextInt(2) === 0 ? 'optimistic' : 'pessimistic';
    const isolation = rng.nextInt(2) === 0 ? 'snapshot' : 'serializable';
    const va = this.bal(balanceOf(this.model.get(acct(a))) - x);
    const vb = this.bal(balanceOf(this.model.get(acct(b))) + x);
    const scan = rng.nextInt(4) === 0;
    await this.db.transaction(
      async (tx) => {
        const ga = (await tx.getForUpdate(acct(a)))?.toString('latin1');
        const gb = rng.nextInt(2) === 0 ? (await tx.getForUpdate(acct(b)))?.toString('latin1') : tx.getSync(acct(b))?.toString('latin1');
        assert.equal(ga, this.model.get(acct(a)), `${this.label}: txn read ${acct(a)}`);
        assert.equal(gb, this.model.get(acct(b)), `${this.label}: txn read ${acct(b)}`);
        tx.put(acct(a), va);
        tx.put(acct(b), vb);
        assert.equal(tx.getSync(acct(a))?.toString('latin1'), va);
        if (scan) {
          const own = new Map(this.model);
          own.set(acct(a), va);
          own.set(acct(b), vb);
          const want = sortedKeys(own)
            .filter((k) => k.startsWith('acct/'))
            .reverse();
          const got: string[] = [];
          for (const [k, v] of tx.iterator({ prefix: 'acct/', reverse: true })) {
            got.push(k.toString('latin1'));
            assert.equal(v.toString('latin1'), own.get(k.toString('latin1')), `${this.label}: txn reverse scan value`);
          }
          assert.deepEqual(got, want, `${this.label}: txn reverse scan`);
        }
      },
      { mode, isolation, retries: 0 }, // alone: it must never conflict
    );
    this.model.set(acct(a), va);
    this.model.set(acct(b), vb);
    this.commits++;
  }

  private async concurrentTransfers(): Promise<void> {
    const rng = this.rng;
    const n = 3 + rng.nextInt(6);
    const deltas = new Map<number, number>();
    const ps: Promise<boolean>[] = [];
    const jobs: { a: number; b: number; x: number }[] = [];
    const jobIndex: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = rng.nextInt(4); // a few very hot accounts: many conflicts
      let b = rng.nextInt(ACCOUNTS - 1);
      if (b >= a) b++;
      const x = 1 + rng.nextInt(20);
      jobs.push({ a, b, x });
      jobIndex.push(ps.length);
      const mode = rng.nextInt(2) === 0 ? 'optimistic' : 'pessimistic';
      const isolation = rng.nextInt(2) === 0 ? 'snapshot' : 'serializable';
      const pad = this.pad();
      ps.push(
        this.db
          .transaction(
            async (tx) => {
              const va = balanceOf((await tx.getForUpdate(acct(a)))?.toString('latin1'));
              const vb = balanceOf((await tx.getForUpdate(acct(b)))?.toString('latin1'));
              await new Promise((r) => setImmediate(r));
              tx.put(acct(a), `bal:${va - x}:c:${pad}`);
              tx.put(acct(b), `bal:${vb + x}:c:${pad}`);
              return true;
            },
            { mode, isolation, retries: 100, timeoutMs: 2000 },
          )
          .catch(() => false),
      );
      // Plain writes race the transactions (other keys).
      if (rng.nextInt(2) === 0) {
        const k = this.plainKey();
        const v = `${k}@${++this.version}:${this.pad()}`;
        this.model.set(k, v);
        ps.push(this.db.put(k, v).then(() => true));
      }
    }
    const results = await Promise.all(ps);
    jobIndex.forEach((slot, i) => {
      const job = jobs[i] as { a: number; b: number; x: number };
      if (results[slot] === true) {
        deltas.set(job.a, (deltas.get(job.a) ?? 0) - job.x);
        deltas.set(job.b, (deltas.get(job.b) ?? 0) + job.x);
        this.concurrentCommits++;
      }
    });
    // Balances: what the model had plus committed deltas (a lost update breaks this).
    for (let i = 0; i < ACCOUNTS; i++) {
      const want = balanceOf(this.model.get(acct(i))) + (deltas.get(i) ?? 0);
      const got = this.db.getSync(acct(i))?.toString('latin1');
      assert.equal(balanceOf(got), want, `${this.label}: balance of ${acct(i)} after concurrent transfers ${JSON.stringify(jobs)}`);
      this.model.set(acct(i), got as string);
    }
  }

  private async batch(): Promise<void> {
    const n = 1 + this.rng.nextInt(this.rng.nextInt(5) === 0 ? 80 : 10);
    const ops: ({ type: 'put'; key: string; value: string } | { type: 'del'; key: string })[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.plainKey();
      if (this.rng.nextInt(5) === 0) ops.push({ type: 'del', key: k });
      else ops.push({ type: 'put', key: k, value: `${k}@${++this.version}:${this.pad()}` });
    }
    await this.db.batch(ops);
    for (const op of ops) {
      if (op.type === 'put') this.model.set(op.key, op.value);
      else this.model.delete(op.key);
    }
  }

  private checkGet(k: string): void {
    assert.equal(this.db.getSync(k)?.toString('latin1'), this.model.get(k), `${this.label}: get ${k}`);
    this.checks++;
  }

  private stepHeld(n: number): void {
    for (const h of this.held) {
      for (let i = 0; i < n && h.pos >= 0; i++) {
        const e = h.it.nextSync();
        const w = h.want[h.pos];
        if (e === undefined) {
          assert.equal(h.pos, h.want.length, `${this.label}: ${h.label} ended early at ${h.pos}/${h.want.length}`);
          h.pos = -1;
          break;
        }
        assert.ok(w !== undefined, `${this.label}: ${h.label} has more than ${h.want.length} entries`);
        assert.equal(e[0].toString('latin1'), w[0], `${this.label}: ${h.label} key ${h.pos}`);
        assert.equal(e[1].toString('latin1'), w[1], `${this.label}: ${h.label} value ${h.pos} (${w[0]})`);
        h.pos++;
        this.checks++;
      }
    }
    for (let i = this.held.length - 1; i >= 0; i--) {
      const h = this.held[i];
      if (h !== undefined && (h.pos < 0 || this.rng.nextInt(30) === 0)) {
        h.it.close();
        this.held.splice(i, 1);
      }
    }
  }

  async round(): Promise<void> {
    const rng = this.rng;
    const a = rng.nextInt(100);
    if (a < 35) await this.transferOne();
    else if (a < 43) await this.concurrentTransfers();
    else if (a < 75) await this.batch();
    else if (a < 80 && this.snaps.length < 5) this.snaps.push({ snap: this.db.snapshot(), model: new Map(this.model) });
    else if (a < 83 && this.snaps.length > 0) {
      const i = rng.nextInt(this.snaps.length);
      this.snaps[i]?.snap.release();
      this.snaps.splice(i, 1);
    } else if (a < 88 && this.held.length < 4) {
      const prefix = rng.nextInt(3) === 0 ? 'h/' : undefined;
      const snap = this.snaps.length > 0 && rng.nextInt(2) === 0 ? this.snaps[rng.nextInt(this.snaps.length)] : undefined;
      const model = snap?.model ?? this.model;
      const want = sortedKeys(model)
        .filter((k) => prefix === undefined || k.startsWith(prefix))
        .reverse()
        .map((k) => [k, model.get(k) as string] as [string, string]);
      const range = prefix === undefined ? { reverse: true } : { reverse: true, prefix };
      const it = snap === undefined ? this.db.iterator(range) : snap.snap.iterator(range);
      this.held.push({ it, want, pos: 0, label: `reverse scan ${snap ? `at snapshot ${snap.snap.sequence}` : ''} prefix ${prefix}` });
    } else await this.batch();
    this.stepHeld(1 + rng.nextInt(8));
    for (let i = 0; i < 4; i++) this.checkGet(rng.nextInt(3) === 0 ? acct(rng.nextInt(ACCOUNTS)) : this.plainKey());
    if (this.snaps.length > 0) {
      const s = this.snaps[rng.nextInt(this.snaps.length)] as { snap: Snapshot; model: Model };
      for (let i = 0; i < 3; i++) {
        const k = rng.nextInt(2) === 0 ? acct(rng.nextInt(ACCOUNTS)) : this.plainKey();
        assert.equal(s.snap.getSync(k)?.toString('latin1'), s.model.get(k), `${this.label}: snapshot ${s.snap.sequence} get ${k}`);
        this.checks++;
      }
    }
  }

  releaseAll(): void {
    for (const h of this.held) h.it.close();
    this.held.length = 0;
    for (const s of this.snaps) s.snap.release();
    this.snaps.length = 0;
  }
}

async function checkDb(db: Database, model: Model, what: string): Promise<void> {
  const keys = sortedKeys(model);
  // Point reads first (hundreds: the replayed memtable builds its index), then both scan directions.
  for (let pass = 0; pass < 2; pass++) for (const k of keys) assert.equal(db.getSync(k)?.toString('latin1'), model.get(k), `${what}: get ${k}`);
  for (let i = 0; i < 400; i++) assert.equal(db.getSync(`absent/${i}`), undefined);
  const fwd: string[] = [];
  for (const [k, v] of db.iterator()) {
    fwd.push(k.toString('latin1'));
    assert.equal(v.toString('latin1'), model.get(k.toString('latin1')), `${what}: scan value ${k.toString('latin1')}`);
  }
  assert.deepEqual(fwd, keys, `${what}: forward scan`);
  const back: string[] = [];
  for (const [k] of db.iterator({ reverse: true })) back.push(k.toString('latin1'));
  assert.deepEqual(back, [...keys].reverse(), `${what}: reverse scan`);
}

async function runWorkload(seed: number, memtableSize: number, rounds: number, crashes: number, dir?: string): Promise<{ flushes: number; commits: number; concurrent: number; indexedRounds: number; rotatedWithIndex: number }> {
  const memfs = new MemFs();
  const opts: OpenOptions =
    dir === undefined
      ? { fs: memfs, memtableSize, blockSize: 1024, sync: false, seed, l0CompactionTrigger: 3, targetFileSize: 32 * 1024, levelBaseSize: 128 * 1024 }
      : { memtableSize, sync: false, seed, compactionThread: 'worker', l0CompactionTrigger: 3 };
  const where = dir ?? '/db';
  const db = await open(where, opts);
  const label = `SEED=${seed} memtable ${memtableSize}${dir === undefined ? '' : ' (worker)'}`;
  const w = new Workload(db, seed, label, dir === undefined ? 0 : 24 * 1024);
  let indexedRounds = 0;
  let rotatedWithIndex = 0;
  try {
    await w.init();
    let lastMem: unknown = null;
    let lastHadIndex = false;
    for (let r = 0; r < rounds; r++) {
      await w.round();
      // Coverage: memtables that built an index and then rotated out (their arrays handed on).
      const mem = (db as unknown as { mem: { index: unknown } }).mem;
      if (mem !== lastMem && lastHadIndex) rotatedWithIndex++;
      if (mem.index !== null) indexedRounds++;
      lastMem = mem;
      lastHadIndex = mem.index !== null;
      if (dir === undefined && crashes > 0 && r % Math.floor(rounds / crashes) === Math.floor(rounds / crashes) - 1) {
        // A process crash now (every written byte kept): replay into one memtable.
        const clone = memfs.crashClone({ keepUnsyncedProbability: 1, rng: new Random(r) });
        const model = new Map(w.model);
        const ro = await open('/db', { ...opts, fs: clone, readOnly: true });
        try {
          await checkDb(ro, model, `${label} round ${r}: crash copy, readOnly`);
        } finally {
          await ro.close();
        }
        const rw = await open('/db', { ...opts, fs: clone });
        try {
          await checkDb(rw, model, `${label} round ${r}: crash copy, reopened`);
        } finally {
          await rw.close();
        }
      }
    }
    w.releaseAll();
    await checkDb(db, w.model, `${label}: end`);
    return { flushes: db.stats().flushes.count, commits: w.commits, concurrent: w.concurrentCommits, indexedRounds, rotatedWithIndex };
  } finally {
    w.releaseAll();
    await db.close();
    const again = await open(where, opts);
    try {
      await checkDb(again, w.model, `${label}: after reopen`);
    } finally {
      await again.close();
    }
  }
}

test('session13 memtable db: transactions, snapshots, reverse scans and crash copies across rotations while indexes exist', { timeout: 60_000 }, async (t) => {
  await withSeed('session13 memtable db', async (seed) => {
    for (const [i, size] of [16 * 1024, 64 * 1024].entries()) {
      const s = (seed + i * 0x9e3779b9) >>> 0;
      const r = await runWorkload(s, size, 2500, 6);
      t.diagnostic(`SEED=${seed} memtable ${size}: ${JSON.stringify(r)}`);
      assert.ok(r.flushes >= 3, `only ${r.flushes} flushes`);
      assert.ok(r.concurrent > 0);
      assert.ok(r.rotatedWithIndex > 0, 'no memtable rotated out with an index');
    }
  });
  await recorder.settle();
  recorder.assertNone();
});

test('session13 memtable db: the flush worker reads memtables (new row layout) in place; indexes live across its flushes', { timeout: 60_000 }, async (t) => {
  await withSeed('session13 memtable db worker', async (seed) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-s13-mem-'));
    try {
      const r = await runWorkload(seed, 2 * 1024 * 1024, 1500, 0, dir);
      t.diagnostic(`SEED=${seed} worker: ${JSON.stringify(r)}`);
      assert.ok(r.flushes >= 3, `only ${r.flushes} flushes`);
      assert.ok(r.indexedRounds > 0, 'no index built');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  await recorder.settle();
  recorder.assertNone();
});
