/**
 * SSTables with LZ-compressed data blocks (compression: 'lz'; format version 2): round trips with
 * point lookups and iteration, with and without a block cache; raw fallback for incompressible
 * blocks (a table with none compressed is a byte-identical version 1 table); mixed tables; big
 * blocks beyond the shared buffers; interleaved reads of several tables through the shared read
 * and decompression buffers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TableBuilder, type TableBuilderOptions, type TableInfo } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { getBlockHandle, type BlockHandle } from '../../src/sstable/block-handle.js';
import { BLOCK_TRAILER_BYTES, COMPRESSION_LZ, COMPRESSION_NONE } from '../../src/sstable/block-trailer.js';
import { KIND_SEEK, makeInternalKey, userKeyOf } from '../../src/base/internal-key.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { BufferFile } from './buffer-file.js';
import { checkFullScans, ikey, opArb, runOps, SEED, sortedUnique, ikeyArb, type Entry } from './model.js';

invariants.enabled = true;

function build(entries: Entry[], opts: TableBuilderOptions, path = 'test.sst'): { file: BufferFile; info: TableInfo } {
  const file = new BufferFile(path);
  const b = new TableBuilder(file, opts);
  for (const e of entries) b.add(e.key, e.value);
  return { file, info: b.finish() };
}

/** Opens a reader on a copy of the file (closing a reader closes its file). */
function open(file: BufferFile, info: TableInfo, cache: BlockCache | null = null, fileNumber = 1): TableReader {
  return TableReader.open(new BufferFile(file.path, file.contents()), fileNumber, info.fileSizeBytes, cache);
}

/** Compression type of every data block, in file order (from the index and the trailers). */
function dataBlockTypes(reader: TableReader, bytes: Buffer): number[] {
  const it = new BlockIterator(reader.indexBlock, reader.path, reader.indexOffset);
  const handle: BlockHandle = { offset: 0, sizeBytes: 0 };
  const types: number[] = [];
  for (it.first(); it.valid(); it.next()) {
    getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), handle, reader.path, reader.indexOffset);
    types.push(bytes[handle.offset + handle.sizeBytes] as number);
  }
  it.close();
  return types;
}

/** Benchmark-like entries: 16-byte decimal keys; 100-byte values (key, 34 random, copy of 50). */
function benchmarkEntries(count: number, seed: number): Entry[] {
  const rnd = new Random(seed);
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const user = Buffer.from(String(2 * i).padStart(16, '0'), 'latin1');
    const value = Buffer.alloc(100);
    user.copy(value, 0);
    for (let j = 16; j < 50; j++) value[j] = rnd.nextInt(256);
    value.copy(value, 50, 0, 50);
    out.push({ key: ikey(user, 1 + rnd.nextInt(1_000_000)), value });
  }
  return out;
}

function randomEntries(count: number, seed: number, valueBytes = 100): Entry[] {
  const rnd = new Random(seed);
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const value = Buffer.alloc(valueBytes);
    for (let j = 0; j < valueBytes; j++) value[j] = rnd.nextInt(256);
    out.push({ key: ikey(`k${String(i).padStart(7, '0')}`, 5), value });
  }
  return out;
}

function checkLookups(reader: TableReader, model: Entry[]): void {
  const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
  for (const e of model) {
    assert.ok(reader.seekGE(e.key, out), 'lookup finds the entry');
    assert.ok(out.key.equals(e.key) && out.value.equals(e.value), 'lookup returns its value');
    // The DB's form of a lookup: the newest version of the user key (below a snapshot).
    const seek = makeInternalKey(userKeyOf(e.key), 2 ** 45 - 1, KIND_SEEK);
    assert.ok(reader.seekGE(seek, out) && userKeyOf(out.key).equals(userKeyOf(e.key)), 'snapshot lookup');
  }
}

test("lz tables: round trip, lookups, about half the size, format version 2 (every block compressed)", () => {
  const model = benchmarkEntries(5000, 1);
  const raw = build(model, { blockSizeBytes: 4096, bloomBitsPerKey: 10 });
  const lz = build(model, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' });
  const ratio = lz.info.fileSizeBytes / raw.info.fileSizeBytes;
  assert.ok(ratio < 0.6, `lz table is ${lz.info.fileSizeBytes} bytes, raw ${raw.info.fileSizeBytes} (${ratio.toFixed(3)})`);
  assert.deepEqual(lz.info.smallest, raw.info.smallest);
  assert.deepEqual(lz.info.largest, raw.info.largest);
  assert.equal(lz.info.entryCount, 5000);

  for (const cache of [null, new BlockCache(64 * 1024, 4096 + 256), new BlockCache(4 * 1024 * 1024)]) {
    const reader = open(lz.file, lz.info, cache);
    assert.equal(reader.formatVersion, 2);
    assert.equal(reader.properties().formatVersion, 2);
    const types = dataBlockTypes(reader, lz.file.contents());
    assert.equal(types.length, reader.properties().dataBlockCount);
    assert.ok(types.every((t) => t === COMPRESSION_LZ), 'every data block is compressed');
    const it = reader.iterator();
    checkFullScans(it, model);
    checkLookups(reader, model);
    checkFullScans(it, model); // again: now partly from the cache
    for (const e of model) assert.ok(reader.mayContain(userKeyOf(e.key)));
    it.close();
    reader.close();
  }
  const rawReader = open(raw.file, raw.info);
  assert.equal(rawReader.formatVersion, 1);
  rawReader.close();
});

test('lz on incompressible data stores every block raw: a byte-identical version 1 table', () => {
  const model = randomEntries(2000, 2);
  const raw = build(model, { blockSizeBytes: 4096, bloomBitsPerKey: 10 });
  const lz = build(model, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' });
  assert.ok(lz.file.contents().equals(raw.file.contents()), 'same bytes as with compression none');
  const reader = open(lz.file, lz.info);
  assert.equal(reader.formatVersion, 1);
  checkFullScans(reader.iterator(), model);
  reader.close();
});

test('a table mixing compressed and raw data blocks reads back', () => {
  const compressible = benchmarkEntries(1500, 3);
  const random = randomEntries(1500, 4);
  // Interleave runs of 100 entries of each kind (keys sorted afterwards keep the runs apart).
  const model: Entry[] = [];
  for (let i = 0; i < 1500; i++) {
    const c = compressible[i] as Entry;
    const r = random[i] as Entry;
    const run = Math.floor(i / 100);
    const prefix = String(run).padStart(3, '0');
    const source = run % 2 === 0 ? c : r;
    model.push({ key: ikey(`${prefix}/${userKeyOf(c.key).toString('latin1')}`, 9), value: source.value });
  }
  const sorted = sortedUnique(model);
  const { file, info } = build(sorted, { blockSizeBytes: 2048, bloomBitsPerKey: 10, compression: 'lz' });
  const reader = open(file, info, new BlockCache(32 * 1024, 2048 + 256));
  const types = dataBlockTypes(reader, file.contents());
  assert.ok(types.includes(COMPRESSION_LZ) && types.includes(COMPRESSION_NONE), `types: ${types.join('')}`);
  assert.equal(reader.formatVersion, 2);
  const it = reader.iterator();
  checkFullScans(it, sorted);
  checkLookups(reader, sorted);
  it.close();
  reader.close();
});

test('big compressed blocks (beyond the shared 256 KiB buffers) and huge values', () => {
  const model = benchmarkEntries(12_000, 5); // ~1.5 MB
  const { file, info } = build(model, { blockSizeBytes: 1024 * 1024, bloomBitsPerKey: 10, compression: 'lz' });
  const reader = open(file, info, new BlockCache(8 * 1024 * 1024));
  assert.ok(dataBlockTypes(reader, file.contents()).every((t) => t === COMPRESSION_LZ));
  checkFullScans(reader.iterator(), model);
  checkLookups(reader, model.filter((_, i) => i % 37 === 0));
  reader.close();

  // One value of 700 KB (a repeated pattern) between small ones: its block stands alone.
  const pattern = Buffer.from('lightning-db compresses this value. ');
  const big = Buffer.alloc(700_000);
  for (let i = 0; i < big.length; i += pattern.length) pattern.copy(big, i);
  const entries = [
    { key: ikey('a', 1), value: Buffer.from('small') },
    { key: ikey('b', 1), value: big },
    { key: ikey('c', 1), value: Buffer.from('small too') },
  ];
  const t = build(entries, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' });
  assert.ok(t.info.fileSizeBytes < 50_000, `${t.info.fileSizeBytes} bytes`);
  const r = open(t.file, t.info, null);
  checkFullScans(r.iterator(), entries);
  assert.ok(r.get(ikey('b', 1))?.value.equals(big));
  r.close();
});

test('interleaved reads of two compressed tables through one small cache and the shared buffers', () => {
  const m1 = benchmarkEntries(3000, 6);
  const m2 = benchmarkEntries(3000, 7).map((e) => ({ key: ikey(Buffer.concat([Buffer.from('z'), userKeyOf(e.key)]), 3), value: e.value }));
  const t1 = build(m1, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' }, '1.sst');
  const t2 = build(m2, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' }, '2.sst');
  for (const cache of [null, new BlockCache(3 * (4096 + 256), 4096 + 256)]) {
    const r1 = open(t1.file, t1.info, cache, 1);
    const r2 = open(t2.file, t2.info, cache, 2);
    const i1 = r1.iterator();
    const i2 = r2.iterator();
    const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
    let n = 0;
    i1.first();
    i2.first();
    const rnd = new Random(8);
    while (i1.valid() && i2.valid()) {
      assert.ok(i1.key().equals((m1[n] as Entry).key) && i1.value().equals((m1[n] as Entry).value), `table 1 entry ${n}`);
      assert.ok(i2.key().equals((m2[n] as Entry).key) && i2.value().equals((m2[n] as Entry).value), `table 2 entry ${n}`);
      // Point lookups elsewhere in between: they reuse the shared buffers under the iterators.
      const e = (rnd.nextInt(2) === 0 ? m1 : m2)[rnd.nextInt(3000)] as Entry;
      const reader = m1.includes(e) ? r1 : r2;
      assert.ok(reader.seekGE(e.key, out) && out.value.equals(e.value), 'interleaved lookup');
      i1.next();
      i2.next();
      n++;
    }
    assert.equal(n, 3000);
    i1.close();
    i2.close();
    r1.close();
    r2.close();
  }
});

test('compressed table iterator matches the model in both directions (property)', () => {
  // Values from a few repeated patterns, so most blocks compress and some do not.
  const valueArb = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((v) => Buffer.from(v)),
    fc.tuple(fc.constantFrom('abcd', 'xyzzy', '0000'), fc.integer({ min: 0, max: 60 })).map(([p, n]) => Buffer.from(p.repeat(n))),
  );
  let compressedTables = 0;
  fc.assert(
    fc.property(
      fc.array(fc.record({ key: ikeyArb, value: valueArb }), { minLength: 1, maxLength: 300 }),
      fc.constantFrom(64, 100, 256, 1024),
      fc.constantFrom(1, 2, 16),
      fc.array(opArb, { maxLength: 80 }),
      fc.boolean(),
      (raw, blockSizeBytes, restartInterval, ops, useCache) => {
        const model = sortedUnique(raw);
        const { file, info } = build(model, { blockSizeBytes, bloomBitsPerKey: 10, restartInterval, compression: 'lz' });
        const reader = open(file, info, useCache ? new BlockCache(4096) : null);
        if (reader.formatVersion === 2) compressedTables++;
        const it = reader.iterator();
        checkFullScans(it, model);
        runOps(it, model, ops);
        checkLookups(reader, model);
        it.close();
        reader.close();
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
  assert.ok(compressedTables >= 20, `only ${compressedTables} of 200 tables had a compressed block`);
});

test('estimatedSizeBytes tracks the compressed file size (compaction cuts outputs by it)', () => {
  const model = benchmarkEntries(8000, 9);
  const file = new BufferFile();
  const b = new TableBuilder(file, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' });
  let estimate = 0;
  for (const e of model) {
    b.add(e.key, e.value);
    estimate = b.estimatedSizeBytes();
  }
  const info = b.finish();
  assert.ok(Math.abs(estimate - info.fileSizeBytes) < 0.05 * info.fileSizeBytes, `estimate ${estimate}, size ${info.fileSizeBytes}`);
  assert.equal(BLOCK_TRAILER_BYTES, 5);
});

test('golden bytes: the compressed worked example in docs/formats/sstable.md (format v2)', () => {
  const { file, info } = build(
    [
      { key: ikey('apple', 7), value: Buffer.from('red, red, red, red') },
      { key: ikey('apricot', 3), value: Buffer.from('green, green, green') },
    ],
    { blockSizeBytes: 4096, bloomBitsPerKey: 10, bloomLayout: 'legacy', compression: 'lz' },
  );
  const expected =
    '4db1000d126170706c650107000100597265642c200500a1020d137269636f74' +
    '010321008800677265656e2c200700001900400100000001fbf3d62f00020218' +
    '6228a1840700765119ab01010202010203011c04012505010106010007010308' +
    '01070b01100c010a090d6170706c6501070000000000000a0f61707269636f74' +
    '01030000000000000066ff9ce9000f0261707269636f74010300000000000000' +
    '370000000001000000005d26c22e3c0000000000000009000000000000004a00' +
    '0000000000003e000000000000008d000000000000001c000000000000000200' +
    '0000a1eaedf54c544e4753535431';
  assert.equal(info.fileSizeBytes, 238);
  assert.equal(file.contents().toString('hex'), expected);
  const reader = open(file, info);
  assert.equal(reader.formatVersion, 2);
  assert.equal(reader.get(ikey('apricot', 3))?.value.toString(), 'green, green, green');
  reader.close();
});
