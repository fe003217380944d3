/**
 * Review (session 18): the cost of BlockCache.evictFile after the typed-array rewrite (525c204).
 *
 * Before, evictFile(f) removed f's entries from its own inner Map: O(entries of f). Now it walks
 * the recency lists from the head (probation, then protected) until it has seen as many entries of
 * f as fileEntries counts, so evicting a file whose blocks include a cold one (near the tail: the
 * usual case for a table that compaction replaces) walks nearly every cached entry. With a large
 * cache that is milliseconds per deleted table on the event loop (1M entries: ~1.7 ms per call, 100
 * cold files ~170 ms, against ~0.2 ms in total with the Map version, measured once on this
 * machine; not asserted).
 *
 * Deterministic measure instead of a timing: the work is counted as reads of the entries' file
 * numbers during evictFile (the private `fileOf` array is wrapped in a counting Proxy once the
 * cache is filled, so no array growth happens after). A per-file structure would read about as
 * many as the file has entries; the bound allows 4 per entry plus 64. If the field is renamed or
 * gone, nothing is counted and the test checks only the results.
 * Replay one seed with SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { seeds } from './session18-cache-helper.js';

/** Wraps the cache's private `fileOf` array (if any) in a Proxy counting indexed reads. */
function countFileReads(c: BlockCache): { reads: number } {
  const counter = { reads: 0 };
  const priv = c as unknown as Record<string, unknown>;
  const target = priv['fileOf'];
  if (!(target instanceof Float64Array)) return counter;
  priv['fileOf'] = new Proxy(target, {
    get(t, p) {
      if (typeof p === 'string' && p.length > 0 && p.charCodeAt(0) >= 48 && p.charCodeAt(0) <= 57) counter.reads++;
      const v = Reflect.get(t, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
    set(t, p, v) {
      return Reflect.set(t, p, v);
    },
  });
  return counter;
}

test('evictFile of a file with one cold block does not walk every cached entry', () => {
  const saved = invariants.enabled;
  invariants.enabled = false; // the whole-structure check reads every entry itself
  try {
    const n = 20_000;
    const c = new BlockCache(n * 16, 16, false);
    const block = Buffer.alloc(10, 7);
    c.insert(1, 0, block); // file 1: the oldest block, at the tail of probation
    for (let i = 1; i < n; i++) c.insert(2 + (i >> 2), (i & 3) * 4096, block); // files 2..: 4 blocks each
    assert.equal(c.stats().entries, n);
    const counter = countFileReads(c);
    c.evictFile(1);
    assert.equal(c.stats().entries, n - 1);
    assert.equal(c.get(1, 0), undefined);
    assert.ok(counter.reads <= 4 * 1 + 64, `evictFile of a file with 1 cached block read ${counter.reads} entries' file numbers (of ${n} cached)`);
  } finally {
    invariants.enabled = saved;
  }
});

test('evictFile of files whose blocks sit anywhere in both segments: work proportional to their blocks (seeded)', () => {
  const saved = invariants.enabled;
  invariants.enabled = false;
  try {
    for (const seed of seeds([0x18c4_0001, 0x18c4_0002])) {
      const rng = new Random(seed);
      const n = 16_384;
      const c = new BlockCache(n * 16, 16, false);
      const block = Buffer.alloc(12, 3);
      const files = 2000;
      const perFile = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const f = 1 + rng.nextInt(files);
        const o = i * 4096;
        c.insert(f, o, block);
        perFile.set(f, (perFile.get(f) ?? 0) + 1);
        if (rng.nextInt(3) === 0) c.get(f, o); // some go to protected
      }
      const counter = countFileReads(c);
      let worst = { f: 0, reads: 0, blocks: 0 };
      for (let k = 0; k < 50; k++) {
        const f = 1 + rng.nextInt(files);
        const before = counter.reads;
        const blocks = c.stats().entries;
        c.evictFile(f);
        const removed = blocks - c.stats().entries;
        const reads = counter.reads - before;
        if (reads - 4 * removed > worst.reads - 4 * worst.blocks) worst = { f, reads, blocks: removed };
      }
      assert.ok(worst.reads <= 4 * worst.blocks + 64, `seed ${seed}: evictFile(${worst.f}) removed ${worst.blocks} blocks but read ${worst.reads} entries' file numbers (${n} cached)`);
    }
  } finally {
    invariants.enabled = saved;
  }
});
