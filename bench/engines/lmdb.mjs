// Adapter for lmdb (lmdb-js). Reads are synchronous (its only read API). Writes are async and
// batched by lmdb-js per event-loop turn. Non-durable workloads open with noSync: true (survives a
// process kill, not a power loss); durable workloads open with the default sync settings and each
// put awaits its commit and then `db.flushed` (overlappingSync is the default on Linux, so the put
// promise alone may resolve before the fsync).
import { ScanTally, installedVersion, planTransfer } from './common.mjs';
import { balanceBytes, parseBalance } from '../workloads.mjs';

export const info = { name: 'lmdb', variants: ['default'], txn: true };

let lmdb = null;

export async function load() {
  lmdb = await import('lmdb');
  return { version: installedVersion('lmdb') };
}

export async function open(dir, { durable }) {
  const db = lmdb.open({
    path: dir,
    keyEncoding: 'binary',
    encoding: 'binary',
    compression: false,
    ...(durable ? {} : { noSync: true }),
  });
  return {
    async batchPut(ops) {
      await db.batch(() => {
        for (const op of ops) db.put(op.key, op.value);
      });
    },
    async put(key, value, sync) {
      await db.put(key, value);
      if (sync) await db.flushed;
    },
    getSync: (key) => db.getBinary(key),
    scanSync(start, n) {
      let count = 0;
      for (const { value } of db.getRange({ start, limit: n })) {
        if (value.length > 0) count++;
      }
      return count;
    },
    fullScanSync() {
      const t = new ScanTally();
      for (const { key, value } of db.getRange({})) t.add(key, value);
      return t.result();
    },
    async transfer(from, to, amount) {
      return db.transaction(() => {
        const w = planTransfer(parseBalance(db.getBinary(from)), parseBalance(db.getBinary(to)), amount, balanceBytes);
        if (w === null) return false;
        db.put(from, w[0]);
        db.put(to, w[1]);
        return true;
      });
    },
    close: () => db.close(),
  };
}
