/**
 * The scan past a bad record (RecordReader.findValidRecord) is linear in the file size. A torn
 * record whose payload looks like record headers (period-9 structures: a known type byte, a length
 * that fits) used to make almost every offset a candidate, each checksummed over its claimed
 * length: quadratic. Long candidates are now checked from checkpointed prefix CRCs, with the same
 * verdicts as before. Found in review of the WAL zero-fill experiment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MemFs } from '../../src/env/mem-fs.js';
import { LOG_FORMAT_VERSION, RECORD_TYPE_DATA } from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { readLogCounting } from '../harness/counting-file.js';

const PATH = '/db/000007.log';

/** A payload of 9-byte units that each parse as a record header claiming `length` bytes. */
function headerLike(bytes: number, length: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i + 9 <= bytes; i += 9) {
    b.writeUInt32LE(0x12345678, i); // a checksum that will not match
    b.writeUInt32LE(length, i + 4);
    b[i + 8] = RECORD_TYPE_DATA;
  }
  return b;
}

/** A log of `good` small records, then `torn` whose last bytes never made it to the file. */
function tornLog(torn: Buffer, keepBytes: number): { fs: MemFs; tornAt: number } {
  const fs = new MemFs();
  fs.mkdir('/db');
  const file = fs.open(PATH, 'truncate');
  const w = RecordWriter.create(file, 7, 'wal');
  for (let i = 0; i < 3; i++) w.add(Buffer.alloc(50, i + 1));
  const tornAt = w.sizeBytes();
  w.add(torn);
  w.close();
  const whole = fs.readFileRaw(PATH);
  fs.writeFileRaw(PATH, whole.subarray(0, tornAt + keepBytes));
  return { fs, tornAt };
}


test('header-like data in a torn record: the scan checks few candidates and finds the torn tail', () => {
  // 3 MiB of a 4 MiB record reached the file; every unit claims 28 KiB, which would fit. (The
  // bytes a candidate's end lands on are the unit's zero length bytes: no plausible header.)
  const { fs, tornAt } = tornLog(headerLike(4 * 1024 * 1024, 0x7000), 3 * 1024 * 1024);
  const r = readLogCounting(fs, PATH);
  assert.equal(r.records, 3, 'the records before the torn one');
  assert.equal(r.torn, tornAt, 'the torn record is the tail');
  const fileBytes = fs.readFileRaw(PATH).length;
  assert.ok(r.readBytes <= 4 * fileBytes, `read ${r.readBytes} bytes for a ${fileBytes}-byte log`);
});

test('a crafted chain of plausible headers: still a torn tail, still a linear read', () => {
  // Lengths that are multiples of 9 (minus the header) land every candidate's end on another unit.
  const length = 9 * 30_000 - 9;
  const { fs, tornAt } = tornLog(headerLike(2 * 1024 * 1024, length), 2 * 1024 * 1024 - 100);
  const r = readLogCounting(fs, PATH);
  assert.equal(r.records, 3);
  assert.equal(r.torn, tornAt);
  const fileBytes = fs.readFileRaw(PATH).length;
  assert.ok(r.readBytes <= 8 * fileBytes, `read ${(r.readBytes / 2 ** 20).toFixed(0)} MiB for a ${fileBytes}-byte log`);
});

test('corruption with a valid record after it is still found (and skipped with skipCorrupt)', () => {
  const fs = new MemFs();
  fs.mkdir('/db');
  // Version 1: any valid record after the damage makes it corruption (version 2 needs a sync mark
  // after it as well: test/wal/sync-marks.test.ts).
  const w = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal', LOG_FORMAT_VERSION);
  const offsets: number[] = [];
  for (let i = 0; i < 6; i++) {
    offsets.push(w.sizeBytes());
    w.add(Buffer.alloc(200, i + 1));
  }
  w.close();
  fs.flipByte(PATH, (offsets[2] as number) + 20); // inside record 2's payload
  const file = fs.open(PATH, 'r');
  try {
    assert.throws(() => {
      const reader = new RecordReader(file, PATH);
      while (reader.next() !== undefined);
    }, /CORRUPTION/);
    const skipping = new RecordReader(file, PATH, { skipCorrupt: true });
    let n = 0;
    while (skipping.next() !== undefined) n++;
    assert.equal(n, 5, 'every record but the damaged one');
    assert.equal(skipping.skippedRecords, 1);
  } finally {
    file.close();
  }
});
