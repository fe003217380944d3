/**
 * Review (session 12): memtable buffers are handed to the next memtable after a flush
 * (MemTable.retire). Failures on the flush path keep a memtable in `imm` for a retry, and the
 * recovery paths (resume(), the retry timer: flushImmutable again, replaceFailedWal after a failed
 * WAL write) rotate and flush memtables outside the usual rotation. Iterators, a snapshot iterator
 * and a transaction iterator opened before the failure stay open across it, its recovery and many
 * later flushes; every entry they return, and point reads throughout, are checked against a model.
 *
 * For each target (table writes/syncs, WAL writes, MANIFEST writes, statfs, directory syncs),
 * a counting pass finds how many matching operations the workload makes, then the workload is
 * rerun failing one of them (spread over the whole run) with EIO or ENOSPC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type LightningIterator, type Snapshot, type Transaction, type TransactionIterator } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, type FaultCode, type FaultInjector, type FaultOp } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

invariants.enabled = true;
const recorder = new ProcessErrorRecorder();

interface Target {
  name: string;
  op: FaultOp;
  path: (p: string) => boolean;
  code: FaultCode;
}

const TARGETS: Target[] = [
  { name: 'table write EIO', op: 'write', path: (p) => p.endsWith('.sst'), code: 'EIO' },
  { name: 'table write ENOSPC', op: 'write', path: (p) => p.endsWith('.sst'), code: 'ENOSPC' },
  { name: 'table sync EIO', op: 'sync', path: (p) => p.endsWith('.sst'), code: 'EIO' },
  { name: 'WAL write ENOSPC', op: 'write', path: (p) => p.endsWith('.log'), code: 'ENOSPC' },
  { name: 'WAL write EIO', op: 'write', path: (p) => p.endsWith('.log'), code: 'EIO' },
  { name: 'MANIFEST write ENOSPC', op: 'write', path: (p) => p.includes('MANIFEST'), code: 'ENOSPC' },
  { name: 'statfs EIO', op: 'statfs', path: () => true, code: 'EIO' },
  { name: 'WAL sync EIO', op: 'sync', path: (p) => p.endsWith('.log'), code: 'EIO' },
  { name: 'directory sync ENOSPC', op: 'syncDir', path: () => true, code: 'ENOSPC' },
];

/** Counts matching operations, or fails the nth one (once). */
class Injector implements FaultInjector {
  seen = 0;
  fired = false;
  /** Off while the database opens: faults in open() are not what this is about. */
  active = false;
  constructor(
    private readonly t: Target,
    private readonly failAt: number,
  ) {}
  maybeFail(op: FaultOp, path: string): FaultCode | null {
    if (!this.active || op !== this.t.op || !this.t.path(path)) return null;
    const i = this.seen++;
    if (i !== this.failAt) return null;
    this.fired = true;
    return this.t.code;
  }
}

interface Reader {
  label: string;
  it: LightningIterator | TransactionIterator;
  want: [string, string][];
  pos: number;
  done: boolean;
}

function sorted(model: Map<string, string>, reverse = false): [string, string][] {
  const e = [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return reverse ? e.reverse() : e;
}

function step(label: string, r: Reader, n: number): void {
  for (let i = 0; i < n && !r.done; i++) {
    const e = r.it.nextSync();
    if (e === undefined) {
      assert.equal(r.pos, r.want.length, `${label}: ${r.label} ended after ${r.pos} of ${r.want.length}`);
      r.done = true;
      return;
    }
    const w = r.want[r.pos];
    const gk = e[0].toString();
    const gv = e[1].toString();
    if (w === undefined || w[0] !== gk || w[1] !== gv) assert.fail(`${label}: ${r.label} entry ${r.pos}: got ${gk}=${gv.slice(0, 30)}, want ${w?.[0]}=${w?.[1].slice(0, 30)}`);
    r.pos++;
  }
}

interface RunResult {
  seen: number;
  fired: boolean;
  errors: string[];
  reopened: boolean;
}

async function run(t: Target, failAt: number, seed: number): Promise<RunResult> {
  const label = `SEED=${seed} ${t.name} #${failAt}`;
  const rng = new Random(seed);
  const mem = new MemFs();
  const inj = new Injector(t, failAt);
  const ffs = new FaultFs(mem, inj);
  const opts = { memtableSize: 12 * 1024, blockSize: 512, sync: false, seed, l0CompactionTrigger: 3, targetFileSize: 8 * 1024, levelBaseSize: 32 * 1024 };
  let db: Database = await open('/db', { ...opts, fs: ffs });
  inj.active = true;
  const model = new Map<string, string>();
  const errors: string[] = [];
  let reopened = false;
  let version = 0;
  const val = (k: string): string => `${k}@${++version}:${String.fromCharCode(97 + (version % 26)).repeat(20 + rng.nextInt(200))}`;
  const key = (): string => `k${String(rng.nextInt(800)).padStart(4, '0')}`;

  const readers: Reader[] = [];
  const snaps: Snapshot[] = [];
  let txn: Transaction | null = null;
  let readersOpened = false;
  const openReaders = (): void => {
    readersOpened = true;
    readers.push({ label: 'forward', it: db.iterator(), want: sorted(model), pos: 0, done: false });
    readers.push({ label: 'reverse', it: db.iterator({ reverse: true }), want: sorted(model, true), pos: 0, done: false });
    const snap = db.snapshot();
    snaps.push(snap);
    readers.push({ label: 'snapshot reverse', it: snap.iterator({ reverse: true, gte: 'k0200' }), want: sorted(model, true).filter(([k]) => k >= 'k0200'), pos: 0, done: false });
    const tx = db.beginTransaction();
    tx.put('k9999', 'own');
    const own = new Map(model);
    own.set('k9999', 'own');
    readers.push({ label: 'txn', it: tx.iterator(), want: sorted(own), pos: 0, done: false });
    txn = tx;
  };

  const recover = async (e: unknown, what: string): Promise<void> => {
    assertLightning(e, ['DISK_FULL', 'IO_ERROR'], `${label}: ${what}`);
    errors.push(`${what}: ${(e as Error).message}`);
    // The one fault has fired; get the database writable again.
    for (let attempt = 0; attempt < 20; attempt++) {
      const bg = db.stats().backgroundError;
      if (bg === null) return;
      if (bg.mode === 'failed') break;
      try {
        await db.resume();
        return;
      } catch (e2) {
        assertLightning(e2, ['DISK_FULL', 'IO_ERROR'], `${label}: resume`);
      }
    }
    // Only reopening helps: readers still read (they are checked to the end first).
    for (const r of readers) step(label, r, 1_000_000);
    for (const r of readers) r.it.close();
    readers.length = 0;
    if (txn !== null) await (txn as Transaction).rollback();
    txn = null;
    await db.close().catch((e3: unknown) => errors.push(`close: ${describeError(e3)}`));
    inj.active = false;
    db = await open('/db', { ...opts, fs: ffs });
    inj.active = true;
    reopened = true;
    if (readersOpened) openReaders();
  };

  // A first memtable's worth, then readers that stay open across the failure.
  for (let i = 0; i < 60; i++) {
    const k = key();
    const v = val(k);
    try {
      await db.put(k, v);
      model.set(k, v);
    } catch (e) {
      await recover(e, `prefill ${i}`);
    }
  }
  openReaders();

  for (let b = 0; b < 220; b++) {
    const ops: { type: 'put'; key: string; value: string }[] = [];
    for (let i = 0; i < 1 + rng.nextInt(6); i++) {
      const k = key();
      ops.push({ type: 'put', key: k, value: val(k) });
    }
    try {
      await db.batch(ops);
      for (const o of ops) model.set(o.key, o.value);
    } catch (e) {
      await recover(e, `batch ${b}`);
    }
    if (b % 50 === 25) {
      try {
        await db.compactRange();
      } catch (e) {
        await recover(e, `compactRange at ${b}`);
      }
    }
    for (const r of readers) step(label, r, 2);
    for (let i = 0; i < 2; i++) {
      const k = key();
      assert.equal(db.getSync(k)?.toString(), model.get(k), `${label}: get ${k} after batch ${b}`);
    }
  }
  try {
    await db.idle();
  } catch (e) {
    await recover(e, 'idle');
  }
  if (db.stats().backgroundError !== null) await recover(db.stats().backgroundError as unknown as Error, 'final');
  for (const r of readers) step(label, r, 1_000_000);
  for (const r of readers) r.it.close();
  if (txn !== null) await (txn as Transaction).rollback();
  for (const s of snaps) s.release();
  assert.deepEqual(
    [...db.iterator()].map(([k, v]) => [k.toString(), v.toString()]),
    sorted(model),
    `${label}: full scan at the end`,
  );
  // The fault may land in close()'s own flush: close reports it; the WAL still has the writes.
  await db.close().catch((e: unknown) => {
    assertLightning(e, ['DISK_FULL', 'IO_ERROR'], `${label}: close`);
    errors.push(`close: ${(e as Error).message}`);
  });
  const again = await open('/db', { ...opts, fs: mem });
  try {
    assert.deepEqual(
      [...again.iterator()].map(([k, v]) => [k.toString(), v.toString()]),
      sorted(model),
      `${label}: full scan after reopen`,
    );
  } finally {
    await again.close();
  }
  return { seen: inj.seen, fired: inj.fired, errors, reopened };
}

test('session12: open readers and point reads stay exact across flush / WAL / manifest failures and their recovery', { timeout: 120_000 }, async () => {
  await withSeed('session12 memtable reuse under faults', async (seed) => {
    const summary: string[] = [];
    for (const t of TARGETS) {
      const count = await run(t, Number.MAX_SAFE_INTEGER, seed);
      assert.ok(count.seen > 0, `${t.name}: the workload never does this operation`);
      const points = new Set<number>();
      for (let i = 0; i < 7; i++) points.add(Math.floor((i * count.seen) / 7));
      points.add(count.seen - 1);
      let fired = 0;
      let reopened = 0;
      for (const n of points) {
        const r = await run(t, n, seed);
        if (r.fired) fired++;
        if (r.reopened) reopened++;
      }
      summary.push(`${t.name}: ${count.seen} ops, ${fired} fired, ${reopened} reopened`);
      assert.ok(fired > 0, `${t.name}: no fault fired`);
    }
    console.log(summary.join('\n'));
  });
  await recorder.settle();
  recorder.assertNone();
});
