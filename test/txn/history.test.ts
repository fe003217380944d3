/**
 * History checker. A randomized concurrent workload (seeded yields between operations, random
 * aborts) records, for every committed transaction, what it read and wrote; then the history is
 * checked against the isolation level's definition.
 *
 * Recording. Keys come from a small fixed universe and start absent; there are no deletes, and
 * every transaction writes the value `t<id>`, so a value names the transaction that wrote that
 * version, and "absent" can only be the initial version (written by the virtual transaction T0).
 * A scan is recorded as a read of every key of the universe in the range it covered: returned
 * keys at the version returned, the others at the initial version (phantoms become item reads).
 * The covered range is the whole range if the scan reached its end, else the range up to the last
 * key returned (exactly what serializable validation promises). Reads a transaction served from
 * its own writes are not recorded. The version order of each key is the commit order of its
 * writers: `tx.commitOrder`, which the validator assigns in commit order (T0 is 0).
 *
 * Serializable (Adya's PL-3): the direct serialization graph over committed transactions, with
 *   ww: writer of a version -> writer of the next version of the same key,
 *   wr: writer of a version -> each transaction that read it,
 *   rw: reader of a version -> writer of the next version (an anti-dependency),
 * must be acyclic.
 *
 * Snapshot isolation (every run, serializable ones included): each committed transaction T must
 * have a snapshot point p (after the p-th commit) such that
 *   - every read saw the version current at p:  commit(writer) <= p < commit(next writer);
 *   - no other transaction committed a write to a key T wrote after p (first committer wins,
 *     which also excludes lost updates): for each key T wrote, commit(previous writer) <= p;
 *   - p < commit(T).
 * These are per-transaction interval constraints, so the check is: max(lower bounds) <
 * min(upper bounds). Snapshot points of different transactions do not constrain each other, so
 * this is exactly "T read from a consistent snapshot taken before it committed and no concurrent
 * writer of its keys committed first" — the definition of SI with commit order as version order.
 * (Pessimistic transactions whose snapshot moved forward while they only held locked reads pass
 * it with p just before their commit.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Database, Transaction, RangeOptions } from '../../src/index.js';
import { isLightningError } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { numRuns, testSeed } from '../harness/seed.js';
import { ProcessErrorRecorder } from '../harness/api-helpers.js';
import { KINDS, kindName, openMem, randomYield, settle, type TxnKind } from './txn-helpers.js';

const recorder = new ProcessErrorRecorder();

const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];

interface Committed {
  id: number;
  kind: TxnKind;
  /** 0 for read-only transactions (they have no place in the commit order). */
  commit: number;
  /** key -> id of the writer of the version read (0 = initial). */
  reads: Map<string, number>;
  writes: Set<string>;
}

type Edge = 'ww' | 'wr' | 'rw';

class Recorder {
  readonly reads = new Map<string, number>();
  readonly writes = new Set<string>();
  constructor(readonly id: number) {}

  read(key: string, value: Buffer | undefined): void {
    if (this.writes.has(key)) {
      assert.equal(value?.toString(), `t${this.id}`, `T${this.id} reads its own write of ${key}`);
      return;
    }
    const writer = value === undefined ? 0 : Number(value.toString().slice(1));
    const before = this.reads.get(key);
    if (before === undefined) this.reads.set(key, writer);
    // Reading one key twice must give the same version (repeatable reads from one snapshot).
    else assert.equal(writer, before, `T${this.id} read ${key} twice and saw different versions`);
  }
}

async function randomScan(tx: Transaction, rec: Recorder, rng: Random): Promise<void> {
  let a = rng.nextInt(KEYS.length);
  let b = rng.nextInt(KEYS.length);
  if (a > b) [a, b] = [b, a];
  const reverse = rng.nextInt(2) === 0;
  const limit = rng.nextInt(3) === 0 ? 1 + rng.nextInt(3) : undefined;
  const breakAfter = rng.nextInt(4) === 0 ? 1 + rng.nextInt(3) : Infinity;
  const range: RangeOptions = { gte: KEYS[a] as string, lte: KEYS[b] as string, reverse };
  if (limit !== undefined) range.limit = limit;
  const seen = new Map<string, Buffer>();
  let last: string | undefined;
  let broke = false;
  for await (const [k, v] of tx.iterator(range)) {
    seen.set(k.toString(), v);
    last = k.toString();
    if (seen.size >= breakAfter) {
      broke = true;
      break;
    }
    await randomYield(rng);
  }
  const complete = !broke && (limit === undefined || seen.size < limit);
  let covered = KEYS.slice(a, b + 1);
  if (!complete) {
    if (last === undefined) covered = [];
    else covered = covered.filter((k) => (reverse ? k >= (last as string) : k <= (last as string)));
  }
  for (const k of covered) {
    if (rec.writes.has(k)) continue;
    rec.read(k, seen.get(k));
  }
}

async function runOne(db: Database, kind: TxnKind, id: number, rng: Random): Promise<Committed | null> {
  const tx = db.beginTransaction(kind);
  const rec = new Recorder(id);
  try {
    const ops = 1 + rng.nextInt(5);
    for (let i = 0; i < ops; i++) {
      await randomYield(rng);
      const key = KEYS[rng.nextInt(KEYS.length)] as string;
      const r = rng.nextInt(10);
      if (r < 3) rec.read(key, await tx.get(key));
      else if (r < 5) rec.read(key, await tx.getForUpdate(key));
      else if (r < 7) await randomScan(tx, rec, rng);
      else {
        tx.put(key, `t${id}`);
        rec.writes.add(key);
      }
    }
    await randomYield(rng);
    if (rng.nextInt(12) === 0) {
      await tx.rollback();
      return null;
    }
    await tx.commit();
    assert.equal(tx.commitOrder > 0, rec.writes.size > 0, 'writers (only) get a commit order');
    return { id, kind, commit: tx.commitOrder, reads: rec.reads, writes: rec.writes };
  } catch (e) {
    if (!isExpected(e)) throw e;
    await tx.rollback().catch(() => undefined);
    return null;
  }
}

function isExpected(e: unknown): boolean {
  return isLightningError(e, 'CONFLICT') || isLightningError(e, 'DEADLOCK') || isLightningError(e, 'TIMEOUT');
}

/** Version order: per key, the writers' ids in commit order, starting with T0. */
function versionOrder(history: Committed[]): Map<string, Committed[]> {
  const t0: Committed = { id: 0, kind: KINDS[0] as TxnKind, commit: 0, reads: new Map(), writes: new Set(KEYS) };
  const out = new Map<string, Committed[]>();
  for (const k of KEYS) out.set(k, [t0]);
  const writers = history.filter((t) => t.writes.size > 0).sort((x, y) => x.commit - y.commit);
  for (const t of writers) for (const k of t.writes) out.get(k)?.push(t);
  return out;
}

function checkSnapshotIsolation(history: Committed[], versions: Map<string, Committed[]>): void {
  for (const t of history) {
    let lo = 0;
    let hi = t.commit === 0 ? Infinity : t.commit;
    const why: string[] = [];
    for (const [k, writer] of t.reads) {
      const chain = versions.get(k) as Committed[];
      const i = chain.findIndex((w) => w.id === writer);
      assert.ok(i >= 0, `T${t.id} read ${k} from T${writer}, which never committed it (dirty or aborted read)`);
      const next = chain[i + 1];
      lo = Math.max(lo, (chain[i] as Committed).commit);
      if (next !== undefined && next.id !== t.id) hi = Math.min(hi, next.commit);
      if (next !== undefined && next.id === t.id) hi = Math.min(hi, t.commit);
      why.push(`read ${k}@T${writer}(c${(chain[i] as Committed).commit}, next c${next?.commit ?? '∞'})`);
    }
    for (const k of t.writes) {
      const chain = versions.get(k) as Committed[];
      const i = chain.findIndex((w) => w.id === t.id);
      const prev = chain[i - 1] as Committed;
      lo = Math.max(lo, prev.commit);
      why.push(`wrote ${k} after T${prev.id}(c${prev.commit})`);
    }
    assert.ok(lo < hi, `T${t.id} (${kindName(t.kind)}, commit ${t.commit}) has no consistent snapshot point: ${why.join(', ')}`);
  }
}

/** The ww/wr/rw edges of the direct serialization graph. */
function dependencyGraph(history: Committed[], versions: Map<string, Committed[]>): Map<number, Map<number, Edge>> {
  const g = new Map<number, Map<number, Edge>>();
  const add = (from: number, to: number, e: Edge): void => {
    if (from === to) return;
    let m = g.get(from);
    if (m === undefined) g.set(from, (m = new Map()));
    if (!m.has(to)) m.set(to, e);
  };
  for (const [, chain] of versions) {
    for (let i = 0; i + 1 < chain.length; i++) add((chain[i] as Committed).id, (chain[i + 1] as Committed).id, 'ww');
  }
  for (const t of history) {
    for (const [k, writer] of t.reads) {
      add(writer, t.id, 'wr');
      const chain = versions.get(k) as Committed[];
      const next = chain[chain.findIndex((w) => w.id === writer) + 1];
      if (next !== undefined) add(t.id, next.id, 'rw');
    }
  }
  return g;
}

/** A cycle as "T1 -rw-> T2 -ww-> T1", or null. Iterative DFS with colors. */
function findCycle(g: Map<number, Map<number, Edge>>): string | null {
  const color = new Map<number, 1 | 2>();
  const parent = new Map<number, number>();
  for (const start of g.keys()) {
    if (color.has(start)) continue;
    const stack: [number, Iterator<number>][] = [[start, (g.get(start) ?? new Map()).keys()]];
    color.set(start, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [number, Iterator<number>];
      const n = top[1].next();
      if (n.done === true) {
        color.set(top[0], 2);
        stack.pop();
        continue;
      }
      const v = n.value;
      if (color.get(v) === 1) {
        const path = [v];
        for (let u = top[0]; u !== v; u = parent.get(u) as number) path.push(u);
        path.push(v);
        path.reverse();
        return path.map((x, i) => (i === 0 ? `T${x}` : `-${g.get(path[i - 1] as number)?.get(x)}-> T${x}`)).join(' ');
      }
      if (color.has(v)) continue;
      color.set(v, 1);
      parent.set(v, top[0]);
      stack.push([v, (g.get(v) ?? new Map()).keys()]);
    }
  }
  return null;
}

async function historyRun(seed: number, kindIndex: number): Promise<void> {
  const rng = new Random(seed);
  const mixed = kindIndex >= KINDS.length;
  const { db } = await openMem({ memtableSize: 4096, seed: rng.nextUint32() });
  let nextId = 1;
  const history: Committed[] = [];
  const worker = async (): Promise<void> => {
    for (let i = 0; i < 25; i++) {
      const kind = (mixed ? KINDS[rng.nextInt(KINDS.length)] : KINDS[kindIndex]) as TxnKind;
      const c = await runOne(db, kind, nextId++, rng);
      if (c !== null) history.push(c);
    }
  };
  await Promise.all(Array.from({ length: 6 }, () => worker()));
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
  assert.ok(history.some((t) => t.writes.size > 0), 'some writer committed');
  const versions = versionOrder(history);
  checkSnapshotIsolation(history, versions);
  if (!mixed && (KINDS[kindIndex] as TxnKind).isolation === 'serializable') {
    const cycle = findCycle(dependencyGraph(history, versions));
    assert.equal(cycle, null, `dependency cycle under serializable: ${cycle}`);
  }
}

test('history checker: serializable histories are acyclic; every history is snapshot isolated', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: KINDS.length }), async (seed, kindIndex) => {
      await historyRun(seed, kindIndex);
    }),
    {
      seed: testSeed(),
      numRuns: numRuns(30, 500),
      includeErrorInReport: true,
      examples: [0, 1, 2, 3, 4].map((i) => [i + 7, i] as [number, number]),
    },
  );
});

test('the checker itself: it finds write skew under snapshot isolation and a lost update', () => {
  // Write skew: T1 and T2 both read x and y at the initial version, T1 writes x, T2 writes y.
  const t1: Committed = { id: 1, kind: KINDS[0] as TxnKind, commit: 1, reads: new Map([['k0', 0], ['k1', 0]]), writes: new Set(['k0']) };
  const t2: Committed = { id: 2, kind: KINDS[0] as TxnKind, commit: 2, reads: new Map([['k0', 0], ['k1', 0]]), writes: new Set(['k1']) };
  const skew = [t1, t2];
  const v = versionOrder(skew);
  checkSnapshotIsolation(skew, v); // allowed by SI
  assert.match(findCycle(dependencyGraph(skew, v)) ?? '', /rw/, 'not serializable');
  // Lost update: both read k0 at T0 and both write it.
  const u1: Committed = { ...t1, reads: new Map([['k0', 0]]), writes: new Set(['k0']) };
  const u2: Committed = { ...t2, reads: new Map([['k0', 0]]), writes: new Set(['k0']) };
  assert.throws(() => checkSnapshotIsolation([u1, u2], versionOrder([u1, u2])), /no consistent snapshot point/);
  // Inconsistent snapshot: T3 saw T1's k0 but not T2's k1, although T2 committed before T1.
  const w2: Committed = { id: 2, kind: KINDS[0] as TxnKind, commit: 1, reads: new Map(), writes: new Set(['k1']) };
  const w1: Committed = { id: 1, kind: KINDS[0] as TxnKind, commit: 2, reads: new Map(), writes: new Set(['k0']) };
  const r3: Committed = { id: 3, kind: KINDS[0] as TxnKind, commit: 0, reads: new Map([['k0', 1], ['k1', 0]]), writes: new Set() };
  assert.throws(() => checkSnapshotIsolation([w1, w2, r3], versionOrder([w1, w2, r3])), /no consistent snapshot point/);
});

test('no unhandled rejections or uncaught exceptions', async () => {
  await settle();
  recorder.assertNone();
  recorder.dispose();
});
