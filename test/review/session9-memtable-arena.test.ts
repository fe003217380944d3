/**
 * Review (session 9): memtable arenas allocated once at memtableSize (min 64 KiB, capped at
 * 256 MiB) and (since session 12) handed from each flushed memtable to the next.
 *   - arenas of every edge size filled past their capacity, including single entries far larger
 *     than the arena: order, point reads and values handed out before the arena grew stay right;
 *   - chains of retired memtables' buffers reused by memtables of other shapes (few large entries,
 *     many small ones, and the reverse), each built into a table (buildFlushTable) and read back;
 *   - databases with memtableSize at the minimum and at the maximum, and single batches far
 *     larger than the memtable (MemFs, main-thread flushes that refill the spare export).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemTable, type MemTableStorage } from '../../src/memtable/memtable.js';
import { NIL, firstSorted, nextSorted, sortedKeyLength, sortedKeyOffset, sortedValueLength, type SortedEntries } from '../../src/memtable/skiplist.js';
import { KIND_DELETE, KIND_VALUE, compareInternalKeys, makeInternalKey } from '../../src/base/internal-key.js';
import { buildFlushTable } from '../../src/db/flush-table.js';
import { tableFileName } from '../../src/base/file-names.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { open, type OpenOptions } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';
import { collect } from '../harness/api-helpers.js';

interface Put {
  ikey: Buffer;
  value: Buffer;
}

function fillMem(m: MemTable, rng: Random, n: number, seqStart: number, maxValue: number): Put[] {
  const puts: Put[] = [];
  for (let i = 0; i < n; i++) {
    const user = Buffer.from(`u${String(rng.nextInt(n * 2)).padStart(6, '0')}`);
    const seq = seqStart + i;
    const kind = rng.nextInt(8) === 0 ? KIND_DELETE : KIND_VALUE;
    const value = kind === KIND_DELETE ? Buffer.alloc(0) : Buffer.alloc(rng.nextInt(maxValue + 1), (seq * 13) & 0xff);
    if (value.length >= 4) value.writeUInt32LE(seq >>> 0, 0);
    m.add(seq, kind, user, value);
    puts.push({ ikey: makeInternalKey(user, seq, kind), value });
  }
  puts.sort((a, b) => compareInternalKeys(a.ikey, b.ikey));
  return puts;
}

function listExport(e: SortedEntries): Put[] {
  const bytes = Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  const out: Put[] = [];
  for (let x = firstSorted(e); x !== NIL; x = nextSorted(e, x)) {
    const off = sortedKeyOffset(e, x);
    const keyEnd = off + sortedKeyLength(e, x);
    out.push({ ikey: bytes.subarray(off, keyEnd), value: bytes.subarray(keyEnd, keyEnd + sortedValueLength(e, x)) });
  }
  assert.equal(out.length, e.count, 'walk length');
  return out;
}

function samePuts(got: Put[], want: Put[], what: string): void {
  assert.equal(got.length, want.length, `${what}: count`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as Put;
    const w = want[i] as Put;
    if (!g.ikey.equals(w.ikey) || !g.value.equals(w.value)) assert.fail(`${what}: entry ${i} differs`);
  }
}

test('arenas of edge sizes filled past capacity, single entries larger than the arena', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const capacity of [0, 1, 1024, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1 << 20]) {
    const m = new MemTable(seed, capacity);
    const early = Buffer.alloc(100, 0x5a);
    m.add(1, KIND_VALUE, Buffer.from('early'), early);
    const before = m.get(Buffer.from('early'), 10);
    assert.ok(before.found && !before.deleted);
    const view = (before as { value: Buffer }).value;
    const puts = fillMem(m, rng, 300, 10, 4000);
    // one entry far larger than the arena, then more small ones
    const huge = Buffer.alloc(3 * 1024 * 1024 + 7, 0x33);
    m.add(100_000, KIND_VALUE, Buffer.from('huge'), huge);
    puts.push({ ikey: makeInternalKey(Buffer.from('huge'), 100_000, KIND_VALUE), value: huge });
    puts.push(...fillMem(m, rng, 200, 200_000, 100));
    puts.push({ ikey: makeInternalKey(Buffer.from('early'), 1, KIND_VALUE), value: early });
    puts.sort((a, b) => compareInternalKeys(a.ikey, b.ikey));
    // a view handed out before the arena grew still reads the same bytes
    assert.ok(view.equals(early), `SEED=${seed} capacity ${capacity}: early view changed`);
    const it = m.iterator();
    const listed: Put[] = [];
    for (it.first(); it.valid(); it.next()) listed.push({ ikey: Buffer.from(it.key()), value: Buffer.from(it.value()) });
    samePuts(listed, puts, `SEED=${seed} capacity ${capacity} iterator`);
    const got = m.get(Buffer.from('huge'), 1e9);
    assert.ok(got.found && !got.deleted && got.value.equals(huge));
    samePuts(listExport(m.sortedEntries()), puts, `capacity ${capacity} export`);
    assert.ok(m.approximateBytes >= huge.length);
  }
});

test('storage chains: retired memtables of every shape reused by the next, built into tables and read back', async () => {
  const seed = testSeed();
  const rng = new Random(seed);
  const fs = new MemFs();
  fs.mkdir('/t');
  let spare: MemTableStorage | null = null;
  // [entries, max value]: entry counts and byte totals swing in both directions
  const shapes: [number, number][] = [
    [2000, 4],
    [5, 60_000],
    [3000, 2],
    [3000, 2],
    [50, 20_000],
    [1, 10],
    [4000, 0],
    [10, 200_000],
  ];
  let file = 1;
  for (let round = 0; round < 3; round++) {
    for (const [n, maxValue] of shapes) {
      const m = new MemTable(seed + file, 64 * 1024, spare);
      const puts = fillMem(m, rng, n, 1000 * file, maxValue);
      // reused buffers keep stale bytes and rows past what this memtable uses
      const e = m.sortedEntries();
      samePuts(listExport(e), puts, `SEED=${seed} file ${file} export`);
      const meta = await buildFlushTable(fs, { dir: '/t', fileNumber: file, blockSizeBytes: 512, bloomBitsPerKey: 10, compression: round === 1 ? 'lz' : 'none', sorted: e }, round === 1 ? 7 : 0);
      assert.equal(meta.entryCount, n);
      const r = TableReader.open(fs.open(`/t/${tableFileName(file)}`, 'r'), file, meta.sizeBytes, null);
      const it = r.iterator();
      const listed: Put[] = [];
      for (it.first(); it.valid(); it.next()) listed.push({ ikey: Buffer.from(it.key()), value: Buffer.from(it.value()) });
      it.close();
      r.close();
      samePuts(listed, puts, `SEED=${seed} file ${file} table`);
      assert.ok(meta.smallest.equals((puts[0] as Put).ikey) && meta.largest.equals((puts[puts.length - 1] as Put).ikey), 'table key range');
      spare = null;
      m.retire((s) => {
        spare = s;
      });
      assert.notEqual(spare, null, 'a memtable without iterators hands its buffers on at once');
      file++;
    }
  }
});

test('databases at the memtableSize edges; single batches far larger than the memtable (MemFs)', async () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const memtableSize of [1024, 1024 * 1024 * 1024]) {
    const fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 });
    const opts: OpenOptions = { fs, memtableSize, blockSize: 512, sync: false };
    const db = await open('/db', opts);
    const model = new Map<string, string>();
    for (let b = 0; b < 10; b++) {
      const ops = [];
      const big = b % 3 === 1;
      const n = big ? 3000 : 1 + rng.nextInt(10);
      for (let i = 0; i < n; i++) {
        const k = `k${String(rng.nextInt(5000)).padStart(5, '0')}`;
        const v = `${b}.${i}.${'w'.repeat(big ? rng.nextInt(2000) : rng.nextInt(70_000))}`;
        ops.push({ type: 'put' as const, key: k, value: v });
        model.set(k, v);
      }
      await db.batch(ops);
      const probe = `k${String(rng.nextInt(5000)).padStart(5, '0')}`;
      assert.equal(db.getSync(probe)?.toString(), model.get(probe), `SEED=${seed} memtableSize ${memtableSize}: get ${probe}`);
    }
    await db.idle();
    const want = [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    assert.deepEqual(await collect(db.iterator()), want, `memtableSize ${memtableSize}`);
    if (memtableSize === 1024) assert.ok(db.stats().flushes.count >= 5, `flushes: ${db.stats().flushes.count}`);
    await db.close();
    const again = await open('/db', opts);
    assert.deepEqual(await collect(again.iterator()), want, `memtableSize ${memtableSize}: after reopen`);
    await again.close();
  }
});
