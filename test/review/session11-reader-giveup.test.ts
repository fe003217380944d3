/**
 * Review of cece3c0 (scan budget in RecordReader.findValidRecord): single damage in the middle of
 * a log, followed by intact records, must be CORRUPTION in strict mode (and skippable with
 * skipCorrupt), never a silent torn tail.
 *
 * The budget caps the bytes one scan checksums at max(64 MiB, 4 x file size). Every false
 * candidate inside the damaged record costs its claimed length. Ordinary, non-crafted payloads make
 * many offsets expensive false candidates: a byte array of 0/1 flags (a boolean array, a bitmap
 * stored one byte per bit) has a type byte of 1 at half the offsets, a length <= 0x01010101 that
 * often fits, and a follower that is plausible half the time. A run of 0x01 bytes claims 16 MiB at
 * every offset. Then the budget runs out inside the damaged record, the scan "gives up", the
 * damaged record is reported as a torn tail and every acknowledged record after it is dropped
 * silently (scanGaveUp is set, but no caller looks at it: src/db/open.ts, src/version/). Before
 * cece3c0 the same logs were CORRUPTION (found after a long, quadratic scan).
 *
 * These tests failed against cece3c0; its budget and follower filter were replaced by exact checks
 * from prefix-CRC checkpoints (src/wal/record-reader.ts PrefixCrcs), and they pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { testSeed } from '../harness/seed.js';
import { LOG_FORMAT_VERSION } from '../../src/wal/format.js';
import { newestWalRecords } from '../harness/log-reader-reference.js';

const PATH = '/db/000007.log';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Random 0/1 bytes: a boolean array stored one byte per flag. */
function boolArray(n: number, seed: number): Buffer {
  const next = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 32) {
    const r = next();
    for (let j = 0; j < 32 && i + j < n; j++) b[i + j] = (r >>> j) & 1;
  }
  return b;
}

interface Built {
  fs: MemFs;
  offsets: number[];
}

/** A log: 3 small records, `big`, 3 small records; offsets[i] = start of record i (0 = header). */
function buildLog(big: Buffer): Built {
  const fs = new MemFs();
  fs.mkdir('/db');
  const file = fs.open(PATH, 'truncate');
  const w = RecordWriter.create(file, 7, 'wal', LOG_FORMAT_VERSION);
  const offsets = [0];
  const payloads = [Buffer.alloc(40, 0xa1), Buffer.alloc(40, 0xa2), Buffer.alloc(40, 0xa3), big];
  for (let i = 0; i < 3; i++) payloads.push(Buffer.alloc(40, 0xb1 + i));
  for (const p of payloads) {
    offsets.push(w.sizeBytes());
    w.add(p);
  }
  w.close();
  return { fs, offsets };
}

interface ReadResult {
  records: number;
  torn: number | undefined;
  gaveUp: boolean;
  error: string | undefined;
  skipped: number;
}

function readAll(fs: MemFs, skipCorrupt: boolean): ReadResult {
  const file = fs.open(PATH, 'r');
  try {
    const reader = new RecordReader(file, PATH, { skipCorrupt });
    let records = 0;
    try {
      while (reader.next() !== undefined) records++;
    } catch (e) {
      return { records, torn: reader.tornTailOffset, gaveUp: false /* scanGaveUp: removed with the scan budget */, error: (e as Error).message, skipped: reader.skippedRecords };
    }
    return { records, torn: reader.tornTailOffset, gaveUp: false /* scanGaveUp: removed with the scan budget */, error: undefined, skipped: reader.skippedRecords };
  } finally {
    file.close();
  }
}

function checkSingleDamage(name: string, big: Buffer, damage: (b: Built) => void): void {
  const built = buildLog(big);
  damage(built);
  const strict = readAll(built.fs, false);
  assert.ok(
    strict.error !== undefined && /CORRUPTION|corrupt/i.test(strict.error),
    `${name}: one damaged record with 3 intact records after it must be CORRUPTION in strict mode; ` +
      `got ${strict.records} records, torn tail at ${strict.torn}, scanGaveUp=${strict.gaveUp} ` +
      `(the 3 acknowledged records after the damage were dropped silently)`,
  );
  const lenient = readAll(built.fs, true);
  assert.equal(
    lenient.records,
    6,
    `${name}: skipCorrupt must recover the 6 intact records; got ${lenient.records}, torn=${lenient.torn}, scanGaveUp=${lenient.gaveUp}`,
  );
}

test('control: a flipped byte in a 1 MiB record of random bytes is CORRUPTION', () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const next = rng(seed);
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(next(), i);
  checkSingleDamage('random payload', big, (b) => b.fs.flipByte(PATH, (b.offsets[4] as number) + 9 + 1000));
});

test('a flipped byte in a 1 MiB record holding a boolean array (0/1 bytes) must be CORRUPTION, not a torn tail', () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const big = boolArray(1 << 20, seed);
  checkSingleDamage('bool array, flipped byte', big, (b) => b.fs.flipByte(PATH, (b.offsets[4] as number) + 9 + 1000));
});

test('a flipped CRC byte of a 1 MiB boolean-array record must be CORRUPTION, not a torn tail', () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const big = boolArray(1 << 20, seed);
  checkSingleDamage('bool array, flipped crc', big, (b) => b.fs.flipByte(PATH, (b.offsets[4] as number) + 1));
});

test('a lost (zeroed) 4 KiB page inside a 1 MiB boolean-array record must be CORRUPTION, not a torn tail', () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const big = boolArray(1 << 20, seed);
  checkSingleDamage('bool array, zeroed page', big, (b) => {
    const bytes = Buffer.from(b.fs.readFileRaw(PATH));
    const page = Math.ceil(((b.offsets[4] as number) + 100_000) / 4096) * 4096;
    bytes.fill(0, page, page + 4096);
    b.fs.writeFileRaw(PATH, bytes);
  });
});

test('a flipped byte in a 20 MiB record of 0x01 bytes must be CORRUPTION, not a torn tail', () => {
  checkSingleDamage('0x01 fill', Buffer.alloc(20 << 20, 0x01), (b) => b.fs.flipByte(PATH, (b.offsets[4] as number) + 9 + (1 << 20)));
});

test('db level: a flipped byte in a durable boolean-array value must fail strict open, not drop later durable writes', async () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const flags = boolArray(1 << 20, seed);
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  await db.put('a', 'first', { sync: true });
  await db.put('flags', flags, { sync: true });
  for (let i = 0; i < 5; i++) await db.put(`z${i}`, `after-${i}`, { sync: true });
  const image = mem.crashClone();
  await db.close();
  // Record boundaries: header, 'a', 'flags', z0..z4.
  const { path: wal, starts } = newestWalRecords(image);
  assert.equal(starts.length, 8);
  image.flipByte(wal, (starts[2] as number) + 9 + 5000);

  let outcome: string;
  try {
    const d = await open('/db', { fs: image });
    const present = ['a', 'flags', 'z0', 'z4'].filter((key) => d.getSync(key) !== undefined);
    await d.close();
    outcome = `opened; keys present: ${present.join(',') || '(none)'}`;
  } catch (e) {
    outcome = (e as { code?: string }).code ?? String(e);
  }
  assert.equal(outcome, 'CORRUPTION', 'strict open must report the damage (5 durable writes follow it)');
});
