// Adapter for classic-level (LevelDB). Variant 'getSync' uses db.getSync() (classic-level >= 3) for
// point reads; iterators are async only. Durable writes use { sync: true }.
import { ScanTally, installedVersion } from './common.mjs';

export const info = { name: 'classic-level', variants: ['default', 'getSync'], txn: false };

let ClassicLevel = null;

export async function load() {
  ({ ClassicLevel } = await import('classic-level'));
  const hasGetSync = typeof ClassicLevel.prototype.getSync === 'function';
  if (!hasGetSync) info.variants = ['default'];
  return { version: installedVersion('classic-level'), getSync: hasGetSync };
}

export async function open(dir, { cacheBytes }) {
  const db = new ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', cacheSize: cacheBytes });
  await db.open();
  const h = {
    batchPut: (ops) => db.batch(ops, { sync: false }),
    put: (key, value, sync) => db.put(key, value, { sync }),
    get: (key) => db.get(key),
    async scan(start, n) {
      const it = db.iterator({ gte: start, limit: n });
      let count = 0;
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
      const it = db.iterator();
      try {
        for (;;) {
          const rows = await it.nextv(1000);
          if (rows.length === 0) break;
          for (const [k, v] of rows) t.add(k, v);
        }
      } finally {
        await it.close();
      }
      return t.result();
    },
    close: () => db.close(),
  };
  if (info.variants.includes('getSync')) h.getSync = (key) => db.getSync(key);
  return h;
}
