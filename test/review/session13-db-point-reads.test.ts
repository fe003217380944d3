/**
 * Review (session 13): DB-level point reads after the read path moved to TableReader.find
 * (BlockPointSearch) and prefix decoding of compressed blocks the cache will not admit.
 *
 * Several databases run the same random workload in lockstep (MemFs): no block cache (every
 * compressed block goes through the prefix decoder), a 64 KiB cache (admission rejects most
 * misses), a 64 MiB cache, without bloom filters (every table is searched, so lookups often end
 * past a block's last key), uncompressed. Every getSync/get, snapshot read and serializable
 * transaction (whose commit check uses newestSeqInTables) is compared with a Map model; conflicts
 * must be reported exactly when a key the transaction read was overwritten (also when the newer
 * version was flushed into a table before the commit). Cache counters must stay consistent.
 * Replay: SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type Snapshot, type Transaction } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { isLightningError } from '../../src/base/errors.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const KiB = 1024;

class Keys {
  readonly pool: Buffer[] = [];
  constructor(private readonly rnd: Random) {}
  fresh(): Buffer {
    const r = this.rnd.nextInt(100);
    let len: number;
    if (r < 60) len = 1 + this.rnd.nextInt(10);
    else if (r < 85) len = 60 + this.rnd.nextInt(10);
    else len = 250 + this.rnd.nextInt(300);
    const b = Buffer.alloc(len);
    const shared = len > 40 ? len - 1 - this.rnd.nextInt(4) : 0;
    for (let i = 0; i < len; i++) b[i] = i < shared ? 0x6b : ([0x00, 0x61, 0x62, 0x63, 0xff, 0x80][this.rnd.nextInt(6)] as number);
    return b;
  }
  next(): Buffer {
    if (this.pool.length > 0 && this.rnd.nextInt(4) !== 0) {
      const base = this.pool[this.rnd.nextInt(this.pool.length)] as Buffer;
      const m = this.rnd.nextInt(8);
      if (m === 0 && base.length > 1) return base.subarray(0, base.length - 1); // a neighbour, often absent
      if (m === 1) return Buffer.concat([base, Buffer.from([0])]);
      return base;
    }
    const k = this.fresh();
    if (this.pool.length < 600) this.pool.push(k);
    else this.pool[this.rnd.nextInt(this.pool.length)] = k;
    return k;
  }
}

function value(rnd: Random, n: number): Buffer {
  const r = rnd.nextInt(50);
  let len: number;
  if (r === 0) len = 0;
  else if (r === 1) len = 3000 + rnd.nextInt(9000); // larger than blocks and slots
  else len = 5 + rnd.nextInt(80);
  const b = Buffer.alloc(len);
  const tag = Buffer.from(`v${n}:`);
  tag.copy(b, 0, 0, Math.min(tag.length, len));
  for (let j = tag.length; j < len; j++) b[j] = j % 9 === 0 ? rnd.nextInt(256) : 0x61 + (j % 3);
  return b;
}

const hexOf = (b: Buffer): string => b.toString('hex');

interface Db {
  name: string;
  db: Database;
}

test('getSync/get/snapshots/serializable transactions agree with a model for no, tiny and big caches', async () => {
  await withSeed('session13 db point reads', async (seed) => {
    const rnd = new Random(seed);
    const blockSize = [256, 512, 1024, 4096][rnd.nextInt(4)] as number;
    const base = { createIfMissing: true, memtableSize: 48 * KiB, blockSize, sync: false, targetFileSize: 64 * KiB, levelBaseSize: 256 * KiB, compactionThread: 'main' as const };
    const configs = [
      { name: 'no-cache', blockCacheSize: 0, compression: 'lz' as const },
      { name: 'cache-64k', blockCacheSize: 64 * KiB, compression: 'lz' as const },
      { name: 'cache-64k-nobloom', blockCacheSize: 64 * KiB, compression: 'lz' as const, bloomBitsPerKey: 0 },
      { name: 'no-cache-nobloom', blockCacheSize: 0, compression: 'lz' as const, bloomBitsPerKey: 0 },
      { name: 'cache-64m', blockCacheSize: 64 * KiB * KiB, compression: 'lz' as const },
      { name: 'cache-64k-raw', blockCacheSize: 64 * KiB, compression: 'none' as const, bloomBitsPerKey: 0 },
    ];
    const dbs: Db[] = [];
    for (const c of configs) {
      const { name, ...opts } = c;
      dbs.push({ name, db: await open('/db', { ...base, ...opts, fs: new MemFs() }) });
    }
    const keys = new Keys(rnd);
    const model = new Map<string, Buffer>();
    const snaps: { state: Map<string, Buffer>; handles: Snapshot[] }[] = [];
    let conflicts = 0;
    let commits = 0;
    const ops = 2500;
    const where = (op: number, what: string): string => `op ${op} (SEED=${seed}, blockSize ${blockSize}): ${what}`;

    const checkGet = async (op: number, key: Buffer, useAsync: boolean): Promise<void> => {
      const want = model.get(hexOf(key));
      for (const { name, db } of dbs) {
        const got = useAsync ? await db.get(key) : db.getSync(key);
        assert.ok(want === undefined ? got === undefined : got !== undefined && got.equals(want), where(op, `${name} get ${hexOf(key).slice(0, 40)}: got ${got === undefined ? 'undefined' : got.length + 'B ' + got.subarray(0, 12).toString('latin1')}, want ${want === undefined ? 'undefined' : want.length + 'B ' + want.subarray(0, 12).toString('latin1')}`));
      }
    };

    for (let op = 0; op < ops; op++) {
      const r = rnd.nextInt(100);
      if (r < 40) {
        const k = keys.next();
        const v = value(rnd, op);
        model.set(hexOf(k), v);
        for (const { db } of dbs) await db.put(k, v);
      } else if (r < 48) {
        const k = keys.next();
        model.delete(hexOf(k));
        for (const { db } of dbs) await db.delete(k);
      } else if (r < 75) {
        await checkGet(op, keys.next(), rnd.nextInt(4) === 0);
      } else if (r < 80) {
        // many versions of one key, some flushed between
        const k = keys.next();
        for (let i = 0; i < 5 + rnd.nextInt(30); i++) {
          const v = value(rnd, op * 1000 + i);
          model.set(hexOf(k), v);
          for (const { db } of dbs) await db.put(k, v);
        }
        await checkGet(op, k, false);
      } else if (r < 84) {
        if (snaps.length >= 4) {
          const s = snaps.shift();
          for (const h of s?.handles ?? []) h.release();
        }
        snaps.push({ state: new Map(model), handles: dbs.map(({ db }) => db.snapshot()) });
      } else if (r < 92 && snaps.length > 0) {
        const s = snaps[rnd.nextInt(snaps.length)] as (typeof snaps)[number];
        for (let i = 0; i < 5; i++) {
          const k = i === 0 || keys.pool.length === 0 ? keys.next() : (keys.pool[rnd.nextInt(keys.pool.length)] as Buffer);
          const want = s.state.get(hexOf(k));
          for (let d = 0; d < dbs.length; d++) {
            const got = (s.handles[d] as Snapshot).getSync(k);
            assert.ok(want === undefined ? got === undefined : got !== undefined && got.equals(want), where(op, `${dbs[d]?.name} snapshot get ${hexOf(k).slice(0, 40)}`));
          }
        }
      } else if (r < 96) {
        // serializable transaction: read 1-3 keys, maybe overwrite one from outside, maybe flush
        const readKeys = Array.from({ length: 1 + rnd.nextInt(3) }, () => (keys.pool.length > 0 && rnd.nextInt(3) !== 0 ? (keys.pool[rnd.nextInt(keys.pool.length)] as Buffer) : keys.next()));
        const txs: Transaction[] = dbs.map(({ db }) => db.beginTransaction({ isolation: 'serializable' }));
        for (const k of readKeys) {
          const want = model.get(hexOf(k));
          for (let d = 0; d < dbs.length; d++) {
            const got = (txs[d] as Transaction).getSync(k);
            assert.ok(want === undefined ? got === undefined : got !== undefined && got.equals(want), where(op, `${dbs[d]?.name} tx get`));
          }
        }
        const outside = rnd.nextInt(3);
        let shouldConflict = false;
        if (outside > 0) {
          const k = outside === 1 ? (readKeys[rnd.nextInt(readKeys.length)] as Buffer) : keys.next();
          if (readKeys.some((x) => x.equals(k))) shouldConflict = true;
          const v = value(rnd, op);
          model.set(hexOf(k), v);
          for (const { db } of dbs) await db.put(k, v);
        }
        if (rnd.nextInt(2) === 0) {
          // the newer versions move from the memtable into tables before the commit check
          for (const { db } of dbs) await db.compactRange(rnd.nextInt(2) === 0 ? undefined : readKeys[0], undefined);
        }
        const wk = Buffer.from(`txw-${op}`); // fresh: a write conflicts only if its key changed since the snapshot
        const wv = value(rnd, op + 7);
        for (const tx of txs) tx.put(wk, wv);
        const results: string[] = [];
        for (let d = 0; d < dbs.length; d++) {
          try {
            await (txs[d] as Transaction).commit();
            results.push('ok');
          } catch (e) {
            assert.ok(isLightningError(e, 'CONFLICT'), where(op, `${dbs[d]?.name} commit: ${String(e)}`));
            results.push('conflict');
          }
        }
        const expected = shouldConflict ? 'conflict' : 'ok';
        for (let d = 0; d < dbs.length; d++) assert.equal(results[d], expected, where(op, `${dbs[d]?.name} commit (read ${readKeys.map((k) => hexOf(k).slice(0, 16)).join(',')}): ${results.join(' ')}`));
        if (!shouldConflict) {
          model.set(hexOf(wk), wv);
          commits++;
        } else conflicts++;
      } else if (r < 98) {
        const a = keys.next();
        const b = keys.next();
        const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
        const full = rnd.nextInt(3) === 0;
        for (const { db } of dbs) await (full ? db.compactRange() : db.compactRange(lo, hi));
      } else {
        // sweep: every known key, on every DB
        for (const k of keys.pool) await checkGet(op, k, false);
      }
      if (op % 200 === 0) {
        for (const { name, db } of dbs) {
          const s = db.stats().blockCache;
          if (s === null) continue;
          assert.ok(s.usedBytes <= s.capacityBytes, `${name}: cache over budget`);
          assert.ok(s.hits >= 0 && s.misses >= 0, `${name}: counters`);
        }
      }
    }
    for (const k of keys.pool) await checkGet(ops, k, false);
    for (const { db } of dbs) await db.compactRange();
    for (const k of keys.pool) await checkGet(ops + 1, k, rnd.nextInt(2) === 0);
    for (const s of snaps) {
      for (const k of keys.pool.slice(0, 200)) {
        const want = s.state.get(hexOf(k));
        for (let d = 0; d < dbs.length; d++) {
          const got = (s.handles[d] as Snapshot).getSync(k);
          assert.ok(want === undefined ? got === undefined : got !== undefined && got.equals(want), `final (SEED=${seed}): ${dbs[d]?.name} snapshot get ${hexOf(k).slice(0, 40)}`);
        }
      }
      for (const h of s.handles) h.release();
    }
    const tiny = dbs[1]?.db.stats().blockCache;
    assert.ok(tiny !== null && tiny !== undefined && tiny.misses > 0, 'the small cache saw misses');
    assert.ok(conflicts > 0 && commits > 0, `transactions: ${conflicts} conflicts, ${commits} commits`);
    for (const { db } of dbs) await db.close();
  });
});
