/**
 * Bank invariant (property test): concurrent async transfers between accounts under random
 * interleavings (seeded yields between operations), random aborts (a throw inside the callback,
 * or a rollback), random durability, audits that scan every account, a small memtable (so
 * validation also looks into SSTables), then a reopen and a second phase, and a power cut (MemFs
 * crashClone) taken at a random moment of the first phase.
 *
 * Every transfer also writes a record `xfer/<id>` = "from,to,amount" in the same transaction, so
 * after each phase the checker can demand, for every account:
 *     balance = initial + sum(amounts of records into it) - sum(amounts of records out of it)
 * i.e. every committed transfer is applied exactly once (atomicity, no lost update), the records
 * are exactly the transfers whose db.transaction resolved (no aborted or failed one left a trace),
 * the total is conserved, and no balance is negative (each transfer checks funds it read). After
 * the crash: the same identities hold on whatever survived, and every transfer acknowledged with
 * sync: true before the cut survived.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { open, isLightningError, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { numRuns, testSeed } from '../harness/seed.js';
import { ProcessErrorRecorder } from '../harness/api-helpers.js';
import { KINDS, kindName, randomYield, settle, type TxnKind } from './txn-helpers.js';

const recorder = new ProcessErrorRecorder();

const ACCOUNTS = 8;
const INITIAL = 100;
const acct = (i: number): string => `acct/${String(i).padStart(2, '0')}`;

class Abort extends Error {}

interface Transfer {
  id: string;
  from: number;
  to: number;
  amount: number;
}

interface Ledger {
  /** Transfers whose db.transaction resolved with 'done' (committed with writes). */
  committed: Map<string, Transfer>;
  /** Ids acknowledged with sync: true before the crash clone was taken. */
  durableAtCrash: Set<string> | null;
  crashed: MemFs | null;
}

/** Reads the state and checks the identities in the header. Returns the records found. */
async function checkBank(db: Database, what: string): Promise<Map<string, Transfer>> {
  const balances: number[] = [];
  for (let i = 0; i < ACCOUNTS; i++) balances.push(Number((await db.get(acct(i)))?.toString()));
  const records = new Map<string, Transfer>();
  for await (const [k, v] of db.iterator({ prefix: 'xfer/' })) {
    const [from, to, amount] = v.toString().split(',').map(Number) as [number, number, number];
    records.set(k.toString().slice('xfer/'.length), { id: k.toString(), from, to, amount });
  }
  const expected = new Array<number>(ACCOUNTS).fill(INITIAL);
  for (const t of records.values()) {
    expected[t.from] = (expected[t.from] as number) - t.amount;
    expected[t.to] = (expected[t.to] as number) + t.amount;
  }
  assert.deepEqual(balances, expected, `${what}: balances match the transfer records (each applied exactly once)`);
  assert.equal(balances.reduce((a, b) => a + b, 0), ACCOUNTS * INITIAL, `${what}: total conserved`);
  for (const b of balances) assert.ok(b >= 0, `${what}: no negative balance`);
  return records;
}

function sameIds(records: Map<string, Transfer>, committed: Map<string, Transfer>, what: string): void {
  const missing = [...committed.keys()].filter((id) => !records.has(id));
  const extra = [...records.keys()].filter((id) => !committed.has(id));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `${what}: records = committed transfers`);
}

async function runPhase(
  db: Database,
  rng: Random,
  phase: string,
  kindOf: () => TxnKind,
  ledger: Ledger,
  mem: MemFs,
  crashAfter: number,
): Promise<void> {
  let completed = 0;
  const transfer = async (id: string): Promise<void> => {
    const kind = kindOf();
    const sync = rng.nextInt(3) === 0;
    const t: Transfer = { id, from: rng.nextInt(ACCOUNTS), to: 0, amount: 1 + rng.nextInt(40) };
    t.to = (t.from + 1 + rng.nextInt(ACCOUNTS - 1)) % ACCOUNTS;
    const forUpdate = kind.mode === 'pessimistic' || rng.nextInt(2) === 0;
    let outcome: string;
    try {
      outcome = await db.transaction(
        async (tx) => {
          // Random lock order: pessimistic transfers deadlock now and then.
          const order = rng.nextInt(2) === 0 ? [t.from, t.to] : [t.to, t.from];
          const bal = new Map<number, number>();
          for (const a of order) {
            await randomYield(rng);
            const v = forUpdate ? await tx.getForUpdate(acct(a)) : await tx.get(acct(a));
            bal.set(a, Number(v?.toString()));
          }
          await randomYield(rng);
          const r = rng.nextInt(20);
          if (r === 0) throw new Abort('abort');
          if (r === 1) {
            await tx.rollback();
            return 'rolled-back';
          }
          const fromBal = bal.get(t.from) as number;
          if (fromBal < t.amount) return 'insufficient';
          tx.put(acct(t.from), String(fromBal - t.amount));
          await randomYield(rng);
          tx.put(acct(t.to), String((bal.get(t.to) as number) + t.amount));
          tx.put(`xfer/${id}`, `${t.from},${t.to},${t.amount}`);
          return 'done';
        },
        { ...kind, sync, retries: 8 },
      );
    } catch (e) {
      if (e instanceof Abort) outcome = 'aborted';
      else if (isLightningError(e, 'CONFLICT') || isLightningError(e, 'DEADLOCK')) outcome = 'gave-up';
      else throw e;
    }
    if (outcome === 'done') {
      ledger.committed.set(id, t);
      if (sync && ledger.crashed === null) ledger.durableAtCrash?.add(id);
    }
    completed++;
    if (completed === crashAfter && ledger.crashed === null) {
      // Power cut now, while other transfers are in flight.
      const crng = new Random(rng.nextUint32());
      ledger.crashed = mem.crashClone({ rng: crng, tearLastWrite: crng.nextInt(2) === 0, keepUnsyncedProbability: crng.nextInt(2) * 0.5 });
    }
  };
  const audit = async (): Promise<void> => {
    const total = await db.transaction(
      async (tx) => {
        let sum = 0;
        for await (const [k, v] of tx.iterator({ prefix: 'acct/' })) {
          assert.ok(k.toString().startsWith('acct/'));
          sum += Number(v.toString());
          await randomYield(rng);
        }
        return sum;
      },
      { ...kindOf(), retries: 8 },
    ).catch((e: unknown) => {
      if (isLightningError(e, 'CONFLICT')) return ACCOUNTS * INITIAL; // a serializable audit gave up
      throw e;
    });
    assert.equal(total, ACCOUNTS * INITIAL, `${phase}: an audit saw a consistent snapshot`);
  };
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; i < 16; i++) {
      if (rng.nextInt(8) === 0) await audit();
      else await transfer(`${phase}-${w}-${i}`);
    }
  };
  const workers: Promise<void>[] = [];
  for (let w = 0; w < 6; w++) workers.push(worker(w));
  await Promise.all(workers);
}

async function bankRun(seed: number, kindIndex: number): Promise<void> {
  const rng = new Random(seed);
  const kindOf = (): TxnKind => (kindIndex < KINDS.length ? (KINDS[kindIndex] as TxnKind) : (KINDS[rng.nextInt(KINDS.length)] as TxnKind));
  const mem = new MemFs();
  const opts = { fs: mem, memtableSize: 2048, blockSize: 256, l0CompactionTrigger: 2, seed: rng.nextUint32() };
  let db = await open('/db', opts);
  await db.batch(Array.from({ length: ACCOUNTS }, (_, i) => ({ type: 'put' as const, key: acct(i), value: String(INITIAL) })));
  const ledger: Ledger = { committed: new Map(), durableAtCrash: new Set(), crashed: null };
  await runPhase(db, rng, 'p1', kindOf, ledger, mem, 1 + rng.nextInt(50));
  sameIds(await checkBank(db, 'phase 1'), ledger.committed, 'phase 1');
  assert.equal(db.stats().activeTransactions, 0);
  assert.equal(db.stats().openSnapshots, 0);

  await db.close();
  db = await open('/db', opts);
  sameIds(await checkBank(db, 'after reopen'), ledger.committed, 'after reopen');
  await runPhase(db, rng, 'p2', kindOf, ledger, mem, -1);
  sameIds(await checkBank(db, 'phase 2'), ledger.committed, 'phase 2');
  await db.close();

  const crashed = ledger.crashed as MemFs | null;
  assert.ok(crashed !== null, 'the crash point was reached');
  const after = await open('/db', { fs: crashed });
  const survived = await checkBank(after, 'after crash');
  for (const id of survived.keys()) assert.ok(ledger.committed.has(id), `after crash: ${id} was committed`);
  for (const id of ledger.durableAtCrash ?? []) assert.ok(survived.has(id), `after crash: durable transfer ${id} survived`);
  await after.close();
}

test('bank: concurrent transfers conserve money; each committed transfer is applied exactly once', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: KINDS.length }), async (seed, kindIndex) => {
      const name = kindIndex < KINDS.length ? kindName(KINDS[kindIndex] as TxnKind) : 'mixed';
      try {
        await bankRun(seed, kindIndex);
      } catch (e) {
        throw new Error(`bank run (${name}, run seed ${seed}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    }),
    { seed: testSeed(), numRuns: numRuns(16, 300), includeErrorInReport: true, examples: KINDS.map((_, i) => [i + 1, i] as [number, number]) },
  );
});

test('no unhandled rejections or uncaught exceptions', async () => {
  await settle();
  recorder.assertNone();
  recorder.dispose();
});
