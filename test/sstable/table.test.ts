import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  TableBuilder,
  type TableBuilderOptions,
  type TableInfo,
} from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { findShortestSeparator } from '../../src/sstable/index-separator.js';
import { invariants } from '../../src/util/assert.js';
import { isLightningError } from '../../src/base/errors.js';
import {
  compareInternalKeys,
  KIND_DELETE,
  KIND_SEEK,
  KIND_VALUE,
  makeInternalKey,
  userKeyOf,
} from '../../src/base/internal-key.js';
import { Random } from '../../src/util/random.js';
import { BufferFile, FailingFile } from './buffer-file.js';
import {
  checkFullScans,
  entryArb,
  ikey,
  lowerBound,
  opArb,
  runOps,
  SEED,
  sortedUnique,
  type Entry,
} from './model.js';

invariants.enabled = true;

function buildTable(
  entries: Entry[],
  opts: TableBuilderOptions,
  path = 'test.sst',
): { file: BufferFile; info: TableInfo } {
  const file = new BufferFile(path);
  const b = new TableBuilder(file, opts);
  for (const e of entries) b.add(e.key, e.value);
  return { file, info: b.finish() };
}

function open(
  file: BufferFile,
  info: TableInfo,
  cache: BlockCache | null = null,
  fileNumber = 1,
): TableReader {
  return TableReader.open(file, fileNumber, info.fileSizeBytes, cache);
}

/** user%06d keys, each with `versions` sequence numbers; values encode (key, seq). */
function numberedEntries(count: number, versions: number, valueBytes = 8): Entry[] {
  const out: Entry[] = [];
  let seq = 1;
  for (let i = 0; i < count; i++) {
    const user = `user${String(i).padStart(6, '0')}`;
    for (let v = versions; v >= 1; v--) {
      const s = seq + v;
      const value = Buffer.alloc(valueBytes, i & 0xff);
      value.write(`${i}:${s}`.slice(0, valueBytes));
      out.push({ key: ikey(user, s, v === 1 && i % 5 === 0 ? KIND_DELETE : KIND_VALUE), value });
    }
    seq += versions;
  }
  return out;
}

test('table round trip: thousands of keys in 256-byte blocks', () => {
  const model = numberedEntries(3000, 2);
  const { file, info } = buildTable(model, { blockSizeBytes: 256, bloomBitsPerKey: 10 });
  assert.equal(info.entryCount, model.length);
  assert.ok(info.smallest.equals((model[0] as Entry).key));
  assert.ok(info.largest.equals((model[model.length - 1] as Entry).key));
  assert.equal(info.smallestSeq, 2);
  assert.equal(info.largestSeq, 6001);
  assert.equal(info.fileSizeBytes, file.size());
  const reader = open(file, info);
  const props = reader.properties();
  assert.equal(props.entryCount, model.length);
  assert.equal(props.deletionCount, 600);
  assert.ok(props.dataBlockCount > 100, `${props.dataBlockCount} data blocks`);
  assert.ok(props.smallest.equals(info.smallest) && props.largest.equals(info.largest));
  const it = reader.iterator();
  checkFullScans(it, model);
  it.close();
  const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
  for (const e of model) {
    assert.ok(reader.seekGE(e.key, out));
    assert.ok(out.key.equals(e.key) && out.value.equals(e.value));
  }
  reader.close();
  assert.ok(file.closed, 'close() closes the file');
});

test('point lookups with snapshot seek keys find the newest visible version', () => {
  const model = numberedEntries(500, 4);
  const { file, info } = buildTable(model, { blockSizeBytes: 512, bloomBitsPerKey: 10 });
  const reader = open(file, info);
  const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
  const rng = new Random(SEED);
  for (let n = 0; n < 5000; n++) {
    const user = Buffer.from(`user${String(rng.nextInt(520)).padStart(6, '0')}`);
    const snap = rng.nextInt(2200);
    const seekKey = makeInternalKey(user, snap, KIND_SEEK);
    const i = lowerBound(model, seekKey);
    const expected = model[i];
    const found = reader.seekGE(seekKey, out);
    assert.equal(found, expected !== undefined);
    if (expected === undefined) continue;
    assert.ok(out.key.equals(expected.key), `SEED=${SEED} lookup ${n}`);
    assert.ok(out.value.equals(expected.value));
    const sameUser = userKeyOf(out.key).equals(user);
    assert.equal(sameUser, userKeyOf(expected.key).equals(user));
  }
  assert.equal(reader.get(ikey('zzz', 1)), undefined, 'past the last key');
  assert.ok(reader.get(ikey('a', 1))?.key.equals((model[0] as Entry).key), 'before the first key');
  reader.close();
});

test('bloom filter: every present user key may be contained, most absent ones not', () => {
  const model = numberedEntries(2000, 3);
  const { file, info } = buildTable(model, { blockSizeBytes: 4096, bloomBitsPerKey: 10 });
  const reader = open(file, info);
  for (let i = 0; i < 2000; i++)
    assert.ok(reader.mayContain(Buffer.from(`user${String(i).padStart(6, '0')}`)));
  let fp = 0;
  for (let i = 0; i < 10_000; i++) if (reader.mayContain(Buffer.from(`absent${i}`))) fp++;
  // The filter holds 2000 distinct user keys, not 6000 entries: the rate stays near 1%.
  assert.ok(fp < 200, `${fp} false positives in 10000`);
  reader.close();
  const noBloom = buildTable(model, { blockSizeBytes: 4096, bloomBitsPerKey: 0 });
  const r2 = open(noBloom.file, noBloom.info);
  assert.equal(r2.mayContain(Buffer.from('absent')), true, 'no filter: always maybe');
  assert.ok(noBloom.info.fileSizeBytes < info.fileSizeBytes);
  r2.close();
});

test('1 MiB table with a block cache: batched writes, readahead scans, cached point and short-scan reads', () => {
  const model = numberedEntries(17_000, 1, 48);
  const file = new BufferFile();
  const b = new TableBuilder(file, { blockSizeBytes: 4096, bloomBitsPerKey: 10 });
  let estimateBefore = 0;
  for (const e of model) {
    b.add(e.key, e.value);
    estimateBefore = b.estimatedSizeBytes();
  }
  const info = b.finish();
  assert.ok(info.fileSizeBytes > 1024 * 1024, `${info.fileSizeBytes} bytes`);
  assert.ok(
    Math.abs(estimateBefore - info.fileSizeBytes) < 0.05 * info.fileSizeBytes,
    'size estimate',
  );
  const blocks = Math.ceil(info.fileSizeBytes / 4096);
  assert.ok(
    file.writeCount <= Math.ceil(info.fileSizeBytes / 32768) + 2,
    `${file.writeCount} writes for ${blocks} blocks`,
  );

  const cache = new BlockCache(8 * 1024 * 1024);
  const reader = open(file, info, cache, 42);
  const dataBlocks = reader.properties().dataBlockCount;
  // A full scan reads ahead: one read per window (16 KiB doubling to 64 KiB), not one per block.
  const readsBefore = file.readCount;
  const it = reader.iterator();
  let n = 0;
  for (it.first(); it.valid(); it.next()) assert.ok(it.key().equals((model[n++] as Entry).key));
  assert.equal(n, model.length);
  const scanReads = file.readCount - readsBefore;
  assert.ok(scanReads < dataBlocks / 4, `${scanReads} reads for ${dataBlocks} blocks`);
  // Only the first blocks of a sequential run are cached: a long scan does not flush the cache.
  const afterScan = cache.stats();
  assert.ok(afterScan.entries > 0 && afterScan.entries < dataBlocks / 2, JSON.stringify(afterScan));
  checkFullScans(it, model); // both directions (backward scans read block by block)
  it.close();

  // Point reads fill the cache; the second read of a block is served from it.
  const target = makeInternalKey((model[9_000] as Entry).key.subarray(0, -8), 1_000_000, KIND_SEEK);
  assert.ok(reader.get(target) !== undefined);
  const afterGet = file.readCount;
  assert.ok(reader.get(target) !== undefined);
  assert.equal(file.readCount, afterGet, 'second point read served from the cache');

  // A short scan of a hot range is cached too: repeating it reads nothing.
  const shortScan = (): number => {
    const s = reader.iterator();
    let n = 0;
    for (s.seekGE(target); s.valid() && n < 200; s.next()) n++;
    s.close();
    return n;
  };
  assert.equal(shortScan(), 200);
  const afterShort = file.readCount;
  assert.equal(shortScan(), 200);
  assert.equal(file.readCount, afterShort, 'a repeated short scan is served from the cache');
  assert.ok(cache.stats().hits > 0);
  reader.close();
  cache.evictFile(42);
  assert.equal(cache.stats().entries, 0);
});

test('table iterator matches the model in both directions (property)', () => {
  fc.assert(
    fc.property(
      fc.array(entryArb, { minLength: 1, maxLength: 300 }),
      fc.constantFrom(64, 100, 256, 1024),
      fc.constantFrom(1, 2, 16),
      fc.array(opArb, { maxLength: 80 }),
      fc.boolean(),
      (raw, blockSizeBytes, restartInterval, ops, useCache) => {
        const model = sortedUnique(raw);
        const { file, info } = buildTable(model, {
          blockSizeBytes,
          bloomBitsPerKey: 10,
          restartInterval,
        });
        const reader = open(file, info, useCache ? new BlockCache(4096) : null);
        const it = reader.iterator();
        checkFullScans(it, model);
        runOps(it, model, ops);
        for (const e of model) assert.ok(reader.mayContain(userKeyOf(e.key)));
        it.close();
        reader.close();
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
});

test('index separators are short and lie between neighbouring blocks', () => {
  const out = Buffer.alloc(64);
  const a = ikey('abcdefgh', 5);
  const n = findShortestSeparator(a, a.length, ikey('abzzz', 9), out);
  assert.equal(out.subarray(0, n - 8).toString(), 'abd');
  const sep = out.subarray(0, n);
  assert.ok(compareInternalKeys(a, sep) < 0 && compareInternalKeys(sep, ikey('abzzz', 9)) < 0);
  // Adjacent bytes, prefixes and 0xff cannot be shortened: the last key itself is used.
  for (const [x, y] of [
    ['abc', 'abd'],
    ['ab', 'abc'],
    ['a\xff\xff', 'b'],
    ['k', 'k'],
  ] as const) {
    const last = ikey(x, 7);
    const next = ikey(y, y === x ? 6 : 1);
    const len = findShortestSeparator(last, last.length, next, out);
    assert.ok(out.subarray(0, len).equals(last), `${x} / ${y}`);
  }
  // Property: any pair of increasing keys gets a separator in [last, next).
  fc.assert(
    fc.property(fc.tuple(entryArb, entryArb), ([e1, e2]) => {
      const c = compareInternalKeys(e1.key, e2.key);
      fc.pre(c !== 0);
      const [lo, hi] = c < 0 ? [e1.key, e2.key] : [e2.key, e1.key];
      const buf = Buffer.alloc(lo.length);
      const s = buf.subarray(0, findShortestSeparator(lo, lo.length, hi, buf));
      assert.ok(compareInternalKeys(lo, s) <= 0 && compareInternalKeys(s, hi) < 0);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('builder: out-of-order keys, empty finish and misuse are assertion failures', () => {
  const b = new TableBuilder(new BufferFile(), { blockSizeBytes: 256, bloomBitsPerKey: 10 });
  assert.throws(() => b.finish(), /empty table/);
  b.add(ikey('b', 1), Buffer.alloc(0));
  assert.throws(() => b.add(ikey('a', 1), Buffer.alloc(0)), /strictly increasing/);
  assert.throws(
    () => b.add(ikey('b', 1), Buffer.alloc(0)),
    /strictly increasing/,
    'duplicates rejected',
  );
  b.abandon();
  assert.throws(() => b.add(ikey('c', 1), Buffer.alloc(0)), /abandoned/);
  assert.throws(
    () => new TableBuilder(new BufferFile(), { blockSizeBytes: 8, bloomBitsPerKey: 10 }),
    /blockSizeBytes/,
  );
});

test('builder: write errors surface as DISK_FULL / IO_ERROR and stick', () => {
  for (const [code, expected] of [
    ['ENOSPC', 'DISK_FULL'],
    ['EIO', 'IO_ERROR'],
  ] as const) {
    const file = new FailingFile(1, code);
    const b = new TableBuilder(file, { blockSizeBytes: 1024, bloomBitsPerKey: 10 });
    const model = numberedEntries(20_000, 1, 16);
    let thrown: unknown = null;
    try {
      for (const e of model) b.add(e.key, e.value);
      b.finish();
    } catch (e) {
      thrown = e;
    }
    assert.ok(isLightningError(thrown, expected), String(thrown));
    assert.throws(
      () => b.add(ikey('zzzz', 1), Buffer.alloc(0)),
      (e) => e === thrown,
    );
    b.abandon();
  }
});

test('two tables share one cache without mixing blocks', () => {
  const m1 = numberedEntries(300, 1);
  const m2 = numberedEntries(300, 1).map((e) => ({ key: e.key, value: Buffer.from('other') }));
  const cache = new BlockCache(1 << 20);
  const t1 = buildTable(m1, { blockSizeBytes: 256, bloomBitsPerKey: 10 }, '1.sst');
  const t2 = buildTable(m2, { blockSizeBytes: 256, bloomBitsPerKey: 10 }, '2.sst');
  const r1 = open(t1.file, t1.info, cache, 1);
  const r2 = open(t2.file, t2.info, cache, 2);
  for (let round = 0; round < 2; round++) {
    const i1 = r1.iterator();
    const i2 = r2.iterator();
    checkFullScans(i1, m1);
    checkFullScans(i2, m2);
    i1.close();
    i2.close();
  }
  r1.close();
  r2.close();
});

test('golden bytes: the worked example in docs/formats/sstable.md (format v1 is frozen)', () => {
  const { file, info } = buildTable(
    [
      { key: ikey('apple', 7, KIND_VALUE), value: Buffer.from('red') },
      { key: ikey('apricot', 3, KIND_DELETE), value: Buffer.alloc(0) },
    ],
    { blockSizeBytes: 4096, bloomBitsPerKey: 10, bloomLayout: 'legacy' },
  );
  const expected =
    '000d036170706c650107000000000000726564020d007269636f740003000000' +
    '000000000000000100000000267e6796000202186228a1840700765119ab0101' +
    '0102010203011c0401030501010601010701030801070b01100c010a090d6170' +
    '706c6501070000000000000a0f61707269636f74000300000000000000f12935' +
    '37000f0261707269636f740003000000000000002b0000000001000000003cda' +
    'c5f0300000000000000009000000000000003e000000000000003e0000000000' +
    '000081000000000000001c0000000000000001000000227e625c4c544e475353' +
    '5431';
  assert.equal(info.fileSizeBytes, 226);
  assert.equal(file.contents().toString('hex'), expected);
  const reader = open(file, info);
  assert.equal(reader.get(ikey('apple', 7))?.value.toString(), 'red');
  reader.close();
});

test('builders reuse finished and abandoned builders\' buffers: interleaved builds each read back exactly', () => {
  const rng = new Random(SEED);
  const read = (file: BufferFile, info: TableInfo): string[] => {
    const r = open(file, info);
    const it = r.iterator();
    const out: string[] = [];
    for (it.first(); it.valid(); it.next()) out.push(`${it.key().toString('hex')}=${it.value().toString('hex')}`);
    it.close();
    r.close();
    return out;
  };
  const want = (entries: Entry[]): string[] => entries.map((e) => `${e.key.toString('hex')}=${e.value.toString('hex')}`);
  for (let round = 0; round < 6; round++) {
    // Two builders open at once (a flush and a merge on the main thread), plus one abandoned midway.
    const a = numberedEntries(200 + rng.nextInt(3000), 1 + rng.nextInt(2), 1 + rng.nextInt(300));
    const b = numberedEntries(100 + rng.nextInt(2000), 1, 1 + rng.nextInt(50));
    const opts: TableBuilderOptions = { blockSizeBytes: 256, bloomBitsPerKey: 10, compression: round % 2 === 0 ? 'lz' : 'none' };
    const fa = new BufferFile('a.sst');
    const fb = new BufferFile('b.sst');
    const ba = new TableBuilder(fa, opts);
    const bb = new TableBuilder(fb, opts);
    const dropped = new TableBuilder(new BufferFile('c.sst'), opts);
    for (const e of b.slice(0, 50)) dropped.add(e.key, e.value);
    dropped.abandon();
    dropped.abandon(); // idempotent: gives its buffers back once
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const ea = a[i];
      const eb = b[i];
      if (ea !== undefined) ba.add(ea.key, ea.value);
      if (eb !== undefined) bb.add(eb.key, eb.value);
    }
    const ib = bb.finish();
    const ia = ba.finish();
    assert.deepEqual(read(fa, ia), want(a), `SEED=${SEED} round ${round}: table a`);
    assert.deepEqual(read(fb, ib), want(b), `SEED=${SEED} round ${round}: table b`);
  }
});

test('scan-only readers (compaction inputs) iterate every entry and seek like a full reader, without a filter; find() is refused', () => {
  const model = numberedEntries(3000, 2, 20);
  for (const compression of ['lz', 'none'] as const) {
    const { file, info } = buildTable(model, { blockSizeBytes: 512, bloomBitsPerKey: 10, compression });
    const full = open(file, info);
    const scan = TableReader.open(file, 1, info.fileSizeBytes, null, true);
    const all = (r: TableReader): string[] => {
      const it = r.iterator(false);
      const out: string[] = [];
      for (it.first(); it.valid(); it.next()) out.push(`${it.key().toString('hex')}=${it.value().toString('hex')}`);
      it.close();
      return out;
    };
    assert.deepEqual(all(scan), all(full), compression);
    assert.equal(all(scan).length, model.length);
    const it = scan.iterator(false);
    const target = (model[1234] as Entry).key;
    it.seekGE(target);
    assert.ok(it.valid() && it.key().equals(target), 'seekGE lands on the key (subcompaction bounds seek)');
    it.close();
    assert.equal(scan.mayContain(Buffer.from('absent')), true, 'no filter read: always maybe');
    assert.equal(full.mayContain(Buffer.from('absent')), false);
    assert.throws(() => scan.find(target, new BlockPointSearch()), /scans only/);
    full.close();
    scan.close();
  }
});
