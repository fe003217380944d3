/**
 * Review of 2d81548 (prefix-CRC checkpoints for long scan candidates): the reader's verdicts must
 * be EXACTLY those of checksumming every candidate in full. A reference reader
 * (test/harness/log-reader-reference.ts: node:zlib crc32 over every candidate's whole range, the
 * rules of docs/formats/wal.md "Reading: torn tail versus corruption") is compared with RecordReader over random logs with random damage:
 * flipped bytes, torn tails, zero/noise/header-like tails, 0/1 and 0x01 payloads, period-9 fake
 * headers whose lengths fit (often ending exactly at EOF), planted valid records that overlap
 * others, records larger than small read windows, skipCorrupt on and off. Seeded: SEED=<n> replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Random } from '../../src/util/random.js';
import {
  encodeFileHeaderPayload,
  encodeRecord,
  encodeSyncMarkInto,
  RECORD_TYPE_DATA,
  RECORD_TYPE_FILE_HEADER,
  RECORD_TYPE_SYNC_MARK,
  SYNC_MARK_RECORD_BYTES,
} from '../../src/wal/format.js';
import { testSeed } from '../harness/seed.js';
import { actualRead, plantRecord, referenceRead } from '../harness/log-reader-reference.js';

function headerLike(r: Random, n: number, maxLen: number): Buffer {
  const b = Buffer.alloc(n);
  const mode = r.nextInt(4);
  for (let q = 0; q + 9 <= n; q += 9) {
    b.writeUInt32LE(r.nextUint32(), q);
    const len = mode === 0 ? r.nextInt(maxLen + 1) : mode === 1 ? 4092 + r.nextInt(3) : mode === 2 ? maxLen : r.nextInt(64);
    b.writeUInt32LE(len, q + 4);
    b[q + 8] = 1 + r.nextInt(2);
  }
  return b;
}

function payloadOf(r: Random, bigOk: boolean): Buffer {
  const kind = r.nextInt(10);
  const size = bigOk && r.nextInt(6) === 0 ? 4000 + r.nextInt(14000) : r.nextInt(r.nextInt(3) === 0 ? 5000 : 300);
  const b = Buffer.alloc(size);
  switch (kind) {
    case 0:
      break; // zeros
    case 1:
      b.fill(0x01);
      break;
    case 2:
      for (let i = 0; i < size; i++) b[i] = r.nextInt(2);
      break;
    case 3:
      headerLike(r, size, 20000).copy(b);
      break;
    case 4:
      b.fill(r.nextInt(3));
      break;
    default:
      for (let i = 0; i < size; i++) b[i] = r.nextInt(256);
  }
  return b;
}

/** A sync mark record saying `durable` bytes were durable. */
function syncMark(durable: number): Buffer {
  const b = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
  encodeSyncMarkInto(b, 0, durable);
  return b;
}

/**
 * A log (header + records), then random damage. Half are version 1 WALs; version 2 ones get sync
 * marks between records (mostly truthful: a length at most their offset; sometimes claiming more).
 */
function randomCase(r: Random): Buffer {
  const version = 1 + r.nextInt(2);
  const parts: Buffer[] = [encodeRecord(encodeFileHeaderPayload('wal', 7, version), RECORD_TYPE_FILE_HEADER)];
  let size = (parts[0] as Buffer).length;
  const n = r.nextInt(14);
  for (let i = 0; i < n; i++) {
    if (version === 2 && r.nextInt(3) === 0) {
      const mark = syncMark(r.nextInt(10) === 0 ? size + 1 + r.nextInt(100) : r.nextInt(size + 1));
      parts.push(mark);
      size += mark.length;
    }
    const rec = encodeRecord(payloadOf(r, true));
    parts.push(rec);
    size += rec.length;
  }
  let bytes = Buffer.concat(parts);
  const damages = r.nextInt(4) === 0 ? 0 : 1 + r.nextInt(r.nextInt(3) === 0 ? 8 : 2);
  for (let d = 0; d < damages && bytes.length > 0; d++) {
    const at = r.nextInt(bytes.length);
    switch (r.nextInt(11)) {
      case 0:
        bytes[at] = (bytes[at] as number) ^ (1 << r.nextInt(8));
        break;
      case 1:
        bytes.fill(0, at, Math.min(bytes.length, at + 1 + r.nextInt(300)));
        break;
      case 2:
        bytes = bytes.subarray(0, at); // torn tail
        break;
      case 3:
        bytes = Buffer.concat([bytes, Buffer.alloc(r.nextInt(r.nextInt(2) === 0 ? 200 : 70000))]); // zero tail
        break;
      case 4: {
        const junk = payloadOf(r, true);
        bytes = Buffer.concat([bytes, junk]); // noise / header-like / 0x01 tail
        break;
      }
      case 5: {
        // A torn write: header claiming more than is there, then some of its payload.
        const p = payloadOf(r, true);
        const rec = encodeRecord(p);
        bytes = Buffer.concat([bytes, rec.subarray(0, r.nextInt(rec.length))]);
        break;
      }
      case 6: {
        // Header-like bytes written over the middle.
        const h = headerLike(r, 9 * (1 + r.nextInt(40)), Math.max(0, bytes.length - at));
        h.copy(bytes, at, 0, Math.min(h.length, bytes.length - at));
        break;
      }
      case 7: {
        // A valid record planted over existing bytes: often long, sometimes ending exactly at EOF.
        if (bytes.length - at < 9) break;
        const room = bytes.length - at - 9;
        const length = r.nextInt(3) === 0 ? room : r.nextInt(room + 1);
        const type = r.nextInt(5) === 0 ? RECORD_TYPE_FILE_HEADER : r.nextInt(4) === 0 ? RECORD_TYPE_SYNC_MARK : RECORD_TYPE_DATA;
        plantRecord(bytes, at, type === RECORD_TYPE_SYNC_MARK && r.nextInt(2) === 0 ? Math.min(8, room) : length, type);
        break;
      }
      case 8: {
        // A valid record appended after junk (ends exactly at EOF).
        const junk = payloadOf(r, false);
        const tail = r.nextInt(3) === 0 ? syncMark(r.nextInt(bytes.length + junk.length + 1)) : encodeRecord(payloadOf(r, true));
        bytes = Buffer.concat([bytes, junk, tail]);
        break;
      }
      case 9: {
        // Drop a range (lost bytes in the middle).
        const to = Math.min(bytes.length, at + 1 + r.nextInt(5000));
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(to)]);
        break;
      }
      default: {
        // Pad to a size that is a multiple of 128 or 64 KiB (or one off).
        const unit = r.nextInt(2) === 0 ? 128 : 65536;
        const target = Math.ceil((bytes.length + 1) / unit) * unit + (r.nextInt(3) - 1);
        if (target > bytes.length && target - bytes.length < 140000) {
          bytes = Buffer.concat([bytes, Buffer.alloc(target - bytes.length, r.nextInt(2))]); // zeros or 0x01
        }
      }
    }
  }
  return Buffer.from(bytes);
}

const WINDOWS = [undefined, 9, 10, 17, 64, 127, 128, 129, 1000, 4096, 4105, 65536];

test('random logs with random damage: RecordReader agrees exactly with a full-checksum reference', () => {
  const seed = testSeed();
  const r = new Random(seed);
  const deadline = performance.now() + 8000;
  let cases = 0;
  let corrupt = 0;
  let tornCount = 0;
  let skipped = 0;
  while (performance.now() < deadline && cases < 3000) {
    const bytes = randomCase(r);
    for (const skipCorrupt of [false, true]) {
      const windowBytes = WINDOWS[r.nextInt(WINDOWS.length)];
      const want = referenceRead(bytes, skipCorrupt);
      const got = actualRead(bytes, skipCorrupt, windowBytes);
      assert.deepEqual(got, want, `SEED=${seed} case ${cases} size ${bytes.length} skipCorrupt ${skipCorrupt} window ${windowBytes}`);
      if (want.error !== undefined) corrupt++;
      if (want.torn !== undefined) tornCount++;
      if (want.skippedRecords > 0) skipped++;
    }
    cases++;
  }
  console.log(`seed ${seed}: ${cases} logs, verdicts: ${corrupt} corruption, ${tornCount} torn, ${skipped} with skips`);
  assert.ok(cases >= 100);
});
