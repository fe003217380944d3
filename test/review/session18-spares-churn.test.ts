/**
 * Review of 79d4c85 (weak spares): churn. Six databases; each round closes some and opens others
 * all at once (Promise.all: the opens' WAL replays and the closes' puts interleave), with writes,
 * transactions and reads running on the rest, and checks every database against its model.
 *
 * Run twice: with the SpareSpy holding pooled items (every take finds what was put), and with a
 * weak spy under forced garbage collections between steps, so WeakRefs clear at arbitrary points
 * between a put and the take that would have found it (as in production).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { SpareSpy, Random, seeded, writeBatch, settle, verify, keyOf, KEYS, valueOf, type Tracked } from './session18-spares-helper.js';

const LABELS = ['a', 'b', 'c', 'd', 'e', 'f'];

function optionsOf(label: string, fs: MemFs): OpenOptions {
  const i = LABELS.indexOf(label);
  return {
    fs,
    sync: false,
    memtableSize: [48, 64, 96][i % 3]! * 1024,
    blockSize: i % 2 === 0 ? 512 : 768,
    blockCacheSize: [32, 64, 128][i % 3]! * 1024,
    l0CompactionTrigger: 2 + (i % 3),
    targetFileSize: 32 * 1024,
  };
}

let gcFn: (() => void) | null = null;
function gc(): void {
  if (gcFn === null) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** A transaction that moves a value between two keys (read-modify-write), mirrored in the model. */
async function txMove(t: Tracked, rng: Random): Promise<void> {
  const db = t.db as Database;
  const from = keyOf(rng.nextInt(KEYS));
  const to = keyOf(rng.nextInt(KEYS));
  if (from === to) return;
  const v = await db.transaction(async (tx) => {
    const got = await tx.get(from);
    assert.equal(got?.toString(), t.model.get(from), `${t.label}: transaction read ${from}`);
    const value = valueOf(t.label, to, rng);
    tx.put(to, value);
    tx.delete(from);
    return value;
  });
  t.model.set(to, v);
  t.model.delete(from);
}

async function churn(seed: number, rounds: number, spy: SpareSpy, collect: boolean): Promise<void> {
  const rng = new Random(seed);
  const memfs = new MemFs();
  const all: Tracked[] = LABELS.map((label) => ({ label, dir: `/${label}`, db: null, model: new Map(), pending: [] }));
  let gen = 0;
  const openOne = async (t: Tracked): Promise<void> => {
    const db = await open(t.dir, optionsOf(t.label, memfs));
    t.db = db;
    spy.register(db, `${t.label}${gen++}`);
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const toClose = all.filter((t) => t.db !== null && rng.nextInt(3) === 0);
      const toOpen = all.filter((t) => t.db === null && rng.nextInt(2) === 0);
      const live = all.filter((t) => t.db !== null && !toClose.includes(t));
      for (const t of toClose) for (let i = 0; i < 2; i++) writeBatch(t, rng, 100 + rng.nextInt(200));
      for (const t of live) for (let i = 0; i < 3; i++) writeBatch(t, rng, 100 + rng.nextInt(200));
      // Writes queued before close() commit; the closes, opens and other writes interleave.
      const closes = toClose.map(async (t) => {
        const db = t.db as Database;
        const c = db.close();
        t.db = null;
        await c;
        await settle(t);
      });
      const opens = toOpen.map((t) => openOne(t));
      const txs = live.map((t) => (rng.nextInt(2) === 0 ? settle(t).then(() => txMove(t, rng)) : Promise.resolve()));
      await Promise.all([...closes, ...opens, ...txs]);
      if (collect) gc();
      for (const t of all) {
        if (t.db === null) continue;
        await settle(t);
        await verify(t, rng, `round ${round}`, 60);
      }
      spy.check(`round ${round}`);
    }
    for (const t of all) {
      if (t.db === null) await openOne(t);
      await settle(t);
      await verify(t, rng, 'final', 120);
    }
    for (const t of all) {
      await (t.db as Database).close();
      t.db = null;
    }
    spy.check('end');
  } finally {
    for (const t of all) await t.db?.close().catch(() => undefined);
  }
}

test('churn: closes and opens all at once while the rest write and commit transactions (spares held)', async () => {
  await seeded('spares churn', 18_401, async (seed) => {
    const spy = new SpareSpy(true).install();
    try {
      await churn(seed, 30, spy, false);
      assert.ok(spy.memTakes > 3 && spy.takes > spy.memTakes, `spares moved: ${spy.summary()}`);
    } finally {
      spy.remove();
    }
  });
});

test('churn with garbage collections between rounds (spares held weakly, as in production)', async () => {
  await seeded('spares churn gc', 18_402, async (seed) => {
    const spy = new SpareSpy(false).install();
    try {
      await churn(seed, 24, spy, true);
    } finally {
      spy.remove();
    }
  });
});
