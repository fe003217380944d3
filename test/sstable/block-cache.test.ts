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

test('eviction under the byte budget, with hit and miss counts', () => {
  const c = new BlockCache(1000);
  c.insert(1, 0, block(400, 1));
  c.insert(1, 400, block(400, 2));
  assert.deepEqual(c.stats(), {
    hits: 0,
    misses: 0,
    usedBytes: 800,
    capacityBytes: 1000,
    entries: 2,
    protectedBytes: 0,
    rejected: 0,
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
    protectedBytes: 800,
    rejected: 0,
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
  assert.deepEqual(c.stats(), { hits: 0, misses: 1, usedBytes: 0, capacityBytes: 0, entries: 0, protectedBytes: 0, rejected: 0 });
});

// Small key spaces hit the replace and promote paths; the wide one (hundreds of entries, offsets
// beyond 2^32, many files) grows the entry arrays and stresses the hash index's probe runs and
// back-shifting deletions.
const modelConfigs = [
  { slotBytes: 0, capacity: 300, files: 3, offsets: 5, stride: 1, maxSize: 120, maxOps: 200, evictWeight: 2 },
  { slotBytes: 64, capacity: 300, files: 3, offsets: 5, stride: 1, maxSize: 120, maxOps: 200, evictWeight: 2 },
  { slotBytes: 0, capacity: 2000, files: 7, offsets: 400, stride: 2 ** 33 + 4096, maxSize: 8, maxOps: 600, evictWeight: 1 },
  { slotBytes: 4, capacity: 2000, files: 7, offsets: 400, stride: 4096, maxSize: 8, maxOps: 600, evictWeight: 1 },
];
for (const { slotBytes, capacity, files, offsets, stride, maxSize, maxOps, evictWeight } of modelConfigs) test(`matches a segmented-LRU model under random operations (property, slotBytes ${slotBytes}, ${files * (offsets + 1)} keys)`, () => {
  const offset = fc.nat(offsets).map((i) => i * stride);
  const op = fc.oneof(
    { arbitrary: fc.record({ t: fc.constant('get' as const), file: fc.nat(files), off: offset }), weight: 4 },
    {
      arbitrary: fc.record({
        t: fc.constant('insert' as const),
        file: fc.nat(files),
        off: offset,
        size: fc.integer({ min: 1, max: maxSize }),
      }),
      weight: 6,
    },
    { arbitrary: fc.record({ t: fc.constant('evict' as const), file: fc.nat(files) }), weight: evictWeight },
  );
  type E = { file: number; off: number; size: number; fill: number };
  // A block that fits a slot is charged the whole slot.
  const charge = (size: number): number => (slotBytes > 0 && size <= slotBytes ? slotBytes : size);
  const bytes = (l: E[]): number => l.reduce((sum, e) => sum + charge(e.size), 0);
  let fills = 0;
  fc.assert(
    fc.property(fc.array(op, { maxLength: maxOps }), (ops) => {
      const protectedCap = Math.floor(capacity * 0.8);
      const c = new BlockCache(capacity, slotBytes);
      // Model: two lists, most recently used first.
      let probation: E[] = [];
      let prot: E[] = [];
      let hits = 0;
      let misses = 0;
      const same = (o: { file: number; off: number }) => (e: E) => e.file === o.file && e.off === o.off;
      for (const o of ops) {
        if (o.t === 'get') {
          const got = c.get(o.file, o.off);
          const e = probation.find(same(o)) ?? prot.find(same(o));
          if (e === undefined) {
            misses++;
            assert.equal(got, undefined);
          } else {
            hits++;
            probation = probation.filter((x) => x !== e);
            prot = [e, ...prot.filter((x) => x !== e)];
            while (bytes(prot) > protectedCap) probation.unshift(prot.pop() as E);
            assert.equal(got?.length, e.size);
            // The bytes are the ones inserted: slot reuse never clobbers a live block.
            assert.ok(got?.every((b) => b === e.fill), 'cached bytes intact');
          }
        } else if (o.t === 'insert') {
          const fill = ++fills & 0xff;
          const copy = c.insert(o.file, o.off, block(o.size, fill));
          assert.ok(copy.length === o.size && copy.every((b) => b === fill), 'insert returns the block');
          probation = probation.filter((e) => !same(o)(e));
          prot = prot.filter((e) => !same(o)(e));
          if (charge(o.size) <= capacity) probation.unshift({ file: o.file, off: o.off, size: o.size, fill });
          while (bytes(probation) + bytes(prot) > capacity) {
            if (probation.length > 0) probation.pop();
            else prot.pop();
          }
        } else {
          c.evictFile(o.file);
          probation = probation.filter((e) => e.file !== o.file);
          prot = prot.filter((e) => e.file !== o.file);
        }
        const s = c.stats();
        assert.equal(s.entries, probation.length + prot.length);
        assert.equal(s.usedBytes, bytes(probation) + bytes(prot));
        assert.equal(s.protectedBytes, bytes(prot));
        assert.equal(s.hits, hits);
        assert.equal(s.misses, misses);
      }
    }),
    { seed: SEED, numRuns: maxOps > 200 ? 60 : 300 },
  );
});

test('a full scan does not evict the hot set (scan resistance)', () => {
  const c = new BlockCache(100 * 1000);
  // Hot set: 50 blocks read repeatedly.
  for (let i = 0; i < 50; i++) c.insert(1, i, block(1000));
  for (let round = 0; round < 3; round++) for (let i = 0; i < 50; i++) assert.ok(c.get(1, i));
  // A scan of 10x the cache, each block read once.
  for (let i = 0; i < 1000; i++) {
    if (c.get(2, i) === undefined) c.insert(2, i, block(1000));
  }
  let hot = 0;
  for (let i = 0; i < 50; i++) if (c.get(1, i) !== undefined) hot++;
  assert.equal(hot, 50, 'every hot block survived the scan');
});

test('admission: when full, a block used less often than the eviction victim is not cached', () => {
  const c = new BlockCache(1000, 100, true);
  // Fill with ten blocks, each looked up (missed) three times before it is inserted.
  for (let i = 0; i < 10; i++) {
    for (let k = 0; k < 3; k++) c.get(1, i * 100);
    c.insert(1, i * 100, block(100, i));
  }
  assert.equal(c.stats().entries, 10);
  // A block seen once: not admitted; insert() hands back the caller's block itself.
  assert.equal(c.get(2, 0), undefined);
  const once = block(100, 99);
  assert.equal(c.insert(2, 0, once), once, 'not cached: the caller keeps its own block');
  assert.equal(c.stats().rejected, 1);
  assert.equal(c.stats().entries, 10, 'nothing was evicted for it');
  for (let i = 0; i < 10; i++) assert.equal(c.get(1, i * 100)?.[0], i, `block ${i} still cached`);
  // Looked up more often than the least recently used block: admitted, evicting that one.
  for (let k = 0; k < 6; k++) c.get(3, 0);
  const popular = c.insert(3, 0, block(100, 77));
  assert.equal(popular[0], 77);
  assert.equal(c.get(3, 0)?.[0], 77, 'the popular block is cached');
  assert.equal(c.stats().entries, 10);
  assert.equal(c.stats().rejected, 1);
});

test('admission never refuses while there is room, and is off by default', () => {
  const c = new BlockCache(1000, 100, true);
  for (let i = 0; i < 10; i++) c.insert(1, i * 100, block(100, i)); // never looked up: count 0
  assert.equal(c.stats().entries, 10);
  assert.equal(c.stats().rejected, 0);
  const plain = new BlockCache(1000, 100);
  for (let i = 0; i < 20; i++) plain.insert(1, i * 100, block(100, i));
  assert.equal(plain.stats().rejected, 0, 'without admission every insert is cached (LRU evicts)');
  assert.equal(plain.get(1, 1900)?.[0], 19);
});

test('admission: counts fade, so yesterday\'s popular blocks give way to today\'s', () => {
  const c = new BlockCache(1000, 100, true);
  for (let i = 0; i < 10; i++) {
    for (let k = 0; k < 15; k++) c.get(1, i * 100);
    c.insert(1, i * 100, block(100, i));
  }
  // A new block looked up 4 times loses against counts of 15 ...
  for (let k = 0; k < 4; k++) c.get(2, 0);
  c.insert(2, 0, block(100, 50));
  assert.equal(c.stats().rejected, 1);
  // ... until enough other lookups halve the old counts (aging every 10 x the sketch width).
  for (let n = 0; n < 200_000; n++) c.get(9, n * 100);
  for (let k = 0; k < 4; k++) c.get(2, 0);
  c.insert(2, 0, block(100, 50));
  assert.equal(c.get(2, 0)?.[0], 50, 'admitted once the old counts faded');
});

test('admits() answers what insert() then does: cached or handed back (property)', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ file: fc.integer({ min: 1, max: 3 }), block: fc.integer({ min: 0, max: 30 }), size: fc.constantFrom(50, 100, 100, 250, 2000), lookups: fc.integer({ min: 0, max: 4 }) }),
        { maxLength: 200 },
      ),
      fc.boolean(),
      (ops, admission) => {
        const c = new BlockCache(1000, 100, admission);
        for (const op of ops) {
          const offset = op.block * 1000;
          for (let k = 0; k < op.lookups; k++) c.get(op.file, offset);
          const rejectedBefore = c.stats().rejected;
          const admits = c.admits(op.file, offset, op.size);
          const mine = block(op.size, op.block);
          if (admits) {
            assert.notEqual(c.insert(op.file, offset, mine), mine, 'admitted: insert caches a copy');
            assert.equal(c.stats().rejected, rejectedBefore);
          } else {
            assert.equal(c.insert(op.file, offset, mine), mine, 'refused: insert hands the block back');
          }
        }
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('the hash index finds every cached block while thousands come and go (seeded)', () => {
  // Each block in a file of its own, so evictFile removes exactly one entry. Kept near the index's
  // highest load (2,000 entries in 4,096 buckets), deletions land all over its probe runs,
  // including runs that wrap around its end. Checked from outside (the whole-structure check per
  // operation would make this quadratic).
  const seed = SEED;
  let state = seed >>> 0 || 1;
  const next = (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const wasEnabled = invariants.enabled;
  invariants.enabled = false;
  try {
    const c = new BlockCache(1 << 20, 0);
    const live = new Map<number, number>(); // file -> offset
    let file = 0;
    for (let round = 0; round < 40; round++) {
      while (live.size < 2000) {
        file++;
        const offset = next(1 << 30) * 4096; // beyond 2^32
        c.insert(file, offset, block(1 + (file % 7), file & 0xff));
        live.set(file, offset);
      }
      const files = [...live.keys()];
      for (let k = files.length - 1; k > 0; k--) {
        const j = next(k + 1);
        [files[k], files[j]] = [files[j] as number, files[k] as number];
      }
      for (const f of files.slice(0, 1000)) {
        c.evictFile(f);
        live.delete(f);
      }
      for (const [f, offset] of live) {
        const got = c.get(f, offset);
        assert.ok(got !== undefined && got.length === 1 + (f % 7) && got[0] === (f & 0xff), `seed ${seed}, round ${round}: block of file ${f} still found`);
        assert.equal(c.get(f, offset + 4096), undefined, `seed ${seed}: no block at a neighbouring offset`);
      }
      assert.equal(c.stats().entries, live.size, `seed ${seed}`);
    }
  } finally {
    invariants.enabled = wasEnabled;
  }
});
