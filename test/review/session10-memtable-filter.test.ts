/**
 * Review (session 10): the memtable bloom filter. A false negative there is silent corruption:
 * the read falls through to the tables and returns an OLDER value (or a deleted one). Attacked:
 *   - MemTable alone (the API refuses empty keys; the memtable takes them): a filter far below its load (capacity 0: the 32 Kibit minimum, 20k keys),
 *     empty keys, 1-5000-byte keys, keys inserted from odd offsets of a larger buffer (addFrom's
 *     ranges hash the same bytes as get's key), deletion-only keys: get with the hash, get
 *     without it and newestSeq agree with a model at random sequence numbers;
 *   - a database whose tables hold old values and whose memtable (mem, then imm while a
 *     main-thread flush is in progress, then the WAL replayed at open after a crash) holds newer
 *     values and DELETIONS, read live and through snapshots pinned in between;
 *   - transactions whose only conflicting write is a deletion (or a put) still in mem / imm:
 *     commit must fail with CONFLICT (newestSeq goes through the filter).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { bloomHash } from '../../src/sstable/bloom-filter.js';
import { KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { assertLightning } from '../harness/api-helpers.js';

invariants.enabled = true;

function randomKey(r: Random): Buffer {
  const c = r.nextInt(20);
  const len = c === 0 ? 0 : c === 1 ? 1 + r.nextInt(5000) : c < 5 ? 1 + r.nextInt(300) : 1 + r.nextInt(16);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = r.nextInt(3) === 0 ? r.nextInt(256) : 0x61 + r.nextInt(4);
  return b;
}

test('session10: memtable filter never hides a key (overloaded filter, odd offsets, deletions, empty and long keys)', async () => {
  await withSeed('session10 memtable filter unit', async (seed) => {
    const r = new Random(seed);
    for (const capacity of [0, 4096, 1 << 20]) {
      const mem = new MemTable(seed, capacity);
      // key (latin1) -> versions [seq, kind, value]
      const model = new Map<string, [number, number, Buffer][]>();
      const keys: Buffer[] = [];
      let seq = 1;
      for (let i = 0; i < 20_000; i++) {
        const key = keys.length > 0 && r.nextInt(5) === 0 ? (keys[r.nextInt(keys.length)] as Buffer) : randomKey(r);
        const kind = r.nextInt(4) === 0 ? KIND_DELETE : KIND_VALUE;
        const value = kind === KIND_DELETE ? Buffer.alloc(0) : Buffer.alloc(r.nextInt(300), i & 0xff);
        // Key and value at odd offsets of one larger buffer, as applyBatch passes them.
        const pre = 1 + r.nextInt(9);
        const src = Buffer.alloc(pre + key.length + 3 + value.length + 5, 0xcc);
        key.copy(src, pre);
        value.copy(src, pre + key.length + 3);
        mem.addFrom(seq, kind, src, pre, pre + key.length, src, pre + key.length + 3, pre + key.length + 3 + value.length);
        const id = key.toString('latin1');
        if (!model.has(id)) {
          model.set(id, []);
          keys.push(key);
        }
        (model.get(id) as [number, number, Buffer][]).push([seq, kind, value]);
        seq += 1 + r.nextInt(3);
      }
      for (const key of keys) {
        const versions = model.get(key.toString('latin1')) as [number, number, Buffer][];
        const probe = Buffer.from(key); // a different buffer with the same bytes
        const h = bloomHash(probe);
        assert.ok(mem.mayContainHash(h), `capacity ${capacity}: filter false negative (key length ${key.length})`);
        const newest = versions[versions.length - 1] as [number, number, Buffer];
        assert.equal(mem.newestSeq(probe), newest[0], `capacity ${capacity}: newestSeq`);
        for (let t = 0; t < 3; t++) {
          const at = t === 0 ? seq : (versions[r.nextInt(versions.length)] as [number, number, Buffer])[0] + r.nextInt(2) - (t === 2 ? 1 : 0);
          let visible: [number, number, Buffer] | undefined;
          for (const v of versions) if (v[0] <= at) visible = v;
          for (const res of [mem.get(probe, at, h), mem.get(probe, at)]) {
            if (visible === undefined) assert.equal(res.found, false, `capacity ${capacity}: invisible version found`);
            else if (visible[1] === KIND_DELETE) assert.ok(res.found && res.deleted, `capacity ${capacity}: deletion at ${at} not seen`);
            else assert.ok(res.found && !res.deleted && res.value.equals(visible[2]), `capacity ${capacity}: value at ${at}`);
          }
        }
      }
    }
  });
});

/** Keys shared by the tables (old values) and the memtable (newer values and deletions). */
function dbKey(i: number): string {
  return i % 7 === 0 ? `long-${'x'.repeat(300)}-${i}` : `key${String(i).padStart(5, '0')}`;
}

interface Held {
  snap: Snapshot;
  model: Map<string, string | undefined>;
}

function checkReads(db: Database, model: Map<string, string | undefined>, held: Held[], what: string): void {
  for (const [k, v] of model) assert.equal(db.getSync(k)?.toString(), v, `${what}: get ${k.slice(0, 20)}`);
  for (const [i, h] of held.entries()) {
    for (const [k, v] of h.model) assert.equal(h.snap.getSync(k)?.toString(), v, `${what}: snapshot ${i} get ${k.slice(0, 20)}`);
  }
}

test('session10: deletions and overwrites in mem, imm (flush in progress) and a replayed WAL shadow the tables', async () => {
  await withSeed('session10 memtable filter db', async (seed) => {
    const r = new Random(seed);
    const fs = new MemFs();
    // Main-thread flushes on MemFs, in slices: reads run between the slices while imm is set.
    let db = await open('/db', { fs, memtableSize: 48 * 1024, sync: true, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    const model = new Map<string, string | undefined>();
    for (let i = 0; i < 300; i++) model.set(dbKey(i), `table-${i}`);
    model.set('\x00', 'one-byte-key-in-table'); // (empty keys are refused by the API)
    await db.batch([...model].map(([key, value]) => ({ type: 'put' as const, key, value: value as string })));
    await db.compactRange(); // everything in the levels
    const held: Held[] = [{ snap: db.snapshot(), model: new Map(model) }];
    let sawImm = 0;
    for (let round = 0; round < 12; round++) {
      const ops: ({ type: 'put'; key: string; value: string } | { type: 'del'; key: string })[] = [];
      for (let j = 0; j < 40; j++) {
        const k = r.nextInt(10) === 0 ? '\x00' : dbKey(r.nextInt(300));
        if (r.nextInt(2) === 0) {
          ops.push({ type: 'del', key: k });
          model.set(k, undefined);
        } else {
          const v = `r${round}-${j}-${'p'.repeat(r.nextInt(2000))}`;
          ops.push({ type: 'put', key: k, value: v });
          model.set(k, v);
        }
      }
      // The batch may rotate the memtable; its flush then runs on this thread in slices.
      await db.batch(ops);
      // Reads while that flush is in progress (imm set), between its slices.
      for (let spin = 0; spin < 30 && db.stats().immutableMemtables > 0; spin++) {
        sawImm++;
        checkReads(db, model, held, `round ${round} spin ${spin} (imm)`);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      checkReads(db, model, held, `round ${round}`);
      if (r.nextInt(3) === 0) held.push({ snap: db.snapshot(), model: new Map(model) });
    }
    assert.ok(sawImm > 0, 'never read while a flush was in progress');
    // Crash (writes were synced): the reopened memtable comes from the WAL.
    const crashed = fs.crashClone();
    for (const h of held) h.snap.release();
    await db.close();
    db = await open('/db', { fs: crashed, memtableSize: 48 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    assert.ok(db.stats().recovery.walRecordsReplayed > 0, 'WAL replayed');
    checkReads(db, model, [], 'after WAL replay');
    await db.close();
  });
});

test('session10: a conflicting write still in mem or imm (deletions too) fails the commit', async () => {
  for (const where of ['mem', 'imm'] as const) {
    for (const kind of ['put', 'del'] as const) {
     for (const isolation of ['snapshot', 'serializable'] as const) {
      const fs = new MemFs();
      const db = await open('/db', { fs, memtableSize: 32 * 1024, sync: false, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
      for (const k of ['\x00', 'a', `long-${'y'.repeat(500)}`]) {
        await db.put(k, 'v0');
        await db.compactRange(); // the key's first version is in a table
        const txn = db.beginTransaction({ isolation });
        assert.equal(txn.getSync(k)?.toString(), 'v0');
        // snapshot isolation validates the keys written; serializable also the keys read.
        if (isolation === 'snapshot') txn.put(k, 'mine');
        else txn.put(`${k}-other`, 'x');
        if (kind === 'put') await db.put(k, 'v1');
        else await db.delete(k);
        let flush: Promise<void> | null = null;
        if (where === 'imm') {
          // Fill the memtable so the next write rotates; commit while its flush is in progress.
          const big = 'z'.repeat(40 * 1024);
          flush = db.put('filler', big);
          await flush;
          await db.put('filler2', 'x'); // rotation: mem with `k` becomes imm
          assert.equal(db.stats().immutableMemtables, 1, `${where}/${kind}: a flush is in progress`);
        }
        let err: unknown = null;
        try {
          await txn.commit();
        } catch (e) {
          err = e;
        }
        assertLightning(err, 'CONFLICT', `${where}/${kind}/${isolation} key ${k.slice(0, 10)}: commit must conflict`);
        await db.idle();
      }
      await db.close();
     }
    }
  }
});
