// Adapter for our engine (Lightning DB), loaded from the built library (../dist/index.js by default).
// Variant 'getSync' uses getSync() and synchronous iteration instead of get() and `for await`, and
// for durable writes opens with inlineSync (fdatasync on the event-loop thread, as better-sqlite3).
// Both block the event loop for speed; the default row does neither.
import { ScanTally, planTransfer } from './common.mjs';
import { balanceBytes, parseBalance } from '../workloads.mjs';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const info = { name: 'lightning-db', variants: ['default', 'getSync'], ours: true, txn: true, syncDurableWrites: true };

let lib = null;
let libUrl = null;

export async function load({ lib: url }) {
  libUrl = url;
  lib = await import(url);
  if (typeof lib.open !== 'function') throw new Error(`${url} does not export open()`);
  let version = null;
  try {
    version = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../package.json', url)), 'utf8')).version;
  } catch {
    // version unknown
  }
  return { version, from: libUrl };
}

export async function open(dir, { cacheBytes, durable = false, variant = 'default' }) {
  const db = await lib.open(dir, { blockCacheSize: cacheBytes, ...(durable && variant === 'getSync' ? { inlineSync: true } : {}) });
  return {
    batchPut: (ops) => db.batch(ops, { sync: false }),
    put: (key, value, sync) => db.put(key, value, { sync }),
    get: (key) => db.get(key),
    getSync: (key) => db.getSync(key),
    async scan(start, n) {
      let count = 0;
      for await (const entry of db.iterator({ gte: start, limit: n })) {
        if (entry[1].length > 0) count++;
      }
      return count;
    },
    scanSync(start, n) {
      let count = 0;
      for (const entry of db.iterator({ gte: start, limit: n })) {
        if (entry[1].length > 0) count++;
      }
      return count;
    },
    async fullScan() {
      const t = new ScanTally();
      for await (const [k, v] of db.iterator()) t.add(k, v);
      return t.result();
    },
    fullScanSync() {
      const t = new ScanTally();
      for (const [k, v] of db.iterator()) t.add(k, v);
      return t.result();
    },
    // Optimistic snapshot-isolation transaction (the default), retried on CONFLICT; non-durable
    // like the other engines' txn runs.
    transfer(from, to, amount) {
      return db.transaction(
        async (tx) => {
          const w = planTransfer(parseBalance(await tx.get(from)), parseBalance(await tx.get(to)), amount, balanceBytes);
          if (w === null) return false;
          tx.put(from, w[0]);
          tx.put(to, w[1]);
          return true;
        },
        { sync: false, retries: 50 },
      );
    },
    stats: () => db.stats(),
    close: () => db.close(),
  };
}
