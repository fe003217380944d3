/**
 * Reviewer tests (session 19) for commit cf96e60's bloom changes: BloomFilterBuilder takes its hash
 * array from a module-level spare list (finished and released builders hand theirs on; at most 2
 * kept, up to 1M entries), finishShared() lays the filter out in a module-level reused buffer, and
 * TableBuilder finishes with finishShared and abandon() releases the builder's array.
 *
 * Oracles: an independent reference filter (same layouts, computed from bloomHash of the keys),
 * no false negatives, live builders never share an array, filters returned by finish() never
 * change afterwards, a finishShared result stays intact until the next finishShared. Then the
 * same through TableBuilder/TableReader (interleaved, abandoned and failing builders) and a
 * MemFs database with many flushes and compactions. Seeded: SEED=<n> replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addHashToFilter, bloomHash, bloomProbesFor, BloomFilterBuilder, mayContain, type BloomLayout } from '../../src/sstable/bloom-filter.js';
import { TableBuilder, type TableBuilderOptions, type TableInfo } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { KIND_VALUE, makeInternalKey } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';
import { BufferFile, FailingFile } from '../sstable/buffer-file.js';

const SEED = testSeed();
console.log(`session19-bloom-spares SEED=${SEED}`);

/** The filter for `keys` as the format defines it, computed without any builder. */
function referenceFilter(keys: readonly Buffer[], bitsPerKey: number, layout: BloomLayout): Buffer {
  if (bitsPerKey === 0) return Buffer.alloc(0);
  const bits = Math.max(64, keys.length * bitsPerKey);
  const k = bloomProbesFor(bitsPerKey);
  if (layout === 'cache-local') {
    const bytes = Math.ceil(bits / 512) * 64;
    const f = Buffer.alloc(bytes + 1);
    f[bytes] = 0x80 | k;
    for (const key of keys) addHashToFilter(f, bloomHash(key));
    return f;
  }
  const bytes = Math.ceil(bits / 8);
  const f = Buffer.alloc(bytes + 1);
  const m = bytes * 8;
  for (const key of keys) {
    let h = bloomHash(key);
    const delta = ((h >>> 17) | (h << 15)) >>> 0;
    for (let j = 0; j < k; j++) {
      const bit = h % m;
      f[bit >>> 3] = (f[bit >>> 3] as number) | (1 << (bit & 7));
      h = (h + delta) >>> 0;
    }
  }
  f[bytes] = k;
  return f;
}

function hashesOf(b: BloomFilterBuilder): Uint32Array {
  return (b as unknown as { hashes: Uint32Array }).hashes;
}

interface Live {
  id: number;
  builder: BloomFilterBuilder;
  keys: Buffer[];
  bitsPerKey: number;
  layout: BloomLayout;
}

const BITS = [0, 1, 2, 5, 10, 10, 10, 20, 30, 64];

test('random interleavings of builders: every filter equals the reference, no array is shared, returned filters never change', () => {
  const rng = new Random(SEED);
  let nextId = 0;
  let nextKey = 0;
  const live: Live[] = [];
  /** Filters from finish(): a copy to compare with at the end (nothing may write into them later). */
  const returned: { filter: Buffer; copy: Buffer; id: number }[] = [];
  /** The last finishShared result and its copy: intact until the next finishShared. */
  let shared: { filter: Buffer; copy: Buffer; id: number } | null = null;
  let finished = 0;
  const newBuilder = (): Live => {
    const bitsPerKey = BITS[rng.nextInt(BITS.length)] as number;
    const layout: BloomLayout = rng.nextInt(4) === 0 ? 'legacy' : 'cache-local';
    const l = { id: nextId++, builder: new BloomFilterBuilder(bitsPerKey, layout), keys: [], bitsPerKey, layout };
    live.push(l);
    return l;
  };
  const checkFinished = (l: Live, f: Buffer, how: string, step: number): void => {
    const where = `SEED=${SEED} step ${step} builder ${l.id} (${l.keys.length} keys, ${l.bitsPerKey} bits, ${l.layout}, ${how})`;
    const want = referenceFilter(l.keys, l.bitsPerKey, l.layout);
    if (!f.equals(want)) assert.fail(`${where}: filter differs from the reference`);
    for (const k of l.keys) if (!mayContain(f, k)) assert.fail(`${where}: false negative`);
    assert.equal(l.builder.keyCount(), 0, `${where}: reset after finish`);
    finished++;
  };
  for (let step = 0; step < 4000; step++) {
    if (live.length === 0 || (live.length < 5 && rng.nextInt(6) === 0)) newBuilder();
    const l = live[rng.nextInt(live.length)] as Live;
    const r = rng.nextInt(20);
    if (r < 12) {
      // A burst of keys: sometimes long enough to cross several array sizes (1024, 2048, 4096...).
      const n = rng.nextInt(5) === 0 ? 500 + rng.nextInt(6000) : rng.nextInt(80);
      for (let i = 0; i < n; i++) {
        const k = Buffer.from(`key-${nextKey++}-${l.id}`);
        l.keys.push(k);
        l.builder.addKey(Buffer.concat([Buffer.from('xx'), k, Buffer.from('yy')]), 2, 2 + k.length);
      }
      assert.equal(l.builder.keyCount(), l.bitsPerKey === 0 ? 0 : l.keys.length, `SEED=${SEED} step ${step}: key count`);
    } else if (r < 15) {
      const f = l.builder.finish();
      checkFinished(l, f, 'finish', step);
      returned.push({ filter: f, copy: Buffer.from(f), id: l.id });
      l.keys = [];
      if (rng.nextInt(2) === 0) live.splice(live.indexOf(l), 1); // or reuse the builder for a new table
    } else if (r < 18) {
      if (shared !== null) assert.ok(shared.filter.equals(shared.copy), `SEED=${SEED} step ${step}: the last shared filter changed before the next finishShared`);
      const f = l.builder.finishShared();
      checkFinished(l, f, 'finishShared', step);
      shared = { filter: f, copy: Buffer.from(f), id: l.id };
      l.keys = [];
      if (rng.nextInt(2) === 0) live.splice(live.indexOf(l), 1);
    } else if (r < 19) {
      l.builder.release();
      if (rng.nextInt(3) === 0) l.builder.release(); // twice: must not hand the array on twice
      assert.equal(l.builder.keyCount(), 0);
      l.keys = [];
      if (rng.nextInt(2) === 0) live.splice(live.indexOf(l), 1);
    } else {
      // Dropped without release (allowed: the array is just garbage).
      live.splice(live.indexOf(l), 1);
    }
    // No two live builders hold the same array (or views of one buffer).
    const seen = new Map<ArrayBufferLike, number>();
    for (const x of live) {
      const h = hashesOf(x.builder);
      if (h.length === 0) continue;
      const other = seen.get(h.buffer);
      if (other !== undefined) assert.fail(`SEED=${SEED} step ${step}: builders ${other} and ${x.id} share a hash array`);
      seen.set(h.buffer, x.id);
    }
  }
  for (const r of returned) assert.ok(r.filter.equals(r.copy), `SEED=${SEED}: a filter returned by finish() (builder ${r.id}) changed later`);
  if (shared !== null) assert.ok(shared.filter.equals(shared.copy), `SEED=${SEED}: the last shared filter changed`);
  assert.ok(finished > 300, `enough filters built (${finished})`);
});

test('huge then small: builders around the spare cap (2^18 keys) and past it, finishShared over 1 MiB (fallback), then small ones', () => {
  const keyOf = (i: number): Buffer => {
    const b = Buffer.allocUnsafe(8);
    b.writeUInt32LE(i, 0);
    b.writeUInt32LE((0x9e3779b9 ^ i) >>> 0, 4);
    return b;
  };
  const keysOf = (from: number, n: number): Buffer[] => Array.from({ length: n }, (_, i) => keyOf(from + i));
  // A small shared filter first: it must survive a finish() and a finishShared fallback (over 1 MiB).
  const small = new BloomFilterBuilder(10);
  const smallKeys = keysOf(0, 100);
  for (const k of smallKeys) small.addKey(k);
  const s1 = small.finishShared();
  const s1Copy = Buffer.from(s1);
  for (const n of [(1 << 20) + 5, (1 << 18) + 5, 1 << 18, (1 << 18) - 1]) {
    const big = new BloomFilterBuilder(10);
    const keys = keysOf(1_000_000 + n, n);
    for (const k of keys) big.addKey(k);
    const f = big.finish();
    assert.ok(f.equals(referenceFilter(keys, 10, 'cache-local')), `huge builder of ${n} keys: filter`);
  }
  assert.ok(s1.equals(s1Copy), 'a finish() does not touch the shared filter');
  // 300k keys at 64 bits: ~2.4 MB, over the shared buffer's 1 MiB limit: finishShared must fall back.
  const wide = new BloomFilterBuilder(64);
  const wideKeys = keysOf(5_000_000, 300_000);
  for (const k of wideKeys) wide.addKey(k);
  const fw = wide.finishShared();
  assert.ok(fw.length > 1024 * 1024, 'over the limit');
  assert.ok(fw.equals(referenceFilter(wideKeys, 64, 'cache-local')), 'wide filter');
  assert.ok(s1.equals(s1Copy), 'a finishShared fallback does not touch the shared filter');
  // Then many small builders at once, interleaved with legacy ones, each against the reference.
  const rng = new Random(SEED ^ 0x77);
  const builders = Array.from({ length: 6 }, (_, i) => ({ b: new BloomFilterBuilder(i % 3 === 0 ? 7 : 10, i % 2 === 0 ? 'legacy' : 'cache-local'), keys: [] as Buffer[] }));
  for (let i = 0; i < 20000; i++) {
    const x = builders[rng.nextInt(builders.length)] as (typeof builders)[number];
    const k = keyOf(9_000_000 + i);
    x.keys.push(k);
    x.b.addKey(k);
  }
  for (const [i, x] of builders.entries()) {
    const f = i % 2 === 0 ? Buffer.from(x.b.finishShared()) : x.b.finish();
    assert.ok(f.equals(referenceFilter(x.keys, x.b.bitsPerKey, x.b.layout)), `SEED=${SEED} small builder ${i}`);
  }
  // The same wide filter once more, from a builder that starts from the spares.
  const again = new BloomFilterBuilder(64);
  for (const k of wideKeys) again.addKey(k);
  assert.ok(again.finishShared().equals(fw), 'a wide filter built again is the same');
});

/** Distinct user keys of a table's entries, in order. */
function userKeysOf(entries: { key: Buffer }[]): Buffer[] {
  const out: Buffer[] = [];
  for (const e of entries) {
    const u = e.key.subarray(0, e.key.length - 8);
    const last = out[out.length - 1];
    if (last === undefined || !last.equals(u)) out.push(Buffer.from(u));
  }
  return out;
}

function tableEntries(rng: Random, tag: string, n: number): { key: Buffer; value: Buffer }[] {
  const out: { key: Buffer; value: Buffer }[] = [];
  for (let i = 0; i < n; i++) {
    const user = Buffer.from(`${tag}-${String(i).padStart(7, '0')}`);
    const versions = rng.nextInt(6) === 0 ? 2 + rng.nextInt(3) : 1;
    for (let v = versions; v >= 1; v--) out.push({ key: makeInternalKey(user, 1000 + v, KIND_VALUE), value: Buffer.from(`${tag}${i}.${v}`) });
  }
  return out;
}

function readFilter(reader: TableReader): Buffer {
  return (reader as unknown as { filter: Buffer }).filter;
}

test('TableBuilder: interleaved, abandoned and failing builders; every table\'s filter is the reference and finds every key', () => {
  const rng = new Random(SEED ^ 0x7ab);
  let tables = 0;
  for (let round = 0; round < 60; round++) {
    const specs = Array.from({ length: 2 + rng.nextInt(3) }, (_, i) => {
      const bloomBitsPerKey = BITS[rng.nextInt(BITS.length)] as number;
      const bloomLayout: BloomLayout = rng.nextInt(4) === 0 ? 'legacy' : 'cache-local';
      const big = rng.nextInt(4) === 0;
      const entries = tableEntries(rng, `r${round}t${i}`, big ? 3000 + rng.nextInt(20000) : 1 + rng.nextInt(600));
      const opts: TableBuilderOptions = { blockSizeBytes: 256 + rng.nextInt(2000), bloomBitsPerKey, bloomLayout, compression: rng.nextInt(2) === 0 ? 'lz' : 'none' };
      // Some builders are abandoned midway, some fail on a write (then abandoned).
      const fate = rng.nextInt(6) === 0 ? 'abandon' : rng.nextInt(6) === 0 ? 'fail' : 'finish';
      const file = fate === 'fail' ? new FailingFile(rng.nextInt(3), 'EIO') : new BufferFile(`r${round}t${i}.sst`);
      return { entries, opts, fate, file, builder: new TableBuilder(file, opts), at: 0, stopAt: fate === 'abandon' ? rng.nextInt(entries.length) : entries.length, info: null as TableInfo | null, failed: false };
    });
    // Interleave: each step adds a run of entries to a random builder still going.
    for (;;) {
      const going = specs.filter((s) => s.at < s.stopAt && !s.failed);
      if (going.length === 0) break;
      const s = going[rng.nextInt(going.length)] as (typeof specs)[number];
      const run = 1 + rng.nextInt(400);
      for (let j = 0; j < run && s.at < s.stopAt; j++, s.at++) {
        const e = s.entries[s.at] as { key: Buffer; value: Buffer };
        try {
          s.builder.add(e.key, e.value);
        } catch (err) {
          assert.ok(isLightningError(err, 'IO_ERROR'), `SEED=${SEED}: ${String(err)}`);
          s.failed = true;
          break;
        }
      }
      // A finished or abandoned builder's arrays go to the spares while the others still build.
      if (s.at === s.stopAt || s.failed) {
        if (s.fate === 'abandon' || s.failed) s.builder.abandon();
        else {
          try {
            s.info = s.builder.finish();
          } catch (err) {
            assert.ok(isLightningError(err, 'IO_ERROR') && s.fate === 'fail', `SEED=${SEED}: ${String(err)}`);
            s.failed = true;
            s.builder.abandon();
          }
        }
      }
    }
    for (const [i, s] of specs.entries()) {
      if (s.info === null) continue;
      const where = `SEED=${SEED} round ${round} table ${i} (${s.entries.length} entries, ${s.opts.bloomBitsPerKey} bits, ${s.opts.bloomLayout})`;
      const reader = TableReader.open(s.file, 1, s.info.fileSizeBytes, null);
      const users = userKeysOf(s.entries);
      const want = referenceFilter(users, s.opts.bloomBitsPerKey, s.opts.bloomLayout ?? 'cache-local');
      if (!readFilter(reader).equals(want)) assert.fail(`${where}: table filter differs from the reference`);
      for (const u of users) if (!reader.mayContain(u)) assert.fail(`${where}: mayContain(${u.toString()}) false for a key in the table`);
      for (let j = 0; j < s.entries.length; j += 1 + rng.nextInt(50)) {
        const e = s.entries[j] as { key: Buffer; value: Buffer };
        assert.ok(reader.get(e.key)?.value.equals(e.value), `${where}: get`);
      }
      reader.close();
      tables++;
    }
  }
  assert.ok(tables > 30, `tables checked: ${tables}`);
});

test('MemFs database: many flushes and compactions with filters of several widths; every key readable, before and after reopen', async () => {
  const rng = new Random(SEED ^ 0xdb);
  for (const bloomBitsPerKey of [10, 1, 0, 30]) {
    const fs = new MemFs();
    const opts = { fs, memtableSize: 8 * 1024, blockSize: 256, targetFileSize: 8 * 1024, levelBaseSize: 32 * 1024, levelMultiplier: 2, bloomBitsPerKey, sync: false, compression: rng.nextInt(2) === 0 ? ('lz' as const) : ('none' as const) };
    const model = new Map<string, string>();
    let db = await open('/db', opts);
    const keyOf = (i: number): string => `k${String(i).padStart(6, '0')}`;
    for (let i = 0; i < 12000; i++) {
      const k = keyOf(rng.nextInt(2500));
      if (rng.nextInt(8) === 0) {
        await db.delete(k);
        model.delete(k);
      } else {
        const v = `v${i}-`.padEnd(10 + rng.nextInt(40), 'x');
        await db.put(k, v);
        model.set(k, v);
      }
    }
    const check = async (what: string): Promise<void> => {
      for (let i = 0; i < 2500; i++) {
        const k = keyOf(i);
        const want = model.get(k);
        const got = rng.nextInt(2) === 0 ? await db.get(k) : db.getSync(k);
        if (got?.toString() !== want) assert.fail(`SEED=${SEED} bits ${bloomBitsPerKey} ${what}: get(${k}) = ${got?.toString()}, want ${want}`);
      }
    };
    const stats = (db as unknown as { stats(): unknown }).stats();
    console.log(`bits ${bloomBitsPerKey}: ${JSON.stringify(stats).slice(0, 300)}`);
    await check('after writes');
    await db.compactRange();
    await check('after compactRange');
    await db.close();
    db = await open('/db', opts);
    await check('after reopen');
    await db.close();
  }
});
