/**
 * Review of 79d4c85 (weak spares) on node:fs, where flushes read the memtable's shared arena in
 * place from a worker thread and merges (and split merges, in a second worker) run there too.
 *
 * Databases are closed while their writes, flushes and compactions are still under way; the next
 * database opens at once on what the close pooled and writes into it. Every flush posted to a
 * worker is watched: the arena bytes and rows it reads must be the same when the worker answers as
 * when it was posted (a reused arena written meanwhile would change them). The SpareSpy checks
 * that a put happens only once the closing database's workers are gone and its buffers are free.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { FlushSpec } from '../../src/db/flush-table.js';
import { SpareSpy, Random, seeded, writeBatch, settle, verify, type Tracked } from './session18-spares-helper.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Loose = any;

function digest(spec: FlushSpec): string {
  const s = spec.sorted;
  const h = crypto.createHash('sha1');
  h.update(Buffer.from(s.bytes.buffer, s.bytes.byteOffset, s.usedBytes));
  h.update(Buffer.from(s.rows.buffer, s.rows.byteOffset, s.rows.byteLength));
  return h.digest('hex');
}

/** Watches every worker flush: the shared memtable buffers must not change while it runs. */
function watchWorkerFlushes(): { flushes: number; changed: string[]; arenas: Set<ArrayBufferLike>; restore(): void } {
  const proto = CompactionThread.prototype as Loose;
  const flush = proto.flush as (spec: FlushSpec) => Promise<unknown>;
  const out = {
    flushes: 0,
    changed: [] as string[],
    arenas: new Set<ArrayBufferLike>(),
    restore: () => {
      proto.flush = flush;
    },
  };
  proto.flush = async function (this: unknown, spec: FlushSpec): Promise<unknown> {
    const before = digest(spec);
    out.arenas.add(spec.sorted.bytes.buffer);
    try {
      return await flush.call(this, spec);
    } finally {
      out.flushes++;
      if (digest(spec) !== before) out.changed.push(`table ${spec.fileNumber} in ${spec.dir}`);
    }
  };
  return out;
}

const OPTIONS: OpenOptions = {
  sync: false,
  memtableSize: 64 * 1024,
  blockSize: 1024,
  blockCacheSize: 128 * 1024,
  l0CompactionTrigger: 2,
  targetFileSize: 48 * 1024,
  levelBaseSize: 192 * 1024,
  subcompactionMinSize: 96 * 1024,
};

test('databases closed under running worker flushes and merges hand on buffers no worker still reads', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rev18-spares-workers-'));
  const watch = watchWorkerFlushes();
  const spy = new SpareSpy().install();
  const open1 = async (t: Tracked, label: string): Promise<Database> => {
    const db = await open(t.dir, OPTIONS);
    spy.register(db, label);
    t.db = db;
    return db;
  };
  try {
    await seeded('spares workers', 18_201, async (seed) => {
      const rng = new Random(seed);
      const trackers: Tracked[] = ['p', 'q', 'r'].map((label) => ({ label, dir: path.join(root, label), db: null, model: new Map(), pending: [] }));
      const [p, q, r] = trackers as [Tracked, Tracked, Tracked];
      await open1(p, 'p0');
      await open1(q, 'q0');
      for (let round = 0; round < 6; round++) {
        // p: a burst of writes (several memtables: worker flushes, merges) and a close at once,
        // without waiting for the writes: close waits for them and for the background work.
        for (let i = 0; i < 10; i++) writeBatch(p, rng, 150 + rng.nextInt(150));
        const pdb = p.db as Database;
        const closing = pdb.close();
        // q writes meanwhile; r opens while p's close runs (nothing pooled by p yet, maybe by others).
        for (let i = 0; i < 4; i++) writeBatch(q, rng, 200);
        if (r.db === null) await open1(r, `r${round}`);
        for (let i = 0; i < 4; i++) writeBatch(r, rng, 200);
        await closing;
        await settle(p); // the writes queued before close() were committed
        p.db = null;
        spy.check(`round ${round}: p closed`);
        // r closes too, then p reopens on what p and r left, and writes into it at once.
        await settle(r);
        const rdb = r.db as Database;
        const rClosing = rdb.close();
        await open1(p, `p${round + 1}`);
        for (let i = 0; i < 6; i++) writeBatch(p, rng, 200);
        await rClosing;
        r.db = null;
        await settle(p);
        await settle(q);
        await verify(p, rng, `round ${round} p`, 150);
        await verify(q, rng, `round ${round} q`, 150);
        spy.check(`round ${round}`);
        if (round % 2 === 1) {
          await open1(r, `r${round}b`);
          await verify(r, rng, `round ${round} r reopened`, 150);
        }
      }
      for (const t of trackers) {
        if (t.db === null) continue;
        await settle(t);
        await t.db.close();
        t.db = null;
      }
      spy.check('all closed');
      for (const t of trackers) {
        await open1(t, `${t.label}-last`);
        await verify(t, rng, `${t.label} last`, 150);
      }
      for (const t of trackers) await t.db?.close();
      spy.check('end');
      assert.ok(watch.flushes > 0, 'flushes ran in the worker');
      assert.ok(spy.memTakes > 0, `memtables were reused across databases (${spy.summary()})`);
      assert.deepEqual(watch.changed, [], 'memtable buffers changed while a worker flushed them');
      const reused = [...spy.takenArenas].filter((b) => watch.arenas.has(b)).length;
      assert.ok(reused > 0, `a database took an arena a worker had flushed (${spy.summary()})`);
    });
  } finally {
    spy.remove();
    watch.restore();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
