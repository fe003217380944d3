/**
 * Review (session 12): a background-error recovery that runs while a memtable rotation is in
 * progress must not flush the rotation's new immutable memtable a second time.
 *
 * At 089f28a, Database.recoverFromBackgroundError waits for `flushing` and `compacting` but not
 * for `rotating`. A rotation that began before the error (here a write's makeRoom) goes on through
 * its awaits (old WAL fsync, new WAL); when it ends it sets `imm` and starts runFlush(imm). A
 * recovery parked at an await meanwhile (DISK_FULL: hasFreeSpace's statfs) then finds
 * `imm !== null` and calls flushImmutable(imm) too: two flushes of one memtable, with the WAL
 * number the recovery read before the rotation.
 *   - Since 089f28a the first of the two flushes to finish retires the memtable (its arena, rows
 *     and filter go to the spare for the next memtable) and the other one trips
 *     `memtable read after retire` (sortedEntries) or `memtable retired twice` (retire): an
 *     internal AssertionError that becomes a background IO_ERROR, so the database goes 'degraded'
 *     (writes fail) right after resume() resolved. Before 089f28a this order gave a harmless
 *     duplicate L0 table ("the recovery flush starts first" passes at 92328f8).
 *   - In the other order the recovery's flush records the stale WAL number after the rotation's
 *     flush recorded the new one: `log number must not go backwards`, and resume() rejects with it.
 *     This one is older than 089f28a (same root cause).
 *   - With thousands of entries the two flushes are built in slices; the recovery's one can retire
 *     the memtable while the rotation's one still walks its shared buffers, and the next memtable
 *     then writes into them (a use-after-reuse).
 *
 * Tests 2-4 fail at 089f28a (test 2 also before it); all pass since 8b9f876 (the recovery waits
 * for a rotation and the flush it starts).
 *
 * The schedule is driven by gates in a MemFs subclass, without timers: a compaction (L0 trigger 2)
 * is held at its output table's fsync; a write's rotation is held at the old WAL's fsync; the
 * compaction then fails with ENOSPC (DISK_FULL, retryable); resume() starts the recovery; every
 * statfs from then on is held and tagged by its caller (the recovery's free-space check, the
 * rotation's flush, the recovery's flush) and released in the order each test wants. An
 * implementation whose recovery waits for the rotation simply never offers the bad interleaving:
 * the tests then check the same outcome (resume() resolves, the database stays healthy, every
 * acknowledged write reads back).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FsError } from '../../src/env/fs-error.js';
import type { FileHandle, FsStats, OpenMode } from '../../src/env/file-system.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { describeError } from '../harness/api-helpers.js';

invariants.enabled = true;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

function turn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Event-loop turns until `cond` holds (each turn lets main-thread flush/merge slices run). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (cond()) return;
    await turn();
  }
  assert.fail(`never happened: ${what}`);
}

/** Up to `turns` event-loop turns for `cond`; false if it never held. */
async function within(turns: number, cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return true;
    await turn();
  }
  return cond();
}

type StatfsCaller = 'recovery-check' | 'recovery-flush' | 'rotation-flush' | 'other';

interface HeldStatfs {
  caller: StatfsCaller;
  gate: Deferred<void>;
  released: boolean;
}

function callerOf(stack: string): StatfsCaller {
  const inRecovery = stack.includes('recoverFromBackgroundError');
  const inFlush = stack.includes('flushMemTable');
  if (inFlush) return inRecovery ? 'recovery-flush' : stack.includes('runFlush') ? 'rotation-flush' : 'other';
  return inRecovery ? 'recovery-check' : 'other';
}

class GatedFs extends MemFs {
  /**
   * While true, the first table fsync of a compaction (a merge: mergeTables on the stack) is held
   * on `sstGate`. Not "the nth table fsync": a third flush may rotate in and sync before the
   * compaction does, and holding the flush instead stalled the writes forever (session 18).
   */
  holdMergeSync = false;
  sstHeld = false;
  readonly sstGate = deferred<'ok' | 'enospc'>();
  /** While true, the next WAL fsync is held on `logGate` (once). */
  holdNextLogSync = false;
  logHeld = false;
  readonly logGate = deferred();
  /** While true, every statfs is held until released (see release()). */
  holdStatfs = false;
  readonly held: HeldStatfs[] = [];

  override open(path: string, mode: OpenMode): FileHandle {
    const h = super.open(path, mode);
    if (!path.endsWith('.sst') && !path.endsWith('.log')) return h;
    const sync = h.sync.bind(h);
    return {
      path: h.path,
      read: (b, o, l, p) => h.read(b, o, l, p),
      write: (b, o, l, p) => h.write(b, o, l, p),
      size: () => h.size(),
      truncate: (l) => h.truncate(l),
      close: () => h.close(),
      sync: async () => {
        if (path.endsWith('.sst')) {
          if (this.holdMergeSync && !this.sstHeld && (new Error().stack ?? '').includes('mergeTables')) {
            this.sstHeld = true;
            const how = await this.sstGate.promise;
            if (how === 'enospc') throw new FsError('ENOSPC', 'fsync', path, 'injected');
          }
        } else if (this.holdNextLogSync) {
          this.holdNextLogSync = false;
          this.logHeld = true;
          await this.logGate.promise;
        }
        await sync();
      },
    };
  }

  override async statfs(path: string): Promise<FsStats> {
    if (this.holdStatfs) {
      const h: HeldStatfs = { caller: callerOf(new Error().stack ?? ''), gate: deferred(), released: false };
      this.held.push(h);
      await h.gate.promise;
    }
    return super.statfs(path);
  }

  waiting(caller: StatfsCaller): HeldStatfs | undefined {
    return this.held.find((h) => h.caller === caller && !h.released);
  }

  release(h: HeldStatfs | undefined): void {
    if (h === undefined || h.released) return;
    h.released = true;
    h.gate.resolve();
  }

  /** Stops holding: releases every held statfs and lets later ones through. */
  releaseAll(): void {
    this.holdStatfs = false;
    for (const h of this.held) this.release(h);
  }
}

interface RaceOptions {
  memtableSize: number;
  /** Entries per write (one batch) and the value length. */
  perWrite: number;
  valueBytes: number;
}

const SMALL: RaceOptions = { memtableSize: 8 * 1024, perWrite: 1, valueBytes: 180 };
/** Thousands of entries in random key order: each flush is built in several slices of 1024. */
const LARGE: RaceOptions = { memtableSize: 512 * 1024, perWrite: 500, valueBytes: 4 };

function key(i: number): string {
  return `k${String(i).padStart(6, '0')}`;
}

interface Setup {
  fs: GatedFs;
  db: Database;
  acked: Map<string, string>;
  resume: Promise<unknown>;
  /** Whether the recovery reached its free-space check while the rotation was still held. */
  recoveryRanDuringRotation: boolean;
  /** Every background failure reported (source: message). */
  bgLog: string[];
  /** bgLog's length when resume() resolved. */
  errorsAtResume: number;
}

/**
 * Drives the database to: a rotation held at the old WAL fsync, a compaction failed with DISK_FULL,
 * resume() called (statfs held from then on), then the rotation released and its flush parked
 * at its statfs.
 */
async function raceRecoveryWithRotation(ro: RaceOptions): Promise<Setup> {
  const fs = new GatedFs();
  const db = await open('/db', { memtableSize: ro.memtableSize, blockSize: 512, sync: false, l0CompactionTrigger: 2, seed: 7, fs });
  const acked = new Map<string, string>();
  const rng = new Random(7);
  let n = 0;
  const put = async (): Promise<void> => {
    const ops: { type: 'put'; key: string; value: string }[] = [];
    for (let i = 0; i < ro.perWrite; i++) {
      // Overlapping tables (the compaction merges: no trivial move).
      const k = key(ro.perWrite === 1 ? n % 40 : rng.nextInt(1_000_000));
      ops.push({ type: 'put', key: k, value: `${k}#${n}:${'v'.repeat(ro.valueBytes)}` });
      n++;
    }
    await db.batch(ops);
    for (const o of ops) acked.set(o.key, o.value);
  };
  const internals = db as unknown as { imm: unknown; rotating: unknown; flushing: unknown; recovering: unknown };
  // Record every background failure (the retry timer may clear one before the test looks).
  const bgLog: string[] = [];
  const hooked = db as unknown as { setBackgroundError(e: unknown, source: string): void };
  const report = hooked.setBackgroundError.bind(db);
  hooked.setBackgroundError = (e: unknown, source: string): void => {
    bgLog.push(`${source}: ${e instanceof Error ? e.message : String(e)}`);
    report(e, source);
  };
  // Two flushes (L0 = 2 starts a compaction); the compaction's first output fsync is held.
  fs.holdMergeSync = true;
  while (db.stats().flushes.count < 2 || internals.imm !== null) await put();
  await until(() => fs.sstHeld, 'the compaction reaches its output fsync');
  assert.equal(db.stats().compactions.running, true);
  // Fill the memtable; the next write rotates, held at the old WAL's fsync.
  while (db.stats().memtable.bytes < ro.memtableSize) await put();
  fs.holdNextLogSync = true;
  const rotatingWrite = put().catch(() => undefined); // fails with DISK_FULL once the rotation is done
  await until(() => fs.logHeld, 'the rotation reaches the old WAL fsync');
  assert.notEqual(internals.rotating, null);
  // The compaction fails: DISK_FULL, retryable.
  fs.sstGate.resolve('enospc');
  await until(() => db.stats().backgroundError !== null && !db.stats().compactions.running, 'the compaction fails');
  assert.equal(db.stats().backgroundError?.code, 'DISK_FULL');
  // resume(): at 089f28a the recovery goes straight to its free-space check (held); an
  // implementation that waits for the rotation first never gets there while it is held.
  fs.holdStatfs = true;
  const resume = db.resume().then(
    () => {
      s.errorsAtResume = s.bgLog.length;
      return 'ok';
    },
    (e: unknown) => e,
  );
  const s: Setup = { fs, db, acked, resume, recoveryRanDuringRotation: false, bgLog, errorsAtResume: -1 };
  s.recoveryRanDuringRotation = await within(200, () => fs.waiting('recovery-check') !== undefined);
  // The rotation ends: `imm` is set and runFlush(imm) starts, parking at its own statfs.
  fs.logGate.resolve();
  await until(() => fs.waiting('rotation-flush') !== undefined, "the rotation's flush reaches its statfs");
  assert.notEqual(internals.imm, null);
  void rotatingWrite;
  return s;
}

async function checkOutcome(s: Setup, what: string): Promise<void> {
  const { db, acked } = s;
  const resumed = await s.resume;
  await db.idle();
  const st = db.stats();
  const bg = st.backgroundError;
  const wrong: string[] = [];
  for (const [k, v] of acked) if (db.getSync(k)?.toString() !== v) wrong.push(k);
  await db.close().catch(() => undefined);
  const ctx = `recovery ran during the rotation: ${s.recoveryRanDuringRotation}; L0 files ${st.levels[0]?.files}`;
  assert.deepEqual(wrong.slice(0, 5), [], `${what}: ${wrong.length} acknowledged keys read wrong (${ctx})`);
  assert.equal(resumed, 'ok', `${what}: resume() rejected: ${describeError(resumed)} (${ctx})`);
  assert.equal(bg, null, `${what}: after resume() resolved the database is degraded again: ${bg?.message} (${bg?.mode}) (${ctx})`);
  // A failure after resume() resolved, even one the retry timer already cleared, is one too many.
  assert.deepEqual(s.bgLog.slice(s.errorsAtResume), [], `${what}: background failures after resume() resolved (${ctx})`);
}

test('session12: recovery during a rotation; the rotation flush goes first', { timeout: 120_000 }, async () => {
  const s = await raceRecoveryWithRotation(SMALL);
  s.fs.release(s.fs.waiting('rotation-flush'));
  await within(50, () => false);
  s.fs.releaseAll();
  await checkOutcome(s, 'rotation flush first');
});

test('session12: recovery during a rotation; both flushes start together', { timeout: 120_000 }, async () => {
  const s = await raceRecoveryWithRotation(SMALL);
  // Both at once: the rotation's flush, then (if it is waiting) the recovery's free-space check.
  s.fs.release(s.fs.waiting('rotation-flush'));
  s.fs.release(s.fs.waiting('recovery-check'));
  s.fs.releaseAll();
  await checkOutcome(s, 'both together');
});

test('session12: recovery during a rotation; the recovery goes first', { timeout: 120_000 }, async () => {
  const s = await raceRecoveryWithRotation(SMALL);
  // The recovery first, as far as it gets on its own (at 089f28a: flushes imm, retires it, resolves).
  s.fs.release(s.fs.waiting('recovery-check'));
  await within(200, () => s.fs.waiting('recovery-flush') !== undefined);
  s.fs.release(s.fs.waiting('recovery-flush'));
  await within(200, () => false);
  // Then the rotation's own flush of the same memtable.
  s.fs.releaseAll();
  await checkOutcome(s, 'recovery first');
});

test('session12: recovery during a rotation; the rotation flush is still walking the shared buffers when they are reused', { timeout: 120_000 }, async () => {
  const s = await raceRecoveryWithRotation(LARGE);
  const { db, fs, acked } = s;
  // The recovery's flush starts and gets several slices ahead...
  fs.release(fs.waiting('recovery-check'));
  await within(200, () => fs.waiting('recovery-flush') !== undefined);
  fs.release(fs.waiting('recovery-flush'));
  for (let i = 0; i < 8; i++) await turn();
  // ...then the rotation's flush of the same memtable starts walking its shared buffers.
  fs.releaseAll();
  // At 089f28a the recovery then retires the memtable (its buffers become the spare) and resolves.
  await s.resume;
  // Writes go on at once: fill the memtable, rotate (the new memtable takes the spare buffers) and
  // write into the new memtable, each step without leaving the rotation's flush many slices.
  const burst = async (prefix: string, count: number, valueBytes: number): Promise<void> => {
    const ops = [];
    for (let i = 0; i < count; i++) {
      const k = `${prefix}${String(i).padStart(6, '0')}`;
      ops.push({ type: 'put' as const, key: k, value: `${k}:${'w'.repeat(valueBytes)}` });
    }
    try {
      await db.batch(ops);
      for (const o of ops) acked.set(o.key, o.value);
    } catch {
      // DISK_FULL / IO_ERROR while the database is degraded: not acknowledged
    }
  };
  await burst('x', Math.ceil(LARGE.memtableSize / 300), 300); // the memtable is full
  await burst('y', 1, 10); // rotates: the new memtable is built on the spare
  await burst('z', 800, 300); // written into the reused arena and rows
  await checkOutcome(s, 'buffers reused while the rotation flush walks them');
});
