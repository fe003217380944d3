/**
 * Reviewer tests (session 14c) for "compactRange compacts down to the deepest level that held data
 * in the range (at least L1)". A seeded model (Map) checks contents after partial-range
 * compactions of multi-level trees, with snapshots held, deletions whose older values sit deeper,
 * concurrent writes and background compactions, and close() racing compactRange.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';

const SEED = testSeed();
console.log(`session14c-compact-range-model SEED=${SEED}`);

const OPTS: OpenOptions = {
  memtableSize: 8 * 1024,
  blockSize: 512,
  levelBaseSize: 16 * 1024,
  levelMultiplier: 2,
  targetFileSize: 4 * 1024,
  compression: 'none',
  sync: false,
};

const KEYS = 1500;
const key = (i: number): string => `k${String(i).padStart(5, '0')}`;

interface VersionLike {
  files(level: number): readonly FileMetadata[];
  overlappingFiles(level: number, lo: Uint8Array | undefined, hi: Uint8Array | undefined): FileMetadata[];
}
function current(db: Database): VersionLike {
  return (db as unknown as { versions: { current(): VersionLike } }).versions.current();
}

async function contents(it: AsyncIterable<[Buffer, Buffer]>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of it) out.set(k.toString(), v.toString());
  return out;
}

function diff(a: Map<string, string>, b: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) lines.push(`${k}: got ${JSON.stringify(v)?.slice(0, 20)} want ${JSON.stringify(b.get(k))?.slice(0, 20)}`);
  for (const [k, v] of b) if (!a.has(k)) lines.push(`${k}: missing (want ${v.slice(0, 20)})`);
  return `${lines.length} differences: ${lines.slice(0, 8).join('; ')}`;
}

async function checkDb(db: Database, model: Map<string, string>, what: string): Promise<void> {
  const got = await contents(db.iterator());
  if (got.size !== model.size || [...model].some(([k, v]) => got.get(k) !== v)) assert.fail(`${what}: ${diff(got, model)}`);
  // Point reads too (they take the per-level path, not the merged iterator).
  for (let i = 0; i < KEYS; i += 7) {
    const v = await db.get(key(i));
    assert.equal(v?.toString(), model.get(key(i)), `${what}: get(${key(i)})`);
  }
}

async function checkSnap(s: Snapshot, model: Map<string, string>, what: string): Promise<void> {
  const got = await contents(s.iterator());
  if (got.size !== model.size || [...model].some(([k, v]) => got.get(k) !== v)) assert.fail(`${what}: ${diff(got, model)}`);
  for (let i = 0; i < KEYS; i += 11) assert.equal(s.getSync(key(i))?.toString(), model.get(key(i)), `${what}: snapshot get(${key(i)})`);
}

/** Random puts and deletes (deletes ~25%), some in narrow key windows so ranges overlap only some files. */
async function writeSome(db: Database, rng: Random, model: Map<string, string>, n: number, tag: string): Promise<void> {
  const base = rng.nextInt(KEYS);
  const span = rng.nextInt(3) === 0 ? KEYS : 50 + rng.nextInt(300);
  for (let j = 0; j < n; j++) {
    const k = key((base + rng.nextInt(span)) % KEYS);
    if (rng.nextInt(4) === 0) {
      await db.delete(k);
      model.delete(k);
    } else {
      const v = `${tag}.${j}.`.padEnd(20 + rng.nextInt(60), 'x');
      await db.put(k, v);
      model.set(k, v);
    }
  }
}

function randomRange(rng: Random): [string | undefined, string | undefined] {
  const a = rng.nextInt(KEYS + 2);
  const b = a + rng.nextInt(rng.nextInt(2) === 0 ? 40 : 600);
  const lo = rng.nextInt(8) === 0 ? undefined : key(a);
  const hi = rng.nextInt(8) === 0 ? undefined : key(b);
  return [lo, hi];
}

const levelOf = (db: Database): number[] => db.stats().levels.map((l) => l.files);

test('partial compactRange on a multi-level tree: model, snapshots, placement (no concurrent writes)', async () => {
  const rng = new Random(SEED);
  const db = await open('/db', { ...OPTS, fs: new MemFs() });
  const model = new Map<string, string>();
  const snaps: { s: Snapshot; model: Map<string, string> }[] = [];
  try {
    for (let round = 0; round < 30; round++) {
      await writeSome(db, rng, model, 150 + rng.nextInt(250), `r${round}`);
      if (rng.nextInt(3) === 0) snaps.push({ s: db.snapshot(), model: new Map(model) });
      if (snaps.length > 3 || (snaps.length > 0 && rng.nextInt(4) === 0)) snaps.splice(rng.nextInt(snaps.length), 1)[0]?.s.release();
      if (round % 3 === 0) await db.idle();
      const [lo, hi] = randomRange(rng);
      const loB = lo === undefined ? undefined : Buffer.from(lo);
      const hiB = hi === undefined ? undefined : Buffer.from(hi);
      // What compactRange will see: the memtable flushed (a range past every key flushes it and
      // compacts nothing), background compaction finished.
      await db.compactRange('zzz', 'zzz');
      await db.idle();
      const before = current(db);
      let deepest = 1;
      for (let level = 1; level < 7; level++) if (before.overlappingFiles(level, loB, hiB).length > 0) deepest = level;
      const deeperFiles = new Map<number, number[]>();
      for (let level = deepest + 1; level < 7; level++) deeperFiles.set(level, before.files(level).map((f) => f.number));
      const what = `round ${round} compactRange(${lo}, ${hi}) deepest=${deepest} levels ${levelOf(db).join(',')}`;
      await db.compactRange(lo, hi);
      const after = current(db);
      for (let level = 0; level < deepest; level++) {
        assert.deepEqual(after.overlappingFiles(level, loB, hiB).map((f) => f.number), [], `${what}: L${level} holds nothing of the range`);
      }
      for (const [level, nums] of deeperFiles) {
        assert.deepEqual(after.files(level).map((f) => f.number), nums, `${what}: L${level} below the deepest level untouched`);
      }
      assert.equal(db.stats().backgroundError, null);
      await checkDb(db, model, what);
      for (const [i, { s, model: m }] of snaps.entries()) await checkSnap(s, m, `${what}: snapshot ${i}`);
    }
    await db.compactRange();
    await checkDb(db, model, 'after a full compactRange');
  } finally {
    for (const { s } of snaps) s.release();
    await db.close();
  }
});

test('a deletion in L0 whose old value sits at a deeper level outside the compacted range stays deleted', async () => {
  const rng = new Random(SEED ^ 0x1234);
  const fs = new MemFs();
  const model = new Map<string, string>();
  // Phase 1 (background compaction on): old values of keys 1000.. pushed to L2+.
  let db = await open('/db', { ...OPTS, fs });
  let r = 0;
  while (levelOf(db).slice(2).every((n) => n === 0) && r < 100) {
    for (let j = 0; j < 300; j++) {
      const i = 1000 + rng.nextInt(KEYS - 1000);
      const v = `old${r}.${i}`.padEnd(60, 'o');
      await db.put(key(i), v);
      model.set(key(i), v);
    }
    r++;
    await db.idle();
  }
  await db.compactRange(key(1000), undefined); // everything of it down to its deepest level
  await db.close();
  // Phase 2 (no background compaction): the tree is placed by compactRange alone.
  const quiet: OpenOptions = { ...OPTS, fs, levelBaseSize: 1 << 30, l0CompactionTrigger: 1000, l0SlowdownTrigger: 1000, l0StopTrigger: 1000 };
  db = await open('/db', quiet);
  try {
    const deep = levelOf(db);
    assert.ok(deep.slice(2).some((n) => n > 0) && deep[0] === 0, `old data at L2+: ${deep.join(',')}`);
    for (let i = 0; i < 1000; i++) {
      const v = `young${i}`;
      await db.put(key(i), v);
      model.set(key(i), v);
    }
    // Tombstones over the deep old values (outside the range compacted below) and over young keys.
    for (let i = 0; i < KEYS; i += 1 + rng.nextInt(6)) {
      await db.delete(key(i));
      model.delete(key(i));
    }
    const snap = db.snapshot();
    const snapModel = new Map(model);
    for (let i = 0; i < 200; i++) {
      const k = key(rng.nextInt(KEYS));
      await db.delete(k);
      model.delete(k);
    }
    const before = levelOf(db);
    await db.compactRange(key(0), key(199)); // deepest level with [0, 199] data: L1 at most
    const after = levelOf(db);
    assert.deepEqual(after.slice(2), before.slice(2), `deeper levels untouched: ${before.join(',')} -> ${after.join(',')}`);
    await checkDb(db, model, 'after compactRange(0..199)');
    await checkSnap(snap, snapModel, 'snapshot after compactRange(0..199)');
    snap.release();
    await db.compactRange(key(500), key(999));
    await checkDb(db, model, 'after compactRange(500..999)');
    await db.compactRange(key(1200), key(1250));
    await checkDb(db, model, 'after compactRange(1200..1250)');
    await db.close();
    db = await open('/db', quiet);
    await checkDb(db, model, 'after reopen');
    await db.compactRange();
    await checkDb(db, model, 'after reopen and a full compactRange');
  } finally {
    await db.close();
  }
});

test('data deep in the tree (L3+) outside the range, the range in L0/L1: nothing resurrects, deeper levels untouched', async () => {
  const rng = new Random(SEED ^ 0x5678);
  const db = await open('/db', { ...OPTS, fs: new MemFs() });
  const model = new Map<string, string>();
  try {
    // Background compaction builds a deep tree.
    let r = 0;
    while (levelOf(db).slice(3).every((n) => n === 0) && r < 200) {
      await writeSome(db, rng, model, 300, `deep${r++}`);
      await db.idle();
    }
    const levels = levelOf(db);
    assert.ok(levels.slice(3).some((n) => n > 0), `a tree reaching L3+: ${levels.join(',')}`);
    // Now overwrite and delete keys everywhere (tombstones over deep old values), then compact a
    // narrow range only, many times over different narrow ranges.
    for (let round = 0; round < 12; round++) {
      for (let j = 0; j < 120; j++) {
        const k = key(rng.nextInt(KEYS));
        if (rng.nextInt(2) === 0) {
          await db.delete(k);
          model.delete(k);
        } else {
          await db.put(k, `o${round}.${j}`);
          model.set(k, `o${round}.${j}`);
        }
      }
      const a = rng.nextInt(KEYS);
      await db.compactRange(key(a), key(a + rng.nextInt(30)));
      await checkDb(db, model, `round ${round} after compactRange(${key(a)}, ...) levels ${levelOf(db).join(',')}`);
    }
  } finally {
    await db.close();
  }
});

test('compactRange with concurrent writes, snapshots and background compactions', async () => {
  const rng = new Random(SEED ^ 0x9abc);
  const db = await open('/db', { ...OPTS, fs: new MemFs() });
  const model = new Map<string, string>();
  const snaps: { s: Snapshot; model: Map<string, string> }[] = [];
  try {
    await writeSome(db, rng, model, 2000, 'init');
    for (let round = 0; round < 15; round++) {
      const ranges = [randomRange(rng), randomRange(rng)];
      // Start two compactRange calls and keep writing (awaiting each write) while they run.
      const running = ranges.map(([lo, hi]) => db.compactRange(lo, hi));
      let done = false;
      const all = Promise.all(running).finally(() => {
        done = true;
      });
      let n = 0;
      while (!done || n < 100) {
        await writeSome(db, rng, model, 20, `c${round}.${n}`);
        n += 20;
        if (rng.nextInt(10) === 0) snaps.push({ s: db.snapshot(), model: new Map(model) });
        if (snaps.length > 4) snaps.shift()?.s.release();
        if (n > 5000) break;
      }
      await all;
      assert.equal(db.stats().backgroundError, null);
      await checkDb(db, model, `round ${round} levels ${levelOf(db).join(',')}`);
      for (const [i, { s, model: m }] of snaps.entries()) await checkSnap(s, m, `round ${round}: snapshot ${i}`);
    }
  } finally {
    for (const { s } of snaps) s.release();
    await db.close();
  }
});

test('close() during compactRange: compactRange settles (resolves or CLOSED), close resolves, data intact', async () => {
  const rng = new Random(SEED ^ 0xdef0);
  const outcomes: string[] = [];
  for (let trial = 0; trial < 12; trial++) {
    const fs = new MemFs();
    let db = await open('/db', { ...OPTS, fs });
    const model = new Map<string, string>();
    await writeSome(db, rng, model, 1500, `t${trial}`);
    await db.idle();
    await writeSome(db, rng, model, 200, `u${trial}`); // an unflushed memtable too
    // Close at the n-th compaction job started by this compactRange (or before any, n = 0).
    const closeAt = trial % 4;
    const holder = db as unknown as { runCompactionJob(p: unknown): Promise<void> };
    const orig = holder.runCompactionJob.bind(db);
    let jobs = 0;
    let closing: Promise<void> | null = null;
    holder.runCompactionJob = (p: unknown): Promise<void> => {
      const r = orig(p);
      if (++jobs === closeAt) closing = db.close();
      return r;
    };
    const [lo, hi] = trial % 3 === 0 ? [undefined, undefined] : randomRange(rng);
    const cr = db.compactRange(lo, hi);
    if (closeAt === 0) closing = db.close();
    const outcome = await cr.then(
      () => 'ok',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );
    outcomes.push(`${closeAt}:${outcome}`);
    assert.ok(outcome === 'ok' || outcome === 'CLOSED', `trial ${trial} closeAt ${closeAt}: compactRange settled with ${outcome}`);
    await (closing ?? db.close());
    db = await open('/db', { ...OPTS, fs });
    await checkDb(db, model, `trial ${trial} after close during compactRange (${outcome})`);
    await db.close();
  }
  console.log(`close during compactRange outcomes (closeAt:outcome): ${outcomes.join(' ')}`);
});
