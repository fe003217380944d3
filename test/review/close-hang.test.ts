/**
 * Review: close() racing a compactRange() that is about to flush the memtable.
 *
 * compactRange() flushes the memtable first (flushNow: rotate, then flush). When close() is called
 * right after it, close() could pass its wait for flushes while that rotation was still creating
 * the new WAL (no flush running yet), then wait for a running compaction; the rotation meanwhile
 * started its flush in the flush worker, and close() then stopped that worker under the flush. The
 * flush's promise never settled: compactRange() hung with nothing keeping the process alive (the
 * node test runner's "Promise resolution is still pending but the event loop has already
 * resolved", about once in four `npm test` runs, in worker-compaction.test.ts).
 *
 * The interleaving is forced without timing: the compaction's merge waits until the flush is
 * handed to the flush thread, and that flush waits until the compaction is done. close() must not
 * stop the flush thread while the flush is in flight, and the flushed data must be there after
 * reopening.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, NodeFs, type Database } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import { mergeTables, type MergeOutcome, type MergeSpec } from '../../src/compaction/merge-tables.js';
import type { FlushSpec } from '../../src/db/flush-table.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-close-hang-'));
}

function key(i: number): string {
  return `k${String(i).padStart(7, '0')}`;
}

interface Latch {
  readonly promise: Promise<void>;
  open(): void;
}

function latch(): Latch {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Runs merges on this thread, each only once `release` resolves: the test decides when a compaction can end. */
class HeldMerges extends CompactionThread {
  readonly posted = latch();

  constructor(private readonly release: Promise<void>) {
    super('compaction');
  }

  override async run(spec: MergeSpec): Promise<MergeOutcome> {
    this.posted.open();
    await this.release;
    return mergeTables(new NodeFs(), spec, 0);
  }
}

/** The real flush worker, watched: counts flushes in flight; with `hold` set, the next flush first waits for it. */
class WatchedFlushes extends CompactionThread {
  inFlight = 0;
  closedWithFlushInFlight = false;
  hold: { posted: Latch; until: Promise<void> } | null = null;

  constructor() {
    super('flush');
  }

  override async flush(spec: FlushSpec): Promise<FileMetadata> {
    this.inFlight++;
    try {
      const h = this.hold;
      this.hold = null;
      if (h !== null) {
        h.posted.open();
        await h.until;
      }
      return await super.flush(spec);
    } finally {
      this.inFlight--;
    }
  }

  override async close(): Promise<void> {
    if (this.inFlight > 0) this.closedWithFlushInFlight = true;
    await super.close();
  }
}

interface Internals {
  compactionThread: CompactionThread | null;
  flushThread: CompactionThread | null;
  compacting: Promise<void> | null;
}

async function put(db: Database, model: Map<string, string>, from: number, count: number, tag: string): Promise<void> {
  const ops = [];
  for (let i = from; i < from + count; i++) {
    // 1000 keys overwritten again and again: every L0 table overlaps the others (a real merge).
    const op = { type: 'put' as const, key: key(i % 1000), value: `${tag}:${i}:${'x'.repeat(100)}` };
    ops.push(op);
    model.set(op.key, op.value);
  }
  await db.batch(ops, { sync: false });
}

test('close() right after compactRange(): the flush of its rotation finishes before close() returns', async () => {
  const rec = new ProcessErrorRecorder();
  const dir = tempDir();
  try {
    const opts = { memtableSize: 256 * 1024, sync: false, compactionThread: 'worker' as const };
    const db = await open(dir, opts);
    const internals = db as unknown as Internals;
    const flushPosted = latch();
    const merges = new HeldMerges(flushPosted.promise);
    const flushes = new WatchedFlushes();
    internals.compactionThread = merges;
    internals.flushThread = flushes;
    const model = new Map<string, string>();

    // Full memtables go to the flush worker until L0 has two tables; then a compaction starts,
    // and its merge waits (HeldMerges) until the flush below is handed over.
    let n = 0;
    while (!db.stats().compactions.running) {
      await put(db, model, n, 500, 'a');
      n += 500;
    }
    await merges.posted.promise;
    const running = internals.compacting;
    assert.ok(running !== null, 'a compaction is running');
    // A memtable above the worker's threshold (half of memtableSize) but not full: no write rotates it.
    while (db.stats().memtable.bytes < 200 * 1024) {
      await put(db, model, n, 50, 'b');
      n += 50;
    }
    assert.ok(db.stats().memtable.bytes < 256 * 1024, 'the memtable is not full');

    // compactRange() rotates the memtable and flushes it; that flush waits for the compaction,
    // which waits for that flush to be handed over.
    flushes.hold = { posted: flushPosted, until: running };
    const ranged = db.compactRange().then(
      () => null,
      (e: unknown) => e,
    );
    await db.close();
    assert.equal(flushes.hold, null, "compactRange()'s flush went to the flush thread");
    assert.equal(flushes.closedWithFlushInFlight, false, 'close() stopped the flush thread while a flush was in flight');
    assert.equal(flushes.inFlight, 0, 'no flush in flight after close()');
    const outcome = await ranged;
    if (outcome !== null) assertLightning(outcome, 'CLOSED', `compactRange cut short by close: ${describeError(outcome)}`);

    const again = await open(dir, opts);
    try {
      let seen = 0;
      for (const [k, v] of again.iterator()) {
        assert.equal(v.toString(), model.get(k.toString()), k.toString());
        seen++;
      }
      assert.equal(seen, model.size);
    } finally {
      await again.close();
    }
    await rec.settle();
    rec.assertNone();
  } finally {
    rec.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CompactionThread.close() with a job still in flight rejects that job with CLOSED instead of dropping it', async () => {
  const dir = tempDir();
  try {
    const thread = new CompactionThread('compaction');
    const spec: MergeSpec = {
      dir,
      inputs: [],
      firstOutputNumber: 10,
      outputNumberCount: 1,
      smallestSnapshot: 0,
      deeperLevels: [],
      blockSizeBytes: 2048,
      bloomBitsPerKey: 10,
      compression: 'lz',
      targetFileBytes: 1 << 20,
    };
    // The worker cannot answer before the event loop turns, and close() settles the job at once.
    const job = thread.run(spec);
    const closing = thread.close();
    await assert.rejects(job, (e: unknown) => {
      assertLightning(e, 'CLOSED', 'job cut off by close');
      return true;
    });
    await closing;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
