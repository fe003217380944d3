/**
 * Review of 79d4c85 (weak spares) under injected I/O faults: one database of three runs on a
 * FaultFs that fails its nth operation (a seeded sweep over n), so its flushes, compactions, WAL
 * writes, closes and opens fail at every point, while the other two databases open, write, read
 * and close around it on a clean filesystem and take whatever it pools.
 *
 * Checked: the clean databases match their models exactly; every value the faulty database ever
 * returns is one of its own (values name their database and key); the SpareSpy invariants hold at
 * every put, take and step; and a directory left corrupt (a failed open) does not disturb the pools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, countOps, failNth } from '../../src/env/fault-fs.js';
import { SpareSpy, Random, seeded, writeBatch, settle, verify, keyOf, KEYS, valueOf, type Tracked } from './session18-spares-helper.js';

const OPTIONS: OpenOptions = { sync: false, memtableSize: 64 * 1024, blockSize: 512, blockCacheSize: 64 * 1024, l0CompactionTrigger: 2, targetFileSize: 32 * 1024 };

/** Every value the faulty database returns must be its own: `F|<key>|...`. */
function ownBytes(db: Database, rng: Random, where: string): void {
  for (let i = 0; i < 60; i++) {
    const k = keyOf(rng.nextInt(KEYS));
    let v: Buffer | undefined;
    try {
      v = db.getSync(k);
    } catch {
      continue; // a read may fail (IO_ERROR, CORRUPTION, CLOSED): only foreign bytes are wrong
    }
    if (v !== undefined) assert.ok(v.toString().startsWith(`F|${k}|`), `${where}: F's ${k} holds ${v.toString().slice(0, 40)}`);
  }
  try {
    for (const [k, v] of db.iterator()) {
      assert.ok(v.toString().startsWith(`F|${k.toString()}|`), `${where}: F scan ${k.toString()} holds ${v.toString().slice(0, 40)}`);
    }
  } catch (e) {
    if ((e as { code?: string }).code === undefined) throw e;
  }
}

async function faultyRun(fs: FaultFs, rng: Random, spy: SpareSpy, label: string): Promise<void> {
  let db: Database;
  try {
    db = await open('/f', { ...OPTIONS, fs });
  } catch {
    return; // the open failed: fine
  }
  spy.register(db, label);
  const writes: Promise<void>[] = [];
  for (let b = 0; b < 8; b++) {
    const ops = [];
    for (let j = 0; j < 150; j++) {
      const key = keyOf(rng.nextInt(KEYS));
      ops.push({ type: 'put' as const, key, value: valueOf('F', key, rng) });
    }
    writes.push(db.batch(ops).catch(() => undefined));
    if (b % 3 === 2) {
      await Promise.all(writes.splice(0));
      ownBytes(db, rng, `${label} batch ${b}`);
    }
  }
  await Promise.all(writes);
  ownBytes(db, rng, `${label} before close`);
  await db.close().catch(() => undefined);
}

test('a database failing at every I/O point pools nothing in use, and never shows or gets foreign bytes', async () => {
  await seeded('spares faults', 18_301, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const clean = new MemFs();
      // How many operations the faulty database's run makes without faults.
      const counter = countOps();
      {
        const inner = new MemFs();
        await faultyRun(new FaultFs(inner, counter), new Random(seed), spy, 'F-count');
      }
      const total = counter.count;
      assert.ok(total > 50, `the run does I/O (${total} ops)`);
      const trials = Math.min(total, Number(process.env["REV18_TRIALS"] ?? total)); // every point by default
      if (process.env["REV18_VERBOSE"] === "1") console.log(`faulty run: ${total} ops`);
      const a: Tracked = { label: 'A', dir: '/a', db: null, model: new Map(), pending: [] };
      const b: Tracked = { label: 'B', dir: '/b', db: null, model: new Map(), pending: [] };
      let gen = 0;
      const reopen = async (t: Tracked): Promise<void> => {
        t.db = await open(t.dir, { ...OPTIONS, fs: clean });
        spy.register(t.db, `${t.label}${gen++}`);
      };
      await reopen(a);
      for (let trial = 0; trial < trials; trial++) {
        const n = Math.floor(((trial + rng.nextFloat()) * total) / trials);
        const inner = new MemFs();
        const fs = new FaultFs(inner, failNth(n, rng.nextInt(2) === 0 ? 'EIO' : 'ENOSPC'));
        // The faulty run and the clean databases interleave.
        const faulty = faultyRun(fs, new Random(seed + trial), spy, `F${trial}@${n}`);
        if (b.db === null) await reopen(b);
        for (let i = 0; i < 4; i++) {
          writeBatch(a, rng, 150);
          writeBatch(b, rng, 150);
        }
        await faulty;
        await settle(a);
        await settle(b);
        await verify(a, rng, `trial ${trial} A`, 80);
        await verify(b, rng, `trial ${trial} B`, 80);
        spy.check(`trial ${trial}`);
        // Reopen F on its filesystem without faults: only its own bytes.
        fs.injector = { maybeFail: () => null };
        try {
          const again = await open('/f', { ...OPTIONS, fs: inner });
          spy.register(again, `F${trial}-again`);
          ownBytes(again, rng, `trial ${trial} F reopened`);
          await again.close();
        } catch (e) {
          assert.ok((e as { code?: string }).code !== undefined, `a typed error: ${String(e)}`);
        }
        if (trial % 3 === 1) {
          await settle(b);
          await (b.db as Database).close();
          b.db = null;
        }
        spy.check(`trial ${trial} end`);
      }
      for (const t of [a, b]) {
        if (t.db === null) continue;
        await settle(t);
        await t.db.close();
        t.db = null;
      }
      for (const t of [a, b]) {
        await reopen(t);
        await verify(t, rng, `${t.label} last`, 150);
        await (t.db as Database).close();
      }
      spy.check('end');
    } finally {
      spy.remove();
    }
  });
});

test('a corrupt directory fails to open between closes and opens that hand buffers on', async () => {
  await seeded('spares corrupt open', 18_302, async (seed) => {
    const rng = new Random(seed);
    const spy = new SpareSpy().install();
    try {
      const memfs = new MemFs();
      const a: Tracked = { label: 'A', dir: '/a', db: await open('/a', { ...OPTIONS, fs: memfs }), model: new Map(), pending: [] };
      spy.register(a.db as Database, 'A');
      for (let i = 0; i < 10; i++) writeBatch(a, rng, 200);
      await settle(a);
      await verify(a, rng, 'A', 100);
      // C: a database whose MANIFEST is then damaged.
      const c = await open('/c', { ...OPTIONS, fs: memfs, sync: true });
      spy.register(c, 'C');
      for (let i = 0; i < 6; i++) {
        const ops = [];
        for (let j = 0; j < 150; j++) {
          const key = keyOf(rng.nextInt(KEYS));
          ops.push({ type: 'put' as const, key, value: valueOf('C', key, rng) });
        }
        await c.batch(ops);
      }
      await c.close();
      await (a.db as Database).close();
      a.db = null;
      spy.check('A and C closed');
      const manifest = memfs.readdir('/c').find((n) => n.startsWith('MANIFEST'));
      assert.ok(manifest !== undefined);
      const bytes = memfs.readFileRaw(`/c/${manifest}`);
      for (let i = 16; i < bytes.length; i += 7) bytes[i] = (bytes[i] as number) ^ 0x5a;
      memfs.writeFileRaw(`/c/${manifest}`, bytes, { synced: true });
      const takes = spy.takes;
      await assert.rejects(open('/c', { ...OPTIONS, fs: memfs }), (e: unknown) => (e as { code?: string }).code !== undefined);
      spy.check('after the corrupt open');
      // A and a new B open on what is left; both exact.
      const b: Tracked = { label: 'B', dir: '/b', db: await open('/b', { ...OPTIONS, fs: memfs }), model: new Map(), pending: [] };
      spy.register(b.db as Database, 'B');
      a.db = await open('/a', { ...OPTIONS, fs: memfs });
      spy.register(a.db, 'A2');
      for (let i = 0; i < 10; i++) {
        writeBatch(a, rng, 200);
        writeBatch(b, rng, 200);
      }
      await settle(a);
      await settle(b);
      await verify(a, rng, 'A2', 200);
      await verify(b, rng, 'B', 200);
      assert.ok(spy.takes > takes, `the later opens reused spares (${spy.summary()})`);
      spy.check('end');
      await (a.db as Database).close();
      await (b.db as Database).close();
    } finally {
      spy.remove();
    }
  });
});
