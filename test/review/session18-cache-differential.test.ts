/**
 * Review (session 18): the typed-array BlockCache of 525c204 against the CacheEntry/Map version it
 * replaced (session18-cache-reference.ts), on long seeded random sequences of get / insert /
 * admits / admits-then-insert / re-insert of a view the cache handed out / evictFile (of files
 * with and without entries) / read-back of every key. Every result, whether insert handed its
 * argument back, and stats() must agree after every operation, every hit must return the bytes
 * last cached at its key, and views from get() must keep their bytes until the next
 * insert/evictFile. Invariants on (whole-structure checks of both caches).
 *
 * Covers slotBytes 0 and > 0, admission on and off, blocks larger than a slot and than the budget,
 * re-inserts with a different size (slot <-> own buffer), capacity 0 and capacities holding a
 * single slot, file numbers and offsets near and beyond 2^32 up to Number.MAX_SAFE_INTEGER.
 * Replay one seed with SEED=<n>.
 */
import { test } from 'node:test';
import { Random } from '../../src/util/random.js';
import { describe, numberPool, runDifferential, seeds, type DiffConfig } from './session18-cache-helper.js';

const CAPACITIES = [0, 1, 63, 64, 100, 127, 128, 1000, 1024, 3000, 4096, 10_000];
const SLOTS = [0, 0, 1, 32, 64, 100, 128, 1000, 5000];

function randomConfig(rng: Random): DiffConfig {
  const capacity = CAPACITIES[rng.nextInt(CAPACITIES.length)] as number;
  const slotBytes = SLOTS[rng.nextInt(SLOTS.length)] as number;
  const nFiles = 1 + rng.nextInt(6);
  const nOffsets = 1 + rng.nextInt(rng.nextInt(2) === 0 ? 8 : 60);
  return {
    capacity,
    slotBytes,
    admission: rng.nextInt(2) === 0,
    files: numberPool(rng, nFiles, rng.nextInt(2) === 0, 1),
    offsets: numberPool(rng, nOffsets, rng.nextInt(2) === 0, 4096),
    ops: 400 + rng.nextInt(800),
    invariantsEvery: 1,
    maxRandomSize: Math.max(8, Math.min(2 * Math.max(slotBytes, 1) + 10, capacity + 10)),
  };
}

test('differential: small caches, random configurations (slots, admission, edges of 2^32 and 2^53)', () => {
  const start = seeds([0x18c0_0001])[0] as number;
  const runs = process.env['SEED'] !== undefined && process.env['SEED'] !== '' ? 1 : 1500;
  for (let i = 0; i < runs; i++) {
    const seed = (start + i * 0x9e37) >>> 0;
    const cfg = randomConfig(new Random(seed ^ 0x5a5a5a5a));
    runDifferential(seed, cfg, [`config: ${describe(cfg)}`]);
  }
});

test('differential: every (capacity, slot, admission) combination, short runs', () => {
  for (const seed of seeds([0x18c0_1000])) {
    let n = 0;
    for (const capacity of CAPACITIES) {
      for (const slotBytes of [0, 1, 64, 100, 128, 1000]) {
        for (const admission of [false, true]) {
          const s = (seed + n++) >>> 0;
          const rng = new Random(s);
          runDifferential(s, {
            capacity,
            slotBytes,
            admission,
            files: numberPool(rng, 3, true, 1),
            offsets: numberPool(rng, 12, true, 4096),
            ops: 300,
            invariantsEvery: 1,
            maxRandomSize: Math.max(8, Math.min(2 * Math.max(slotBytes, 1) + 10, capacity + 10)),
          });
        }
      }
    }
  }
});

test('differential: keys only at the edges (file numbers and offsets beyond 2^32, up to 2^53-1)', () => {
  for (const seed of seeds([0x18c0_2000, 0x18c0_2001, 0x18c0_2002, 0x18c0_2003])) {
    const rng = new Random(seed);
    const edges = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 33, 2 ** 33 + 1, 2 ** 52, 2 ** 53 - 2, 2 ** 53 - 1];
    for (const admission of [false, true]) {
      runDifferential(seed, {
        capacity: 1000 + rng.nextInt(3000),
        slotBytes: [0, 64, 100][rng.nextInt(3)] as number,
        admission,
        files: edges,
        offsets: edges,
        ops: 2000,
        invariantsEvery: 1,
        maxRandomSize: 150,
      });
    }
  }
});
