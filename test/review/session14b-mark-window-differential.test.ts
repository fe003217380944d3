/**
 * Review (session 14b) of fix (2) in commit 3e285e4: RecordReader.durableBeyond scans for sync
 * marks through its own forward-only window (markWindow, 64 KiB), caching the last mark found
 * (markAt/markValue) and how far it scanned (markScanTo). Compared with the brute-force reference
 * (test/harness/log-reader-reference.ts) on:
 *   1. hand-placed layouts: a mark whose start is at every offset around the end of the mark
 *      window (it starts where the scan begins, so its end is at from + 64 KiB), twice in a row so
 *      the cached mark is too small for the second gap and the scan resumes across a refill;
 *      marks cut by the end of the file;
 *   2. seeded random logs (many gaps, valid / too-large / mark-like-but-bad marks, zeros, byte
 *      flips, truncations) read with and without skipCorrupt through windows of 9..256 KiB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { maskCrc } from '../../src/util/crc.js';
import { crc32 } from 'node:zlib';
import { Random } from '../../src/util/random.js';
import {
  encodeFileHeaderPayload,
  encodeRecord,
  encodeSyncMarkInto,
  RECORD_TYPE_FILE_HEADER,
  RECORD_TYPE_SYNC_MARK,
  SYNC_MARK_RECORD_BYTES,
} from '../../src/wal/format.js';
import { actualRead, referenceRead } from '../harness/log-reader-reference.js';
import { testSeed } from '../harness/seed.js';

const MARK_WINDOW = 64 * 1024;
const WINDOWS = [9, 16, 17, 18, 33, 4096, MARK_WINDOW - 1, MARK_WINDOW + 17, undefined];

function header(version = 2): Buffer {
  return encodeRecord(encodeFileHeaderPayload('wal', 7, version), RECORD_TYPE_FILE_HEADER);
}

function mark(value: number): Buffer {
  const m = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
  encodeSyncMarkInto(m, 0, value);
  return m;
}

/** A mark whose payload is `value` (low/high words as given) with a correct checksum. */
function rawMark(low: number, high: number): Buffer {
  const m = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
  m.writeUInt32LE(8, 4);
  m[8] = RECORD_TYPE_SYNC_MARK;
  m.writeUInt32LE(low >>> 0, 9);
  m.writeUInt32LE(high >>> 0, 13);
  m.writeUInt32LE(maskCrc(crc32(m.subarray(4, 17))), 0);
  return m;
}

/** A 9-byte DATA record header (length 0) with a wrong checksum. */
function bad(): Buffer {
  const b = Buffer.alloc(9);
  b.writeUInt32LE(0x5eadbeef, 0);
  b[8] = 2;
  return b;
}

class Builder {
  parts: Buffer[] = [];
  off = 0;
  push(b: Buffer): number {
    const at = this.off;
    this.parts.push(b);
    this.off += b.length;
    return at;
  }
  /** Appends valid DATA records so the next byte is at `target` (needs target - off = 0 or >= 9). */
  fillTo(target: number, tag: number): void {
    let rem = target - this.off;
    assert.ok(rem === 0 || rem >= 9, `fill ${rem}`);
    while (rem > 0) {
      const take = rem > 20_009 ? 20_000 : rem - 9;
      const left = rem - (take + 9);
      const payload = left > 0 && left < 9 ? take - 9 : take; // never leave 1..8 bytes
      this.push(encodeRecord(Buffer.alloc(payload, 0x61 + (tag++ % 20))));
      rem = target - this.off;
    }
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function compare(bytes: Buffer, what: string): number {
  let checked = 0;
  for (const skip of [false, true]) {
    const want = referenceRead(bytes, skip);
    for (const w of WINDOWS) {
      const got = actualRead(bytes, skip, w);
      assert.deepEqual(got, want, `${what}, skipCorrupt ${skip}, window ${w ?? 'default'}`);
      checked++;
    }
  }
  return checked;
}

test('marks placed around the end of the mark scan window, twice (cached mark too small for the second gap)', () => {
  let checked = 0;
  for (let d = -20; d <= 20; d++) {
    for (const secondValueBeyond of [false, true]) {
      const b = new Builder();
      b.push(header());
      b.push(encodeRecord(Buffer.from('first')));
      const g1 = b.push(bad());
      const from1 = b.push(encodeRecord(Buffer.from('after g1'))); // the scan starts here
      // First mark: straddles / just fits / just misses the first mark window [from1, from1 + 64 KiB).
      const m1At = from1 + MARK_WINDOW - SYNC_MARK_RECORD_BYTES + d;
      // A second gap before m1, so m1 (proving only g1) is cached and too small for g2.
      b.push(encodeRecord(Buffer.alloc(3000, 0x30)));
      const g2 = b.push(bad());
      b.push(encodeRecord(Buffer.from('after g2')));
      b.fillTo(m1At, d + 40);
      b.push(mark(g1 + 1));
      // A mark proving g2 (or not) right at the next window's end.
      const m2At = m1At + 1 + MARK_WINDOW - SYNC_MARK_RECORD_BYTES + (d % 3);
      b.fillTo(m2At, 7);
      b.push(mark(secondValueBeyond ? g2 + 1 : g2));
      b.push(encodeRecord(Buffer.from('last')));
      checked += compare(b.bytes(), `d ${d}, second mark beyond g2: ${secondValueBeyond}`);
    }
  }
  console.log(`${checked} reads compared`);
});

test('a mark cut by the end of the file, and marks with an unsafe high word, near the mark window end', () => {
  let checked = 0;
  for (let cut = 0; cut <= SYNC_MARK_RECORD_BYTES; cut++) {
    for (const kind of ['cut', 'unsafe', 'ok'] as const) {
      const b = new Builder();
      b.push(header());
      const g = b.push(bad());
      const from = b.push(encodeRecord(Buffer.from('after')));
      b.fillTo(from + MARK_WINDOW - 5, cut);
      if (kind === 'unsafe') b.push(rawMark(g + 1, 0x200000));
      else b.push(mark(g + 1));
      let bytes = b.bytes();
      if (kind === 'cut') bytes = bytes.subarray(0, bytes.length - cut);
      checked += compare(bytes, `${kind} cut ${cut}`);
    }
  }
  console.log(`${checked} reads compared`);
});

function flip(b: Buffer, at: number, mask: number): void {
  b.writeUInt8(b.readUInt8(at) ^ mask, at);
}

/** A random v2 (mostly) WAL image with many damaged regions and marks. */
function randomLog(rng: Random): Buffer {
  const b = new Builder();
  const h = rng.nextInt(40);
  if (h === 0) b.push(header(1));
  else if (h === 1) {
    const x = header();
    flip(x, 10 + rng.nextInt(19), 1 + rng.nextInt(255));
    b.push(x);
  } else b.push(header());
  const big = rng.nextInt(4) === 0;
  const items = 5 + rng.nextInt(big ? 30 : 80);
  const gaps: number[] = [];
  const markMode = rng.nextInt(3);
  for (let i = 0; i < items; i++) {
    const r = rng.nextInt(100);
    if (r < 40) {
      const n = rng.nextInt(10) === 0 && big ? 20_000 + rng.nextInt(50_000) : rng.nextInt(3) === 0 ? rng.nextInt(2000) : rng.nextInt(40);
      b.push(encodeRecord(Buffer.alloc(n, 0x41 + rng.nextInt(26))));
    } else if (r < (markMode === 2 ? 43 : 58)) {
      // A mark as the writer writes it (value <= its own offset), or claiming one of the gaps.
      // markMode 1: values at or just below a gap (durable == gap does not prove it).
      const gap = gaps.length > 0 ? (gaps[rng.nextInt(gaps.length)] as number) : 29;
      const v = markMode === 1 ? gap - rng.nextInt(2) : gaps.length > 0 && rng.nextInt(2) === 0 ? gap + rng.nextInt(3) : rng.nextInt(b.off + 1);
      b.push(mark(Math.min(v, b.off)));
    } else if (r < 62) {
      b.push(rng.nextInt(2) === 0 ? mark(b.off + 1 + rng.nextInt(1000)) : rawMark(rng.nextUint32(), 0x200000 + rng.nextInt(100)));
    } else if (r < 80) {
      gaps.push(b.off);
      if (rng.nextInt(2) === 0) b.push(bad());
      else {
        const x = encodeRecord(Buffer.alloc(rng.nextInt(200), 0x61));
        flip(x, rng.nextInt(x.length), 1 + rng.nextInt(255));
        b.push(x);
      }
    } else if (r < 88) {
      b.push(Buffer.alloc(1 + rng.nextInt(rng.nextInt(4) === 0 ? 70_000 : 300)));
    } else if (r < 94) {
      // Mark-like bytes with a bad checksum, or a mark whose value word is damaged.
      const x = mark(rng.nextInt(b.off + 1));
      flip(x, rng.nextInt(17), 1 + rng.nextInt(255));
      b.push(x);
    } else {
      const x = Buffer.alloc(1 + rng.nextInt(60));
      for (let k = 0; k < x.length; k++) x[k] = rng.nextInt(4) === 0 ? 3 : rng.nextInt(256);
      b.push(x);
    }
  }
  let bytes = b.bytes();
  const flips = rng.nextInt(4);
  for (let k = 0; k < flips && bytes.length > 0; k++) flip(bytes, rng.nextInt(bytes.length), 1 + rng.nextInt(255));
  if (rng.nextInt(4) === 0) bytes = bytes.subarray(0, rng.nextInt(bytes.length + 1));
  return bytes;
}

test('random logs: RecordReader equals the brute-force reference (skipCorrupt both ways, windows 9 B..256 KiB)', () => {
  const seed = testSeed();
  console.log(`seed ${seed} (replay: SEED=${seed})`);
  const rng = new Random(seed);
  let checked = 0;
  let corrupt = 0;
  let torn = 0;
  for (let i = 0; i < 400; i++) {
    const bytes = randomLog(rng);
    const ref = referenceRead(bytes, false);
    if (ref.error !== undefined) corrupt++;
    if (ref.torn !== undefined) torn++;
    checked += compare(bytes, `seed ${seed} log ${i} (${bytes.length} bytes)`);
  }
  console.log(`${checked} reads compared (${corrupt} logs CORRUPTION, ${torn} torn without skipCorrupt)`);
});
