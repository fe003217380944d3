/**
 * Reviewer tests (session 15c): power loss at EVERY filesystem operation of a phase that runs a
 * split merge (MemFs, both halves interleaved on the main thread): open, one durable batch, then
 * compactRange() — a flush and one L0 -> L1 merge split in two — then close. The cut happens
 * anywhere: before either half, with one half's outputs written and synced and the other's
 * partly written, between the halves' directory syncs and the version edit, during the edit.
 * After each cut (torn or page-scrambled unsynced data), the reopened database must hold the
 * acknowledged data exactly (or, before the acknowledgement, all or none of the batch), have
 * disjoint levels, keep no unreferenced table once open, and compact again cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, countOps } from '../../src/env/fault-fs.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { CrashAtOp } from '../harness/crash-at-op.js';
import { withSeed } from '../harness/seed.js';

const OPTS: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 1024 * 1024,
  levelMultiplier: 4,
  targetFileSize: 4 * 1024,
  l0CompactionTrigger: 100,
  l0SlowdownTrigger: 200,
  l0StopTrigger: 300,
  subcompactionMinSize: 16 * 1024,
  sync: false,
};

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  obsoleteTables: Set<number>;
};

const key = (i: number): string => `k${String(i).padStart(5, '0')}`;

function assertLevelsDisjoint(db: Database, what: string): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1] as FileMetadata;
      const cur = files[i] as FileMetadata;
      const a = prev.largest.subarray(0, prev.largest.length - TRAILER_BYTES);
      const b = cur.smallest.subarray(0, cur.smallest.length - TRAILER_BYTES);
      assert.ok(Buffer.compare(a, b) < 0, `${what}: L${level} files ${prev.number} and ${cur.number} overlap`);
    }
  }
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

async function baseState(seed: number): Promise<{ mem: MemFs; model: Map<string, string> }> {
  const rng = new Random(seed);
  const mem = new MemFs();
  const model = new Map<string, string>();
  const db = await open('/db', { ...OPTS, fs: mem });
  const write = async (n: number, tag: string): Promise<void> => {
    const ops = [];
    for (let i = 0; i < n; i++) {
      const k = key(rng.nextInt(3000));
      if (rng.nextInt(6) === 0) {
        model.delete(k);
        ops.push({ type: 'del' as const, key: k });
      } else {
        const v = `${tag}${i}`.padEnd(30 + rng.nextInt(50), 'v');
        model.set(k, v);
        ops.push({ type: 'put' as const, key: k, value: v });
      }
    }
    await db.batch(ops);
  };
  for (let r = 0; r < 6; r++) await write(400, `a${r}.`);
  await db.compactRange();
  for (let r = 0; r < 3; r++) {
    await write(250, `b${r}.`);
    await db.compactRange(key(99_999), key(99_999));
  }
  await db.close();
  return { mem, model };
}

function phaseBatch(seed: number): { type: 'put' | 'del'; key: string; value?: string }[] {
  const rng = new Random(seed ^ 0xbeef);
  const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
  for (let i = 0; i < 300; i++) {
    const k = key(rng.nextInt(3000));
    if (rng.nextInt(5) === 0) ops.push({ type: 'del', key: k });
    else ops.push({ type: 'put', key: k, value: `p${i}`.padEnd(40, 'p') });
  }
  return ops;
}

function applied(model: Map<string, string>, ops: ReturnType<typeof phaseBatch>): Map<string, string> {
  const m = new Map(model);
  for (const o of ops) {
    if (o.type === 'del') m.delete(o.key);
    else m.set(o.key, o.value as string);
  }
  return m;
}

async function phase(fs: FaultFs | MemFs, ops: ReturnType<typeof phaseBatch>, onAck: () => void, onSplit: (n: number) => void): Promise<void> {
  const db = await open('/db', { ...OPTS, fs });
  try {
    await db.batch(
      ops.map((o) => (o.type === 'del' ? { type: 'del' as const, key: o.key } : { type: 'put' as const, key: o.key, value: o.value as string })),
      { sync: true },
    );
    onAck();
    await db.compactRange();
    onSplit(db.stats().compactions.splitCompactions);
  } finally {
    await db.close().catch(() => undefined);
  }
}

test('power cut at every operation of a flush + split merge loses nothing and leaves nothing', { timeout: 120_000 }, async (t) => {
  await withSeed('session15c crash split merge', async (seed) => {
    const { mem: base, model: baseModel } = await baseState(seed);
    const ops = phaseBatch(seed);
    const full = applied(baseModel, ops);
    const counter = countOps();
    let splits = 0;
    await phase(new FaultFs(base.crashClone(), counter), ops, () => undefined, (n) => (splits = n));
    assert.equal(splits, 1, 'the phase runs one split merge');
    const total = counter.count;
    t.diagnostic(`seed ${seed}: ${total} operations`);
    const rng = new Random(seed);
    let afterAck = 0;
    for (let i = 1; i <= total; i++) {
      const mem = base.crashClone();
      const how = i % 3;
      const crash = new CrashAtOp(mem, i, how === 0 ? { rng, tearLastWrite: true } : how === 1 ? { rng, scrambleUnsyncedPages: true, keepUnsyncedProbability: 0.3 } : {});
      let acked = false;
      await phase(new FaultFs(mem, crash), ops, () => {
        if (crash.crashed === undefined) acked = true;
      }, () => undefined).catch(() => undefined);
      const after = crash.crashed ?? mem.crashClone();
      const db = await open('/db', { ...OPTS, fs: after });
      const what = `cut at op ${i}/${total}`;
      const got = await contents(db);
      if (acked) {
        afterAck++;
        assert.deepEqual(got, full, `${what} after the durable batch was acknowledged`);
      } else {
        const same = (m: Map<string, string>): boolean => JSON.stringify([...m].sort()) === JSON.stringify([...got].sort());
        assert.ok(same(full) || same(baseModel), `${what}: partial batch or lost base data`);
      }
      assertLevelsDisjoint(db, what);
      const h = db as unknown as Internals;
      const live = h.versions.liveFileNumbers();
      const stray = after
        .listAll()
        .filter((p) => p.endsWith('.sst'))
        .map((p) => Number(p.slice(p.lastIndexOf('/') + 1, -4)))
        .filter((n) => !live.has(n) && !h.obsoleteTables.has(n));
      assert.deepEqual(stray, [], `${what}: unreferenced tables after reopen`);
      await db.compactRange();
      assert.deepEqual(await contents(db), got, `${what}: compacting again changed contents`);
      assertLevelsDisjoint(db, `${what} recompacted`);
      await db.close();
    }
    assert.ok(afterAck > total / 2, `cuts after the acknowledgement: ${afterAck}/${total}`);
  });
});
