/**
 * Reviewer tests (session 15c): OUT_OF_OUTPUT_NUMBERS in a split merge. Each half gets the whole
 * merge's estimate of output numbers; inputs written LZ-compressed and rewritten uncompressed
 * with a small targetFileSize need many more outputs, so a half (or both) stops with
 * OUT_OF_OUTPUT_NUMBERS and the compaction falls back to ONE unsplit merge with one number per
 * entry. Checked: the compaction succeeds with the model's contents and disjoint levels; the
 * other half's finished outputs are removed (no unreferenced table before reopen); and the stats
 * describe what ran: a compaction whose split merge was abandoned for an unsplit one is not a
 * split compaction (`subcompactions` is documented as "how many merges ran in parallel").
 * Cases: only the upper half runs out (lower half incompressible), both run out; MemFs (main
 * thread) and node:fs (the aside worker reports the error across the wire).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import { Random } from '../../src/util/random.js';

type Internals = {
  versions: { current(): { files(level: number): readonly FileMetadata[] }; liveFileNumbers(): Set<number> };
  merge(spec: MergeSpec): Promise<MergeOutcome>;
  mergeAside(spec: MergeSpec): Promise<MergeOutcome>;
};

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

function assertLevelsDisjoint(db: Database): void {
  const version = (db as unknown as Internals).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1] as FileMetadata;
      const cur = files[i] as FileMetadata;
      const a = prev.largest.subarray(0, prev.largest.length - TRAILER_BYTES);
      const b = cur.smallest.subarray(0, cur.smallest.length - TRAILER_BYTES);
      assert.ok(Buffer.compare(a, b) < 0, `L${level} files ${prev.number} and ${cur.number} overlap`);
    }
  }
}

async function contents(db: Database): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  return out;
}

interface Calls {
  below: number;
  above: number;
  unsplit: number;
  failed: string[];
}

/** Records which merges ran (bounded halves, unsplit) and which failed. */
function spy(db: Database): Calls {
  const h = db as unknown as Internals;
  const calls: Calls = { below: 0, above: 0, unsplit: 0, failed: [] };
  const merge = h.merge.bind(db);
  const aside = h.mergeAside.bind(db);
  const wrap =
    (inner: (s: MergeSpec) => Promise<MergeOutcome>) =>
    async (s: MergeSpec): Promise<MergeOutcome> => {
      const which = s.lowerBound !== undefined ? 'above' : s.upperBound !== undefined ? 'below' : 'unsplit';
      calls[which]++;
      try {
        return await inner(s);
      } catch (e) {
        calls.failed.push(`${which}: ${(e as Error).message}`);
        throw e;
      }
    };
  h.merge = wrap(merge);
  h.mergeAside = wrap(aside);
  return calls;
}

const FIRST: OpenOptions = { compression: 'lz', targetFileSize: 64 * 1024, sync: false, l0CompactionTrigger: 100, l0SlowdownTrigger: 200, l0StopTrigger: 300 };
const SECOND: OpenOptions = { ...FIRST, compression: 'none', targetFileSize: 1024, blockSize: 256, subcompactionMinSize: 1024 };

/**
 * L1 of several compressed tables, keys [0, 8000): values of the lowest 600 keys incompressible
 * (about as many bytes on disk as all the compressible rest) unless `bothCompressible`.
 */
async function fill(db: Database, model: Map<string, string>, bothCompressible: boolean): Promise<void> {
  const rng = new Random(42);
  for (let part = 0; part < 4; part++) {
    const ops = [];
    for (let i = part * 2000; i < (part + 1) * 2000; i++) {
      let v: string;
      if (i < 600 && !bothCompressible) {
        v = '';
        while (v.length < 200) v += rng.nextUint32().toString(36);
      } else v = 'a'.repeat(200);
      model.set(key(i), v);
      ops.push({ type: 'put' as const, key: key(i), value: v });
    }
    await db.batch(ops);
  }
  await db.compactRange();
  assert.ok((db.stats().levels[1]?.files ?? 0) >= 2, `L1 files: ${db.stats().levels[1]?.files}`);
}

async function overwriteSpanning(db: Database, model: Map<string, string>): Promise<void> {
  const ops = [];
  for (let i = 0; i < 8000; i += 397) {
    model.set(key(i), `new ${i}`);
    ops.push({ type: 'put' as const, key: key(i), value: `new ${i}` });
  }
  await db.batch(ops);
  await db.compactRange(key(999_999), key(999_999)); // flush only: one L0 table over all of L1
}

for (const bothCompressible of [false, true]) {
  test(`OUT_OF_OUTPUT_NUMBERS in ${bothCompressible ? 'both halves' : 'the upper half'}: fallback merge, nothing left behind, honest stats (MemFs)`, async () => {
    const mem = new MemFs();
    const model = new Map<string, string>();
    let db = await open('/db', { ...FIRST, fs: mem });
    await fill(db, model, bothCompressible);
    await db.close();
    db = await open('/db', { ...SECOND, fs: mem });
    await overwriteSpanning(db, model);
    const calls = spy(db);
    const before = db.stats().compactions;
    await db.compactRange();
    assert.equal(db.stats().backgroundError, null);
    assert.ok(calls.above === 1 && calls.below === 1, `split halves ran: ${JSON.stringify(calls)}`);
    assert.ok(calls.failed.some((f) => f.includes('ran out of reserved output file numbers')), `a half ran out of numbers: ${JSON.stringify(calls.failed)}`);
    assert.equal(calls.unsplit, 1, 'the fallback merge ran unsplit');
    if (!bothCompressible) assert.equal(calls.failed.length, 1, `only the upper half failed: ${JSON.stringify(calls.failed)}`);
    // Nothing unreferenced on disk before any reopen.
    const live = (db as unknown as Internals).versions.liveFileNumbers();
    await db.idle();
    const stray = mem
      .listAll()
      .filter((p) => p.endsWith('.sst'))
      .map((p) => Number(p.slice(p.lastIndexOf('/') + 1, -4)))
      .filter((n) => !live.has(n) && !(db as unknown as { obsoleteTables: Set<number> }).obsoleteTables.has(n));
    assert.deepEqual(stray, [], 'tables left behind by the abandoned split');
    assertLevelsDisjoint(db);
    assert.deepEqual(await contents(db), model);
    const after = db.stats().compactions;
    assert.equal(after.count - before.count, 1, 'one compaction');
    await db.close();
    const again = await open('/db', { ...SECOND, fs: mem });
    assert.equal(again.stats().recovery.orphansRemoved, 0);
    assert.deepEqual(await contents(again), model);
    await again.close();
    // The split was abandoned: one unsplit merge produced the outputs (BUG: runCompaction sets
    // subcompactions = 2 whenever a split key was chosen, fallback or not).
    assert.equal(after.splitCompactions - before.splitCompactions, 0, 'a compaction that fell back to one unsplit merge is counted as a split compaction');
  });
}

test('OUT_OF_OUTPUT_NUMBERS in the aside worker (node:fs): fallback merge succeeds, nothing left behind', async () => {
  const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-numbers-'));
  try {
    const model = new Map<string, string>();
    let db = await open(dir, { ...FIRST, compactionThread: 'worker' });
    await fill(db, model, false);
    await db.close();
    db = await open(dir, { ...SECOND, compactionThread: 'worker' });
    await overwriteSpanning(db, model);
    const calls = spy(db);
    await db.compactRange();
    await db.idle();
    assert.equal(db.stats().backgroundError, null);
    assert.equal(db.stats().compactions.thread, 'worker');
    assert.ok(calls.failed.some((f) => f.startsWith('above') && f.includes('ran out of reserved output file numbers')), JSON.stringify(calls));
    assert.equal(calls.unsplit, 1);
    const live = (db as unknown as Internals).versions.liveFileNumbers();
    const stray = nodeFs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.sst'))
      .map((n) => Number(n.slice(0, -4)))
      .filter((n) => !live.has(n));
    assert.deepEqual(stray, [], 'tables left behind');
    assertLevelsDisjoint(db);
    assert.deepEqual(await contents(db), model);
    await db.close();
    const again = await open(dir, { ...SECOND, compactionThread: 'worker' });
    assert.equal(again.stats().recovery.orphansRemoved, 0);
    assert.deepEqual(await contents(again), model);
    await again.close();
  } finally {
    nodeFs.rmSync(dir, { recursive: true, force: true });
  }
});
