/**
 * Reviewer tests (session 15c): option subcompactionMinSize. Defaults (0 everywhere: opt-in since
 * the measured RSS cost; was 128 MiB with the worker when written), validation (a non-negative safe integer), 0 never splitting (and never
 * starting the aside worker), and a split with node:fs on the main thread (compactionThread
 * 'main' with an explicit size: both halves interleave there) giving the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { resolveOptions } from '../../src/db/options.js';
import { MemFs } from '../../src/env/mem-fs.js';

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

const SHAPE: OpenOptions = {
  memtableSize: 32 * 1024,
  blockSize: 1024,
  levelBaseSize: 128 * 1024,
  levelMultiplier: 4,
  targetFileSize: 8 * 1024,
  l0CompactionTrigger: 3,
  sync: false,
};

async function fill(db: Database): Promise<Map<string, string>> {
  const model = new Map<string, string>();
  for (let b = 0; b < 60; b++) {
    const ops = [];
    for (let i = 0; i < 150; i++) {
      const k = key((b * 7919 + i * 104_729) % 9000);
      const v = `${b}.${i}`.padEnd(60, 'o');
      model.set(k, v);
      ops.push({ type: 'put' as const, key: k, value: v });
    }
    await db.batch(ops);
  }
  await db.idle();
  return model;
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

test('subcompactionMinSize: defaults and validation', () => {
  assert.equal(resolveOptions({}).subcompactionMinBytes, 0);
  assert.equal(resolveOptions({ compactionThread: 'main' }).subcompactionMinBytes, 0);
  assert.equal(resolveOptions({ fs: new MemFs() }).subcompactionMinBytes, 0);
  assert.equal(resolveOptions({ subcompactionMinSize: 0 }).subcompactionMinBytes, 0);
  assert.equal(resolveOptions({ fs: new MemFs(), subcompactionMinSize: 5 }).subcompactionMinBytes, 5);
  for (const bad of [-1, 1.5, Number.NaN, Infinity, '1024', null, 2 ** 60]) {
    assert.throws(() => resolveOptions({ subcompactionMinSize: bad }), (e: unknown) => (e as { code?: string }).code === 'INVALID_ARGUMENT', `accepted ${String(bad)}`);
  }
});

test('worker with subcompactionMinSize 0 never splits and never starts the aside worker', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-opt-'));
  try {
    const db = await open(dir, { ...SHAPE, subcompactionMinSize: 0 });
    const model = await fill(db);
    await db.compactRange();
    const s = db.stats().compactions;
    assert.ok(s.count > 3);
    assert.equal(s.splitCompactions, 0);
    assert.equal((db as unknown as { asideThread: unknown }).asideThread, null);
    assert.deepEqual(await contents(db), model);
    await db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("node:fs with compactionThread 'main' and an explicit size: split merges on the main thread give the model", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-opt-'));
  try {
    const db = await open(dir, { ...SHAPE, compactionThread: 'main', subcompactionMinSize: 16 * 1024 });
    const model = await fill(db);
    await db.compactRange();
    const s = db.stats().compactions;
    assert.ok(s.splitCompactions >= 1, `split merges: ${s.splitCompactions}`);
    assert.equal(s.thread, 'main');
    assert.equal((db as unknown as { asideThread: unknown }).asideThread, null, "no worker in 'main' mode");
    assert.deepEqual(await contents(db), model);
    await db.close();
    const again = await open(dir, { ...SHAPE, compactionThread: 'main' });
    assert.equal(again.stats().recovery.orphansRemoved, 0);
    assert.deepEqual(await contents(again), model);
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
