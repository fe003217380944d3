/**
 * Review (session 14) of the sync-mark scan (RecordReader.durableBeyond, commit e55b52d): its
 * linear-time claim with adversarial bytes.
 *
 * durableBeyond reads candidate headers through the reader's ONE read window (`this.view(q, 9)`).
 * Its scan resumes where the previous one stopped (markScanTo), which can be far ahead of the
 * reader. With skipCorrupt, every damaged region then costs two full window refills: one to jump
 * ahead to the mark scan position, and one to come back to the record after the damaged region.
 * With the default 256 KiB window that is ~0.5 MiB read per damaged region, so bytes read grow
 * as (regions x window), not with the file size. (findValidRecord and PrefixCrcs avoid this:
 * they move forward only, or use side windows.)
 *
 * Second (a pin): at e55b52d each mark candidate (type byte 3, length 8) cost a pread of its 8-byte
 * payload even when the window held it; 6023fc7 reads it from the window. Data of a repeating
 * "08 00 00 00 03" pattern after a torn record must not cost a read call per candidate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MemFs } from '../../src/env/mem-fs.js';
import {
  encodeRecord,
  encodeFileHeaderPayload,
  encodeSyncMarkInto,
  RECORD_TYPE_FILE_HEADER,
  SYNC_MARK_RECORD_BYTES,
} from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { countingReads } from '../harness/counting-file.js';

const DIR = '/db';
const PATH = `${DIR}/000007.log`;

function header(): Buffer {
  return encodeRecord(encodeFileHeaderPayload('wal', 7), RECORD_TYPE_FILE_HEADER); // version 2
}

/** A record header whose checksum does not match (9 bytes, length 0, type DATA). */
function badRecord(): Buffer {
  const b = Buffer.alloc(9);
  b.writeUInt32LE(0xdeadbeef, 0);
  b.writeUInt32LE(0, 4);
  b[8] = 2;
  return b;
}

function read(fs: MemFs, skipCorrupt: boolean): { records: number; skipped: number; torn: number | undefined; bytes: number; calls: number } {
  const file = fs.open(PATH, 'r');
  const c = countingReads(file);
  try {
    const reader = new RecordReader(c.handle, PATH, { skipCorrupt });
    let records = 0;
    while (reader.next() !== undefined) records++;
    return { records, skipped: reader.skippedRecords, torn: reader.tornTailOffset, bytes: c.bytes(), calls: c.calls() };
  } finally {
    file.close();
  }
}

test('skipCorrupt, many damaged regions each proven by a mark far ahead: bytes read stay linear in the file size (FAILS: window thrash)', () => {
  const regions = 1500;
  const parts: Buffer[] = [header()];
  let off = parts[0]!.length;
  const gaps: number[] = [];
  const push = (b: Buffer): void => {
    parts.push(b);
    off += b.length;
  };
  // Region A: damaged record, valid record, many times.
  for (let i = 0; i < regions; i++) {
    gaps.push(off);
    push(badRecord());
    push(encodeRecord(Buffer.alloc(8, 0x41 + (i % 20))));
  }
  // Filler: valid records, so the marks lie more than one read window (256 KiB) ahead.
  for (let i = 0; i < 300; i++) push(encodeRecord(Buffer.alloc(1000, 0x61 + (i % 20))));
  // Region B: one mark per damaged region, each claiming just past it (all below their own offsets).
  for (const g of gaps) {
    const m = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
    encodeSyncMarkInto(m, 0, g + 1);
    push(m);
  }
  const fs = new MemFs();
  fs.mkdir(DIR);
  fs.writeFileRaw(PATH, Buffer.concat(parts));
  const size = off;

  const r = read(fs, true);
  console.log(`log ${(size / 1024).toFixed(0)} KiB, ${regions} damaged regions: read ${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${r.calls} calls (${(r.bytes / size).toFixed(0)} x the file)`);
  assert.equal(r.skipped, regions, 'every damaged region is proven by a mark and skipped');
  assert.equal(r.records, regions + 300);
  assert.equal(r.torn, undefined);
  // The same bound as session11-reader-scan-cost's skipCorrupt test.
  assert.ok(
    r.bytes <= 64 * size + 64 * 2 ** 20,
    `skipCorrupt read ${(r.bytes / 2 ** 20).toFixed(0)} MiB for a ${(size / 1024).toFixed(0)} KiB log ` +
      `(${(r.bytes / size).toFixed(0)} x its size): durableBeyond moves the reader's window to the mark scan and back for every region`,
  );
});

test('a torn record followed by data full of mark-like headers: read calls stay far below one per candidate (passes since 6023fc7; failed at e55b52d)', () => {
  // Valid records, then a damaged one, then a valid record whose payload repeats "08 00 00 00 03"
  // (a user value of that pattern): every 5th offset is a mark candidate for durableBeyond.
  const pattern = Buffer.from([0x08, 0x00, 0x00, 0x00, 0x03]);
  const value = Buffer.alloc(200_000);
  for (let i = 0; i < value.length; i++) value[i] = pattern[i % 5]!;
  const parts = [header(), encodeRecord(Buffer.from('first')), badRecord(), encodeRecord(value)];
  const fs = new MemFs();
  fs.mkdir(DIR);
  fs.writeFileRaw(PATH, Buffer.concat(parts));
  const size = parts.reduce((a, b) => a + b.length, 0);
  const r = read(fs, false);
  console.log(`log ${(size / 1024).toFixed(0)} KiB: ${r.calls} read calls, ${r.bytes} bytes`);
  assert.equal(r.records, 1);
  assert.equal(r.torn, parts[0]!.length + parts[1]!.length, 'a torn tail at the damaged record');
  assert.ok(r.calls < size / 64, `${r.calls} read calls for a ${(size / 1024).toFixed(0)} KiB log: one 8-byte pread per mark candidate`);
});
