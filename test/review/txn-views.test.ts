/**
 * Review: transactions over a tiny block cache (every block view the cache hands out is reused by
 * the next miss) and a small table cache: several open transactions, each with its own writes,
 * step their iterators (both directions) interleaved with each other, with tx.getSync, db.getSync,
 * other DB iterators and concurrent commits/compactions. Each transaction must see its snapshot
 * plus its own writes, exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Transaction } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

function key(i: number): string {
  // odd lengths and a shared prefix
  return `key/${String(i).padStart(5, '0')}${'z'.repeat(i % 5)}`;
}

interface Tx {
  tx: Transaction;
  view: Map<string, string>;
  it: Iterator<[Buffer, Buffer]> | null;
  expected: [string, string][];
  at: number;
}

test('transactions stepping iterators interleaved over a tiny block cache see snapshot + own writes', async () => {
  await withSeed('review txn views', async (seed) => {
    for (let run = 0; run < 3; run++) {
      const rng = new Random(seed + run);
      const mem = new MemFs();
      const opts = { fs: mem, memtableSize: 8 * 1024, blockSize: 128, blockCacheSize: 700 + rng.nextInt(2000), maxOpenFiles: 16, sync: false, targetFileSize: 2048 };
      let db = await open('/db', opts);
      const model = new Map<string, string>();
      const N = 600;
      for (let i = 0; i < 4000; i++) {
        const k = key(rng.nextInt(N));
        if (rng.nextInt(5) === 0) {
          await db.delete(k);
          model.delete(k);
        } else {
          const v = `${i}:${'v'.repeat(rng.nextInt(rng.nextInt(10) === 0 ? 400 : 30))}`;
          await db.put(k, v);
          model.set(k, v);
        }
      }
      await db.close();
      db = await open('/db', opts);
      const txs: Tx[] = [];
      for (let t = 0; t < 4; t++) {
        const tx = db.beginTransaction();
        tx.getSync(key(0)); // pins the snapshot now
        const view = new Map(model);
        for (let j = 0; j < 30; j++) {
          const k = key(rng.nextInt(N));
          if (rng.nextInt(3) === 0) {
            tx.delete(k);
            view.delete(k);
          } else {
            tx.put(k, `tx${t}:${j}`);
            view.set(k, `tx${t}:${j}`);
          }
        }
        txs.push({ tx, view, it: null, expected: [], at: 0 });
      }
      const outside = new Map(model);
      const sortedOf = (m: Map<string, string>): [string, string][] => [...m.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
      for (let step = 0; step < 2000; step++) {
        const t = txs[rng.nextInt(txs.length)] as Tx;
        const r = rng.nextInt(10);
        if (t.it === null) {
          const reverse = rng.nextInt(2) === 0;
          const from = key(rng.nextInt(N));
          const all = sortedOf(t.view);
          t.expected = reverse ? all.filter(([k]) => k <= from).reverse() : all.filter(([k]) => k >= from);
          t.it = t.tx.iterator(reverse ? { lte: from, reverse } : { gte: from })[Symbol.iterator]();
          t.at = 0;
        } else if (r < 6) {
          const n = t.it.next();
          if (n.done === true) {
            assert.equal(t.at, t.expected.length, `tx iterator ended early (run ${run})`);
            t.it = null;
          } else {
            assert.deepEqual([n.value[0].toString(), n.value[1].toString()], t.expected[t.at], `tx iterator entry ${t.at} (run ${run})`);
            t.at++;
          }
        } else if (r < 8) {
          const k = key(rng.nextInt(N));
          assert.equal(t.tx.getSync(k)?.toString(), t.view.get(k), `tx.getSync ${k}`);
          assert.equal(db.getSync(k)?.toString(), outside.get(k), `db.getSync ${k}`);
        } else if (r < 9) {
          // a short DB scan in between
          const from = key(rng.nextInt(N));
          const want = sortedOf(outside).filter(([k]) => k >= from).slice(0, 5);
          const got: [string, string][] = [];
          for (const [k, v] of db.iterator({ gte: from, limit: 5 })) {
            got.push([k.toString(), v.toString()]);
          }
          assert.deepEqual(got, want, 'db scan');
        } else {
          // a write outside the transactions (not seen by them), sometimes a compaction
          const k = key(rng.nextInt(N));
          await db.put(k, `out${step}`);
          outside.set(k, `out${step}`);
          if (rng.nextInt(20) === 0) await db.compactRange();
        }
      }
      for (const t of txs) await t.tx.rollback();
      await db.close();
    }
  });
});
