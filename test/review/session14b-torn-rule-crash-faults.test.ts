/**
 * Review (session 14b) of fix (3) in commit 3e285e4: replayOneWal now counts a WAL as torn
 * (tornIn) when its torn offset is > 0 even if it returned no record, so a later WAL with records
 * makes a strict open fail with CORRUPTION. Can a legitimate crash image now trip it?
 *
 * Seeded crash loop over workloads the existing crash loop (test/crash/crash-recovery.test.ts)
 * does not run: full-disk episodes with short WAL writes (DISK_FULL, replaceFailedWal via resume()),
 * a failed WAL fsync (EIO: failed mode, close and reopen), compactRange(), close() and reopen in the
 * middle, rotations from tiny memtables; power is cut at a random filesystem operation (torn last
 * write / kept unsynced data / scrambled pages), sometimes again during recovery. Then a STRICT open
 * must succeed, every write acknowledged before the cut that was durable (sync: true, or followed
 * by a durable ack, or by a clean close) must be there, and the acknowledged writes present must
 * form a prefix of the acknowledged writes (rejected writes may or may not be there).
 *
 * Every write puts a distinct key, so presence is the state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs, type CrashOptions } from '../../src/env/mem-fs.js';
import { FaultFs, type FaultInjector, type FaultOp } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { CrashAtOp } from '../harness/crash-at-op.js';
import { testSeed } from '../harness/seed.js';

class Injector implements FaultInjector {
  count = 0;
  crashed: MemFs | undefined = undefined;
  diskFull = false;
  eioNextLogSync = false;
  constructor(
    private readonly mem: MemFs,
    private readonly atOp: number,
    private readonly crashOptions: CrashOptions,
  ) {}
  maybeFail(op: FaultOp, path: string): 'EIO' | 'ENOSPC' | null {
    this.count++;
    if (this.count === this.atOp) this.crashed = this.mem.crashClone(this.crashOptions);
    if (this.count >= this.atOp) return 'EIO';
    if (this.diskFull && op === 'write' && (path.endsWith('.log') || path.endsWith('.sst'))) return 'ENOSPC';
    if (this.eioNextLogSync && op === 'sync' && path.endsWith('.log')) {
      this.eioNextLogSync = false;
      return 'EIO';
    }
    return null;
  }
}

interface Issued {
  key: string;
  sync: boolean;
  /** 'acked' before the cut, 'rejected', or 'unknown' (settled after the cut). */
  outcome: 'pending' | 'acked' | 'rejected' | 'unknown';
  /** Made durable by a later clean close (all acked writes before it). */
  closedAfter: boolean;
}

async function workload(fs: FaultFs, inj: Injector, rng: Random, writes: number, log: string[]): Promise<Issued[]> {
  const issued: Issued[] = [];
  const memtableSize = 1024 + rng.nextInt(4096);
  const openDb = (): Promise<Database> => open('/db', { fs, memtableSize, blockSize: 128, sync: false, seed: rng.nextUint32() });
  let db: Database;
  try {
    db = await openDb();
  } catch {
    return issued;
  }
  let outstanding: Promise<void>[] = [];
  let fullLeft = 0;
  const settle = async (): Promise<void> => {
    await Promise.all(outstanding);
    outstanding = [];
  };
  const reopen = async (why: string): Promise<boolean> => {
    await settle();
    // A close with a background error pending flushes nothing: it promises no durability.
    let clean = db.stats().backgroundError === null;
    try {
      await db.close();
    } catch {
      clean = false;
    }
    if (clean && inj.crashed === undefined) for (const w of issued) if (w.outcome === 'acked') w.closedAfter = true;
    log.push(`${why}: close ${clean ? 'clean' : 'not clean'} at op ${inj.count}`);
    try {
      db = await openDb();
      return true;
    } catch (e) {
      log.push(`reopen failed: ${String(e)}`);
      return false;
    }
  };
  for (let i = 0; i < writes && inj.crashed === undefined; i++) {
    const r = rng.nextInt(100);
    if (r < 3 && fullLeft === 0) {
      await settle();
      inj.diskFull = true;
      fullLeft = 1 + rng.nextInt(4);
      log.push(`disk full from write ${i} at op ${inj.count}`);
    } else if (r < 4) {
      await settle();
      inj.eioNextLogSync = true;
      log.push(`EIO on the next WAL sync, write ${i}`);
    } else if (r < 6) {
      await settle();
      await db.compactRange().catch((e: unknown) => log.push(`compactRange: ${String(e)}`));
    } else if (r < 8) {
      if (!(await reopen(`reopen at write ${i}`))) break;
    }
    const entry: Issued = { key: `k${String(i).padStart(5, '0')}`, sync: rng.nextInt(3) === 0, outcome: 'pending', closedAfter: false };
    issued.push(entry);
    const value = `v${i}-${'x'.repeat(rng.nextInt(5) === 0 ? 400 : rng.nextInt(30))}`;
    outstanding.push(
      db.put(entry.key, value, { sync: entry.sync }).then(
        () => {
          entry.outcome = inj.crashed === undefined ? 'acked' : 'unknown';
        },
        () => {
          entry.outcome = inj.crashed === undefined ? 'rejected' : 'unknown';
        },
      ),
    );
    if (rng.nextInt(3) === 0 || fullLeft > 0) await settle();
    if (fullLeft > 0 && --fullLeft === 0) {
      inj.diskFull = false;
      const resumed = await db.resume().then(
        () => 'ok',
        (e: unknown) => String(e),
      );
      log.push(`space back at write ${i}: resume ${resumed}`);
    }
    const st = db.stats();
    if (st.backgroundError?.mode === 'failed' && inj.crashed === undefined) {
      if (!(await reopen(`failed mode (${st.backgroundError.code}) at write ${i}`))) break;
    }
  }
  await settle();
  await db.close().catch(() => undefined);
  return issued;
}

async function cycle(cycleSeed: number, log: string[]): Promise<void> {
  const rng = new Random(cycleSeed);
  const mem = new MemFs();
  const crashOpts: CrashOptions = {
    rng,
    tearLastWrite: rng.nextInt(2) === 0,
    keepUnsyncedProbability: rng.nextInt(3) === 0 ? 0.5 : 0,
    scrambleUnsyncedPages: rng.nextInt(3) === 0,
  };
  const inj = new Injector(mem, 1 + rng.nextInt(1500), crashOpts);
  const issued = await workload(new FaultFs(mem, inj, { shortWrite: true, rng }), inj, rng, 80 + rng.nextInt(200), log);
  let after = inj.crashed ?? mem.crashClone(crashOpts);
  log.push(`cut at op ${inj.crashed === undefined ? 'end' : inj.count}; opts ${JSON.stringify({ ...crashOpts, rng: undefined })}`);
  if (rng.nextInt(3) === 0) {
    const second = new CrashAtOp(after, 1 + rng.nextInt(80), { rng, tearLastWrite: rng.nextInt(2) === 0, scrambleUnsyncedPages: rng.nextInt(2) === 0 });
    await open('/db', { fs: new FaultFs(after, second) }).then(
      (db) => db.close().catch(() => undefined),
      () => undefined,
    );
    log.push(`second cut during recovery at op ${second.crashed === undefined ? 'none' : second.ops}`);
    after = second.crashed ?? after;
  }
  const files = after.describe();
  let db: Database;
  try {
    db = await open('/db', { fs: after, walRecovery: 'strict' });
  } catch (e) {
    assert.fail(`strict open failed: ${String(e)}\nfiles:\n${files}\nlog:\n${log.join('\n')}`);
  }
  const present = new Set<string>();
  for await (const [k] of db.iterator()) present.add(k.toString());
  await db.close();
  // Durability: everything acked up to the last durable ack (or clean close) is there.
  let mustUpTo = -1;
  issued.forEach((w, i) => {
    if (w.outcome === 'acked' && (w.sync || w.closedAfter)) mustUpTo = i;
  });
  let sawMissingAcked = -1;
  issued.forEach((w, i) => {
    if (w.outcome !== 'acked') return;
    const has = present.has(w.key);
    if (i <= mustUpTo) assert.ok(has, `durable write ${w.key} lost (durable up to #${mustUpTo})\nfiles:\n${files}\nlog:\n${log.join('\n')}`);
    if (!has && sawMissingAcked < 0) sawMissingAcked = i;
    if (has && sawMissingAcked >= 0) {
      assert.fail(`acked ${w.key} present but earlier acked #${sawMissingAcked} missing (prefix)\nfiles:\n${files}\nlog:\n${log.join('\n')}`);
    }
  });
  for (const k of present) assert.ok(issued.some((w) => w.key === k), `unknown key ${k}`);
}

test('strict open after power cuts during full disks, failed WAL syncs, compactRange, close/reopen and recovery', async () => {
  const seed = testSeed();
  console.log(`seed ${seed} (replay: SEED=${seed}; one cycle: CYCLE_SEED=<n>)`);
  const only = process.env['CYCLE_SEED'];
  const rng = new Random(seed);
  const cycles = only !== undefined ? 1 : Number(process.env['CYCLES'] ?? 300);
  let failedModes = 0;
  let fulls = 0;
  let resumed = 0;
  let cutInWorkload = 0;
  let secondCuts = 0;
  const failedCodes = new Map<string, number>();
  for (let c = 0; c < cycles; c++) {
    const cycleSeed = only !== undefined ? Number(only) : rng.nextUint32();
    const log: string[] = [];
    try {
      await cycle(cycleSeed, log);
    } catch (e) {
      throw new Error(`cycle ${c} (CYCLE_SEED=${cycleSeed}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (log.some((l) => l.startsWith('failed mode'))) failedModes++;
    for (const l of log) {
      const m = /^failed mode \((\w+)\)/.exec(l);
      if (m !== null) failedCodes.set(m[1] as string, (failedCodes.get(m[1] as string) ?? 0) + 1);
    }
    if (log.some((l) => l.startsWith('disk full'))) fulls++;
    if (log.some((l) => l.includes('resume ok'))) resumed++;
    if (log.some((l) => l.startsWith('cut at op') && !l.startsWith('cut at op end'))) cutInWorkload++;
    if (log.some((l) => l.startsWith('second cut during recovery at op') && !l.endsWith('none'))) secondCuts++;
  }
  console.log(`${cycles} cycles: ${cutInWorkload} cut mid-workload, ${secondCuts} cut again in recovery, ${fulls} with a full disk (${resumed} resumed), ${failedModes} reaching failed mode ${JSON.stringify([...failedCodes])}`);
  assert.ok(isLightningError !== undefined);
});

test('a short write leaves a partial first record after a WAL header; resume() replaces that WAL; power cut at every op of it and of the writes after', async () => {
  let cutsInside = 0;
  for (let k = 1; k < 600; k++) {
    const mem = new MemFs();
    // Odd k: the page cache got written back whole (the partial record survives); even: a torn tail.
    const inj = new Injector(mem, Number.MAX_SAFE_INTEGER, k % 2 === 1 ? { keepUnsyncedProbability: 1, rng: new Random(k) } : { tearLastWrite: true, rng: new Random(k) });
    const fs = new FaultFs(mem, inj, { shortWrite: true });
    const db = await open('/db', { fs, memtableSize: 1 << 20, sync: false });
    await db.put('a', '1', { sync: true });
    await db.put('b', '2');
    await db.compactRange(); // flushes a and b; rotates to a fresh WAL holding only its header
    inj.diskFull = true;
    // The first write to that WAL: a short write lands part of its record after the header.
    await assert.rejects(db.put('c', 'x'.repeat(300), { sync: k % 2 === 0 }), (e) => isLightningError(e, 'DISK_FULL'));
    inj.diskFull = false;
    // Arm the power cut k operations from now.
    (inj as unknown as { atOp: number }).atOp = inj.count + k;
    const writes: { key: string; sync: boolean; acked: boolean }[] = [];
    const put = async (key: string, sync: boolean): Promise<void> => {
      const w = { key, sync, acked: false };
      writes.push(w);
      await db.put(key, key, { sync }).then(
        () => {
          w.acked = inj.crashed === undefined;
        },
        () => undefined,
      );
    };
    await db.resume().catch(() => undefined);
    await put('e', true);
    await put('f', false);
    await put('g', true);
    await db.compactRange().catch(() => undefined);
    await put('h', false);
    await db.close().catch(() => undefined); // a clean close flushes h
    const closed = inj.crashed === undefined;
    await put('i', true).catch(() => undefined); // closed: rejected
    if (closed) break; // k is past the last operation
    const cut = inj.crashed;
    assert.ok(cut !== undefined);
    cutsInside++;
    const files = cut.describe();
    let again: Database;
    try {
      again = await open('/db', { fs: cut, walRecovery: 'strict' });
    } catch (e) {
      assert.fail(`k ${k}: strict open failed: ${String(e)}\nfiles:\n${files}`);
    }
    assert.equal(again.getSync('a')?.toString(), '1', `k ${k}: a`);
    assert.equal(again.getSync('b')?.toString(), '2', `k ${k}: b`);
    let mustUpTo = -1;
    writes.forEach((w, i) => {
      if (w.acked && w.sync) mustUpTo = i;
    });
    writes.forEach((w, i) => {
      if (i <= mustUpTo && w.acked) assert.ok(again.getSync(w.key) !== undefined, `k ${k}: ${w.key} lost\nfiles:\n${files}`);
    });
    await again.close();
  }
  console.log(`${cutsInside} cut points checked`);
  assert.ok(cutsInside > 10);
});
