/**
 * Several iterators held open at once, stepped in a random interleaving with point reads, over a
 * tiny block cache: every block view the cache hands out is reused by the next miss, so an
 * iterator or a lookup that kept a view instead of a copy would read another block's bytes here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { numRuns, withSeed } from '../harness/seed.js';

function key(i: number): string {
  return `key${String(i).padStart(5, '0')}`;
}

test('interleaved iterators and point reads agree with the model under a tiny block cache', async () => {
  await withSeed('interleaved reads', async (seed) => {
    for (let run = 0; run < numRuns(6, 60); run++) {
      const rng = new Random(seed + run);
      const mem = new MemFs();
      // 128-byte blocks, slots of 256 bytes, room for 4 of them: nearly every block read misses.
      const opts = { fs: mem, memtableSize: 4096, blockSize: 128, blockCacheSize: 4 * 256 + rng.nextInt(600), sync: false };
      let db = await open('/db', opts);
      const model = new Map<string, string>();
      const keyCount = 300 + rng.nextInt(500);
      for (let i = 0; i < 3000; i++) {
        const k = key(rng.nextInt(keyCount));
        if (rng.nextInt(6) === 0) {
          await db.delete(k);
          model.delete(k);
        } else {
          const v = `${k}:${i}:${'x'.repeat(rng.nextInt(rng.nextInt(8) === 0 ? 300 : 40))}`;
          await db.put(k, v);
          model.set(k, v);
        }
      }
      await db.close(); // everything in tables
      db = await open('/db', opts);
      const sorted = [...model.keys()].sort();
      type Cursor = { it: Iterator<[Buffer, Buffer]>; expected: string[]; at: number; reverse: boolean };
      const cursors: Cursor[] = [];
      for (let c = 0; c < 4; c++) {
        const reverse = rng.nextInt(2) === 0;
        const from = key(rng.nextInt(keyCount));
        const expected = reverse ? sorted.filter((k) => k <= from).reverse() : sorted.filter((k) => k >= from);
        const it = (reverse ? db.iterator({ lte: from, reverse }) : db.iterator({ gte: from }))[Symbol.iterator]();
        cursors.push({ it, expected, at: 0, reverse });
      }
      let open_ = cursors.length;
      while (open_ > 0) {
        if (rng.nextInt(3) === 0) {
          const k = key(rng.nextInt(keyCount));
          assert.equal(db.getSync(k)?.toString(), model.get(k), `getSync ${k} (run ${run})`);
          continue;
        }
        const c = cursors[rng.nextInt(cursors.length)] as Cursor;
        if (c.at < 0) continue;
        const r = c.it.next();
        if (r.done === true) {
          assert.equal(c.at, c.expected.length, `iterator ended early (run ${run})`);
          c.at = -1;
          open_--;
          continue;
        }
        const [k, v] = r.value;
        const want = c.expected[c.at++] as string;
        assert.equal(k.toString(), want, `iterator key (run ${run}, reverse ${c.reverse})`);
        assert.equal(v.toString(), model.get(want), `iterator value of ${want} (run ${run})`);
      }
      const s = db.stats();
      assert.ok(s.blockCache !== null && s.blockCache.misses > 100, 'the cache was churned');
      await db.close();
    }
  });
});
