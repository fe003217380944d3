import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';
import { SEED } from './model.js';

invariants.enabled = true;

function block(bytes: number, fill = 0): Buffer {
  return Buffer.alloc(bytes, fill);
}

test('LRU eviction under the byte budget, with hit and miss counts', () => {
  const c = new BlockCache(1000);
  c.insert(1, 0, block(400, 1));
  c.insert(1, 400, block(400, 2));
  assert.deepEqual(c.stats(), {
    hits: 0,
    misses: 0,
    usedBytes: 800,
    capacityBytes: 1000,
    entries: 2,
  });
  // Touch (1, 0) so that (1, 400) becomes least recently used.
  assert.equal(c.get(1, 0)?.[0], 1);
  c.insert(2, 0, block(400, 3));
  assert.equal(c.get(1, 400), undefined, 'LRU block evicted');
  assert.equal(c.get(1, 0)?.[0], 1);
  assert.equal(c.get(2, 0)?.[0], 3);
  assert.deepEqual(c.stats(), {
    hits: 3,
    misses: 1,
    usedBytes: 800,
    capacityBytes: 1000,
    entries: 2,
  });
});

test('one big insert evicts several small blocks; oversized blocks are not cached', () => {
  const c = new BlockCache(1000);
  for (let i = 0; i < 10; i++) c.insert(7, i * 100, block(100));
  assert.equal(c.stats().usedBytes, 1000);
  c.insert(8, 0, block(550));
  // 1000 + 550 bytes: the six oldest 100-byte blocks go, leaving 4 * 100 + 550.
  assert.deepEqual(
    { used: c.stats().usedBytes, entries: c.stats().entries },
    { used: 950, entries: 5 },
  );
  for (let i = 0; i < 6; i++) assert.equal(c.get(7, i * 100), undefined);
  for (let i = 6; i < 10; i++) assert.ok(c.get(7, i * 100));
  c.insert(9, 0, block(1001));
  assert.equal(c.get(9, 0), undefined, 'a block larger than the capacity is not cached');
  assert.equal(c.stats().usedBytes, 950, 'and evicts nothing');
});

test('re-inserting a key replaces the block and fixes the byte count', () => {
  const c = new BlockCache(1000);
  c.insert(1, 0, block(100, 1));
  c.insert(1, 0, block(300, 2));
  assert.equal(c.get(1, 0)?.length, 300);
  assert.deepEqual(
    { used: c.stats().usedBytes, entries: c.stats().entries },
    { used: 300, entries: 1 },
  );
});

test('evictFile drops exactly one file', () => {
  const c = new BlockCache(10_000);
  for (let i = 0; i < 5; i++) {
    c.insert(1, i, block(10));
    c.insert(2, i, block(20));
  }
  c.evictFile(1);
  c.evictFile(99);
  assert.equal(c.stats().entries, 5);
  assert.equal(c.stats().usedBytes, 100);
  assert.equal(c.get(1, 0), undefined);
  assert.ok(c.get(2, 4));
});

test('capacity 0 disables caching', () => {
  const c = new BlockCache(0);
  c.insert(1, 0, block(10));
  assert.equal(c.get(1, 0), undefined);
  assert.deepEqual(c.stats(), { hits: 0, misses: 1, usedBytes: 0, capacityBytes: 0, entries: 0 });
});

test('matches an LRU model under random operations (property)', () => {
  const op = fc.oneof(
    fc.record({ t: fc.constant('get' as const), file: fc.nat(3), off: fc.nat(5) }),
    fc.record({
      t: fc.constant('insert' as const),
      file: fc.nat(3),
      off: fc.nat(5),
      size: fc.integer({ min: 1, max: 120 }),
    }),
    fc.record({ t: fc.constant('evict' as const), file: fc.nat(3) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const capacity = 300;
      const c = new BlockCache(capacity);
      // Model: array ordered most recently used first.
      let model: { file: number; off: number; size: number }[] = [];
      let hits = 0;
      let misses = 0;
      for (const o of ops) {
        if (o.t === 'get') {
          const i = model.findIndex((e) => e.file === o.file && e.off === o.off);
          const got = c.get(o.file, o.off);
          if (i < 0) {
            misses++;
            assert.equal(got, undefined);
          } else {
            hits++;
            const [e] = model.splice(i, 1);
            assert.ok(e !== undefined);
            model.unshift(e);
            assert.equal(got?.length, e.size);
          }
        } else if (o.t === 'insert') {
          c.insert(o.file, o.off, block(o.size));
          model = model.filter((e) => !(e.file === o.file && e.off === o.off));
          model.unshift({ file: o.file, off: o.off, size: o.size });
          let used = model.reduce((s, e) => s + e.size, 0);
          while (used > capacity) used -= (model.pop() as { size: number }).size;
        } else {
          c.evictFile(o.file);
          model = model.filter((e) => e.file !== o.file);
        }
        const s = c.stats();
        assert.equal(s.entries, model.length);
        assert.equal(
          s.usedBytes,
          model.reduce((sum, e) => sum + e.size, 0),
        );
        assert.equal(s.hits, hits);
        assert.equal(s.misses, misses);
      }
    }),
    { seed: SEED, numRuns: 200 },
  );
});
