/**
 * Review (session 13): BlockCache.admits (new) and insert (admission no longer applied when a key
 * is replaced), against a model, with invariants on: random get / admits / insert (new keys and
 * replacements of other sizes, slot-sized and own-buffer blocks, blocks above the budget) /
 * evictFile. Checks: a cached block reads back with its bytes; insert caches exactly when
 * admits said so just before; hits + misses = gets; `rejected` grows by one exactly for each
 * refusal by admission (admits false for a fitting new key, or insert handing a fitting new block
 * back) and never otherwise; usedBytes within capacity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';

invariants.enabled = true;

type Op =
  | { op: 'get'; file: number; block: number }
  | { op: 'admits'; file: number; block: number; size: number }
  | { op: 'insert'; file: number; block: number; size: number; fill: number }
  | { op: 'admitsThenInsert'; file: number; block: number; size: number; fill: number }
  | { op: 'evictFile'; file: number };

const fileArb = fc.integer({ min: 1, max: 3 });
const blockArb = fc.integer({ min: 0, max: 12 });
const sizeArb = fc.constantFrom(1, 50, 100, 100, 101, 300, 999, 1000, 1001, 5000);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('get' as const), file: fileArb, block: blockArb }), weight: 5 },
  fc.record({ op: fc.constant('admits' as const), file: fileArb, block: blockArb, size: sizeArb }),
  { arbitrary: fc.record({ op: fc.constant('insert' as const), file: fileArb, block: blockArb, size: sizeArb, fill: fc.integer({ min: 0, max: 255 }) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('admitsThenInsert' as const), file: fileArb, block: blockArb, size: sizeArb, fill: fc.integer({ min: 0, max: 255 }) }), weight: 3 },
  fc.record({ op: fc.constant('evictFile' as const), file: fileArb }),
);

test('admits/insert/get/evictFile against a model: contents, decisions and counters', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 300 }), fc.constantFrom(0, 100, 128), fc.boolean(), fc.constantFrom(0, 1000, 3000), (ops, slot, admission, capacity) => {
      const c = new BlockCache(capacity, slot, admission);
      const model = new Map<string, { size: number; fill: number }>();
      let gets = 0;
      const charge = (size: number): number => (slot > 0 && size <= slot && Math.floor(capacity / slot) > 0 ? slot : size);
      for (const o of ops) {
        const before = c.stats();
        if (o.op === 'get') {
          gets++;
          const got = c.get(o.file, o.block * 10_000);
          const m = model.get(`${o.file}/${o.block}`);
          if (got !== undefined) {
            assert.ok(m !== undefined, 'a hit for a key never cached (or evicted by file)');
            assert.equal(got.length, m.size);
            assert.ok(got.every((b) => b === m.fill), 'cached bytes');
          }
          // (a miss may be an eviction: the model keeps no order)
        } else if (o.op === 'evictFile') {
          c.evictFile(o.file);
          for (const k of [...model.keys()]) if (k.startsWith(`${o.file}/`)) model.delete(k);
        } else {
          const key = `${o.file}/${o.block}`;
          const wasCached = c.get(o.file, o.block * 10_000) !== undefined; // note: a get, counted
          gets++;
          const b0 = c.stats();
          let said: boolean | null = null;
          if (o.op === 'admits' || o.op === 'admitsThenInsert') {
            said = c.admits(o.file, o.block * 10_000, o.size);
            const b1 = c.stats();
            const fits = capacity > 0 && charge(o.size) <= capacity;
            if (!fits) assert.equal(said, false, 'a block over the budget is never admitted');
            if (wasCached && fits) assert.equal(said, true, 'a cached key is admitted (replacement)');
            assert.equal(b1.rejected - b0.rejected, said === false && fits && !wasCached ? 1 : 0, `rejected counts admission refusals only (said ${said}, fits ${fits}, cached ${wasCached})`);
            if (o.op === 'admits') continue;
          }
          const op = o as { size: number; fill: number };
          const mine = Buffer.alloc(op.size, op.fill);
          const b2 = c.stats();
          const r = c.insert(o.file, o.block * 10_000, mine);
          const b3 = c.stats();
          const cached = r !== mine;
          if (said !== null) assert.equal(cached, said, `insert caches exactly when admits said so (size ${op.size}, replaced ${wasCached})`);
          const fits = capacity > 0 && charge(op.size) <= capacity;
          if (wasCached && fits) assert.ok(cached, 'a replacement is never refused by admission');
          assert.equal(b3.rejected - b2.rejected, !cached && fits && !wasCached ? 1 : 0, 'insert counts its admission refusals');
          if (cached) {
            assert.ok(r.equals(mine), 'the copy');
            model.set(key, { size: op.size, fill: op.fill });
          }
          // refused: any block cached before under this key stays as it was
        }
        const s = c.stats();
        assert.ok(s.usedBytes <= s.capacityBytes, 'within budget');
        assert.ok(s.rejected >= before.rejected, 'rejected never shrinks');
      }
      const s = c.stats();
      assert.equal(s.hits + s.misses, capacity === 0 ? s.hits + s.misses : gets, 'hits + misses = gets');
    }),
    { seed: Number(process.env['SEED'] ?? 0x5e13), numRuns: 400 },
  );
});
