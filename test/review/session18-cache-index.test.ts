/**
 * Review (session 18): the open-addressing index of the typed-array BlockCache, attacked where
 * linear probing with back-shift deletion breaks: keys whose hashes collide exactly (file numbers
 * that differ by a multiple of 2^32 hash alike: Math.imul keeps their low 32 bits), so probe runs
 * are long, wrap around the end of the bucket array, and interleave with runs of other homes;
 * deletions from the middle of such runs (evictions, replacements, evictFile); growth of the entry
 * arrays and the index several times (thousands of entries) with keys up to 2^53-1. Differential
 * against the reference implementation (see session18-cache-helper.ts), invariants sampled.
 * Replay one seed with SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { MAX, TWO32, runDifferential, seeds } from './session18-cache-helper.js';

/** `n` file numbers in `groups` classes; file numbers of a class all hash alike (same low 32 bits). */
function collidingFiles(rng: Random, groups: number, n: number): number[] {
  const bases: number[] = [];
  for (let g = 0; g < groups; g++) bases.push(rng.nextUint32());
  const out = new Set<number>();
  while (out.size < n) {
    const base = bases[rng.nextInt(groups)] as number;
    const hi = rng.nextInt(4) === 0 ? 2 ** 21 - 1 - rng.nextInt(4) : rng.nextInt(2 ** 21 - 1);
    const f = hi * TWO32 + base;
    if (Number.isSafeInteger(f)) out.add(f);
  }
  return [...out];
}

test('index: exact hash collisions (file numbers 2^32 apart), wrapping probe runs, back-shift deletes', () => {
  for (const seed of seeds([0x18c1_0001, 0x18c1_0002, 0x18c1_0003, 0x18c1_0004, 0x18c1_0005, 0x18c1_0006])) {
    const rng = new Random(seed);
    for (const [capacity, slotBytes, admission, groups, nFiles] of [
      [40 * 16, 16, false, 1, 60],
      [100 * 16, 16, true, 2, 150],
      [300, 0, false, 3, 120],
      [64 * 10, 10, false, 5, 300],
      [2000, 0, true, 8, 400],
    ] as const) {
      runDifferential(seed, {
        capacity,
        slotBytes,
        admission,
        files: collidingFiles(rng, groups, nFiles),
        offsets: [0, rng.nextInt(2) === 0 ? 4096 : MAX],
        ops: 3000,
        invariantsEvery: 7,
        maxRandomSize: slotBytes === 0 ? 12 : slotBytes,
      });
    }
  }
});

test('index: many entries (arrays and index grow several times), mixed sizes, evictFile sweeps', () => {
  for (const seed of seeds([0x18c1_1001, 0x18c1_1002])) {
    const rng = new Random(seed);
    const files: number[] = [];
    for (let i = 0; i < 200; i++) files.push(rng.nextInt(3) === 0 ? rng.nextInt(2 ** 21) * TWO32 + rng.nextUint32() : i);
    const offsets: number[] = [];
    for (let i = 0; i < 300; i++) offsets.push(rng.nextInt(4) === 0 ? MAX - rng.nextInt(1000) * 4096 : i * 4096);
    for (const slotBytes of [0, 8]) {
      runDifferential(seed, {
        capacity: 200_000,
        slotBytes,
        admission: rng.nextInt(2) === 0,
        files,
        offsets,
        ops: 20_000,
        invariantsEvery: 500,
        maxRandomSize: 12,
        edgeSizeEvery: 400,
      });
    }
  }
});

test('index: fill far past several doublings, then delete everything in random order (model only)', () => {
  for (const seed of seeds([0x18c1_2001, 0x18c1_2002, 0x18c1_2003])) {
    const rng = new Random(seed);
    const saved = invariants.enabled;
    try {
      const n = 3000 + rng.nextInt(3000);
      const c = new BlockCache(n * 4, 4, false); // exactly n slots: nothing evicted
      const keys: [number, number][] = [];
      const groups = [rng.nextUint32(), rng.nextUint32(), rng.nextUint32()];
      for (let i = 0; i < n; i++) {
        const r = rng.nextInt(3);
        const f = r === 0 ? (groups[rng.nextInt(3)] as number) + i * TWO32 : r === 1 ? i % 97 : MAX - i;
        keys.push([f, r === 1 ? i * 4096 : rng.nextInt(4) * TWO32]);
      }
      const byte = (i: number): number => (i * 131 + 7) & 0xff;
      for (let i = 0; i < n; i++) {
        invariants.enabled = i % 512 === 0 || i === n - 1;
        const [f, o] = keys[i] as [number, number];
        const block = Buffer.from([byte(i), byte(i + 1), byte(i + 2)]);
        const ret = c.insert(f, o, block);
        assert.notEqual(ret, block, `insert ${i} (${f}, ${o}) not cached (seed ${seed})`);
      }
      assert.equal(c.stats().entries, n, `entries after filling (seed ${seed})`);
      const check = (i: number): void => {
        const [f, o] = keys[i] as [number, number];
        const got = c.get(f, o);
        assert.ok(got !== undefined && got.length === 3 && got[0] === byte(i) && got[2] === byte(i + 2), `key ${i} (${f}, ${o}) lost or wrong (seed ${seed})`);
      };
      for (let i = 0; i < n; i++) check(i);
      // Remove in random order by evicting files (each file here has one or a few entries).
      const order = [...new Set(keys.map(([f]) => f))];
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [order[i], order[j]] = [order[j] as number, order[i] as number];
      }
      const gone = new Set<number>();
      for (let k = 0; k < order.length; k++) {
        invariants.enabled = k % 256 === 0;
        const f = order[k] as number;
        c.evictFile(f);
        gone.add(f);
        if (k % 97 === 0) {
          for (let i = 0; i < n; i++) {
            const [kf, ko] = keys[i] as [number, number];
            if (gone.has(kf)) assert.equal(c.get(kf, ko), undefined, `evicted key ${i} still found (seed ${seed})`);
            else check(i);
          }
        }
      }
      invariants.enabled = true;
      c.evictFile(-1);
      assert.equal(c.stats().entries, 0, `entries after evicting every file (seed ${seed})`);
      assert.equal(c.stats().usedBytes, 0, `usedBytes after evicting every file (seed ${seed})`);
    } finally {
      invariants.enabled = saved;
    }
  }
});
