/**
 * Compaction through the public API: level shape, space reclaimed, tombstones and old versions
 * dropped only when no snapshot needs them, iterators pinned across compactions, and files deleted
 * only once nothing references them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const tiny: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 64 * 1024,
  levelMultiplier: 4,
  targetFileSize: 32 * 1024,
  sync: false,
};

function key(i: number): string {
  return `key${String(i).padStart(8, '0')}`;
}

function sstCount(mem: MemFs): number {
  return mem.listAll().filter((p) => p.endsWith('.sst')).length;
}

test('random writes build a leveled tree with bounded L0 and correct reads', async () => {
  await withSeed('level shape', async (seed) => {
    const rng = new Random(seed);
    const mem = new MemFs({ capacityBytes: 2 ** 31 });
    const db = await open('/db', { ...tiny, fs: mem });
    const model = new Map<string, string>();
    for (let b = 0; b < 150; b++) {
      const ops = [];
      for (let j = 0; j < 100; j++) {
        const k = key(rng.nextInt(5000));
        const v = `${b}-${j}-${'x'.repeat(rng.nextInt(60))}`;
        ops.push({ type: 'put' as const, key: k, value: v });
        model.set(k, v);
      }
      await db.batch(ops);
    }
    await db.compactRange(); // settle
    const s = db.stats();
    assert.ok(s.compactions.count > 0, 'compactions ran');
    assert.ok(s.levels[0]!.files <= 12, `L0 bounded (${s.levels[0]!.files})`);
    const deepest = s.levels.filter((l) => l.files > 0).map((l) => l.level);
    assert.ok(Math.max(...deepest) >= 2, `data reached L2+ (${JSON.stringify(s.levels)})`);
    for (let lvl = 1; lvl < 6; lvl++) {
      const l = s.levels[lvl]!;
      const target = 64 * 1024 * 4 ** (lvl - 1);
      // After a full compactRange everything sits in one level; otherwise levels respect targets.
      assert.ok(l.bytes <= target * 3 || s.levels.slice(lvl + 1).every((x) => x.files === 0), `level ${lvl} near target`);
    }
    for (const [k, v] of model) assert.equal(db.getSync(k)?.toString(), v, k);
    let n = 0;
    for (const [k, v] of db.iterator()) {
      assert.equal(v.toString(), model.get(k.toString()));
      n++;
    }
    assert.equal(n, model.size);
    assert.equal(s.compactions.obsoleteTablesPending, 0);
    // Every table on disk is live: obsolete inputs were deleted.
    const onDisk = sstCount(mem);
    assert.equal(onDisk, s.levels.reduce((a, l) => a + l.files, 0));
    await db.close();
  });
});

test('overwrites and deletes are reclaimed by compaction', async () => {
  const mem = new MemFs();
  const db = await open('/db', { ...tiny, fs: mem });
  for (let round = 0; round < 5; round++) {
    const ops = [];
    for (let i = 0; i < 2000; i++) ops.push({ type: 'put' as const, key: key(i), value: `r${round}-${'y'.repeat(40)}` });
    await db.batch(ops);
  }
  const dels = [];
  for (let i = 0; i < 2000; i += 2) dels.push({ type: 'del' as const, key: key(i) });
  await db.batch(dels);
  await db.compactRange();
  const s = db.stats();
  const bytes = s.levels.reduce((a, l) => a + l.bytes, 0);
  // 1000 live keys of ~55 bytes: well under the 5 x 2000 versions written.
  assert.ok(bytes < 200 * 1024, `space reclaimed: ${bytes} bytes live`);
  assert.ok(s.compactions.entriesDropped >= 9000, `dropped ${s.compactions.entriesDropped}`);
  assert.equal(db.getSync(key(0)), undefined);
  assert.equal(db.getSync(key(1))?.toString(), `r4-${'y'.repeat(40)}`);
  await db.close();
});

test('a snapshot keeps the versions it sees through compaction', async () => {
  const mem = new MemFs();
  const db = await open('/db', { ...tiny, fs: mem });
  for (let i = 0; i < 500; i++) await db.put(key(i), 'old', { sync: false });
  const snap = db.snapshot();
  for (let i = 0; i < 500; i++) await db.put(key(i), 'new', { sync: false });
  for (let i = 0; i < 500; i += 5) await db.delete(key(i), { sync: false });
  await db.compactRange();
  assert.equal((await snap.get(key(0)))?.toString(), 'old');
  assert.equal((await snap.get(key(1)))?.toString(), 'old');
  assert.equal(db.getSync(key(0)), undefined);
  assert.equal(db.getSync(key(1))?.toString(), 'new');
  let n = 0;
  for await (const [, v] of snap.iterator()) {
    assert.equal(v.toString(), 'old');
    n++;
  }
  assert.equal(n, 500);
  snap.release();
  await db.compactRange();
  assert.equal(db.getSync(key(1))?.toString(), 'new');
  await db.close();
});

test('an iterator opened before a compaction returns exactly its view after the inputs are gone', async () => {
  const mem = new MemFs();
  const db = await open('/db', { ...tiny, fs: mem });
  for (let i = 0; i < 3000; i++) await db.put(key(i), `v1-${i}`, { sync: false });
  await db.compactRange();
  const it = db.iterator();
  const first = it.nextSync();
  assert.equal(first?.[0].toString(), key(0));
  const tablesBefore = new Set(mem.listAll().filter((p) => p.endsWith('.sst')));
  for (let i = 0; i < 3000; i++) await db.put(key(i), `v2-${i}`, { sync: false });
  for (let i = 0; i < 3000; i += 3) await db.delete(key(i), { sync: false });
  await db.compactRange();
  // Inputs the iterator reads are gone from the manifest but kept on disk while it lives.
  assert.ok(db.stats().compactions.obsoleteTablesPending > 0, 'old tables pinned by the iterator');
  const stillThere = mem.listAll().filter((p) => tablesBefore.has(p));
  assert.ok(stillThere.length > 0);
  let n = 1;
  for (const [k, v] of it) {
    assert.equal(v.toString(), `v1-${Number(k.toString().slice(3))}`);
    n++;
  }
  assert.equal(n, 3000);
  // Released: the obsolete tables are deleted now.
  assert.equal(db.stats().compactions.obsoleteTablesPending, 0);
  assert.equal(mem.listAll().filter((p) => tablesBefore.has(p)).length, 0);
  await db.close();
});

test('tables orphaned by a crash mid-compaction are removed at the next open', async () => {
  const mem = new MemFs();
  const db = await open('/db', { ...tiny, fs: mem });
  for (let i = 0; i < 2000; i++) await db.put(key(i), `v-${i}`, { sync: false });
  await db.close();
  const h = mem.open('/db/999999.sst', 'create');
  h.write(Buffer.from('half-written table'), 0, 18, null);
  h.close();
  const again = await open('/db', { ...tiny, fs: mem });
  assert.equal(mem.exists('/db/999999.sst'), false);
  assert.ok(again.stats().recovery.orphansRemoved >= 1);
  assert.equal(again.getSync(key(1999))?.toString(), 'v-1999');
  await again.close();
});

test('a backlog left by the last run is compacted after open, without waiting for a write', async () => {
  const mem = new MemFs();
  // Triggers so high that nothing compacts while writing: L0 piles up.
  const piling: OpenOptions = { ...tiny, fs: mem, l0CompactionTrigger: 50, l0SlowdownTrigger: 50, l0StopTrigger: 50 };
  const db = await open('/db', piling);
  for (let i = 0; i < 3000; i++) await db.put(key(i), `v-${i}`, { sync: false });
  await db.idle();
  const l0Before = db.stats().levels[0]?.files ?? 0;
  assert.ok(l0Before >= 4, `L0 has ${l0Before} tables`);
  await db.close();

  // Read-only: no compaction, nothing changes.
  const ro = await open('/db', { ...tiny, fs: mem, readOnly: true });
  assert.equal(ro.stats().compactions.running, false);
  assert.ok((ro.stats().levels[0]?.files ?? 0) >= l0Before);
  await ro.close();

  const again = await open('/db', { ...tiny, fs: mem, l0CompactionTrigger: 2 });
  assert.equal(again.stats().compactions.running, true, 'open() starts the compaction the backlog needs');
  assert.equal(again.getSync(key(7))?.toString(), 'v-7', 'reads while it runs');
  await again.idle();
  const s = again.stats();
  assert.ok((s.levels[0]?.files ?? 0) < 2, `L0 has ${s.levels[0]?.files} tables after open`);
  assert.ok(s.compactions.count >= 1);
  for (let i = 0; i < 3000; i += 97) assert.equal(again.getSync(key(i))?.toString(), `v-${i}`);
  await again.close();
});
