/**
 * Reviewer tests (session 15c): split merges (subcompactions) under a seeded model on MemFs, where
 * both halves interleave on the main thread. Two databases get the same operations, one splitting
 * every merge of >= 16 KiB and one never splitting. Checked throughout:
 *   - contents equal the model (and each other); snapshots taken at random points and held across
 *     many (split) merges read exactly the model of their time, by get and by iterator;
 *   - iterators opened before a compaction and stepped one entry per turn while it runs (between
 *     its slices) see their creation-time model;
 *   - writes and reads run while a split merge is between slices;
 *   - every level below L0 stays sorted with no user key in two files;
 *   - no .sst on disk that no Version references (other than tables pending deletion);
 *   - after close and reopen: same contents, no orphans removed (nothing was left behind).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type OpenOptions, type Snapshot, type LightningIterator } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const SHAPE: OpenOptions = {
  memtableSize: 16 * 1024,
  blockSize: 512,
  levelBaseSize: 48 * 1024,
  levelMultiplier: 3,
  targetFileSize: 6 * 1024,
  l0CompactionTrigger: 3,
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

/** .sst files on disk that no live Version names and that are not pending deletion. */
function orphans(db: Database, mem: MemFs): string[] {
  const h = db as unknown as Internals;
  const live = h.versions.liveFileNumbers();
  return mem
    .listAll()
    .filter((p) => p.endsWith('.sst'))
    .filter((p) => {
      const n = Number(p.slice(p.lastIndexOf('/') + 1, -4));
      return !live.has(n) && !h.obsoleteTables.has(n);
    });
}

async function scan(it: AsyncIterable<[Buffer, Buffer]>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of it) out.set(k.toString(), v.toString());
  return out;
}

interface Held {
  snap: Snapshot;
  model: Map<string, string>;
}

interface Stepping {
  it: LightningIterator;
  want: [string, string][];
  at: number;
}

test('split and unsplit merges agree with the model, snapshots and iterators included', { timeout: 120_000 }, async (t) => {
  await withSeed('session15c db model', async (seed) => {
    const rng = new Random(seed);
    const mems = [new MemFs(), new MemFs()];
    const dbs: Database[] = [];
    for (const [i, sub] of [16 * 1024, 0].entries()) {
      dbs.push(await open('/db', { ...SHAPE, fs: mems[i] as MemFs, subcompactionMinSize: sub, compression: rng.nextInt(2) === 0 ? 'lz' : 'none' }));
    }
    const model = new Map<string, string>();
    const held: Held[][] = [[], []];
    const stepping: Stepping[][] = [[], []];
    const KEYS = 2500;
    let tag = 0;

    const checkHeld = async (d: number): Promise<void> => {
      const db = dbs[d] as Database;
      for (const h of held[d] as Held[]) {
        for (let j = 0; j < 20; j++) {
          const k = key(rng.nextInt(KEYS));
          assert.equal(h.snap.getSync(k)?.toString(), h.model.get(k), `db ${d}: snapshot get ${k}`);
        }
      }
      void db;
    };

    const stepAll = (d: number): void => {
      const list = stepping[d] as Stepping[];
      for (const s of [...list]) {
        const e = s.it.nextSync();
        if (e === undefined) {
          assert.equal(s.at, s.want.length, `db ${d}: iterator ended early at ${s.at}/${s.want.length}`);
          list.splice(list.indexOf(s), 1);
          continue;
        }
        const w = s.want[s.at++];
        assert.deepEqual([e[0].toString(), e[1].toString()], w, `db ${d}: iterator entry ${s.at - 1}`);
      }
    };

    for (let round = 0; round < 70; round++) {
      const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
      const n = 100 + rng.nextInt(200);
      const hot = rng.nextInt(KEYS);
      for (let i = 0; i < n; i++) {
        const r = rng.nextInt(10);
        const k = r === 0 ? key(hot) : key(rng.nextInt(KEYS));
        if (r === 1 || r === 2) {
          model.delete(k);
          ops.push({ type: 'del', key: k });
        } else {
          const v = `${tag++}:`.padEnd(20 + rng.nextInt(100), String.fromCharCode(97 + rng.nextInt(26)));
          model.set(k, v);
          ops.push({ type: 'put', key: k, value: v });
        }
      }
      // A run of deletes now and then (tombstones that may be dropped at the bottom).
      if (rng.nextInt(6) === 0) {
        const start = rng.nextInt(KEYS - 200);
        for (let i = start; i < start + 150; i++) {
          model.delete(key(i));
          ops.push({ type: 'del', key: key(i) });
        }
      }
      for (let d = 0; d < 2; d++) {
        const db = dbs[d] as Database;
        const batch = ops.map((o) => (o.type === 'del' ? { type: 'del' as const, key: o.key } : { type: 'put' as const, key: o.key, value: o.value as string }));
        await db.batch(batch);
        stepAll(d);
      }
      // Snapshots: take, hold, release.
      if (rng.nextInt(5) === 0) {
        for (let d = 0; d < 2; d++) (held[d] as Held[]).push({ snap: (dbs[d] as Database).snapshot(), model: new Map(model) });
      }
      if (rng.nextInt(7) === 0 && (held[0] as Held[]).length > 0) {
        const j = rng.nextInt((held[0] as Held[]).length);
        for (let d = 0; d < 2; d++) {
          const h = (held[d] as Held[]).splice(j, 1)[0] as Held;
          assert.deepEqual(await scan(h.snap.iterator()), h.model, `db ${d}: snapshot scan before release`);
          h.snap.release();
        }
      }
      // An iterator stepped one entry per turn from here on, across compactions.
      if (rng.nextInt(8) === 0) {
        const want = [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (let d = 0; d < 2; d++) (stepping[d] as Stepping[]).push({ it: (dbs[d] as Database).iterator(), want, at: 0 });
      }
      // A manual compaction of a random range, with reads, writes and iterator steps between its slices.
      if (rng.nextInt(4) === 0) {
        const a = rng.nextInt(KEYS);
        const b = Math.min(KEYS - 1, a + rng.nextInt(KEYS));
        for (let d = 0; d < 2; d++) {
          const db = dbs[d] as Database;
          const running = db.compactRange(key(a), key(b));
          let done = false;
          void running.then(
            () => (done = true),
            () => (done = true),
          );
          let turns = 0;
          while (!done && turns < 10_000) {
            turns++;
            stepAll(d);
            const k = key(rng.nextInt(KEYS));
            assert.equal(db.getSync(k)?.toString(), model.get(k), `db ${d}: get ${k} during compactRange`);
            await new Promise<void>((r) => setImmediate(r));
          }
          await running;
        }
      }
      for (let d = 0; d < 2; d++) {
        await checkHeld(d);
        assertLevelsDisjoint(dbs[d] as Database, `db ${d} round ${round}`);
      }
    }
    for (let d = 0; d < 2; d++) {
      const db = dbs[d] as Database;
      while ((stepping[d] as Stepping[]).length > 0) stepAll(d);
      await db.idle();
      await checkHeld(d);
      for (const h of held[d] as Held[]) {
        assert.deepEqual(await scan(h.snap.iterator()), h.model, `db ${d}: held snapshot scan at end`);
        h.snap.release();
      }
      await db.compactRange();
      await db.idle();
      assertLevelsDisjoint(db, `db ${d} end`);
      assert.deepEqual(await scan(db.iterator()), model, `db ${d}: contents`);
      assert.deepEqual(orphans(db, mems[d] as MemFs), [], `db ${d}: unreferenced tables before close`);
    }
    const splits = (dbs[0] as Database).stats().compactions.splitCompactions;
    t.diagnostic(`seed ${seed}: split merges ${splits} of ${(dbs[0] as Database).stats().compactions.count}`);
    assert.ok(splits >= 5, `split merges: ${splits}`);
    assert.equal((dbs[1] as Database).stats().compactions.splitCompactions, 0);
    for (let d = 0; d < 2; d++) {
      await (dbs[d] as Database).close();
      const again = await open('/db', { ...SHAPE, fs: mems[d] as MemFs });
      assert.equal(again.stats().recovery.orphansRemoved, 0, `db ${d}: orphans found at reopen`);
      assert.deepEqual(await scan(again.iterator()), model, `db ${d}: after reopen`);
      assertLevelsDisjoint(again, `db ${d} reopened`);
      await again.close();
    }
  });
});
