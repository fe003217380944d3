/**
 * Review (session 10): copyWithViews on the write path — encodeBatchPayload (one DataView per
 * source ArrayBuffer, switched when the buffer changes) and SkipList.insert (a cached DataView of
 * the last source payload, the arena's view after growth). Values of 30-260 bytes (both sides
 * of the 33 and 256 thresholds) come from:
 *   - views at odd offsets (1, 2, 3, 5) of larger ArrayBuffers, alternating A, B, A (the cached
 *     view must follow the buffer back), plain Uint8Arrays (not Buffers), SharedArrayBuffers,
 *     Node's pool (Buffer.from(string)), whole-ArrayBuffer views;
 *   - sources mutated by the caller right after db.batch() returns (before it resolves): the
 *     stored value is the one passed;
 *   - one batch far larger than the memtable (the arena grows during the batch), then batches
 *     after it (the cached view must not refer to a dropped arena or payload).
 * Checked by point reads, a scan, after a flush (tables), after a crash (WAL replay) and after a
 * clean reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { collect } from '../harness/api-helpers.js';

invariants.enabled = true;

const SIZES = [30, 31, 32, 33, 34, 35, 36, 37, 64, 99, 100, 101, 127, 128, 255, 256, 257, 260];

function fillRandom(r: Random, u8: Uint8Array, start: number, n: number): void {
  for (let i = 0; i < n; i++) u8[start + i] = r.nextInt(256);
}

async function checkDb(db: Database, model: Map<string, Buffer>, what: string): Promise<void> {
  for (const [k, v] of model) {
    const got = db.getSync(k);
    assert.ok(got !== undefined && got.equals(v), `${what}: get ${k} (${v.length} bytes): ${got?.toString('hex')} vs ${v.toString('hex')}`);
  }
  const scan = await collect(db.iterator());
  assert.equal(scan.length, model.size, `${what}: scan count`);
  for (const [k, v] of scan) assert.equal(v, (model.get(k) as Buffer).toString('latin1'), `${what}: scan ${k}`);
}

test('session10: values copied through DataViews from odd offsets, shared / alternating / mutated buffers', async () => {
  await withSeed('session10 copy views', async (seed) => {
    const r = new Random(seed);
    const fs = new MemFs();
    const opts = { fs, memtableSize: 16 * 1024, sync: true, l0CompactionTrigger: 4 };
    let db = await open('/db', opts);
    const model = new Map<string, Buffer>();
    let n = 0;
    const sab = new SharedArrayBuffer(64 * 1024);
    const bufA = new ArrayBuffer(32 * 1024);
    const bufB = new ArrayBuffer(32 * 1024);
    for (let round = 0; round < 40; round++) {
      const ops: { type: 'put'; key: Uint8Array | string; value: Uint8Array | string }[] = [];
      const mutate: (() => void)[] = [];
      // Round 7 is one batch of ~6x the memtable: the arena grows mid-batch.
      const count = round === 7 ? 500 : 1 + r.nextInt(60);
      let cursorA = 1;
      let cursorB = 2;
      let cursorS = 3;
      for (let i = 0; i < count; i++) {
        const size = SIZES[r.nextInt(SIZES.length)] as number;
        const key = `k${String(n++).padStart(6, '0')}`;
        let value: Uint8Array | string;
        const src = r.nextInt(7);
        if (src === 0 || src === 1) {
          // Alternate between two ArrayBuffers at odd offsets.
          const useA = (i + src) % 2 === 0;
          const ab = useA ? bufA : bufB;
          const off = useA ? cursorA : cursorB;
          if (off + size + 8 > ab.byteLength) continue;
          const u8 = src === 0 ? Buffer.from(ab, off, size) : new Uint8Array(ab, off, size);
          fillRandom(r, u8, 0, size);
          value = u8;
          if (useA) cursorA += size + [1, 2, 3, 5][r.nextInt(4)]!;
          else cursorB += size + [1, 2, 3, 5][r.nextInt(4)]!;
        } else if (src === 2) {
          if (cursorS + size + 8 > sab.byteLength) continue;
          const u8 = Buffer.from(sab, cursorS, size);
          fillRandom(r, u8, 0, size);
          value = u8;
          cursorS += size + 1 + r.nextInt(4);
        } else if (src === 3) {
          // Node's pool (a shared 8 KiB slab at some offset).
          let s = '';
          for (let j = 0; j < size; j++) s += String.fromCharCode(0x21 + r.nextInt(90));
          value = Buffer.from(s, 'latin1');
        } else if (src === 4) {
          const whole = new Uint8Array(new ArrayBuffer(size)); // a whole ArrayBuffer, offset 0
          fillRandom(r, whole, 0, size);
          value = whole;
        } else {
          // A Buffer over a larger ArrayBuffer that the caller overwrites right after the call.
          const ab = new ArrayBuffer(size + 16);
          const u8 = Buffer.from(ab, 7, size);
          fillRandom(r, u8, 0, size);
          value = u8;
          mutate.push(() => new Uint8Array(ab).fill(0xee));
        }
        const copy = Buffer.from(typeof value === 'string' ? Buffer.from(value) : value);
        model.set(key, copy);
        ops.push({ type: 'put', key: r.nextInt(3) === 0 ? Buffer.from(key) : key, value });
      }
      if (ops.length === 0) continue;
      const p = db.batch(ops);
      for (const m of mutate) m(); // the caller reuses its buffers at once
      // ... and the shared / alternating buffers too.
      new Uint8Array(bufA).fill(0xaa);
      new Uint8Array(bufB).fill(0xbb);
      new Uint8Array(sab).fill(0xcc);
      await p;
      if (round % 10 === 9) await checkDb(db, model, `round ${round}`);
      if (round === 20) {
        await db.compactRange();
        await checkDb(db, model, 'after compactRange');
      }
    }
    await checkDb(db, model, 'end');
    const crashed = fs.crashClone();
    await db.close();
    db = await open('/db', opts);
    await checkDb(db, model, 'after reopen');
    await db.close();
    const db2 = await open('/db', { ...opts, fs: crashed });
    await checkDb(db2, model, 'after crash (WAL replay)');
    await db2.close();
  });
});
