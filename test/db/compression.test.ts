/**
 * The `compression` open option end to end on MemFs: 'lz' (the default) and 'none' store the same
 * contents, survive reopen, flush and compaction; 'lz' takes less disk for compressible data; a
 * database can switch between them (tables of both kinds stay readable); bad values are
 * INVALID_ARGUMENT; a damaged compressed data block reads as CORRUPTION, never as data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type OpenOptions } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { getBlockHandle } from '../../src/sstable/block-handle.js';
import { FOOTER_BYTES } from '../../src/sstable/footer.js';
import { Random } from '../../src/util/random.js';
import { assertLightning, collect, k, rejectsCode, throwsCode } from '../harness/api-helpers.js';
import { withSeed } from '../harness/seed.js';

/** Benchmark-like values: the key, 34 random bytes, a copy of the first 50 bytes (100 bytes). */
function valueFor(key: string, rnd: Random): string {
  let random = '';
  for (let i = 0; i < 34; i++) random += String.fromCharCode(rnd.nextInt(256));
  const head = (key.padEnd(16, '.') + random).slice(0, 50);
  return head + head;
}

function tables(mem: MemFs): string[] {
  return mem.listAll().filter((p) => p.endsWith('.sst'));
}

function sstBytes(mem: MemFs): number {
  let total = 0;
  for (const p of tables(mem)) total += mem.readFileRaw(p).length;
  return total;
}

function tableVersions(mem: MemFs): number[] {
  return tables(mem).map((p) => {
    const bytes = mem.readFileRaw(p);
    return bytes.readUInt32LE(bytes.length - FOOTER_BYTES + 48);
  });
}

async function checkContents(db: Database, expected: Map<string, string>, what: string): Promise<void> {
  assert.deepEqual(await collect(db.iterator()), [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), `${what}: scan`);
  for (const [key, v] of expected) assert.equal(db.getSync(key)?.toString('latin1'), v, `${what}: get ${key}`);
  assert.equal(db.getSync('absent'), undefined);
}

/** Writes `n` compressible entries (and deletes some) in batches; returns the expected contents. */
async function fill(db: Database, n: number, seed: number, expected = new Map<string, string>()): Promise<Map<string, string>> {
  const rnd = new Random(seed);
  for (let i = 0; i < n; i += 100) {
    const ops: { type: 'put'; key: string; value: Buffer }[] = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      const key = k(rnd.nextInt(n * 2));
      const value = valueFor(key, rnd);
      ops.push({ type: 'put', key, value: Buffer.from(value, 'latin1') });
      expected.set(key, value);
    }
    await db.batch(ops, { sync: false });
    if (i % 1000 === 0) {
      const key = k(rnd.nextInt(n * 2));
      await db.delete(key, { sync: false });
      expected.delete(key);
    }
  }
  return expected;
}

const small: OpenOptions = { memtableSize: 64 * 1024, levelBaseSize: 256 * 1024, targetFileSize: 64 * 1024 };

test("compression 'lz' and 'none': same contents through flushes, compactions and reopen; lz is smaller", async () => {
  await withSeed('db compression round trip', async (seed) => {
    const sizes: Record<string, number> = {};
    for (const compression of ['lz', 'none'] as const) {
      const mem = new MemFs();
      const db = await open('/db', { fs: mem, ...small, compression });
      const expected = await fill(db, 6000, seed);
      await db.idle();
      await checkContents(db, expected, `${compression}, open`);
      const compactions = db.stats().compactions.count;
      assert.ok(compactions > 0, `${compression}: compactions ran (${compactions})`);
      await db.close();
      const db2 = await open('/db', { fs: mem, compression });
      await checkContents(db2, expected, `${compression}, reopened`);
      await db2.compactRange();
      await checkContents(db2, expected, `${compression}, after compactRange`);
      await db2.close();
      // Flushes and compactions both write with the DB's compression (flush-table.ts).
      const versions = tableVersions(mem);
      assert.ok(versions.length > 0);
      if (compression === 'lz') assert.ok(versions.every((v) => v === 2), `lz tables are version 2: ${versions.join(',')}`);
      else assert.ok(versions.every((v) => v === 1), `raw tables are version 1: ${versions.join(',')}`);
      sizes[compression] = sstBytes(mem);
    }
    const ratio = (sizes['lz'] as number) / (sizes['none'] as number);
    assert.ok(ratio < 0.7, `lz tables take ${sizes['lz']} bytes, none ${sizes['none']} (ratio ${ratio.toFixed(3)})`);
  });
});

test("with 'lz', flushes write compressed L0 tables, so a sequential load moves down without rewrites", async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, ...small, compression: 'lz', l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  const rnd = new Random(11);
  const expected = new Map<string, string>();
  // Ascending keys: every flushed table covers a key range of its own.
  for (let i = 0; i < 3000; i++) {
    const v = valueFor(k(i), rnd);
    await db.put(k(i), Buffer.from(v, 'latin1'), { sync: false });
    expected.set(k(i), v);
  }
  await db.idle();
  const flushed = tableVersions(mem);
  assert.ok(flushed.length >= 3, `several L0 tables (${flushed.length})`);
  assert.ok(flushed.every((v) => v === 2), `flushed L0 tables are compressed: ${flushed.join(',')}`);
  await db.close();
  // Reopened with the default triggers: L0 drains into L1 by trivial moves only.
  const db2 = await open('/db', { fs: mem, ...small, compression: 'lz' });
  await db2.idle();
  const c = db2.stats().compactions;
  assert.ok(c.trivialMoves > 0, `trivial moves out of L0 (${JSON.stringify(c)})`);
  assert.equal(c.bytesWritten, 0, `nothing rewritten (${JSON.stringify(c)})`);
  await checkContents(db2, expected, 'after the moves');
  await db2.close();
});

test("compression defaults to 'lz'; a database can switch either way and reads tables of both kinds", async () => {
  const mem = new MemFs();
  let db = await open('/db', { fs: mem, ...small });
  const expected = await fill(db, 2000, 1);
  await db.compactRange();
  await db.close();
  assert.ok(tableVersions(mem).every((v) => v === 2), 'default tables are compressed');

  // A few more entries, flushed to one raw L0 table ('none'), with compaction held off.
  db = await open('/db', { fs: mem, ...small, compression: 'none', l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  await fill(db, 200, 2, expected);
  await db.close();
  const mixed = tableVersions(mem);
  assert.ok(mixed.includes(1) && mixed.includes(2), `both kinds on disk: ${mixed.join(',')}`);

  db = await open('/db', { fs: mem, ...small, compression: 'lz' });
  await checkContents(db, expected, 'mixed tables');
  await db.compactRange();
  await checkContents(db, expected, 'after compactRange with lz');
  assert.ok(tableVersions(mem).every((v) => v === 2), 'compaction rewrote everything compressed');
  await db.close();

  // Reading compressed tables with compression 'none' (it only affects what is written).
  db = await open('/db', { fs: mem, ...small, compression: 'none' });
  await checkContents(db, expected, 'compressed tables opened with none');
  await db.close();
});

test('compression: bad values reject with INVALID_ARGUMENT', async () => {
  const mem = new MemFs();
  for (const value of ['zstd', 'LZ', '', true, 1, null, {}]) {
    await rejectsCode(() => open('/db', { fs: mem, compression: value as unknown as 'lz' }), 'INVALID_ARGUMENT', `compression=${String(value)}`);
  }
  assert.equal(mem.exists('/db'), false);
});

test('a flipped byte inside a compressed data block → CORRUPTION naming the file, never wrong data', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, blockSize: 256, compression: 'lz' });
  const rnd = new Random(5);
  const expected = new Map<string, string>();
  for (let i = 0; i < 300; i++) {
    const v = valueFor(k(i), rnd);
    await db.put(k(i), Buffer.from(v, 'latin1'), { sync: false });
    expected.set(k(i), v);
  }
  await db.compactRange(); // one compressed table below L0
  await db.close();
  const ssts = tables(mem);
  assert.equal(ssts.length, 1);
  const sst = ssts[0] as string;
  const bytes = mem.readFileRaw(sst);
  // The first data block, from the table's own index: it must be stored compressed (type 1).
  const reader = TableReader.open(mem.open(sst, 'r'), 1, bytes.length, null);
  const index = new BlockIterator(reader.indexBlock, reader.path, reader.indexOffset);
  index.first();
  const handle = { offset: 0, sizeBytes: 0 };
  getBlockHandle(index.valueBlock(), index.valueStart(), index.valueEnd(), handle, reader.path, reader.indexOffset);
  index.close();
  reader.close();
  assert.equal(bytes[handle.offset + handle.sizeBytes], 1, 'the first data block is compressed');
  mem.flipByte(sst, handle.offset + Math.floor(handle.sizeBytes / 2));

  const db2 = await open('/db', { fs: mem });
  try {
    const name = sst.slice(sst.lastIndexOf('/') + 1);
    const e1 = await rejectsCode(() => db2.get(k(0)), 'CORRUPTION', 'get of a key in the damaged block');
    assert.ok(e1.message.includes(name), e1.message);
    throwsCode(() => db2.getSync(k(1)), 'CORRUPTION', 'getSync');
    let scanError: unknown;
    try {
      await collect(db2.iterator());
    } catch (e) {
      scanError = e;
    }
    assertLightning(scanError, 'CORRUPTION', 'scan');
    let good = 0;
    for (const [key, v] of expected) {
      try {
        assert.equal(db2.getSync(key)?.toString('latin1'), v, `wrong data for ${key}`);
        good++;
      } catch (e) {
        assertLightning(e, 'CORRUPTION', `getSync ${key}`);
      }
    }
    assert.ok(good > 250, `keys in undamaged blocks stay readable (${good})`);
    await rejectsCode(() => db2.get(k(0)), 'CORRUPTION', 'still CORRUPTION (not cached as good)');
  } finally {
    await db2.close();
  }
});
