/**
 * Crash loop: a seeded workload of concurrent puts, deletes and batches (some durable, some not) runs
 * on a crashable in-memory filesystem; power is cut at a random filesystem operation (possibly a
 * torn last write, possibly with some unsynced data surviving, possibly with unsynced pages written
 * back in any order), sometimes again during recovery;
 * then the database is reopened and checked:
 *   - prefix property: the state equals the model after some prefix of the issued writes;
 *   - durability: that prefix includes every `sync: true` write acknowledged before the crash.
 * Cycles: CRASH_CYCLES (default 300; `npm run soak` runs many more).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { CrashAtOp } from '../harness/crash-at-op.js';
import { describeState, type ModelState } from '../harness/model.js';
import { numRuns, withSeed } from '../harness/seed.js';

type Write =
  | { t: 'put'; key: string; value: string }
  | { t: 'del'; key: string }
  | { t: 'batch'; ops: ({ t: 'put'; key: string; value: string } | { t: 'del'; key: string })[] };

function applyWrite(state: ModelState, w: Write): void {
  const ops = w.t === 'batch' ? w.ops : [w];
  for (const o of ops) {
    if (o.t === 'put') state.set(o.key, o.value);
    else state.delete(o.key);
  }
}

function genWrite(rng: Random, i: number): Write {
  const key = (): string => `k${rng.nextInt(24).toString().padStart(2, '0')}`;
  const value = (): string => `v${i}-${'x'.repeat(rng.nextInt(3) === 0 ? 300 : rng.nextInt(20))}`;
  const r = rng.nextInt(10);
  if (r < 6) return { t: 'put', key: key(), value: value() };
  if (r < 8) return { t: 'del', key: key() };
  const ops: Write[] = [];
  const n = 1 + rng.nextInt(6);
  for (let j = 0; j < n; j++) ops.push(rng.nextInt(4) === 0 ? { t: 'del', key: key() } : { t: 'put', key: key(), value: value() });
  return { t: 'batch', ops: ops as ({ t: 'put'; key: string; value: string } | { t: 'del'; key: string })[] };
}

interface Issued {
  write: Write;
  sync: boolean;
  ackedBeforeCrash: boolean;
}

async function runWorkload(fs: FaultFs, crash: CrashAtOp, rng: Random, writes: number): Promise<Issued[]> {
  const issued: Issued[] = [];
  let db;
  try {
    db = await open('/db', { fs, memtableSize: 1024 + rng.nextInt(4096), blockSize: 128, sync: false, seed: rng.nextUint32() });
  } catch {
    return issued; // crashed during create: nothing acknowledged
  }
  let outstanding: Promise<void>[] = [];
  for (let i = 0; i < writes && crash.crashed === undefined; i++) {
    const write = genWrite(rng, i);
    const sync = rng.nextInt(3) === 0;
    const entry: Issued = { write, sync, ackedBeforeCrash: false };
    issued.push(entry);
    const p =
      write.t === 'put'
        ? db.put(write.key, write.value, { sync })
        : write.t === 'del'
          ? db.delete(write.key, { sync })
          : db.batch(write.ops.map((o) => (o.t === 'put' ? { type: 'put' as const, key: o.key, value: o.value } : { type: 'del' as const, key: o.key })), { sync });
    const tracked = p.then(
      () => {
        if (crash.crashed === undefined) entry.ackedBeforeCrash = true;
      },
      () => undefined, // writes after the crash point fail with EIO: expected
    );
    outstanding.push(tracked);
    if (rng.nextInt(4) === 0) {
      await Promise.all(outstanding);
      outstanding = [];
    }
  }
  await Promise.all(outstanding);
  await db.close().catch(() => undefined); // the crashed instance cannot close cleanly
  return issued;
}

async function scanAll(fs: MemFs): Promise<ModelState> {
  const db = await open('/db', { fs, createIfMissing: true });
  const state: ModelState = new Map();
  for await (const [k, v] of db.iterator()) state.set(k.toString(), v.toString());
  // The recovered database must accept writes and survive a clean reopen.
  await db.put('zz-after-recovery', '1');
  await db.close();
  const again = await open('/db', { fs });
  assert.equal((await again.get('zz-after-recovery'))?.toString(), '1');
  await again.close();
  return state;
}

/** Smallest prefix length >= minPrefix whose model equals `state`, or -1. */
function matchingPrefix(issued: Issued[], state: ModelState, minPrefix: number): number {
  const target = describeState(state);
  const model: ModelState = new Map();
  for (let p = 0; p <= issued.length; p++) {
    if (p >= minPrefix && describeState(model) === target) return p;
    const w = issued[p];
    if (w !== undefined) applyWrite(model, w.write);
  }
  return -1;
}

async function oneCycle(rng: Random): Promise<void> {
  const mem = new MemFs();
  // A third of the cuts write pages back in any order (WAL format 2's sync marks make that a torn
  // tail; before them a strict open called some of these CORRUPTION).
  const crashOpts = {
    rng,
    tearLastWrite: rng.nextInt(2) === 0,
    keepUnsyncedProbability: rng.nextInt(3) === 0 ? 0.5 : 0,
    scrambleUnsyncedPages: rng.nextInt(3) === 0,
  };
  const crash = new CrashAtOp(mem, 1 + rng.nextInt(400), crashOpts);
  const issued = await runWorkload(new FaultFs(mem, crash), crash, rng, 60 + rng.nextInt(200));
  let after = crash.crashed ?? mem.crashClone(crashOpts);
  if (rng.nextInt(4) === 0) {
    // Cut power again while recovery runs.
    const second = new CrashAtOp(after, 1 + rng.nextInt(60), { rng, tearLastWrite: true });
    await open('/db', { fs: new FaultFs(after, second) }).then((db) => db.close().catch(() => undefined), () => undefined);
    after = second.crashed ?? after;
  }
  const state = await scanAll(after);
  state.delete('zz-after-recovery');
  let lastDurable = 0;
  issued.forEach((w, i) => {
    if (w.sync && w.ackedBeforeCrash) lastDurable = i + 1;
  });
  const p = matchingPrefix(issued, state, lastDurable);
  assert.ok(
    p >= 0,
    `recovered state is not a prefix of the writes containing every durable ack (need >= ${lastDurable} of ${issued.length})\n` +
      `recovered: ${describeState(state)}`,
  );
}

test('crash loop: prefix property and durable acks survive power loss', async () => {
  await withSeed('crash loop', async (seed) => {
    const only = process.env['CYCLE_SEED'];
    if (only !== undefined) return oneCycle(new Random(Number(only)));
    const cycles = Number(process.env['CRASH_CYCLES'] ?? numRuns(300, 20_000));
    const rng = new Random(seed);
    for (let c = 0; c < cycles; c++) {
      const cycleSeed = rng.nextUint32();
      try {
        await oneCycle(new Random(cycleSeed));
      } catch (e) {
        throw new Error(`cycle ${c} (cycle seed ${cycleSeed}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    }
  });
});
