/**
 * Reviewer tests (session 15b): slicing must not change what a merge or a flush writes.
 *
 * mergeTables now ends slices with `Slices` (key bytes of every entry, value bytes of kept ones)
 * and copies each new user key with copyBytes (byte loop up to 32 bytes, TypedArray#set on a view
 * of k.buffer at k.byteOffset above); buildFlushTable ends slices by entries or bytes. Seeded
 * inputs with user keys of 1 to 64 KiB (KEY_BYTES_MAX) bytes, long shared prefixes, keys that are
 * prefixes of one another, equal-length keys that differ only in their last byte (so copyBytes of
 * a new key over an old one of the same length must copy every byte), empty values, tombstones,
 * values larger than SLICE_BYTES_MAX, and a snapshot boundary that drops versions. Every merge
 * with yieldEvery in {1, 2, 5, 1024, 4096} must write byte-for-byte the tables of the same merge
 * with yieldEvery 0 (never yields), and those tables must hold exactly what an independent model
 * of the drop rules says. Same for flushes. Finally a merge and a flush interleaved slice by slice
 * on this thread (both yieldEvery 1) write the same bytes as alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemFs } from '../../src/env/mem-fs.js';
import { joinPath } from '../../src/env/file-system.js';
import { mergeTables, type MergeOutcome, type MergeSpec } from '../../src/compaction/merge-tables.js';
import { buildFlushTable, type FlushSpec } from '../../src/db/flush-table.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_DELETE, KIND_VALUE, TRAILER_BYTES, kindOfTrailer, seqOfTrailer, trailerOf } from '../../src/base/internal-key.js';
import { tableFileName } from '../../src/base/file-names.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { packLevelRanges } from '../../src/version/level-ranges.js';
import type { TableCompression } from '../../src/sstable/table-builder.js';
import { KEY_BYTES_MAX } from '../../src/db/options.js';
import { SLICE_BYTES_MAX } from '../../src/util/yield.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const DIR = '/db';

interface Version {
  key: Buffer;
  seq: number;
  kind: number;
  value: Buffer;
}

/** Seeded user keys of many shapes (see the file comment). */
function makeKeys(rng: Random, n: number): Buffer[] {
  const prefixes = [Buffer.alloc(0), Buffer.alloc(40, 0x61), Buffer.alloc(2000, 0x62), Buffer.alloc(31, 0x63), Buffer.alloc(33, 0x63)];
  const out = new Map<string, Buffer>();
  while (out.size < n) {
    const shape = rng.nextInt(20);
    let k: Buffer;
    if (shape === 0) {
      // A huge key (up to KEY_BYTES_MAX), some ending in one differing byte.
      const len = KEY_BYTES_MAX - rng.nextInt(3);
      k = Buffer.alloc(len, 0x7a);
      k[len - 1] = 0x30 + rng.nextInt(10);
    } else if (shape < 4) {
      k = Buffer.from([rng.nextInt(256)]).subarray(0, 1 + rng.nextInt(1)); // 1 byte
    } else {
      const prefix = prefixes[rng.nextInt(prefixes.length)] as Buffer;
      const tailLen = rng.nextInt(4) === 0 ? 0 : 1 + rng.nextInt(shape < 8 ? 8 : shape < 16 ? 60 : 1500);
      const tail = Buffer.allocUnsafe(tailLen);
      // Narrow alphabet: many keys share prefixes and differ late.
      for (let i = 0; i < tailLen; i++) tail[i] = 0x41 + rng.nextInt(3);
      k = Buffer.concat([prefix, tail]);
      if (k.length === 0) k = Buffer.from('0');
    }
    out.set(k.toString('hex'), k);
  }
  return [...out.values()];
}

function makeValue(rng: Random, tag: number): Buffer {
  const shape = rng.nextInt(20);
  if (shape < 3) return Buffer.alloc(0);
  let len: number;
  if (shape < 14) len = 1 + rng.nextInt(100);
  else if (shape < 18) len = 1000 + rng.nextInt(70_000);
  else len = SLICE_BYTES_MAX - 100 + rng.nextInt(SLICE_BYTES_MAX); // around and above one slice
  const v = Buffer.allocUnsafe(len);
  // Partly compressible, identifiable.
  for (let i = 0; i < len; i++) v[i] = i % 64 < 32 ? (tag + i) & 0xff : (rng.nextUint32() & 0xff);
  return v;
}

/** Writes `tables` input tables (overlapping, versions of one key space) to `fs`; returns all versions. */
async function makeInputs(fs: MemFs, rng: Random, tables: number, perTable: number, compression: TableCompression, blockSizeBytes: number): Promise<{ inputs: { number: number; sizeBytes: number }[]; versions: Version[]; lastSeq: number }> {
  const keys = makeKeys(rng, Math.max(4, Math.floor((perTable * tables) / 3)));
  const versions: Version[] = [];
  const inputs: { number: number; sizeBytes: number }[] = [];
  let seq = 1;
  for (let t = 0; t < tables; t++) {
    const mem = new MemTable(rng.nextUint32(), 64 * 1024 * 1024);
    const used = new Set<Buffer>();
    for (let i = 0; i < perTable; i++) {
      const k = keys[rng.nextInt(keys.length)] as Buffer;
      // Several versions of a key within a table too.
      const kind = rng.nextInt(6) === 0 ? KIND_DELETE : KIND_VALUE;
      const value = kind === KIND_DELETE ? Buffer.alloc(0) : makeValue(rng, seq);
      mem.add(seq, kind, k, value);
      versions.push({ key: k, seq, kind, value });
      used.add(k);
      seq++;
    }
    const number = 10 + t;
    const meta = await buildFlushTable(fs, { dir: DIR, fileNumber: number, blockSizeBytes, bloomBitsPerKey: 10, compression, sorted: mem.sortedEntries() }, 0);
    assert.equal(meta.entryCount, perTable);
    inputs.push({ number, sizeBytes: meta.sizeBytes });
  }
  return { inputs, versions, lastSeq: seq - 1 };
}

function compareVersions(a: Version, b: Version): number {
  const c = Buffer.compare(a.key, b.key);
  return c !== 0 ? c : b.seq - a.seq;
}

/** The drop rules of merge-tables.ts, written independently. */
function expectedAfterMerge(versions: Version[], smallestSnapshot: number, deeper: (k: Buffer) => boolean): Version[] {
  const sorted = [...versions].sort(compareVersions);
  const out: Version[] = [];
  let prevKey: Buffer | null = null;
  let newerSeq = Infinity;
  for (const v of sorted) {
    if (prevKey === null || !prevKey.equals(v.key)) {
      prevKey = v.key;
      newerSeq = Infinity;
    }
    let drop = false;
    if (newerSeq <= smallestSnapshot) drop = true;
    else if (v.kind === KIND_DELETE && v.seq <= smallestSnapshot && !deeper(v.key)) drop = true;
    newerSeq = v.seq;
    if (!drop) out.push(v);
  }
  return out;
}

function readTables(fs: MemFs, numbers: number[]): Version[] {
  const out: Version[] = [];
  for (const n of numbers) {
    const path = joinPath(DIR, tableFileName(n));
    const file = fs.open(path, 'r');
    const reader = TableReader.open(file, n, file.size(), null);
    const it = reader.iterator(false);
    try {
      for (it.first(); it.valid(); it.next()) {
        const k = it.key();
        const t = trailerOf(k, k.length);
        out.push({ key: Buffer.from(k.subarray(0, k.length - TRAILER_BYTES)), seq: seqOfTrailer(t), kind: kindOfTrailer(t), value: Buffer.from(it.value()) });
      }
    } finally {
      it.close();
      reader.close();
    }
  }
  return out;
}

function assertSameVersions(got: Version[], want: Version[], what: string): void {
  assert.equal(got.length, want.length, `${what}: entry count`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as Version;
    const w = want[i] as Version;
    const same = g.key.equals(w.key) && g.seq === w.seq && g.kind === w.kind && g.value.equals(w.value);
    if (!same) assert.fail(`${what}: entry ${i}: got key(${g.key.length}B ${g.key.subarray(0, 16).toString('hex')}..${g.key.subarray(-8).toString('hex')}) seq ${g.seq} kind ${g.kind} value ${g.value.length}B; want key(${w.key.length}B ${w.key.subarray(0, 16).toString('hex')}..${w.key.subarray(-8).toString('hex')}) seq ${w.seq} kind ${w.kind} value ${w.value.length}B`);
  }
}

function assertSameBytes(fs: MemFs, got: MergeOutcome, want: MergeOutcome, what: string): void {
  assert.equal(got.entriesDropped, want.entriesDropped, `${what}: entries dropped`);
  assert.equal(got.outputs.length, want.outputs.length, `${what}: outputs`);
  for (let i = 0; i < want.outputs.length; i++) {
    const g = fs.readFileRaw(joinPath(DIR, tableFileName((got.outputs[i] as { number: number }).number)));
    const w = fs.readFileRaw(joinPath(DIR, tableFileName((want.outputs[i] as { number: number }).number)));
    if (!g.equals(w)) {
      let at = 0;
      while (at < g.length && g[at] === w[at]) at++;
      assert.fail(`${what}: output ${i} differs from the unsliced merge at byte ${at} of ${w.length}`);
    }
  }
}

function spec(inputs: { number: number; sizeBytes: number }[], first: number, smallestSnapshot: number, compression: TableCompression, blockSizeBytes: number, targetFileBytes: number, deeperLevels: MergeSpec['deeperLevels']): MergeSpec {
  return { dir: DIR, inputs, firstOutputNumber: first, outputNumberCount: 100_000, smallestSnapshot, deeperLevels, blockSizeBytes, bloomBitsPerKey: 10, compression, targetFileBytes };
}

for (const compression of ['lz', 'none'] as const) {
  test(`merges write the same bytes with any slicing, and what the drop rules say (${compression}; long keys, big values)`, { timeout: 60_000 }, async () => {
    await withSeed(`merge slicing differential ${compression}`, async (seed) => {
      for (let round = 0; round < 3; round++) {
        const rng = new Random(seed + round);
        const fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 });
        fs.mkdir(DIR);
        const blockSizeBytes = [256, 2048, 16 * 1024][rng.nextInt(3)] as number;
        const { inputs, versions, lastSeq } = await makeInputs(fs, rng, 2 + rng.nextInt(3), 150 + rng.nextInt(250), compression, blockSizeBytes);
        const snapshot = round === 0 ? lastSeq : Math.floor(lastSeq * (0.2 + 0.6 * rng.nextFloat()));
        // Deeper levels hold about half the key space (tombstones there must stay).
        const sortedKeys = [...new Set(versions.map((v) => v.key.toString('hex')))].map((h) => Buffer.from(h, 'hex')).sort(Buffer.compare);
        const lo = sortedKeys[Math.floor(sortedKeys.length / 4)] as Buffer;
        const hi = sortedKeys[Math.floor((3 * sortedKeys.length) / 4)] as Buffer;
        const deeperLevels = round === 2 ? [packLevelRanges([[lo, hi]])] : [];
        const deeper = (k: Buffer): boolean => round === 2 && Buffer.compare(k, lo) >= 0 && Buffer.compare(k, hi) <= 0;
        const target = [64 * 1024, 512 * 1024, 1 << 30][rng.nextInt(3)] as number;
        const alone = await mergeTables(fs, spec(inputs, 1000, snapshot, compression, blockSizeBytes, target, deeperLevels), 0);
        const want = expectedAfterMerge(versions, snapshot, deeper);
        assert.equal(alone.entriesDropped, versions.length - want.length, 'entries dropped (model)');
        assertSameVersions(readTables(fs, alone.outputs.map((o) => o.number)), want, `round ${round}: unsliced merge vs model`);
        let first = 2000;
        for (const every of [1, 2, 5, 1024, 4096]) {
          const sliced = await mergeTables(fs, spec(inputs, first, snapshot, compression, blockSizeBytes, target, deeperLevels), every);
          first += 1000;
          assertSameBytes(fs, sliced, alone, `round ${round}: merge sliced every ${every}`);
        }
        console.log(`${compression} round ${round}: ${versions.length} versions, ${want.length} kept, ${alone.outputs.length} outputs, block ${blockSizeBytes}`);
      }
    });
  });
}

test('flushes write the same bytes with any slicing (long keys, empty and big values, tombstones)', { timeout: 60_000 }, async () => {
  await withSeed('flush slicing differential', async (seed) => {
    const rng = new Random(seed);
    for (let round = 0; round < 4; round++) {
      const fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 });
      fs.mkdir(DIR);
      const keys = makeKeys(rng, 300);
      const mem = new MemTable(rng.nextUint32(), 64 * 1024 * 1024);
      const entries: Version[] = [];
      for (let i = 0; i < 400; i++) {
        const k = keys[rng.nextInt(keys.length)] as Buffer;
        const kind = rng.nextInt(5) === 0 ? KIND_DELETE : KIND_VALUE;
        const value = kind === KIND_DELETE ? Buffer.alloc(0) : makeValue(rng, i);
        mem.add(i + 1, kind, k, value);
        entries.push({ key: k, seq: i + 1, kind, value });
      }
      const compression = rng.nextInt(2) === 0 ? 'lz' : 'none';
      const blockSizeBytes = [256, 4096][rng.nextInt(2)] as number;
      const base: Omit<FlushSpec, 'fileNumber'> = { dir: DIR, blockSizeBytes, bloomBitsPerKey: 10, compression, sorted: mem.sortedEntries() };
      const alone = await buildFlushTable(fs, { ...base, fileNumber: 1 }, 0);
      const wantBytes = fs.readFileRaw(joinPath(DIR, tableFileName(1)));
      assertSameVersions(readTables(fs, [1]), [...entries].sort(compareVersions), `round ${round}: unsliced flush vs model`);
      let n = 2;
      for (const every of [1, 3, 1024]) {
        const m = await buildFlushTable(fs, { ...base, fileNumber: n }, every);
        assert.equal(m.entryCount, alone.entryCount);
        assert.ok(fs.readFileRaw(joinPath(DIR, tableFileName(n))).equals(wantBytes), `round ${round}: flush sliced every ${every} differs from unsliced`);
        n++;
      }
    }
  });
});

test('a merge and a flush interleaved slice by slice on this thread write the same bytes as alone', { timeout: 60_000 }, async () => {
  await withSeed('interleaved main-thread slices', async (seed) => {
    const rng = new Random(seed);
    const fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 });
    fs.mkdir(DIR);
    const compression: TableCompression = rng.nextInt(2) === 0 ? 'lz' : 'none';
    const { inputs, lastSeq } = await makeInputs(fs, rng, 3, 300, compression, 1024);
    const snapshot = Math.floor(lastSeq / 2);
    const mems: MemTable[] = [];
    for (let f = 0; f < 3; f++) {
      const mem = new MemTable(rng.nextUint32(), 64 * 1024 * 1024);
      const keys = makeKeys(rng, 200);
      for (let i = 0; i < 300; i++) {
        const kind = rng.nextInt(5) === 0 ? KIND_DELETE : KIND_VALUE;
        mem.add(1_000_000 + i, kind, keys[rng.nextInt(keys.length)] as Buffer, kind === KIND_DELETE ? Buffer.alloc(0) : makeValue(rng, i));
      }
      mems.push(mem);
    }
    const flushSpec = (mem: MemTable, n: number): FlushSpec => ({ dir: DIR, fileNumber: n, blockSizeBytes: 512, bloomBitsPerKey: 10, compression, sorted: mem.sortedEntries() });
    const merge1 = await mergeTables(fs, spec(inputs, 1000, snapshot, compression, 1024, 128 * 1024, []), 0);
    for (let f = 0; f < mems.length; f++) await buildFlushTable(fs, flushSpec(mems[f] as MemTable, 500 + f), 0);
    // Two merges and three flushes at once, each yielding after every entry.
    const [a, b] = await Promise.all([
      mergeTables(fs, spec(inputs, 2000, snapshot, compression, 1024, 128 * 1024, []), 1),
      mergeTables(fs, spec(inputs, 3000, snapshot, compression, 1024, 128 * 1024, []), 2),
      ...mems.map((m, f) => buildFlushTable(fs, flushSpec(m, 600 + f), 1)),
    ]);
    assertSameBytes(fs, a as MergeOutcome, merge1, 'merge interleaved (every 1)');
    assertSameBytes(fs, b as MergeOutcome, merge1, 'merge interleaved (every 2)');
    for (let f = 0; f < mems.length; f++) {
      assert.ok(fs.readFileRaw(joinPath(DIR, tableFileName(600 + f))).equals(fs.readFileRaw(joinPath(DIR, tableFileName(500 + f)))), `flush ${f} interleaved differs from alone`);
    }
  });
});
