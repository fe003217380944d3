/**
 * Review (session 14b) of fix (4) in commit 3e285e4: RecordWriter.sync() calls throwIfFailed()
 * after its fsync completes, so a sync that finished after a concurrent failure is not counted as
 * durable. throwIfFailed() also sees failures of WRITES, not only of syncs: a background sync
 * (syncInBackground) that was running when a later non-durable write hit a full disk now rejects
 * with that write's DISK_FULL, and Database.commitGroup's onError reports it as source 'wal-sync'.
 * BackgroundErrorState.report treats every 'wal-sync' error as fatal (mode 'failed', only reopen
 * helps), so a transient full disk that should be retried (mode 'retrying', resume() after space
 * returns) becomes permanent. Before the fix the background sync succeeded and stayed silent.
 *
 * Status: both tests FAIL at committed HEAD (69ba738, fix from 3e285e4); they pass with the
 * uncommitted working-tree change to record-writer.ts seen during this review (a syncFailed flag:
 * only a failed SYNC makes a later-completing sync throw).
 *
 * Deterministic: syncs of .log files are held by the test and released explicitly; the write
 * fault is switched on and off by the test. No seed is needed (no randomness).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failWhile } from '../../src/env/fault-fs.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { wrapOpen } from '../harness/wrap-open.js';

interface Held {
  release: () => void;
}

/** MemFs whose .log syncs wait for the test while `hold.on`; writes to .log fail ENOSPC while `fault.enabled`. */
function setup(): { mem: MemFs; fs: FaultFs; hold: { on: boolean; held: Held[] }; fault: { enabled: boolean } } {
  const mem = new MemFs();
  const hold = { on: false, held: [] as Held[] };
  const wrapped = wrapOpen(mem, (path, h): FileHandle => {
    if (!path.endsWith('.log')) return h;
    return {
      path: h.path,
      read: (b, o, l, p) => h.read(b, o, l, p),
      write: (b, o, l, p) => h.write(b, o, l, p),
      sync: async (inline) => {
        if (hold.on) {
          const inner = h.sync(inline); // captures what was written before it, as fdatasync does
          await new Promise<void>((release) => hold.held.push({ release }));
          return inner;
        }
        return h.sync(inline);
      },
      size: () => h.size(),
      truncate: (n) => h.truncate(n),
      close: () => h.close(),
    };
  });
  const fault = failWhile((op, path) => op === 'write' && path.endsWith('.log'), 'ENOSPC');
  fault.enabled = false;
  const fs = new FaultFs(wrapped, fault, { shortWrite: true });
  return { mem, fs, hold, fault };
}

const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

test('a full disk during a background WAL sync stays retryable (DISK_FULL must not become a fatal wal-sync error)', async () => {
  const { mem, fs, hold, fault } = setup();
  const db = await open('/db', { fs, memtableSize: 64 * 1024 * 1024, sync: false });
  const value = 'v'.repeat(64 * 1024);
  const acked = new Map<string, string>();
  hold.on = true;
  // Non-durable writes until a background sync starts (1 MiB unsynced) and is held in flight.
  let i = 0;
  for (; i < 40 && hold.held.length === 0; i++) {
    await db.put(`k${String(i).padStart(3, '0')}`, `${i}${value}`);
    acked.set(`k${String(i).padStart(3, '0')}`, `${i}${value}`);
  }
  assert.equal(hold.held.length, 1, 'a background sync is in flight');
  // A few more writes while it runs (what background syncs are for), then the disk fills.
  for (let j = 0; j < 3; j++, i++) {
    await db.put(`k${String(i).padStart(3, '0')}`, `${i}${value}`);
    acked.set(`k${String(i).padStart(3, '0')}`, `${i}${value}`);
  }
  fault.enabled = true;
  await assert.rejects(db.put('full', value), (e) => isLightningError(e, 'DISK_FULL'));
  assert.equal(db.stats().backgroundError?.mode, 'retrying', 'a full disk is retryable');

  // The background sync, which began before the failed write, now completes successfully.
  hold.on = false;
  for (const h of hold.held.splice(0)) h.release();
  for (let k = 0; k < 5; k++) await turn();

  const after = db.stats().backgroundError;
  // Space returns: resume() must bring the database back (it does without the background sync).
  fault.enabled = false;
  let resumeError: unknown = null;
  try {
    await db.resume();
  } catch (e) {
    resumeError = e;
  }
  assert.equal(
    after?.mode,
    'retrying',
    `after the background sync completed: ${JSON.stringify(after)} (a write's DISK_FULL re-reported as a wal-sync failure is fatal)`,
  );
  assert.equal(resumeError, null, `resume() after space returned: ${String(resumeError)}`);
  await db.put('after', 'space returned');
  await db.close();
  const again = await open('/db', { fs: mem });
  for (const [k, v] of acked) assert.equal(again.getSync(k)?.toString(), v, k);
  assert.equal(again.getSync('after')?.toString(), 'space returned');
  await again.close();
});

test('RecordWriter: a background sync that started before a failed write succeeds and reports no error', async () => {
  const { mem, fs, hold, fault } = setup();
  mem.mkdir('/w');
  const file = fs.open('/w/000003.log', 'create-excl');
  const w = RecordWriter.create(file, 3);
  await w.sync();
  w.add(Buffer.alloc(1000, 7));
  hold.on = true;
  const errors: string[] = [];
  assert.ok(w.syncInBackground((e) => errors.push(`${e.code}: ${e.message}`)));
  fault.enabled = true;
  assert.throws(() => w.add(Buffer.alloc(1000, 8)), (e) => isLightningError(e, 'DISK_FULL'));
  hold.on = false;
  for (const h of hold.held.splice(0)) h.release();
  await w.settled();
  // The fsync itself succeeded and covered the first record (written before it started); the
  // only failure is the later write's, which the writer already threw to its caller.
  assert.deepEqual(errors, [], 'the background sync reports an error it did not have');
  w.close();
});
