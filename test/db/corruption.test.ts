/**
 * Contract under on-disk damage: a checksum failure in an SSTable, WAL, MANIFEST or CURRENT is a
 * CORRUPTION LightningError naming the file, never wrong data; a torn WAL tail is not corruption;
 * walRecovery: 'skip-corrupt' opens past damaged WAL records and counts the skipped bytes. Sweeps
 * flip every byte of a small table / WAL / MANIFEST, one at a time, each on its own copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, LightningError, type OpenOptions } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { ProcessErrorRecorder, assertLightning, collect, describeError, k, rejectsCode, throwsCode } from '../harness/api-helpers.js';
import { logRecords } from '../harness/log-reader-reference.js';

const recorder = new ProcessErrorRecorder();

const RECORD_HEADER_BYTES = 9; // crc (4) + length (4) + type (1): docs/formats/wal.md
const SYNC_MARK_TYPE = 3; // WAL version 2: a durable write's record comes after a sync mark

function filesEnding(mem: MemFs, suffix: string): string[] {
  return mem.listAll().filter((p) => p.endsWith(suffix));
}

function onlyFile(mem: MemFs, pred: (p: string) => boolean, what: string): string {
  const files = mem.listAll().filter(pred);
  assert.equal(files.length, 1, `expected one ${what}, found: ${files.join(', ')}`);
  return files[0] as string;
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/**
 * Record boundaries [start, end) of a log file (WAL or MANIFEST): the header record, then the DATA
 * records (one per write); a WAL's sync marks are passed over.
 */
function recordSpans(bytes: Buffer): [number, number][] {
  return logRecords(bytes)
    .filter((r) => r.type !== SYNC_MARK_TYPE)
    .map((r): [number, number] => [r.start, r.end]);
}

/** After a clean close the OS eventually persists the unlinks of obsolete WALs: do them here. */
function dropObsoleteWals(mem: MemFs): void {
  const logs = filesEnding(mem, '.log').sort();
  for (const p of logs.slice(0, -1)) mem.unlink(p);
}

async function readAllOrCorruption(db: Database, what: string): Promise<Map<string, string> | 'corruption'> {
  try {
    return new Map(await collect(db.iterator()));
  } catch (e) {
    assertLightning(e, 'CORRUPTION', what);
    return 'corruption';
  }
}

/** A closed DB with `n` keys; its data is in SSTables (one, with the default memtable). */
async function makeDb(n: number, opts: OpenOptions = {}): Promise<{ mem: MemFs; expected: Map<string, string> }> {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, ...opts });
  const expected = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const v = `value-${i}-${'d'.repeat(i % 7)}`;
    await db.put(k(i), v, { sync: false });
    expected.set(k(i), v);
  }
  await db.close();
  return { mem, expected };
}

// ================================================================================== SSTables

test('a flipped byte in an SSTable data block → get/getSync/scan fail with CORRUPTION naming the file, never wrong data', async () => {
  const { mem, expected } = await makeDb(300, { blockSize: 256 });
  const sst = onlyFile(mem, (p) => p.endsWith('.sst'), 'table');
  mem.flipByte(sst, 10); // inside the first data block: the smallest keys
  const db = await open('/db', { fs: mem });
  try {
    const e1 = await rejectsCode(() => db.get(k(0)), 'CORRUPTION', 'get of a key in the damaged block');
    assert.ok(e1.message.includes(baseName(sst)), `message names the file: ${e1.message}`);
    const e2 = throwsCode(() => db.getSync(k(1)), 'CORRUPTION', 'getSync of a key in the damaged block');
    assert.ok(e2.message.includes(baseName(sst)), e2.message);
    assert.equal(await readAllOrCorruption(db, 'forward scan'), 'corruption');
    let reverseErr: unknown;
    try {
      await collect(db.iterator({ reverse: true }));
    } catch (e) {
      reverseErr = e;
    }
    assertLightning(reverseErr, 'CORRUPTION', 'reverse scan reaching the damaged block');
    assert.equal(db.stats().openIterators, 0, 'failed iterators are released');
    // Every other key is either right or CORRUPTION; a later block is still readable.
    let good = 0;
    for (const [key, v] of expected) {
      try {
        const got = db.getSync(key)?.toString();
        assert.equal(got, v, `wrong data for ${key}`);
        good++;
      } catch (e) {
        assertLightning(e, 'CORRUPTION', `getSync ${key}`);
      }
    }
    assert.ok(good > 200, `keys in undamaged blocks stay readable (${good})`);
    // A scan that avoids the damaged block works.
    assert.deepEqual(await collect(db.iterator({ gte: k(250) })), [...expected.entries()].slice(250));
    // Still CORRUPTION the second time (the bad block is not cached as good).
    await rejectsCode(() => db.get(k(0)), 'CORRUPTION', 'second get');
  } finally {
    await db.close();
  }
});

test('a damaged SSTable footer or index → CORRUPTION on first use, naming the file', async () => {
  for (const where of ['footer', 'middle'] as const) {
    const { mem } = await makeDb(300, { blockSize: 256 });
    const sst = onlyFile(mem, (p) => p.endsWith('.sst'), 'table');
    const size = mem.readFileRaw(sst).length;
    mem.flipByte(sst, where === 'footer' ? size - 5 : Math.floor(size * 0.9));
    let db: Database;
    try {
      db = await open('/db', { fs: mem });
    } catch (e) {
      const err = assertOpenCorruption(e, where);
      assert.ok(err.message.includes(baseName(sst)), err.message);
      continue;
    }
    try {
      let err: unknown;
      try {
        await collect(db.iterator());
      } catch (e) {
        err = e;
      }
      assertLightning(err, 'CORRUPTION', `${where}: scan`);
      assert.ok(err.message.includes(baseName(sst)), err.message);
    } finally {
      await db.close();
    }
  }
});

function assertOpenCorruption(e: unknown, what: string): LightningError {
  assertLightning(e, 'CORRUPTION', what);
  return e;
}

test('sweep: every single-byte flip of a small SSTable reads back as the right data or CORRUPTION', { timeout: 60_000 }, async () => {
  const { mem, expected } = await makeDb(6, { blockSize: 64 });
  dropObsoleteWals(mem);
  const sst = onlyFile(mem, (p) => p.endsWith('.sst'), 'table');
  const size = mem.readFileRaw(sst).length;
  let detected = 0;
  for (let off = 0; off < size; off++) {
    for (const mask of [0xff, 0x01]) {
      const what = `flip ${mask.toString(16)} at ${off}/${size}`;
      const copy = mem.crashClone();
      copy.flipByte(sst, off, mask);
      let db: Database;
      try {
        db = await open('/db', { fs: copy, blockCacheSize: off % 2 === 0 ? 0 : 1024 * 1024 });
      } catch (e) {
        assertLightning(e, 'CORRUPTION', `${what}: open`);
        detected++;
        continue;
      }
      try {
        let sawCorruption = false;
        for (const [key, v] of expected) {
          try {
            assert.equal(db.getSync(key)?.toString(), v, `${what}: wrong value for ${key}`);
          } catch (e) {
            if (e instanceof assert.AssertionError) throw e;
            assertLightning(e, 'CORRUPTION', `${what}: getSync ${key}`);
            sawCorruption = true;
          }
        }
        for (const reverse of [false, true]) {
          try {
            const got = await collect(db.iterator({ reverse }));
            const want = [...expected.entries()];
            assert.deepEqual(got, reverse ? want.reverse() : want, `${what}: scan (reverse ${reverse})`);
          } catch (e) {
            if (e instanceof assert.AssertionError) throw e;
            assertLightning(e, 'CORRUPTION', `${what}: scan`);
            sawCorruption = true;
          }
        }
        // Keys that were never written stay absent (a flip must not invent a key).
        for (const absent of [k(-1), k(999), 'key000002x']) {
          try {
            assert.equal(db.getSync(absent), undefined, `${what}: invented ${absent}`);
          } catch (e) {
            if (e instanceof assert.AssertionError) throw e;
            assertLightning(e, 'CORRUPTION', `${what}: getSync ${absent}`);
          }
        }
        if (sawCorruption) detected++;
      } finally {
        await db.close();
      }
    }
  }
  assert.ok(detected > size, `most flips are detected (${detected} of ${2 * size})`);
});

// ======================================================================================= WALs

/** A crash image whose newest WAL holds `n` acknowledged durable writes (one record each). */
async function walImage(n: number): Promise<{ image: MemFs; wal: string; expected: [string, string][] }> {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  const expected: [string, string][] = [];
  for (let i = 0; i < n; i++) {
    const v = `wal-value-${i}-${'x'.repeat(20)}`;
    await db.put(k(i), v, { sync: true });
    expected.push([k(i), v]);
  }
  const image = mem.crashClone();
  await db.close();
  const logs = filesEnding(image, '.log').sort();
  const wal = logs[logs.length - 1];
  assert.ok(wal !== undefined);
  const spans = recordSpans(image.readFileRaw(wal));
  assert.equal(spans.length, n + 1, 'header + one record per write');
  // The tests below damage and cut the records themselves: drop the zeros the WAL preallocates
  // after them (test/wal/sync-marks.test.ts and the zero-tail reviews cover those).
  const end = (spans[spans.length - 1] as [number, number])[1];
  image.writeFileRaw(wal, image.readFileRaw(wal).subarray(0, end), { synced: true });
  return { image, wal, expected };
}

test('a flipped byte in the middle of a WAL → open fails with CORRUPTION; skip-corrupt opens and counts skipped bytes', async () => {
  const { image, wal, expected } = await walImage(50);
  const bytes = image.readFileRaw(wal);
  const spans = recordSpans(bytes);
  const damaged = spans[25] as [number, number]; // record of write #24
  image.flipByte(wal, damaged[0] + RECORD_HEADER_BYTES + 3);
  const e = await rejectsCode(() => open('/db', { fs: image }), 'CORRUPTION', 'strict open');
  assert.ok(e.message.includes(baseName(wal)), `names the WAL: ${e.message}`);
  // A failed open changes nothing: the same open fails the same way again.
  await rejectsCode(() => open('/db', { fs: image }), 'CORRUPTION', 'second strict open');
  await rejectsCode(() => open('/db', { fs: image, readOnly: true }), 'CORRUPTION', 'readOnly strict open');
  const db = await open('/db', { fs: image, walRecovery: 'skip-corrupt' });
  try {
    const s = db.stats();
    assert.ok(s.recovery.walBytesSkipped > 0, `walBytesSkipped ${s.recovery.walBytesSkipped}`);
    assert.ok(s.recovery.walBytesSkipped <= damaged[1] - damaged[0], 'only the damaged record is skipped');
    const got = await collect(db.iterator());
    const want = expected.filter(([key]) => key !== k(24));
    assert.deepEqual(got, want, 'every record but the damaged one');
  } finally {
    await db.close();
  }
  // The recovered state is now durable: a strict open works.
  const db2 = await open('/db', { fs: image });
  assert.equal((await collect(db2.iterator())).length, 49);
  await db2.close();
});

test('a torn tail of the newest WAL is dropped silently; earlier records are present', async () => {
  for (const cut of ['payload', 'header', 'one byte', 'zeros appended', 'noise appended'] as const) {
    const { image, wal, expected } = await walImage(30);
    const bytes = image.readFileRaw(wal);
    const spans = recordSpans(bytes);
    const last = spans[spans.length - 1] as [number, number];
    let torn: Buffer;
    let want = expected.slice(0, 29);
    switch (cut) {
      case 'payload':
        torn = bytes.subarray(0, last[1] - 7);
        break;
      case 'header':
        torn = bytes.subarray(0, last[0] + 5);
        break;
      case 'one byte':
        torn = bytes.subarray(0, last[1] - 1);
        break;
      case 'zeros appended':
        torn = Buffer.concat([bytes, Buffer.alloc(100)]);
        want = expected;
        break;
      case 'noise appended':
        torn = Buffer.concat([bytes, Buffer.from('\x07garbage that is not a record'.repeat(3))]);
        want = expected;
        break;
    }
    image.writeFileRaw(wal, torn);
    let db: Database;
    try {
      db = await open('/db', { fs: image });
    } catch (e) {
      assert.fail(`torn tail (${cut}) must not fail the open: ${describeError(e)}`);
    }
    try {
      assert.deepEqual(await collect(db.iterator()), want, `torn tail (${cut})`);
      assert.equal(db.stats().recovery.walBytesSkipped, 0);
      await db.put('after-torn-tail', 'ok');
    } finally {
      await db.close();
    }
    const db2 = await open('/db', { fs: image });
    assert.equal((await db2.get('after-torn-tail'))?.toString(), 'ok');
    assert.equal((await collect(db2.iterator())).length, want.length + 1);
    await db2.close();
  }
});

test('WAL records larger than the read window: replay, torn tail inside one, and damage inside one', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 7);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const build = async (after: boolean): Promise<{ image: MemFs; wal: string }> => {
    const mem = new MemFs();
    const db = await open('/db', { fs: mem });
    await db.put('a', 'small', { sync: true });
    await db.put('big', big, { sync: true });
    if (after) await db.put('z', 'after', { sync: true });
    const image = mem.crashClone();
    await db.close();
    const wal = filesEnding(image, '.log').sort().pop();
    assert.ok(wal !== undefined);
    return { image, wal };
  };
  {
    const { image } = await build(true);
    const db = await open('/db', { fs: image });
    assert.ok(db.getSync('big')?.equals(big), 'a 3 MiB record replays intact');
    assert.equal(db.getSync('z')?.toString(), 'after');
    await db.close();
  }
  {
    const { image, wal } = await build(false);
    const bytes = image.readFileRaw(wal);
    image.writeFileRaw(wal, bytes.subarray(0, bytes.length - 1024 * 1024));
    const db = await open('/db', { fs: image });
    assert.equal(db.getSync('a')?.toString(), 'small');
    assert.equal(db.getSync('big'), undefined, 'the torn big record is dropped');
    await db.close();
  }
  {
    const { image, wal } = await build(true);
    const spans = recordSpans(image.readFileRaw(wal));
    const bigRecord = spans[2] as [number, number];
    image.flipByte(wal, bigRecord[0] + 1024 * 1024);
    await rejectsCode(() => open('/db', { fs: image }), 'CORRUPTION', 'damage inside a big middle record');
    const db = await open('/db', { fs: image, walRecovery: 'skip-corrupt' });
    assert.equal(db.getSync('a')?.toString(), 'small');
    assert.equal(db.getSync('big'), undefined);
    assert.equal(db.getSync('z')?.toString(), 'after');
    assert.ok(db.stats().recovery.walBytesSkipped >= big.length);
    await db.close();
  }
});

test('sweep: every single-byte flip of a small WAL → CORRUPTION, or the writes minus a torn last record', { timeout: 60_000 }, async () => {
  const { image, wal, expected } = await walImage(6);
  const bytes = image.readFileRaw(wal);
  const spans = recordSpans(bytes);
  // The last write: its sync mark and its record, which no later mark proves were synced (the
  // mark it starts with proves everything before it).
  const lastStart = (spans[spans.length - 2] as [number, number])[1];
  const want = new Map(expected);
  for (let off = 0; off < bytes.length; off++) {
    for (const mask of [0xff, 0x10]) {
      const what = `flip ${mask.toString(16)} at ${off}/${bytes.length}`;
      // Strict.
      const strict = image.crashClone();
      strict.flipByte(wal, off, mask);
      try {
        const db = await open('/db', { fs: strict });
        try {
          const got = await readAllOrCorruption(db, what);
          assert.notEqual(got, 'corruption', `${what}: tables cannot be corrupt here`);
          const n = got === 'corruption' ? 0 : got.size;
          // Only the last record may vanish (a torn tail), and only if the flip is in it.
          const allowed = off >= lastStart ? [expected.length, expected.length - 1] : [expected.length];
          assert.ok(allowed.includes(n), `${what}: strict open gave ${n} keys`);
          if (got !== 'corruption') for (const [key, v] of got) assert.equal(v, want.get(key), `${what}: value of ${key}`);
        } finally {
          await db.close();
        }
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertLightning(e, 'CORRUPTION', `${what}: strict open`);
        assert.ok(off < lastStart, `${what}: damage in the last record is a torn tail, not CORRUPTION`);
      }
      // skip-corrupt: opens, loses at most the damaged record, never returns wrong data.
      const lenient = image.crashClone();
      lenient.flipByte(wal, off, mask);
      let db: Database;
      try {
        db = await open('/db', { fs: lenient, walRecovery: 'skip-corrupt' });
      } catch (e) {
        assert.fail(`${what}: skip-corrupt open failed: ${describeError(e)}`);
      }
      try {
        const got = await readAllOrCorruption(db, what);
        assert.ok(got !== 'corruption');
        assert.ok(got.size >= expected.length - 1, `${what}: skip-corrupt kept ${got.size} keys`);
        for (const [key, v] of got) assert.equal(v, want.get(key), `${what}: value of ${key}`);
      } finally {
        await db.close();
      }
    }
  }
});

// ============================================================================ CURRENT, MANIFEST

test('a corrupt CURRENT → open fails with CORRUPTION (never a TypeError), and nothing is deleted', async () => {
  const variants: [string, (mem: MemFs) => void][] = [
    ['garbage', (m) => m.writeFileRaw('/db/CURRENT', Buffer.from('hello world\n'))],
    ['empty', (m) => m.writeFileRaw('/db/CURRENT', Buffer.alloc(0))],
    ['flipped byte in the name', (m) => m.flipByte('/db/CURRENT', 12, 0x01)],
    ['flipped byte in the crc', (m) => m.flipByte('/db/CURRENT', 20, 0x01)],
    ['missing newline', (m) => m.writeFileRaw('/db/CURRENT', m.readFileRaw('/db/CURRENT').subarray(0, -1))],
    ['huge', (m) => m.writeFileRaw('/db/CURRENT', Buffer.alloc(100_000, 0x41))],
    ['binary', (m) => m.writeFileRaw('/db/CURRENT', Buffer.from([0, 1, 2, 0xff, 0xfe, 10]))],
    ['names a missing manifest', (m) => m.unlink(onlyFile(m, (p) => p.includes('MANIFEST-'), 'manifest'))],
  ];
  for (const [name, damage] of variants) {
    const { mem } = await makeDb(20);
    damage(mem);
    const before = mem.listAll().filter((p) => p.endsWith('.sst'));
    await rejectsCode(() => open('/db', { fs: mem }), 'CORRUPTION', `CURRENT ${name}`);
    await rejectsCode(() => open('/db', { fs: mem, readOnly: true }), 'CORRUPTION', `CURRENT ${name} (readOnly)`);
    await rejectsCode(() => open('/db', { fs: mem, createIfMissing: false }), 'CORRUPTION', `CURRENT ${name} (createIfMissing false)`);
    assert.deepEqual(mem.listAll().filter((p) => p.endsWith('.sst')), before, `${name}: a failed open deletes no table`);
  }
});

test('a corrupt MANIFEST → open fails with CORRUPTION naming it', async () => {
  const variants: [string, (mem: MemFs, manifest: string) => void][] = [
    ['flip in the file header', (m, p) => m.flipByte(p, 3)],
    ['flip in the first (snapshot) edit', (m, p) => m.flipByte(p, 29 + RECORD_HEADER_BYTES + 1)],
    ['flip in a middle edit', (m, p) => {
      const spans = recordSpans(m.readFileRaw(p));
      assert.ok(spans.length >= 4, `several edits (${spans.length} records)`);
      const mid = spans[Math.floor(spans.length / 2)] as [number, number];
      m.flipByte(p, mid[0] + RECORD_HEADER_BYTES);
    }],
    ['truncated to 0 bytes', (m, p) => m.writeFileRaw(p, Buffer.alloc(0))],
    ['replaced by a WAL', (m, p) => {
      const wal = filesEnding(m, '.log')[0];
      assert.ok(wal !== undefined);
      m.writeFileRaw(p, m.readFileRaw(wal));
    }],
  ];
  for (const [name, damage] of variants) {
    // Several flushes in one session, so the MANIFEST holds several edits.
    const { mem } = await makeDb(200, { memtableSize: 2048, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
    const manifest = onlyFile(mem, (p) => p.includes('MANIFEST-'), 'manifest');
    damage(mem, manifest);
    const tablesBefore = filesEnding(mem, '.sst');
    const e = await rejectsCode(() => open('/db', { fs: mem }), 'CORRUPTION', `MANIFEST ${name}`);
    assert.ok(e.message.includes(baseName(manifest)), `${name}: names the manifest: ${e.message}`);
    await rejectsCode(() => open('/db', { fs: mem, readOnly: true }), 'CORRUPTION', `MANIFEST ${name} (readOnly)`);
    assert.deepEqual(filesEnding(mem, '.sst'), tablesBefore, `${name}: a failed open deletes no table`);
  }
});

// Regression: the damaged last record was taken for a torn tail, so the open succeeded with 0 keys
// (the WAL it made obsolete was already deleted) and removed the table as an orphan.
test(
  'a flipped byte in the last MANIFEST record after a clean close → CORRUPTION, not an empty database',
  async () => {
    const { mem, expected } = await makeDb(20);
    dropObsoleteWals(mem); // what a real disk holds after the clean close
    const manifest = onlyFile(mem, (p) => p.includes('MANIFEST-'), 'manifest');
    const size = mem.readFileRaw(manifest).length;
    mem.flipByte(manifest, size - 3);
    let db: Database;
    try {
      db = await open('/db', { fs: mem });
    } catch (e) {
      assertLightning(e, 'CORRUPTION', 'open');
      return;
    }
    try {
      const got = await collect(db.iterator());
      assert.equal(got.length, expected.size, `open succeeded with ${got.length} of ${expected.size} keys`);
      assert.deepEqual(got, [...expected.entries()]);
    } finally {
      await db.close();
    }
  },
);

// Regression: with CURRENT gone, open() created a fresh database in the directory and deleted
// every existing table as an orphan.
test(
  'a missing CURRENT next to existing tables and a MANIFEST → open refuses with CORRUPTION and deletes nothing',
  async () => {
    const { mem } = await makeDb(20);
    dropObsoleteWals(mem);
    mem.unlink('/db/CURRENT');
    const before = mem.listAll();
    const tables = filesEnding(mem, '.sst');
    assert.ok(tables.length > 0);
    await rejectsCode(() => open('/db', { fs: mem }), 'CORRUPTION', 'open without CURRENT');
    await rejectsCode(() => open('/db', { fs: mem, readOnly: true }), ['CORRUPTION', 'NOT_FOUND'], 'readOnly open without CURRENT');
    assert.deepEqual(mem.listAll().filter((p) => !p.endsWith('/LOCK')), before.filter((p) => !p.endsWith('/LOCK')), 'nothing deleted or created');
  },
);

test('sweep: every single-byte flip of a MANIFEST (its last record included) → CORRUPTION or exactly the right data', { timeout: 60_000 }, async () => {
  const { mem, expected } = await makeDb(40, { memtableSize: 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });
  dropObsoleteWals(mem);
  const manifest = onlyFile(mem, (p) => p.includes('MANIFEST-'), 'manifest');
  const bytes = mem.readFileRaw(manifest);
  const spans = recordSpans(bytes);
  assert.ok(spans.length >= 3);
  const want = [...expected.entries()];
  for (let off = 0; off < bytes.length; off++) {
    const what = `flip at ${off}/${bytes.length}`;
    const copy = mem.crashClone();
    copy.flipByte(manifest, off);
    let db: Database;
    try {
      db = await open('/db', { fs: copy });
    } catch (e) {
      assertLightning(e, 'CORRUPTION', `${what}: open`);
      continue;
    }
    try {
      const got = await readAllOrCorruption(db, what);
      assert.deepEqual(got, new Map(want), `${what}: opened, so the data must be complete`);
    } finally {
      await db.close();
    }
  }
});

test('no unhandled rejections or uncaught exceptions were recorded in this file', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
