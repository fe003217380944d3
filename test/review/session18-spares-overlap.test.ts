/**
 * Review of 79d4c85 (weak spares): four databases in one thread, opened, written, read and closed
 * in overlapping ways by a seeded scheduler. A close is started and left running while the other
 * databases write, read and open (and may take what it hands on); a database is reopened on
 * whatever spares the others left. Every read (getSync, get, sync and async scans, snapshots) is
 * checked against a model per database, values name their database, and the SpareSpy checks at
 * every pool put/take and after every step that no buffer is pooled while a database still owns
 * it and no buffer is owned twice. Iterators and snapshots left open at a close must fail with
 * CLOSED afterwards.
 *
 * MemFs (flushes and compactions on the main thread, in slices) and node:fs (in worker threads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type OpenOptions, type Snapshot, type LightningIterator } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { SpareSpy, Random, seeded, writeBatch, settle, verify, errorCodeOf, keyOf, KEYS, type Tracked } from './session18-spares-helper.js';

interface Slot extends Tracked {
  generation: number;
  closing: Promise<void> | null;
  /** Handles left open when the close began: they must fail with CLOSED once it is done. */
  stale: { it: LightningIterator | null; snap: Snapshot | null };
}

const LABELS = ['a', 'b', 'c', 'd'];

async function finishClose(s: Slot, spy: SpareSpy): Promise<void> {
  const closing = s.closing;
  if (closing === null) return;
  s.closing = null;
  await closing;
  const { it, snap } = s.stale;
  s.stale = { it: null, snap: null };
  if (it !== null) {
    assert.equal(await errorCodeOf(() => it.nextSync()), 'CLOSED', `${s.label}: stale iterator step after close`);
    assert.equal(await errorCodeOf(() => it.next()), 'CLOSED', `${s.label}: stale async iterator step after close`);
  }
  if (snap !== null) {
    assert.equal(await errorCodeOf(() => snap.getSync(keyOf(1))), 'CLOSED', `${s.label}: stale snapshot getSync`);
    assert.equal(await errorCodeOf(() => snap.get(keyOf(1))), 'CLOSED', `${s.label}: stale snapshot get`);
    assert.equal(await errorCodeOf(() => snap.iterator()), 'CLOSED', `${s.label}: stale snapshot iterator`);
  }
  spy.check(`${s.label} closed`);
}

async function scenario(seed: number, steps: number, place: (label: string) => { dir: string; options: OpenOptions }): Promise<SpareSpy> {
  const rng = new Random(seed);
  const spy = new SpareSpy().install();
  const slots: Slot[] = LABELS.map((label) => ({
    label,
    dir: place(label).dir,
    db: null,
    model: new Map(),
    pending: [],
    generation: 0,
    closing: null,
    stale: { it: null, snap: null },
  }));
  try {
    for (let step = 0; step < steps; step++) {
      const s = slots[rng.nextInt(slots.length)] as Slot;
      const r = rng.nextInt(100);
      const where = `step ${step} ${s.label}`;
      if (s.db === null) {
        if (s.closing !== null && r < 50) {
          // Let the close run on while others act; finish it later.
          const other = slots.find((o) => o.db !== null);
          if (other !== undefined) writeBatch(other, rng, 50 + rng.nextInt(200));
          continue;
        }
        await finishClose(s, spy);
        const { options } = place(s.label);
        s.db = await open(s.dir, options);
        s.generation++;
        spy.register(s.db, `${s.label}${s.generation}`);
        spy.check(`${where} opened`);
        await verify(s, rng, `${where} reopened`, 60);
      } else if (r < 45) {
        const n = 1 + rng.nextInt(4);
        for (let i = 0; i < n; i++) writeBatch(s, rng, 20 + rng.nextInt(250));
      } else if (r < 65) {
        await settle(s);
        await verify(s, rng, where);
      } else if (r < 78) {
        await settle(s);
        const db = s.db;
        const snap = db.snapshot();
        const frozen = new Map(s.model);
        for (let i = 0; i < 3; i++) writeBatch(s, rng, 100 + rng.nextInt(200));
        await settle(s);
        for (let i = 0; i < 80; i++) {
          const k = keyOf(rng.nextInt(KEYS));
          assert.equal(snap.getSync(k)?.toString(), frozen.get(k), `${where}: snapshot ${k}`);
        }
        let n = 0;
        for (const [k, v] of snap.iterator()) {
          assert.equal(v.toString(), frozen.get(k.toString()), `${where}: snapshot scan ${k.toString()}`);
          n++;
        }
        assert.equal(n, frozen.size, `${where}: snapshot scan length`);
        snap.release();
      } else {
        // Close, with an iterator half way and a snapshot left open; do not wait for it.
        await settle(s);
        const db = s.db;
        const it = db.iterator();
        for (let i = 0; i < 5; i++) it.nextSync();
        const snap = db.snapshot();
        s.stale = { it, snap };
        s.closing = db.close();
        if (rng.nextInt(3) === 0) assert.equal(db.close(), s.closing, 'close() twice returns the same promise');
        s.db = null;
        // Others go on at once, while that close runs.
        for (const o of slots) if (o.db !== null && rng.nextInt(2) === 0) writeBatch(o, rng, 100 + rng.nextInt(300));
      }
      spy.check(where);
    }
    for (const s of slots) {
      if (s.db !== null) {
        await settle(s);
        await verify(s, rng, `${s.label} final`, 80);
        s.closing = s.db.close();
        s.db = null;
      }
    }
    for (const s of slots) await finishClose(s, spy);
    // Every database once more, on whatever the others left.
    for (const s of slots) {
      if (s.generation === 0) continue;
      s.db = await open(s.dir, place(s.label).options);
      spy.register(s.db, `${s.label}-last`);
      await verify(s, rng, `${s.label} last reopen`, 80);
    }
    spy.check('all reopened');
    for (const s of slots) await s.db?.close();
    return spy;
  } finally {
    for (const s of slots) {
      try {
        await s.closing;
        await s.db?.close();
      } catch {
        // the test failed already
      }
    }
    spy.remove();
  }
}

/** Options differ per database, so spares cross configurations (arena and slab sizes). */
function optionsFor(label: string): OpenOptions {
  const i = LABELS.indexOf(label);
  return {
    sync: false,
    memtableSize: i % 2 === 0 ? 64 * 1024 : 96 * 1024,
    blockSize: i < 2 ? 512 : 1024,
    blockCacheSize: i === 3 ? 48 * 1024 : 128 * 1024,
    l0CompactionTrigger: 3,
    targetFileSize: 32 * 1024,
    levelBaseSize: 256 * 1024,
  };
}

test('overlapping databases on MemFs keep their own bytes while spares move between them', async () => {
  await seeded('spares overlap MemFs', 18_001, async (seed) => {
    const memfs = new MemFs();
    const spy = await scenario(seed, 160, (label) => ({ dir: `/${label}`, options: { ...optionsFor(label), fs: memfs } }));
    if (process.env['REV18_VERBOSE'] === '1') console.log(spy.summary());
    assert.ok(spy.memTakes > 0 && spy.takes > spy.memTakes, `spares were handed on: ${spy.summary()}`);
  });
});

test('overlapping databases on node:fs (worker flushes and compactions) keep their own bytes', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rev18-spares-overlap-'));
  try {
    await seeded('spares overlap node:fs', 18_002, async (seed) => {
      const spy = await scenario(seed, 110, (label) => ({ dir: path.join(root, label), options: optionsFor(label) }));
      if (process.env['REV18_VERBOSE'] === '1') console.log(spy.summary());
    assert.ok(spy.memTakes > 0 && spy.takes > spy.memTakes, `spares were handed on: ${spy.summary()}`);
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
