/**
 * IndexArray.decode reads the index block's entries itself (no BlockIterator). It must give what
 * iterating the block gives (keys rebuilt from shared prefixes, handles) for any restart interval,
 * and on a damaged block either decode or throw CORRUPTION: never another error. Seeded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { isLightningError } from '../../src/base/errors.js';
import { KIND_VALUE, makeInternalKey } from '../../src/base/internal-key.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { getBlockHandle, putBlockHandle } from '../../src/sstable/block-handle.js';
import { IndexArray } from '../../src/sstable/index-array.js';
import { testSeed } from '../harness/seed.js';

const PATH = '/db/000001.sst';
const DATA_END = 1 << 30;

/** An index block of `keys` (sorted user keys) over consecutive blocks of the given sizes. */
function indexBlock(keys: string[], sizes: number[], restartInterval: number): Buffer {
  const b = new BlockBuilder(restartInterval);
  const handle = Buffer.alloc(20);
  let offset = 0;
  keys.forEach((k, i) => {
    const size = sizes[i] as number;
    const end = putBlockHandle(handle, 0, offset, size);
    b.add(makeInternalKey(Buffer.from(k), 1000 - i, KIND_VALUE), handle.subarray(0, end));
    offset += size + 5; // the block trailer
  });
  return Buffer.from(b.finish());
}

/** What iterating the block gives: [key hex, offset, size] per entry. */
function iterated(block: Buffer): [string, number, number][] {
  const out: [string, number, number][] = [];
  const it = new BlockIterator(block, PATH, 0);
  const h = { offset: 0, sizeBytes: 0 };
  for (it.first(); it.valid(); it.next()) {
    getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), h, PATH, 0);
    out.push([it.key().toString('hex'), h.offset, h.sizeBytes]);
  }
  it.close();
  return out;
}

function decoded(block: Buffer, count: number): [string, number, number][] {
  const a = IndexArray.decode(block, PATH, 0, DATA_END, count);
  const out: [string, number, number][] = [];
  for (let i = 0; i < a.count; i++) out.push([a.keyAt(i).toString('hex'), a.blockOffsets[i] as number, a.blockSizes[i] as number]);
  return out;
}

const keysArb = fc
  .uniqueArray(fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'aa', 'key', '0', '9'), minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 60 })
  .map((ks) => ks.sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));

test('decode gives what iterating the index block gives, for any restart interval', () => {
  fc.assert(
    fc.property(keysArb, fc.integer({ min: 1, max: 16 }), fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 60, maxLength: 60 }), (keys, interval, sizes) => {
      const block = indexBlock(keys, sizes, interval);
      assert.deepEqual(decoded(block, keys.length), iterated(block));
    }),
    { seed: testSeed(), numRuns: 300 },
  );
});

test('a damaged index block decodes or is CORRUPTION, never another error', () => {
  const seed = testSeed();
  const rng = fc.sample(fc.integer(), { seed, numRuns: 1 })[0] as number;
  let x = rng >>> 0 || 1;
  const next = (n: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const keys = Array.from({ length: 40 }, (_, i) => `key${String(i * 3).padStart(4, '0')}`);
  let corrupt = 0;
  for (const interval of [1, 4, 16]) {
    const block = indexBlock(keys, keys.map((_, i) => 100 + i), interval);
    for (let trial = 0; trial < 3000; trial++) {
      const damaged = Buffer.from(block);
      const flips = 1 + next(3);
      for (let f = 0; f < flips; f++) {
        const at = next(damaged.length);
        damaged[at] = (damaged[at] as number) ^ (1 << next(8));
      }
      const cut = next(4) === 0 ? damaged.subarray(0, next(damaged.length + 1)) : damaged;
      try {
        IndexArray.decode(cut, PATH, 0, DATA_END, keys.length);
      } catch (e) {
        assert.ok(isLightningError(e, 'CORRUPTION'), `seed ${seed} interval ${interval} trial ${trial}: ${String(e)}`);
        corrupt++;
      }
    }
  }
  assert.ok(corrupt > 0);
});
