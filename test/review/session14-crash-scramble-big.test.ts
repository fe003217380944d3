/**
 * Review (session 14) of WAL format 2 (commit e55b52d) at the database level, under the page-scramble
 * power-cut model (MemFs scrambleUnsyncedPages) for EVERY cut, including a second cut during
 * recovery. Unlike test/crash/crash-recovery.test.ts (memtables of 1-5 KiB, values <= 300 bytes,
 * a third of the cuts scrambled) this workload makes WALs of several MiB: background syncs
 * (1 MiB unsynced) racing durable group commits, records larger than the 64 KiB preallocation,
 * rotations of big WALs (trimTail before the last sync), inlineSync on some cycles, and a clean
 * close + reopen in the middle of some cycles.
 *
 * Checks per cycle: a STRICT open succeeds; the recovered keys are exactly a prefix of the issued
 * writes (each write has its own key, so the prefix is read off directly) that contains every
 * durable write acknowledged before the cut; values are intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs, type CrashOptions } from '../../src/env/mem-fs.js';
import { FaultFs, type FaultInjector } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { CrashAtOp } from '../harness/crash-at-op.js';
import { testSeed } from '../harness/seed.js';

const DIR = '/db';
/** Coverage of the uncut runs: background syncs, durable syncs, flushes (checked at the end). */
const coverage = { backgroundSyncs: 0, walSyncs: 0, flushes: 0 };

function keyOf(i: number): string {
  return `k${String(i).padStart(5, '0')}`;
}

function valueOf(i: number, size: number): string {
  const head = `v${i}:`;
  return head + String.fromCharCode(97 + (i % 26)).repeat(Math.max(0, size - head.length));
}

interface Issued {
  size: number;
  sync: boolean;
  acked: boolean;
}

class Counting implements FaultInjector {
  ops = 0;
  maybeFail(): null {
    this.ops++;
    return null;
  }
}

async function workload(fs: FaultFs, cut: () => boolean, seed: number, inlineSync: boolean): Promise<Issued[]> {
  const rng = new Random(seed);
  const issued: Issued[] = [];
  const opts = { fs, memtableSize: (2 + rng.nextInt(3)) * 1024 * 1024, sync: false, inlineSync, seed: 7 };
  let db: Database;
  try {
    db = await open(DIR, opts);
  } catch {
    return issued;
  }
  const writes = 40 + rng.nextInt(60);
  const syncPercent = [2, 5, 20][rng.nextInt(3)] as number;
  const reopenAt = rng.nextInt(3) === 0 ? rng.nextInt(writes) : -1;
  let outstanding: Promise<void>[] = [];
  for (let i = 0; i < writes && !cut(); i++) {
    if (i === reopenAt) {
      await Promise.all(outstanding);
      outstanding = [];
      try {
        await db.close();
        db = await open(DIR, opts);
      } catch {
        return issued; // the cut came during close or open
      }
    }
    const r = rng.nextInt(100);
    const size = r < 25 ? 65_000 + rng.nextInt(200_000) : r < 40 ? 2_000 + rng.nextInt(20_000) : 5 + rng.nextInt(200);
    const sync = rng.nextInt(100) < syncPercent;
    const entry: Issued = { size, sync, acked: false };
    issued.push(entry);
    outstanding.push(
      db.put(keyOf(i), valueOf(i, size), { sync }).then(
        () => {
          if (!cut()) entry.acked = true;
        },
        () => undefined,
      ),
    );
    if (rng.nextInt(5) === 0) {
      await Promise.all(outstanding);
      outstanding = [];
    }
  }
  await Promise.all(outstanding);
  if (!cut()) {
    const st = db.stats();
    coverage.backgroundSyncs += st.writes.walBackgroundSyncs;
    coverage.walSyncs += st.writes.walSyncs;
    coverage.flushes += st.levels.reduce((a, l) => a + l.files, 0) > 0 ? 1 : 0;
  }
  await db.close().catch(() => undefined);
  return issued;
}

async function check(fs: MemFs, issued: Issued[], what: string): Promise<void> {
  let db: Database;
  try {
    db = await open(DIR, { fs, walRecovery: 'strict' });
  } catch (e) {
    assert.fail(`${what}: strict open failed after an ordinary power cut: ${String(e)}\n${fs.describe()}`);
  }
  try {
    const present = new Map<string, string>();
    for await (const [k, v] of db.iterator()) present.set(k.toString(), v.toString());
    let prefix = 0;
    while (present.has(keyOf(prefix))) prefix++;
    assert.equal(present.size, prefix, `${what}: recovered keys are not a prefix of the writes (prefix ${prefix}, ${present.size} keys)`);
    let lastDurable = 0;
    issued.forEach((w, i) => {
      if (w.sync && w.acked) lastDurable = i + 1;
    });
    assert.ok(prefix >= lastDurable, `${what}: lost acknowledged durable write ${lastDurable - 1} (recovered prefix ${prefix})`);
    for (let i = 0; i < prefix; i++) {
      const w = issued[i];
      assert.ok(w !== undefined, `${what}: recovered a key never issued: ${keyOf(i)}`);
      assert.equal(present.get(keyOf(i)), valueOf(i, w.size), `${what}: value of ${keyOf(i)}`);
    }
  } finally {
    await db.close();
  }
}

async function cycle(seed: number): Promise<void> {
  const rng = new Random(seed ^ 0x5a5a5a5a);
  const inlineSync = rng.nextInt(2) === 0;
  // Count the workload's operations first, to cut power at a uniformly chosen one.
  const counting = new Counting();
  await workload(new FaultFs(new MemFs(), counting), () => false, seed, inlineSync);
  const mem = new MemFs();
  const crashOpts: CrashOptions = { rng, scrambleUnsyncedPages: true };
  const crash = new CrashAtOp(mem, 1 + rng.nextInt(counting.ops + 20), crashOpts);
  const issued = await workload(new FaultFs(mem, crash), () => crash.crashed !== undefined, seed, inlineSync);
  let after = crash.crashed ?? mem.crashClone(crashOpts);
  if (rng.nextInt(3) === 0) {
    // A second cut while recovery runs (it replays, creates a WAL, flushes, edits the MANIFEST).
    const second = new CrashAtOp(after, 1 + rng.nextInt(80), { rng, scrambleUnsyncedPages: true });
    await open(DIR, { fs: new FaultFs(after, second) }).then(
      (db) => db.close().catch(() => undefined),
      () => undefined,
    );
    after = second.crashed ?? after;
  }
  await check(after, issued, `cycle seed ${seed} (inlineSync ${inlineSync}, cut at op ${crash.ops})`);
}

test('big WALs, every cut scrambled: strict open succeeds, prefix property, durable acks survive', async () => {
  const seed = Number(process.env['SEED'] ?? testSeed());
  console.log(`seed ${seed} (replay: SEED=${seed}); one cycle: CYCLE_SEED=<n>`);
  const only = process.env['CYCLE_SEED'];
  if (only !== undefined) return cycle(Number(only));
  const rng = new Random(seed);
  const cycles = Number(process.env['CYCLES'] ?? 40);
  for (let c = 0; c < cycles; c++) await cycle(rng.nextUint32());
  console.log(`coverage: ${JSON.stringify(coverage)}`);
  assert.ok(coverage.backgroundSyncs > 0 && coverage.walSyncs > 0 && coverage.flushes > 0, 'the workload exercises background syncs, durable syncs and rotations');
});
