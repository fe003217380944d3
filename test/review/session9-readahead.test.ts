/**
 * Review (session 9): table iterators that read ahead (src/sstable/readahead.ts and
 * TableReader.readDataBlock's window path), attacked at the sstable level:
 *   - random tables (tiny to large blocks, raw and 'lz', values from empty to larger than the
 *     256 KiB compaction window) read by two iterators at once (one through the block cache, one
 *     with useCache=false), stepped in a random interleaving of long forward/backward runs and
 *     seeks, with point reads in between, against a sorted model;
 *   - every cache configuration (none, capacity 0, a few slots, large);
 *   - a byte flipped anywhere in the data area: scans must return correct entries up to a
 *     CORRUPTION error (never wrong data, never a RangeError or an assertion);
 *   - the file shrinking under an open reader (a window read running past the end): CORRUPTION;
 *   - the window path is really taken (fewer file reads than blocks on a long scan).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder, type TableBuilderOptions, type TableInfo } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { isLightningError } from '../../src/base/errors.js';
import { compareInternalKeys, KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ } from '../../src/base/internal-key.js';
import type { InternalIterator } from '../../src/iter/internal-iterator.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { lowerBound } from '../sstable/model.js';
import { testSeed } from '../harness/seed.js';

invariants.enabled = true;

interface Entry {
  key: Buffer;
  value: Buffer;
}

function fail(seed: number, msg: string): never {
  assert.fail(`SEED=${seed}: ${msg}`);
}

function randomValue(rng: Random, big: boolean): Buffer {
  const r = rng.nextInt(100);
  let len: number;
  if (r < 10) len = 0;
  else if (r < 80) len = 1 + rng.nextInt(120);
  else if (r < 97 || !big) len = 200 + rng.nextInt(5000);
  else len = 64 * 1024 + rng.nextInt(300 * 1024); // beyond the 64 KiB and 256 KiB windows
  const v = Buffer.alloc(len);
  if (rng.nextInt(2) === 0) {
    // compressible
    for (let i = 0; i < len; i++) v[i] = 0x61 + ((i >> 3) % 4);
  } else {
    for (let i = 0; i < len; i++) v[i] = rng.nextInt(256);
  }
  return v;
}

function randomTable(rng: Random, count: number, big: boolean): Entry[] {
  const entries: Entry[] = [];
  const seen = new Set<string>();
  while (entries.length < count) {
    const len = 1 + rng.nextInt(20);
    const u = Buffer.alloc(len);
    for (let i = 0; i < len; i++) u[i] = rng.nextInt(4) === 0 ? rng.nextInt(256) : 0x61 + rng.nextInt(3);
    const seq = 1 + rng.nextInt(1000);
    const key = makeInternalKey(u, seq, KIND_VALUE);
    const h = key.toString('hex');
    if (seen.has(h)) continue;
    seen.add(h);
    entries.push({ key, value: randomValue(rng, big) });
  }
  entries.sort((a, b) => compareInternalKeys(a.key, b.key));
  return entries;
}

function build(entries: Entry[], opts: TableBuilderOptions): { file: BufferFile; info: TableInfo } {
  const file = new BufferFile('ra.sst');
  const b = new TableBuilder(file, opts);
  for (const e of entries) b.add(e.key, e.value);
  return { file, info: b.finish() };
}


function floorIndex(model: Entry[], target: Buffer): number {
  const i = lowerBound(model, target);
  const e = model[i];
  if (e !== undefined && compareInternalKeys(e.key, target) === 0) return i;
  return i - 1;
}

/** A tracked iterator: its model position. */
class Cursor {
  pos = -1;
  constructor(
    readonly it: InternalIterator,
    readonly name: string,
  ) {}

  check(model: Entry[], seed: number, what: string): void {
    const e = model[this.pos];
    if (e === undefined) {
      if (this.it.valid()) fail(seed, `${this.name}: expected invalid after ${what}`);
      return;
    }
    if (!this.it.valid()) fail(seed, `${this.name}: expected entry ${this.pos} after ${what}, iterator invalid`);
    if (!this.it.key().equals(e.key)) fail(seed, `${this.name}: key differs at ${this.pos} after ${what}`);
    if (!this.it.value().equals(e.value)) fail(seed, `${this.name}: value differs at ${this.pos} (len ${e.value.length}) after ${what}`);
  }
}

const BLOCK_SIZES = [64, 128, 512, 1024, 2048, 4096, 16 * 1024, 70 * 1024];

function cacheFor(rng: Random, blockSize: number): BlockCache | null {
  switch (rng.nextInt(5)) {
    case 0:
      return null;
    case 1:
      return new BlockCache(0);
    case 2:
      return new BlockCache(3 * (blockSize + 256), blockSize + 256); // a few slots: constant eviction
    case 3:
      return new BlockCache(64 * 1024 * 1024, 0);
    default:
      return new BlockCache(8 * 1024 * 1024, blockSize + 256);
  }
}

test('two iterators (cached and uncached) and point reads interleaved, random tables, against a model', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  const ROUNDS = 24;
  for (let round = 0; round < ROUNDS; round++) {
    const blockSize = BLOCK_SIZES[rng.nextInt(BLOCK_SIZES.length)] as number;
    const count = 50 + rng.nextInt(blockSize <= 512 ? 1500 : 700);
    const model = randomTable(rng, count, round % 4 === 0);
    const compression = rng.nextInt(2) === 0 ? 'lz' : 'none';
    const { file, info } = build(model, { blockSizeBytes: blockSize, bloomBitsPerKey: 10, compression, restartInterval: 1 + rng.nextInt(16) });
    const reader = TableReader.open(file, 7, info.fileSizeBytes, cacheFor(rng, blockSize));
    const cursors = [new Cursor(reader.iterator(true), 'cached'), new Cursor(reader.iterator(false), 'uncached'), new Cursor(reader.iterator(true), 'cached2')];
    const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
    const trace: string[] = [];
    const ctx = (): string => `round ${round} block ${blockSize} ${compression} n=${model.length}: ${trace.slice(-12).join(' ')}`;
    for (let step = 0; step < 120; step++) {
      const c = cursors[rng.nextInt(cursors.length)] as Cursor;
      const r = rng.nextInt(100);
      if (r < 6) {
        c.it.first();
        c.pos = 0;
        trace.push(`${c.name}.first`);
      } else if (r < 12) {
        c.it.last();
        c.pos = model.length - 1;
        trace.push(`${c.name}.last`);
      } else if (r < 40) {
        // long forward run
        const n = 1 + rng.nextInt(400);
        trace.push(`${c.name}.next*${n}`);
        for (let i = 0; i < n && c.pos >= 0 && c.pos < model.length; i++) {
          c.it.next();
          c.pos++;
          if (c.pos < model.length || i === n - 1) c.check(model, seed, ctx());
        }
      } else if (r < 60) {
        const n = 1 + rng.nextInt(400);
        trace.push(`${c.name}.prev*${n}`);
        for (let i = 0; i < n && c.pos >= 0 && c.pos < model.length; i++) {
          c.it.prev();
          c.pos--;
          if (c.pos >= 0 || i === n - 1) c.check(model, seed, ctx());
        }
        if (c.pos < 0) c.pos = -1;
      } else if (r < 66) {
        // alternate direction every step
        const n = 1 + rng.nextInt(50);
        trace.push(`${c.name}.zigzag*${n}`);
        for (let i = 0; i < n && c.pos >= 0 && c.pos < model.length; i++) {
          if (i % 3 === 2) {
            c.it.prev();
            c.pos--;
          } else {
            c.it.next();
            c.pos++;
          }
          c.check(model, seed, ctx());
        }
      } else if (r < 78) {
        const e = model[rng.nextInt(model.length)] as Entry;
        const exact = rng.nextInt(2) === 0;
        const target = exact ? e.key : makeInternalKey(e.key.subarray(0, e.key.length - 8), rng.nextInt(2) === 0 ? MAX_SEQ : 0, KIND_SEEK);
        if (rng.nextInt(2) === 0) {
          c.it.seekGE(target);
          c.pos = lowerBound(model, target);
          trace.push(`${c.name}.seekGE`);
        } else {
          c.it.seekLE(target);
          c.pos = floorIndex(model, target);
          trace.push(`${c.name}.seekLE`);
        }
      } else {
        // point reads through the reader (shared read buffers, the cache)
        const n = 1 + rng.nextInt(8);
        trace.push(`get*${n}`);
        for (let i = 0; i < n; i++) {
          const idx = rng.nextInt(model.length);
          const e = model[idx] as Entry;
          if (!reader.seekGE(e.key, out)) fail(seed, `point read of entry ${idx} found nothing: ${ctx()}`);
          if (!out.key.equals(e.key) || !out.value.equals(e.value)) fail(seed, `point read of entry ${idx} wrong: ${ctx()}`);
        }
      }
      // every cursor must still be where it was (its block copy survives the others' reads)
      for (const o of cursors) if (o.pos >= 0 && o.pos < model.length) o.check(model, seed, `${ctx()} [recheck]`);
    }
    for (const c of cursors) c.it.close();
    // a fresh full scan both ways with a new iterator after the others closed (pooled windows reused)
    const it = reader.iterator(rng.nextInt(2) === 0);
    let i = 0;
    for (it.first(); it.valid(); it.next(), i++) {
      const e = model[i] as Entry;
      if (!it.key().equals(e.key) || !it.value().equals(e.value)) fail(seed, `final forward scan differs at ${i}: round ${round}`);
    }
    assert.equal(i, model.length, `SEED=${seed}: forward scan length`);
    for (it.last(); it.valid(); it.prev()) {
      const e = model[--i] as Entry;
      if (!it.key().equals(e.key) || !it.value().equals(e.value)) fail(seed, `final backward scan differs at ${i}: round ${round}`);
    }
    assert.equal(i, 0);
    it.close();
    reader.close();
  }
});

test('a long scan reads ahead: fewer file reads than data blocks (the window path is exercised)', () => {
  const rng = new Random(1234);
  const model = randomTable(rng, 3000, false);
  for (const compression of ['none', 'lz'] as const) {
    const { file, info } = build(model, { blockSizeBytes: 256, bloomBitsPerKey: 10, compression });
    for (const useCache of [true, false]) {
      const reader = TableReader.open(new BufferFile('ra.sst', file.contents()), 3, info.fileSizeBytes, new BlockCache(1 << 20, 512));
      const f = (reader as unknown as { file: BufferFile }).file;
      const before = f.readCount;
      const it = reader.iterator(useCache);
      let n = 0;
      for (it.first(); it.valid(); it.next()) n++;
      it.close();
      assert.equal(n, model.length);
      const reads = f.readCount - before;
      const blocks = reader.properties().dataBlockCount;
      assert.ok(blocks > 100, `blocks: ${blocks}`);
      assert.ok(reads < blocks / 4, `${compression} useCache=${useCache}: ${reads} reads for ${blocks} blocks`);
      reader.close();
    }
  }
});

/**
 * Reads the whole table forward (and, if that succeeds, backward) with an iterator and checks
 * every entry it yields. Returns 'ok' or 'corruption'; anything else fails.
 */
function scanChecked(bytes: Buffer, size: number, model: Entry[], useCache: boolean, cache: BlockCache | null, what: string): 'ok' | 'corruption' {
  let reader: TableReader | undefined;
  try {
    reader = TableReader.open(new BufferFile('bad.sst', bytes), 11, size, cache);
    const it = reader.iterator(useCache);
    try {
      let i = 0;
      for (it.first(); it.valid(); it.next(), i++) {
        const e = model[i];
        assert.ok(e !== undefined && it.key().equals(e.key) && it.value().equals(e.value), `${what}: wrong data forward at ${i}`);
      }
      assert.equal(i, model.length, `${what}: forward count`);
      for (it.last(); it.valid(); it.prev()) {
        const e = model[--i];
        assert.ok(e !== undefined && it.key().equals(e.key) && it.value().equals(e.value), `${what}: wrong data backward at ${i}`);
      }
      assert.equal(i, 0, `${what}: backward count`);
    } finally {
      it.close();
    }
    return 'ok';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(isLightningError(e, 'CORRUPTION'), `${what}: expected CORRUPTION, got ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
    return 'corruption';
  } finally {
    reader?.close();
  }
}

test('a flipped byte anywhere in the data area of a readahead scan is CORRUPTION, never wrong data', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const compression of ['none', 'lz'] as const) {
    for (const blockSize of [100, 700, 4096]) {
      const model = randomTable(rng, blockSize === 4096 ? 900 : 400, false);
      const { file, info } = build(model, { blockSizeBytes: blockSize, bloomBitsPerKey: 10, compression });
      const bytes = file.contents();
      // the data area ends where the filter block starts: bytes.length - footer - filter - meta - index
      const dataEnd = info.fileSizeBytes - 48 - 1; // upper bound; flips past the data area are caught at open
      assert.equal(scanChecked(bytes, bytes.length, model, true, null, 'pristine'), 'ok');
      const positions = new Set<number>();
      // every byte of the first blocks and the end of the data area, plus random ones
      for (let p = 0; p < Math.min(600, dataEnd); p++) positions.add(p);
      for (let n = 0; n < 400; n++) positions.add(rng.nextInt(dataEnd));
      let detected = 0;
      for (const p of positions) {
        const bad = Buffer.from(bytes);
        bad[p] = (bad[p] as number) ^ (1 << rng.nextInt(8));
        const useCache = rng.nextInt(2) === 0;
        const cache = rng.nextInt(2) === 0 ? null : new BlockCache(1 << 20, blockSize + 256);
        const r = scanChecked(bad, bad.length, model, useCache, cache, `SEED=${seed} ${compression} block ${blockSize} flip at ${p}`);
        if (r === 'corruption') detected++;
        else fail(seed, `flip at ${p} (${compression}, block ${blockSize}) read back without error`);
      }
      assert.equal(detected, positions.size);
    }
  }
});

test('the file shrinking under an open reader makes a readahead scan fail with CORRUPTION (not wrong data)', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  const model = randomTable(rng, 2000, false);
  for (const compression of ['none', 'lz'] as const) {
    const { file, info } = build(model, { blockSizeBytes: 300, bloomBitsPerKey: 10, compression });
    for (let attempt = 0; attempt < 20; attempt++) {
      const f = new BufferFile('shrink.sst', file.contents());
      const reader = TableReader.open(f, 5, info.fileSizeBytes, rng.nextInt(2) === 0 ? null : new BlockCache(1 << 20, 512));
      const cut = 1 + rng.nextInt(info.fileSizeBytes - 1);
      f.truncate(cut);
      const it = reader.iterator(rng.nextInt(2) === 0);
      let i = 0;
      try {
        for (it.first(); it.valid(); it.next(), i++) {
          const e = model[i];
          assert.ok(e !== undefined && it.key().equals(e.key) && it.value().equals(e.value), `SEED=${seed}: wrong data at ${i}, cut ${cut}`);
        }
        // the whole data area survived the cut
        assert.equal(i, model.length);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(isLightningError(e, 'CORRUPTION'), `SEED=${seed} cut ${cut}: ${String(e)}`);
      } finally {
        it.close();
        reader.close();
      }
    }
  }
});

/** A BufferFile whose next read fails (EIO) once `failNext` is armed. */
class FlakyFile extends BufferFile {
  failNext = false;
  failedReads = 0;
  override read(buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    if (this.failNext) {
      this.failNext = false;
      this.failedReads++;
      throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
    }
    return super.read(buf, bufOffset, length, position);
  }
}

test('read errors in the middle of readahead scans: IO_ERROR, then the same iterator re-seeks and reads right', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const compression of ['none', 'lz'] as const) {
    const model = randomTable(rng, 2500, false);
    const { file, info } = build(model, { blockSizeBytes: 200, bloomBitsPerKey: 10, compression });
    for (const cached of [false, true]) {
      const f = new FlakyFile('flaky.sst', file.contents());
      const reader = TableReader.open(f, 9, info.fileSizeBytes, cached ? new BlockCache(256 * 1024, 512) : null);
      const it = reader.iterator(rng.nextInt(2) === 0);
      let i = 0;
      let errors = 0;
      it.first();
      f.failNext = true; // the scan's next file read fails
      while (i < model.length) {
        assert.ok(it.valid(), `SEED=${seed}: invalid at ${i}`);
        const e = model[i] as Entry;
        if (!it.key().equals(e.key) || !it.value().equals(e.value)) fail(seed, `wrong entry at ${i} (${compression}, cached ${cached}, errors ${errors})`);
        // now and then, arm a failure of the next file read (whenever it comes)
        if (rng.nextInt(50) === 0) f.failNext = true;
        try {
          it.next();
          i++;
        } catch (err) {
          assert.ok(isLightningError(err, 'IO_ERROR'), `SEED=${seed}: ${String(err)}`);
          errors++;
          f.failNext = false;
          // re-position on the entry after the last good one
          it.seekGE((model[i] as Entry).key);
          if (!it.valid()) assert.fail(`SEED=${seed}: seekGE to entry ${i} of ${model.length} after a read error left the iterator invalid (${compression}, cached ${cached}, errors ${errors}, failed reads ${f.failedReads})`);
          it.next();
          i++;
        }
      }
      assert.equal(it.valid(), false, 'past the last entry');
      assert.ok(errors > 0 && errors === f.failedReads, `reads failed: ${f.failedReads}, errors seen: ${errors}`);
      it.close();
      reader.close();
    }
  }
});
