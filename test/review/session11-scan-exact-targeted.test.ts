/**
 * Review of 2d81548: targeted cases for the prefix-CRC path of the scan past a bad record, each
 * compared with the full-checksum reference (test/harness/log-reader-reference.ts):
 * - MiB-sized logs where every scan ends at a long valid record (the checkpoint path must say
 *   "valid"), with false long candidates around it, at every alignment against the 128-byte
 *   checkpoints and the 64 KiB side windows; skipCorrupt on (one PrefixCrcs reused by all scans)
 *   and off;
 * - files whose size minus the checkpoint base is a multiple of 128 / 64 KiB (or one off), with
 *   the valid candidate ending exactly at EOF;
 * - the header itself damaged (scan from offset 1);
 * - the GF(2) math at length 0 and huge lengths;
 * - read errors inside PrefixCrcs surface as LightningError.
 * Seeded: SEED=<n> replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';

import { LightningError } from '../../src/base/errors.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { byteShiftFactor, crc32Continue, crc32OfSuffix, mulModPoly } from '../../src/util/crc-combine.js';
import { Random } from '../../src/util/random.js';
import {
  encodeFileHeaderPayload,
  encodeRecord,
  LOG_FORMAT_VERSION,
  RECORD_TYPE_DATA,
  RECORD_TYPE_FILE_HEADER,
} from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { testSeed } from '../harness/seed.js';
import { PATH, actualRead, plantRecord, referenceRead } from '../harness/log-reader-reference.js';

// Version 1: these cases exercise the scan for a later valid record, which decides alone there.
const HEADER = encodeRecord(encodeFileHeaderPayload('wal', 7, LOG_FORMAT_VERSION), RECORD_TYPE_FILE_HEADER);

function randomBytes(r: Random, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.nextInt(256);
  return b;
}

/**
 * Header, a few good records, then `regions` x (zeros of random length with `fakes` false long
 * candidates in them, a long valid record). Every scan passes false long candidates (random CRC,
 * lengths that fit, some ending at EOF) and stops at the long valid record.
 */
function chain(r: Random, regions: number, fakes: number): Buffer {
  const parts: Buffer[] = [HEADER];
  for (let i = 0; i < 3; i++) parts.push(encodeRecord(randomBytes(r, r.nextInt(200))));
  const fakeAt: number[] = [];
  let at = parts.reduce((s, p) => s + p.length, 0);
  for (let i = 0; i < regions; i++) {
    const junk = Buffer.alloc(9 * fakes + 1 + r.nextInt(300));
    for (let j = 0; j < fakes; j++) fakeAt.push(at + 1 + 9 * j);
    parts.push(junk);
    at += junk.length;
    const rec = encodeRecord(randomBytes(r, 4092 + r.nextInt(r.nextInt(4) === 0 ? 140_000 : 9000)));
    parts.push(rec);
    at += rec.length;
  }
  const bytes = Buffer.concat(parts);
  const size = bytes.length;
  for (const q of fakeAt) {
    const room = size - q - 9;
    bytes.writeUInt32LE(r.nextUint32(), q);
    bytes.writeUInt32LE(r.nextInt(3) === 0 ? room : 4092 + r.nextInt(room - 4092 + 1), q + 4);
    bytes[q + 8] = RECORD_TYPE_DATA;
  }
  return bytes;
}

test('chains of long valid records after damage, false long candidates around them: exact, all windows', () => {
  const seed = testSeed();
  const r = new Random(seed);
  for (let trial = 0; trial < 6; trial++) {
    const bytes = chain(r, 40 + r.nextInt(40), 1 + r.nextInt(4));
    for (const skipCorrupt of [true, false]) {
      const want = referenceRead(bytes, skipCorrupt);
      if (skipCorrupt) assert.ok(want.skippedRecords >= 40, 'every region is a skip');
      for (const windowBytes of [undefined, 9, 4096, 65536 + 1]) {
        const got = actualRead(bytes, skipCorrupt, windowBytes);
        assert.deepEqual(got, want, `SEED=${seed} trial ${trial} size ${bytes.length} skipCorrupt ${skipCorrupt} window ${windowBytes}`);
      }
    }
  }
});

test('size minus the checkpoint base a multiple of 128 / 64 KiB (or one off); valid candidate ends at EOF', () => {
  const seed = testSeed();
  const r = new Random(seed);
  let cases = 0;
  for (const unit of [128, 65536, 2 * 65536]) {
    for (const delta of [-1, 0, 1, 5, 127]) {
      for (const shape of ['valid-at-eof', 'valid-inside', 'torn', 'bad-header']) {
        // Header + one record; a bad record (zeros, no candidates); the first long candidate at q
        // (base = q + 4); the rest sized so that size - base = k * unit + delta.
        const zeros = 1 + r.nextInt(50);
        const prefix = Buffer.concat([HEADER, encodeRecord(randomBytes(r, 20 + r.nextInt(100))), Buffer.alloc(zeros)]);
        const q = prefix.length;
        const badAt = q - zeros;
        const size = q + 4 + unit * (1 + r.nextInt(2)) + delta + (unit === 128 ? 8192 : 0);
        const bytes = Buffer.concat([prefix, randomBytes(r, size - q)]);
        // Strip accidental candidate types from the tail so only planted ones count.
        for (let i = q + 8; i < size; i += 1) if (bytes[i] === 1 || bytes[i] === 2) bytes[i] = 3;
        if (shape === 'bad-header') bytes[3] = (bytes[3] as number) ^ 0x40;
        // First long candidate: a false one claiming to end at EOF (builds PrefixCrcs at q + 4).
        bytes.writeUInt32LE(0x12345678, q);
        bytes.writeUInt32LE(size - q - 9, q + 4);
        bytes[q + 8] = RECORD_TYPE_DATA;
        if (shape === 'valid-at-eof') {
          const v = q + 9 + r.nextInt(300);
          plantRecord(bytes, v, size - v - 9);
        } else if (shape === 'valid-inside') {
          const v = q + 9 + r.nextInt(300);
          const length = 4092 + r.nextInt(size - v - 9 - 4092 - 20);
          plantRecord(bytes, v, length);
          // And a second, later valid long candidate ending at EOF (a second scan, same base).
          const e = v + 9 + length;
          bytes.fill(0, e, e + 9); // a bad record right after it
          const w = e + 9 + r.nextInt(10);
          plantRecord(bytes, w, size - w - 9);
        }
        for (const skipCorrupt of [false, true]) {
          const want = referenceRead(bytes, skipCorrupt);
          for (const windowBytes of [undefined, 9, 128, 4105]) {
            const got = actualRead(bytes, skipCorrupt, windowBytes);
            assert.deepEqual(got, want, `SEED=${seed} unit ${unit} delta ${delta} ${shape} skipCorrupt ${skipCorrupt} window ${windowBytes}`);
          }
          if (shape === 'torn') assert.equal(want.torn, badAt);
          if (shape === 'valid-at-eof' && skipCorrupt) assert.equal(want.payloads.length, 2);
          if (shape === 'valid-inside' && skipCorrupt) assert.equal(want.skippedRecords, 2);
        }
        cases++;
      }
    }
  }
  assert.equal(cases, 60);
});

test('crc-combine: length 0, huge lengths, composition, and agreement with zlib', () => {
  const ONE = 0x80000000;
  const POLY = 0xedb88320;
  // x^(8n) by plain shifting, for small n.
  let slow = ONE >>> 0;
  for (let n = 0; n <= 600; n++) {
    assert.equal(byteShiftFactor(n), slow, `x^(8*${n})`);
    for (let k = 0; k < 8; k++) slow = ((slow & 1) !== 0 ? (slow >>> 1) ^ POLY : slow >>> 1) >>> 0;
  }
  // Huge lengths: f(2n) = f(n)^2 and f(a + b) = f(a) f(b), up to 2^53 - 1.
  for (let k = 1; k <= 52; k++) {
    const f = byteShiftFactor(2 ** (k - 1));
    assert.equal(byteShiftFactor(2 ** k), mulModPoly(f, f), `2^${k}`);
  }
  const r = new Random(testSeed());
  for (let i = 0; i < 200; i++) {
    const a = Math.floor(r.nextFloat() * 2 ** 52);
    const b = Math.floor(r.nextFloat() * 2 ** 52);
    assert.equal(byteShiftFactor(a + b), mulModPoly(byteShiftFactor(a), byteShiftFactor(b)), `${a} + ${b}`);
  }
  assert.equal(byteShiftFactor(Number.MAX_SAFE_INTEGER), mulModPoly(byteShiftFactor(2 ** 52), byteShiftFactor(2 ** 52 - 1)));
  // Multiplicative: 0 absorbs, ONE is neutral; results are uint32.
  for (const v of [0, 1, 0x7fffffff, 0xffffffff, -1]) {
    assert.equal(mulModPoly(0, v), 0);
    assert.equal(mulModPoly(v, 0), 0);
    assert.ok(mulModPoly(v, 0xdeadbeef) >= 0);
  }
  // crc32Continue: empty ranges, arbitrary start values, agreement with zlib.
  const data = randomBytes(r, 5000);
  for (const init of [0, 1, 0xffffffff, 0x80000000, crc32(data.subarray(0, 7))]) {
    assert.equal(crc32Continue(init, data, 10, 10), init >>> 0);
    for (const [s, e] of [[0, 1], [0, 127], [3, 4999], [0, 5000]] as const) {
      assert.equal(crc32Continue(init, data, s, e), crc32(data.subarray(s, e), init), `[${s}, ${e}) from ${init}`);
    }
  }
  // crc32OfSuffix: empty suffix, empty prefix, whole buffer, long (16 MiB) suffix of 0x01 bytes.
  const whole = crc32(data);
  assert.equal(crc32OfSuffix(whole, whole, 0), 0);
  assert.equal(crc32OfSuffix(whole, 0, data.length), whole);
  const big = Buffer.alloc(16 << 20, 1);
  big.set(data, 0);
  assert.equal(crc32OfSuffix(crc32(big), crc32(data), big.length - data.length), crc32(big.subarray(data.length)));
});

test('a read error or a shrinking file inside the prefix-CRC path surfaces as a LightningError', () => {
  const r = new Random(testSeed());
  const bytes = chain(r, 10, 3);
  for (const failure of ['throw', 'short'] as const) {
    for (let failAt = 1; failAt < 60; failAt += 3) {
      const fs = new MemFs();
      fs.mkdir('/db');
      fs.writeFileRaw(PATH, bytes);
      const file = fs.open(PATH, 'r');
      let calls = 0;
      const handle: FileHandle = {
        path: file.path,
        read: (buf, off, len, pos) => {
          if (++calls >= failAt) {
            if (failure === 'throw') throw new TypeError('boom');
            return 0;
          }
          return file.read(buf, off, len, pos);
        },
        write: (buf, off, len, pos) => file.write(buf, off, len, pos),
        sync: () => file.sync(),
        size: () => file.size(),
        truncate: (n) => file.truncate(n),
        close: () => file.close(),
      };
      const reader = new RecordReader(handle, PATH, { skipCorrupt: true, windowBytes: 4096 });
      try {
        for (let i = 0; i < 10_000 && reader.next() !== undefined; i++);
      } catch (e) {
        assert.ok(e instanceof LightningError, `${failure} at read ${failAt}: ${String(e)}`);
        assert.equal(e.code, 'IO_ERROR');
      } finally {
        file.close();
      }
    }
  }
});

test('valid long candidates at the 64 KiB side-window boundaries (start and end windows), every scan', () => {
  const seed = testSeed();
  const r = new Random(seed);
  const T = [-2, -1, 0, 1, 2, 126, 127, 128, 129];
  const parts: Buffer[] = [HEADER, encodeRecord(randomBytes(r, 30))];
  let p = parts[0]!.length + parts[1]!.length;
  let base = -1;
  const regions = 2 * T.length + 1;
  const fakes: { f: number; length: number }[] = [];
  for (let i = 0; i < regions; i++) {
    let z = 1 + r.nextInt(50);
    if (base >= 0 && (p + z + 4 - base) % 128 === 0) z++;
    const f = p + z;
    if (base < 0) base = f + 4; // the first long candidate: PrefixCrcs is built here, once
    const tStart = T[(i * 4) % T.length]!;
    const tEnd = T[i % T.length]!;
    const c0 = base + 128 * Math.floor((f + 4 - base) / 128);
    const v = c0 + 65532 + tStart; // v + 4 - c0 = 64 KiB + tStart
    let lv = 70_000 + r.nextInt(2000);
    const c = v + 9 + lv - 65536 - tEnd;
    lv += (((base - c) % 128) + 128) % 128; // checkpoint(X) = E - 64 KiB - tEnd
    const e = v + 9 + lv;
    const x = e - 65536 - tEnd + 1 + r.nextInt(127);
    assert.equal((e - 65536 - tEnd - base) % 128, 0);
    fakes.push({ f, length: x - f - 9 });
    parts.push(Buffer.alloc(v - p)); // the bad byte, zeros, the fake header (filled in below), zeros
    parts.push(encodeRecord(randomBytes(r, lv)));
    p = e;
  }
  parts.push(encodeRecord(randomBytes(r, 10)));
  const bytes = Buffer.concat(parts);
  for (const { f, length } of fakes) {
    bytes.writeUInt32LE(r.nextUint32(), f);
    bytes.writeUInt32LE(length, f + 4);
    bytes[f + 8] = RECORD_TYPE_DATA;
  }
  for (const skipCorrupt of [true, false]) {
    const want = referenceRead(bytes, skipCorrupt);
    if (skipCorrupt) {
      assert.equal(want.skippedRecords, regions);
      assert.equal(want.payloads.length, regions + 2);
    }
    for (const windowBytes of [undefined, 9, 65536]) {
      assert.deepEqual(actualRead(bytes, skipCorrupt, windowBytes), want, `SEED=${seed} skipCorrupt ${skipCorrupt} window ${windowBytes}`);
    }
  }
});
