/**
 * compactRange merges what overlaps the range into the deepest level that held any of it (at
 * least L1), as LevelDB does, and no deeper: it used to cascade the same data down to L6, one full
 * rewrite per level. Overwritten versions and deletions in the range are gone afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

const OPTS: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 64 * 1024,
  levelMultiplier: 4,
  targetFileSize: 16 * 1024,
  sync: false,
};

const key = (i: number): string => `key${String(i).padStart(6, '0')}`;

function filesPerLevel(db: Database): number[] {
  return db.stats().levels.map((l) => l.files);
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

test('compactRange of a tree in L0 and L1 ends in L1 with one rewrite', async () => {
  const db = await open('/db', { ...OPTS, fs: new MemFs(), l0CompactionTrigger: 100, l0SlowdownTrigger: 200, l0StopTrigger: 300 });
  const model = new Map<string, string>();
  for (let i = 0; i < 600; i++) {
    model.set(key(i % 400), `v${i}`.padEnd(60, '.'));
    await db.put(key(i % 400), model.get(key(i % 400)) as string);
  }
  await db.compactRange();
  const before = db.stats().compactions.count;
  assert.ok(filesPerLevel(db)[1] as number > 0);
  for (let i = 0; i < 100; i++) {
    await db.delete(key(i));
    model.delete(key(i));
  }
  await db.compactRange();
  const levels = filesPerLevel(db);
  assert.equal(levels[0], 0, 'L0 merged');
  assert.ok((levels[1] as number) > 0, 'the data stays in L1');
  assert.deepEqual(levels.slice(2), [0, 0, 0, 0, 0], 'nothing pushed below the deepest level that held data');
  assert.equal(db.stats().compactions.count - before, 1, 'one rewrite: L0 into L1');
  assert.deepEqual(await contents(db), model);
  await db.close();
});

test('compactRange of a tree reaching L2 merges L0 and L1 down into L2, no deeper, dropping old versions', async () => {
  const db = await open('/db', { ...OPTS, fs: new MemFs() });
  const model = new Map<string, string>();
  let i = 0;
  // Enough data that background compaction spills L1 (64 KiB) into L2.
  while ((filesPerLevel(db)[2] as number) === 0) {
    const k = key(i % 3000);
    model.set(k, `a${i}`.padEnd(80, '.'));
    await db.put(k, model.get(k) as string);
    i++;
    if (i % 1000 === 0) await db.idle();
  }
  await db.idle();
  for (let j = 0; j < 300; j++) {
    const k = key(j * 7);
    if (j % 3 === 0) {
      await db.delete(k);
      model.delete(k);
    } else {
      model.set(k, `b${j}`);
      await db.put(k, `b${j}`);
    }
  }
  const deepestBefore = filesPerLevel(db).reduce((d, n, level) => (n > 0 ? level : d), 0);
  const droppedBefore = db.stats().compactions.entriesDropped;
  await db.compactRange();
  const levels = filesPerLevel(db);
  const deepestAfter = levels.reduce((d, n, level) => (n > 0 ? level : d), 0);
  assert.equal(deepestAfter, deepestBefore, `no level below ${deepestBefore} gets data (${levels.join(',')})`);
  for (let level = 0; level < deepestAfter; level++) assert.equal(levels[level], 0, `L${level} merged down (${levels.join(',')})`);
  assert.deepEqual(await contents(db), model);
  assert.ok(db.stats().compactions.entriesDropped - droppedBefore >= 300, 'the overwritten versions and deletions were dropped');
  await db.close();
});
