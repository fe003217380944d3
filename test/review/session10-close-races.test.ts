/**
 * Review (session 10): close() and idle() also wait for a memtable rotation in progress
 * (`rotating`), and CompactionThread.close() rejects a job still in flight with CLOSED.
 *
 * On MemFs (flushes and merges on this thread, in slices), close() is called at every point of
 * an operation that rotates the memtable — a put / batch that fills it, compactRange() (flushNow),
 * a transaction commit, idle() — stepped by microtask ticks and event-loop turns (no timers):
 *   - everything settles (a hang fails the test runner: nothing else keeps the loop alive);
 *   - close() resolves, twice and concurrently (same promise), and after it is done;
 *   - each racing operation resolves, or rejects with CLOSED (never another error, never an
 *     unhandled rejection);
 *   - every write that resolved is there after reopen (close flushed it), with the data written
 *     before the race.
 * Also idle() called at every point of a stream of writes that rotate several times: when it
 * resolves, nothing is left to flush (no imm, no rotation, no compaction running) and every write
 * queued before it has resolved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { invariants } from '../../src/util/assert.js';
import { ProcessErrorRecorder, assertLightning, collect } from '../harness/api-helpers.js';

invariants.enabled = true;

const recorder = new ProcessErrorRecorder();

const OPTS: OpenOptions = { memtableSize: 8 * 1024, blockSize: 256, sync: false, l0CompactionTrigger: 2, levelBaseSize: 16 * 1024, targetFileSize: 4 * 1024 };

function key(i: number): string {
  return `k${String(i).padStart(6, '0')}`;
}

type Race = 'put' | 'batch' | 'compactRange' | 'txn' | 'idle' | 'close-twice';

/** Starts the operation; returns its promise and the keys (with values) it writes if it resolves. */
function startRace(db: Database, race: Race): { p: Promise<unknown>; writes: [string, string][] } {
  const big = 'x'.repeat(3000);
  switch (race) {
    case 'put': {
      const writes: [string, string][] = [[key(900_001), big]];
      return { p: db.put(key(900_001), big), writes };
    }
    case 'batch': {
      const writes: [string, string][] = [];
      for (let i = 0; i < 6; i++) writes.push([key(900_100 + i), `${big}${i}`]);
      return { p: db.batch(writes.map(([k, v]) => ({ type: 'put' as const, key: k, value: v }))), writes };
    }
    case 'compactRange':
      return { p: db.compactRange(), writes: [] };
    case 'txn': {
      const t = db.beginTransaction();
      t.put(key(900_200), big);
      t.put(key(900_201), big);
      return { p: t.commit(), writes: [[key(900_200), big], [key(900_201), big]] };
    }
    case 'idle':
      return { p: db.idle(), writes: [] };
    case 'close-twice':
      return { p: db.close(), writes: [] };
  }
}

test('session10: close() at every point of a rotating write, compactRange, commit or idle settles everything', async () => {
  const races: Race[] = ['put', 'batch', 'compactRange', 'txn', 'idle', 'close-twice'];
  let cases = 0;
  // How often close() was called with each kind of background work in progress.
  const closedDuring = { rotating: 0, flushing: 0, compacting: 0, ok: 0, closed: 0 };
  for (const race of races) {
    for (let ticks = 0; ticks < 40; ticks++) {
      const fs = new MemFs();
      const db = await open('/db', { ...OPTS, fs });
      const before = new Map<string, string>();
      // A memtable nearly full (the racing write rotates it) and some tables below.
      for (let i = 0; i < 40 + 50 * (ticks % 3); i++) {
        before.set(key(i), `v${i}-${'y'.repeat(150)}`);
        await db.put(key(i), before.get(key(i)) as string);
      }
      const what = `${race} / close after ${ticks} steps`;
      const { p, writes } = startRace(db, race);
      const outcome = p.then(
        () => 'ok' as const,
        (e: unknown) => {
          assertLightning(e, 'CLOSED', `${what}: the racing operation`);
          return 'closed' as const;
        },
      );
      // Ticks 0-15: microtask steps; then event-loop turns (flush / merge slices).
      for (let t = 0; t < ticks; t++) {
        if (t < 16) await Promise.resolve();
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const internals = db as unknown as { rotating: unknown; flushing: unknown; compacting: unknown };
      if (internals.rotating !== null) closedDuring.rotating++;
      if (internals.flushing !== null) closedDuring.flushing++;
      if (internals.compacting !== null) closedDuring.compacting++;
      const c1 = db.close();
      const c2 = db.close();
      assert.equal(c1, c2, `${what}: close() returns the same promise`);
      await c1;
      const result = await outcome;
      closedDuring[result]++;
      await db.close(); // after it is done
      const reopened = await open('/db', { ...OPTS, fs });
      const expected = new Map(before);
      if (result === 'ok') for (const [k, v] of writes) expected.set(k, v);
      const got = new Map(await collect(reopened.iterator()));
      for (const [k, v] of expected) assert.equal(got.get(k), v, `${what}: ${k} after reopen (${result})`);
      if (result === 'closed') for (const [k] of writes) assert.equal(got.has(k), false, `${what}: a rejected write must not be applied`);
      assert.equal(got.size, expected.size, `${what}: entries after reopen`);
      await reopened.close();
      cases++;
    }
  }
  await recorder.settle();
  recorder.assertNone();
  assert.equal(cases, races.length * 40);
  // The schedule must reach the interleavings this is about.
  for (const [k, n] of Object.entries(closedDuring)) assert.ok(n > 0, `never closed with ${k}: ${JSON.stringify(closedDuring)}`);
});

test('session10: idle() at every point of writes that rotate the memtable leaves nothing in flight', async () => {
  for (let ticks = 0; ticks < 30; ticks++) {
    const fs = new MemFs();
    const db = await open('/db', { ...OPTS, fs });
    const writes: Promise<void>[] = [];
    let resolved = 0;
    for (let i = 0; i < 60; i++) {
      const w = db.put(key(i), `${i}-${'z'.repeat(400)}`); // ~6 rotations
      writes.push(w);
      void w.then(() => {
        resolved++;
      });
    }
    for (let t = 0; t < ticks; t++) {
      if (t < 10) await Promise.resolve();
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const queuedBefore = writes.length;
    await db.idle();
    await Promise.resolve(); // let the write callbacks above run
    const s = db.stats();
    assert.equal(s.immutableMemtables, 0, `idle after ${ticks} steps: a flush is still pending`);
    assert.equal(s.compactions.running, false, `idle after ${ticks} steps: a compaction is running`);
    assert.equal(s.writes.queued, 0, `idle after ${ticks} steps: writes still queued`);
    assert.equal(resolved, queuedBefore, `idle after ${ticks} steps: writes queued before idle() still pending`);
    const rotating = (db as unknown as { rotating: Promise<void> | null }).rotating;
    assert.equal(rotating, null, `idle after ${ticks} steps: a rotation is in progress`);
    await db.close();
  }
  await recorder.settle();
  recorder.assertNone();
});
