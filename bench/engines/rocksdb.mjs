// Adapter for @nxtedition/rocksdb (RocksDB behind abstract-level 1.x). Point reads use getMany([key])
// because get() of an absent key rejects with LEVEL_NOT_FOUND (get() itself calls getMany).
// Durable writes use { sync: true }. Note: this binding writes synchronously on the JS thread
// (batch_write), so concurrent writers are serialized and get no group commit.
import { ScanTally, installedVersion } from './common.mjs';

export const info = { name: 'rocksdb', variants: ['default'], txn: false };

let RocksLevel = null;

export async function load() {
  ({ RocksLevel } = await import('@nxtedition/rocksdb'));
  return { version: installedVersion('@nxtedition/rocksdb') };
}

export async function open(dir, { cacheBytes }) {
  const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', cacheSize: cacheBytes });
  await db.open();
  const iterate = async (opts, onRows) => {
    const it = db.iterator(opts);
    try {
      for (;;) {
        const rows = await it.nextv(1000);
        if (rows.length === 0) break;
        if (onRows(rows) === false) break;
      }
    } finally {
      await it.close();
    }
  };
  return {
    batchPut: (ops) => db.batch(ops, { sync: false }),
    // put() drops write options (it builds a chained batch and writes it without them), so single
    // puts go through batch() to honour { sync }.
    put: (key, value, sync) => db.batch([{ type: 'put', key, value }], { sync }),
    get: async (key) => (await db.getMany([key]))[0],
    async scan(start, n) {
      let count = 0;
      const it = db.iterator({ gte: start, limit: n });
      try {
        for (;;) {
          const rows = await it.nextv(n - count);
          if (rows.length === 0) break;
          count += rows.length;
          if (count >= n) break;
        }
      } finally {
        await it.close();
      }
      return count;
    },
    async fullScan() {
      const t = new ScanTally();
      await iterate({}, (rows) => {
        for (const [k, v] of rows) t.add(k, v);
      });
      return t.result();
    },
    close: () => db.close(),
  };
}
