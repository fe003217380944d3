/**
 * Reviewer tests (session 15b): does a merge that drops almost everything still end its slices
 * about every SLICE_BYTES_MAX bytes?
 *
 * mergeInto counts key bytes for every entry but value bytes only for the entries it keeps
 * (`let bytes = k.length; ... else { bytes += value.length }`). Yet a dropped entry's value is
 * handled all the same: the input's TableIterator reads the data block holding it (readahead),
 * checks its CRC, decompresses it and copies it into the iterator's own block copy
 * (table-iterator.ts loadBlock) before mergeInto even sees the key. So when the dropped versions
 * carry the large values (an overwrite of 64 KiB values with small ones, or deleting them), a
 * slice is bounded by the entry count only: 1,024 entries on the main thread, 4,096 in the worker,
 * i.e. 64 MiB or 256 MiB of value bytes between two yields: exactly what SLICE_BYTES_MAX was added
 * to prevent ("with large values an entry count alone would make one slice hundreds of MiB").
 *
 * Counted as event-loop turns on MemFs (its I/O completes without a turn), as in
 * test/db/slices-by-bytes.test.ts. The longest time between turns is printed, never asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { mergeTables, type MergeSpec } from '../../src/compaction/merge-tables.js';
import { buildFlushTable } from '../../src/db/flush-table.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import { SLICE_BYTES_MAX } from '../../src/util/yield.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const DIR = '/db';
/** What db.ts passes to main-thread merges (MAIN_THREAD_MERGE_SLICE_ENTRIES). */
const MAIN_THREAD_ENTRIES = 1024;
const VALUE_BYTES = 64 * 1024;

/** Runs `work` while counting event-loop turns; also the longest gap between two turns (ms). */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number; longestMs: number }> {
  let turns = 0;
  let running = true;
  let last = performance.now();
  let longestMs = 0;
  const tick = (): void => {
    if (!running) return;
    const now = performance.now();
    longestMs = Math.max(longestMs, now - last);
    last = now;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    const result = await work();
    longestMs = Math.max(longestMs, performance.now() - last);
    return { result, turns, longestMs };
  } finally {
    running = false;
  }
}

function randomValue(rng: Random, len: number): Buffer {
  const v = Buffer.allocUnsafe(len);
  for (let i = 0; i + 4 <= len; i += 4) v.writeUInt32LE(rng.nextUint32(), i);
  return v;
}

const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(7, '0')}`);

/**
 * Two input tables: `n` keys with 64 KiB values (older), then the same keys again, newer, as
 * `newer` says: tombstones or 10-byte values. Returns the merge spec (nothing older is visible).
 */
async function overwrittenInputs(fs: MemFs, rng: Random, n: number, newer: 'delete' | 'small'): Promise<{ spec: MergeSpec; inputBytes: number }> {
  fs.mkdir(DIR);
  const old = new MemTable(1, 256 * 1024 * 1024);
  for (let i = 0; i < n; i++) old.add(i + 1, KIND_VALUE, key(i), randomValue(rng, VALUE_BYTES));
  const a = await buildFlushTable(fs, { dir: DIR, fileNumber: 1, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: old.sortedEntries() }, 0);
  const young = new MemTable(2, 16 * 1024 * 1024);
  for (let i = 0; i < n; i++) {
    if (newer === 'delete') young.add(n + i + 1, KIND_DELETE, key(i), Buffer.alloc(0));
    else young.add(n + i + 1, KIND_VALUE, key(i), Buffer.from('0123456789'));
  }
  const b = await buildFlushTable(fs, { dir: DIR, fileNumber: 2, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: young.sortedEntries() }, 0);
  const spec: MergeSpec = {
    dir: DIR,
    inputs: [{ number: 1, sizeBytes: a.sizeBytes }, { number: 2, sizeBytes: b.sizeBytes }],
    firstOutputNumber: 100,
    outputNumberCount: 100,
    smallestSnapshot: 2 * n, // no snapshot: every older version is dropped
    deeperLevels: [],
    blockSizeBytes: 4096,
    bloomBitsPerKey: 10,
    compression: 'none',
    targetFileBytes: 64 * 1024 * 1024,
  };
  return { spec, inputBytes: a.sizeBytes + b.sizeBytes };
}

for (const newer of ['small', 'delete'] as const) {
  test(`a main-thread merge that drops 64 KiB values (${newer === 'small' ? 'overwritten by 10-byte values' : 'deleted'}) yields about every SLICE_BYTES_MAX bytes it reads`, { timeout: 60_000 }, async () => {
    await withSeed(`dropped values ${newer}`, async (seed) => {
      const rng = new Random(seed);
      const fs = new MemFs({ capacityBytes: 2 * 1024 * 1024 * 1024 });
      const n = 1000; // 1,000 x 64 KiB = 62.5 MiB of values, all dropped; 2,000 entries
      const { spec, inputBytes } = await overwrittenInputs(fs, rng, n, newer);
      const { result, turns, longestMs } = await turnsDuring(() => mergeTables(fs, spec, MAIN_THREAD_ENTRIES));
      assert.equal(result.entriesDropped, newer === 'small' ? n : 2 * n, 'the old values (and tombstones) are dropped');
      const expected = Math.floor(inputBytes / SLICE_BYTES_MAX);
      console.log(`${newer}: merge read ${(inputBytes / 1048576).toFixed(1)} MiB of input, dropped ${result.entriesDropped} entries, yielded ${turns} times (a slice per SLICE_BYTES_MAX read: ~${expected}); longest stretch without a turn ${longestMs.toFixed(1)} ms`);
      assert.ok(
        turns >= expected / 2,
        `the merge read ${inputBytes} bytes of input (${n} dropped 64 KiB values) but yielded only ${turns} times (expected ~${expected}): dropped values are not counted in Slices`,
      );
    });
  });
}

test('control: a main-thread merge that drops entries with large *keys* does yield regularly (key bytes are counted for every entry)', { timeout: 60_000 }, async () => {
  await withSeed('dropped large keys', async (seed) => {
    const rng = new Random(seed);
    const fs = new MemFs({ capacityBytes: 2 * 1024 * 1024 * 1024 });
    fs.mkdir(DIR);
    const n = 300;
    const bigKey = (i: number): Buffer => Buffer.concat([Buffer.alloc(32 * 1024, 0x61 + (i % 26)), key(i)]);
    const old = new MemTable(1, 64 * 1024 * 1024);
    for (let i = 0; i < n; i++) old.add(i + 1, KIND_VALUE, bigKey(i), randomValue(rng, 8));
    const a = await buildFlushTable(fs, { dir: DIR, fileNumber: 1, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: old.sortedEntries() }, 0);
    const young = new MemTable(2, 64 * 1024 * 1024);
    for (let i = 0; i < n; i++) young.add(n + i + 1, KIND_DELETE, bigKey(i), Buffer.alloc(0));
    const b = await buildFlushTable(fs, { dir: DIR, fileNumber: 2, blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', sorted: young.sortedEntries() }, 0);
    const spec: MergeSpec = { dir: DIR, inputs: [{ number: 1, sizeBytes: a.sizeBytes }, { number: 2, sizeBytes: b.sizeBytes }], firstOutputNumber: 100, outputNumberCount: 100, smallestSnapshot: 2 * n, deeperLevels: [], blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'none', targetFileBytes: 64 * 1024 * 1024 };
    const { result, turns } = await turnsDuring(() => mergeTables(fs, spec, MAIN_THREAD_ENTRIES));
    assert.equal(result.entriesDropped, 2 * n);
    assert.equal(result.outputs.length, 0, 'everything dropped: no output');
    const keyBytes = 2 * n * (32 * 1024 + 16);
    const expected = Math.floor(keyBytes / SLICE_BYTES_MAX);
    assert.ok(turns >= expected / 2, `dropped ${2 * n} entries with 32 KiB keys (${keyBytes} key bytes) but yielded ${turns} times (expected ~${expected})`);
  });
});

test('through the database (MemFs): deleting 1,000 values of 64 KiB, then compactRange(), yields about every SLICE_BYTES_MAX bytes', { timeout: 60_000 }, async () => {
  await withSeed('db delete large values', async (seed) => {
    const rng = new Random(seed);
    const mem = new MemFs({ capacityBytes: 2 * 1024 * 1024 * 1024 });
    const db = await open('/db', { fs: mem, memtableSize: 128 * 1024 * 1024, compression: 'none', l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    try {
      const n = 1000;
      const beyond = 'zzzzzz';
      for (let i = 0; i < n; i++) await db.put(key(i), randomValue(rng, VALUE_BYTES));
      await db.compactRange(beyond, beyond); // flush only
      for (let i = 0; i < n; i++) await db.delete(key(i));
      await db.compactRange(beyond, beyond); // flush only
      assert.equal(db.stats().levels[0]?.files, 2);
      const { turns, longestMs } = await turnsDuring(() => db.compactRange());
      assert.equal(db.stats().compactions.thread, 'main');
      assert.equal(db.stats().levels[0]?.files, 0);
      for (let i = 0; i < n; i += 97) assert.equal(await db.get(key(i)), undefined);
      const expected = Math.floor((n * VALUE_BYTES) / SLICE_BYTES_MAX);
      console.log(`db: compactRange of ${n} deleted 64 KiB values yielded ${turns} times (~${expected} expected); longest stretch without a turn ${longestMs.toFixed(1)} ms`);
      assert.ok(turns >= expected / 2, `compactRange merged ${n} deleted 64 KiB values (${(n * VALUE_BYTES) >> 20} MiB read) and yielded ${turns} times (expected ~${expected})`);
    } finally {
      await db.close();
    }
  });
});
