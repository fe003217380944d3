/**
 * A closed database offers its block-cache slabs and its last flushed memtable's buffers to the
 * next database opened in the same thread (util/weak-spares.ts). These tests check the pool itself,
 * that a released cache really lets go (caches nothing more, its slabs serve a new cache), and,
 * through the public API, that databases open side by side while others close and reopen never
 * see each other's bytes: every read is checked against a model per database.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { WeakSpares } from '../../src/util/weak-spares.js';
import { spareMemTableStorage, type MemTableStorage } from '../../src/memtable/memtable.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

test('WeakSpares hands back the newest fitting item once, and forgets the oldest past its bound', () => {
  const pool = new WeakSpares<Buffer>(3);
  const a = Buffer.alloc(10);
  const b = Buffer.alloc(20);
  const c = Buffer.alloc(10);
  pool.put(a);
  pool.put(b);
  pool.put(c);
  assert.equal(pool.size, 3);
  assert.equal(pool.take((x) => x.length === 10), c, 'the newest that fits');
  assert.equal(pool.take((x) => x.length === 10), a);
  assert.equal(pool.take((x) => x.length === 10), undefined, 'each item is handed out once');
  assert.equal(pool.take((x) => x.length === 20), b);
  assert.equal(pool.size, 0);
  const items = [1, 2, 3, 4].map((n) => Buffer.alloc(n));
  for (const item of items) pool.put(item);
  assert.equal(pool.size, 3, 'bounded');
  assert.equal(pool.take((x) => x.length === 1), undefined, 'the oldest was forgotten');
  assert.equal(pool.take((x) => x.length === 4), items[3]);
});

test('a released block cache caches nothing more, and its slabs serve the next cache', () => {
  invariants.enabled = true;
  try {
    const slot = 64;
    const a = new BlockCache(64 * slot * 2, slot, false);
    const slabsOfA = new Set<ArrayBufferLike>();
    for (let i = 0; i < 100; i++) slabsOfA.add(a.insert(1, i * 100, Buffer.alloc(50, i)).buffer);
    assert.equal(a.stats().entries, 100);
    a.release();
    assert.equal(a.stats().entries, 0);
    assert.equal(a.stats().usedBytes, 0);
    assert.equal(a.get(1, 0), undefined, 'nothing is cached after release');
    const mine = Buffer.alloc(50, 7);
    assert.equal(a.insert(1, 0, mine), mine, 'insert hands the block back');
    assert.equal(a.admits(1, 0, 50), false);
    assert.equal(a.get(1, 0), undefined);
    a.release(); // idempotent

    const b = new BlockCache(64 * slot * 2, slot, false);
    const views = [];
    for (let i = 0; i < 100; i++) views.push(b.insert(2, i * 100, Buffer.alloc(40, 200 - i)));
    assert.ok(
      views.some((v) => slabsOfA.has(v.buffer)),
      'the new cache took the released slabs instead of allocating (they are still reachable here)',
    );
    for (let i = 0; i < 100; i++) {
      const got = b.get(2, i * 100);
      assert.ok(got !== undefined && got.length === 40 && got.every((x) => x === 200 - i), `block ${i} intact`);
    }
    // The released cache cannot write into them any more.
    a.insert(1, 0, Buffer.alloc(50, 99));
    for (let i = 0; i < 100; i++) assert.equal(b.get(2, i * 100)?.[0], 200 - i);
  } finally {
    invariants.enabled = false;
  }
});

interface Tracked {
  db: Database;
  dir: string;
  model: Map<string, string>;
}

const keyOf = (i: number): string => `k${String(i).padStart(5, '0')}`;

async function writeSome(t: Tracked, rng: Random, tag: string, n: number): Promise<void> {
  const ops = [];
  for (let j = 0; j < n; j++) {
    const key = keyOf(rng.nextInt(3000));
    if (rng.nextInt(10) === 0) {
      ops.push({ type: 'del' as const, key });
      t.model.delete(key);
    } else {
      const value = `${tag}:${key}:${rng.nextInt(1_000_000)}:${'v'.repeat(rng.nextInt(120))}`;
      ops.push({ type: 'put' as const, key, value });
      t.model.set(key, value);
    }
  }
  await t.db.batch(ops);
}

function checkAll(t: Tracked, label: string): void {
  for (let i = 0; i < 3000; i++) {
    const key = keyOf(i);
    const got = t.db.getSync(key)?.toString();
    assert.equal(got, t.model.get(key), `${label}: ${t.dir} ${key}`);
  }
}

async function sideBySide(seed: number, makeOptions: (dir: string) => { dir: string; options: OpenOptions }): Promise<void> {
  const rng = new Random(seed);
  const openTracked = async (name: string, model = new Map<string, string>()): Promise<Tracked> => {
    const { dir, options } = makeOptions(name);
    return { db: await open(dir, options), dir, model };
  };
  const a = await openTracked('a');
  const b = await openTracked('b');
  for (let round = 0; round < 6; round++) {
    await writeSome(a, rng, 'a', 400);
    await writeSome(b, rng, 'b', 400);
  }
  checkAll(a, 'a before close');
  checkAll(b, 'b');
  const modelA = a.model;
  await a.db.close();
  // c opens while b is live and a's buffers are spare: c may take them, b must not notice.
  const c = await openTracked('c');
  for (let round = 0; round < 6; round++) {
    await writeSome(c, rng, 'c', 400);
    await writeSome(b, rng, 'b', 400);
    checkAll(c, `c round ${round}`);
    checkAll(b, `b round ${round}`);
  }
  await c.db.close();
  // a again, on c's buffers now: its data as it was.
  const a2 = await openTracked('a', modelA);
  checkAll(a2, 'a reopened');
  await writeSome(a2, rng, 'a2', 800);
  checkAll(a2, 'a reopened and written');
  checkAll(b, 'b at the end');
  await a2.db.close();
  await b.db.close();
}

test('databases opened while others close never see each other\'s bytes (MemFs, seeded)', async () => {
  await withSeed('weak-spares MemFs', async (seed) => {
    const fsys = new MemFs();
    await sideBySide(seed, (name) => ({
      dir: `/${name}`,
      options: { fs: fsys, sync: false, memtableSize: 64 * 1024, blockSize: 1024, blockCacheSize: 128 * 1024 },
    }));
  });
});

test('databases opened while others close never see each other\'s bytes (node:fs with workers, seeded)', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-spares-'));
  try {
    await withSeed('weak-spares node:fs', async (seed) => {
      await sideBySide(seed, (name) => ({
        dir: path.join(root, `${seed}-${name}`),
        options: { sync: false, memtableSize: 64 * 1024, blockSize: 1024, blockCacheSize: 128 * 1024 },
      }));
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

/** The arena a database's active memtable writes into (internals, for identity checks). */
function activeArena(db: Database): Buffer {
  return (db as unknown as { mem: { list: { arena: Buffer } } }).mem.list.arena;
}

test('close offers both memtables\' buffers; the next database opens on one and rotates onto the other; a recovering open keeps the one it replayed into', async () => {
  // Hold what is offered strongly, so that a GC in between cannot make this test take a path
  // other than the one it checks.
  const offered: MemTableStorage[] = [];
  const put = spareMemTableStorage.put.bind(spareMemTableStorage);
  spareMemTableStorage.put = (storage: MemTableStorage): void => {
    offered.push(storage);
    put(storage);
  };
  try {
    while (spareMemTableStorage.take(() => true) !== undefined); // start from an empty pool
    const fsys = new MemFs();
    const options: OpenOptions = { fs: fsys, sync: false, memtableSize: 64 * 1024, blockSize: 1024, blockCacheSize: 64 * 1024 };
    const a: Tracked = { db: await open('/a', options), dir: '/a', model: new Map() };
    const rng = new Random(11);
    for (let i = 0; i < 10; i++) await writeSome(a, rng, 'a', 200);
    await a.db.close();
    assert.equal(offered.length, 2, 'the last flushed memtable and the active one');
    const arenas = offered.map((s) => s.list.arena);

    const b: Tracked = { db: await open('/b', options), dir: '/b', model: new Map() };
    assert.ok(arenas.includes(activeArena(b.db)), 'the opened database writes into an offered arena');
    const first = activeArena(b.db);
    const memOf = (db: Database): unknown => (db as unknown as { mem: unknown }).mem;
    const firstMem = memOf(b.db);
    while (memOf(b.db) === firstMem) await writeSome(b, rng, 'b', 50);
    assert.ok(arenas.includes(activeArena(b.db)) && activeArena(b.db) !== first, 'its first rotation takes the other offered arena');
    checkAll(b, 'b');

    // A power cut leaves b's last (durable) writes in its WAL only: the next open takes an offered
    // arena, replays them into it, flushes them, and keeps writing into that same arena.
    await b.db.batch([{ type: 'put', key: keyOf(0), value: 'durable' }], { sync: true });
    b.model.set(keyOf(0), 'durable');
    const crashed = fsys.crashClone();
    await b.db.close();
    const newest = (offered[offered.length - 1] as MemTableStorage).list.arena;
    const c: Tracked = { db: await open('/b', { ...options, fs: crashed }), dir: '/b', model: b.model };
    assert.equal(c.db.getSync(keyOf(0))?.toString(), 'durable', 'the WAL was replayed');
    assert.equal(activeArena(c.db), newest, 'the recovering open writes into the arena it replayed into');
    checkAll(c, 'c');
    await c.db.close();
  } finally {
    spareMemTableStorage.put = put;
  }
});
