// Adapter for better-sqlite3 (SQLite, synchronous API). One WITHOUT ROWID table (k BLOB PRIMARY
// KEY, v BLOB). journal_mode=WAL; synchronous=FULL for durable workloads (fillsync, fillsync16),
// NORMAL otherwise (WAL + NORMAL survives a process kill, not a power loss). Page cache set to the
// same byte budget as the other engines' block caches.
import { ScanTally, installedVersion, planTransfer } from './common.mjs';
import { balanceBytes, parseBalance } from '../workloads.mjs';

export const info = { name: 'better-sqlite3', variants: ['default'], txn: true };

let Database = null;

export async function load() {
  Database = (await import('better-sqlite3')).default;
  const probe = new Database(':memory:');
  const sqlite = probe.prepare('select sqlite_version() as v').get().v;
  probe.close();
  return { version: installedVersion('better-sqlite3'), sqlite };
}

export async function open(dir, { durable, cacheBytes }) {
  const db = new Database(`${dir}/db.sqlite`);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
  db.pragma(`cache_size = -${Math.round(cacheBytes / 1024)}`);
  db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
  const ins = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
  const sel = db.prepare('SELECT v FROM kv WHERE k = ?').pluck();
  const range = db.prepare('SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?').raw();
  const all = db.prepare('SELECT k, v FROM kv ORDER BY k').raw();
  const insertMany = db.transaction((ops) => {
    for (const op of ops) ins.run(op.key, op.value);
  });
  const transfer = db.transaction((from, to, amount) => {
    const w = planTransfer(parseBalance(sel.get(from)), parseBalance(sel.get(to)), amount, balanceBytes);
    if (w === null) return false;
    ins.run(from, w[0]);
    ins.run(to, w[1]);
    return true;
  });
  return {
    async batchPut(ops) {
      insertMany(ops);
    },
    async put(key, value) {
      ins.run(key, value);
    },
    getSync: (key) => sel.get(key),
    scanSync(start, n) {
      let count = 0;
      for (const row of range.iterate(start, n)) {
        if (row[1].length > 0) count++;
      }
      return count;
    },
    fullScanSync() {
      const t = new ScanTally();
      for (const [k, v] of all.iterate()) t.add(k, v);
      return t.result();
    },
    async transfer(from, to, amount) {
      return transfer(from, to, amount);
    },
    async close() {
      db.close(); // checkpoints and removes the WAL
    },
  };
}
