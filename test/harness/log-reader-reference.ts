/**
 * A reference reader for log files (docs/formats/wal.md, "Reading: torn tail versus corruption")
 * that checksums every scan candidate over its whole claimed range, and helpers to compare the
 * real RecordReader with it. Written in review of the prefix-CRC scan (session11-scan-exact-*).
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';

import { LightningError } from '../../src/base/errors.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { maskCrc, unmaskCrc } from '../../src/util/crc.js';
import {
  decodeFileHeaderPayload,
  LOG_FORMAT_VERSION,
  RECORD_PAYLOAD_BYTES_MAX,
  RECORD_TYPE_DATA,
  RECORD_TYPE_FILE_HEADER,
  RECORD_TYPE_SYNC_MARK,
  WAL_FORMAT_VERSION,
} from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';

export const PATH = '/db/000007.log';

export interface Outcome {
  payloads: string[];
  error: { code: string; offset: number; follows: number | undefined } | undefined;
  torn: number | undefined;
  validLength: number;
  skippedBytes: number;
  skippedRecords: number;
  lastRecordOffset: number;
}

/**
 * The reference: every candidate checksummed over its whole claimed range. A version 2 WAL has
 * SYNC_MARK records (valid too after an unreadable header): there a bad record followed by valid
 * ones is CORRUPTION only if a valid mark at a later offset says more bytes than the bad record's
 * offset were durable, else a torn tail.
 */
export function referenceRead(bytes: Buffer, skipCorrupt: boolean, fileNumber = 7): Outcome {
  const size = bytes.length;
  const payloads: string[] = [];
  let validLength = 0;
  let skippedBytes = 0;
  let skippedRecords = 0;
  let lastRecordOffset = -1;
  let torn: number | undefined;
  let marks = true; // mark records are valid until a readable header says version 1
  let markRule = false; // marks decide torn versus corrupt once a readable header says version 2
  const valid = (q: number): { type: number; end: number } | undefined => {
    if (size - q < 9) return undefined;
    const type = bytes[q + 8] as number;
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER && !(marks && type === RECORD_TYPE_SYNC_MARK)) return undefined;
    const length = bytes.readUInt32LE(q + 4);
    if (length > RECORD_PAYLOAD_BYTES_MAX || length > size - q - 9) return undefined;
    const end = q + 9 + length;
    if (crc32(bytes.subarray(q + 4, end)) !== unmaskCrc(bytes.readUInt32LE(q))) return undefined;
    return { type, end };
  };
  const find = (from: number): number | undefined => {
    for (let q = from; q + 9 <= size; q++) if (valid(q) !== undefined) return q;
    return undefined;
  };
  /** The durable length of a valid, well-formed sync mark at q, else -1. */
  const markValue = (q: number): number => {
    const rec = valid(q);
    if (rec === undefined || rec.type !== RECORD_TYPE_SYNC_MARK || rec.end - q !== 17) return -1;
    const high = bytes.readUInt32LE(q + 13);
    return high >= 0x200000 ? -1 : high * 2 ** 32 + bytes.readUInt32LE(q + 9);
  };
  const durableBeyond = (gap: number, from: number): boolean => {
    for (let q = from; q + 17 <= size; q++) if (markValue(q) > gap) return true;
    return false;
  };
  const fail = (offset: number, follows?: number): Outcome => ({
    payloads,
    error: { code: 'CORRUPTION', offset, follows },
    torn,
    validLength,
    skippedBytes,
    skippedRecords,
    lastRecordOffset,
  });
  const done = (): Outcome => ({ payloads, error: undefined, torn, validLength, skippedBytes, skippedRecords, lastRecordOffset });
  if (size === 0) return done();
  let pos = 0;
  const h = valid(0);
  if (h === undefined) {
    const next = find(1);
    if (next === undefined) {
      torn = 0;
      return done();
    }
    if (!skipCorrupt) return fail(0, next);
    skippedBytes += next;
    skippedRecords++;
    pos = next;
  } else {
    if (h.type !== RECORD_TYPE_FILE_HEADER) return fail(0);
    const hdr = decodeFileHeaderPayload(bytes.subarray(9, h.end));
    if (typeof hdr === 'string') return fail(0);
    if (hdr.magic !== 'LTNGWAL\0' || (hdr.version !== LOG_FORMAT_VERSION && hdr.version !== WAL_FORMAT_VERSION) || hdr.fileNumber !== fileNumber) return fail(0);
    marks = hdr.version === WAL_FORMAT_VERSION;
    markRule = marks;
    pos = h.end;
    validLength = h.end;
  }
  for (;;) {
    if (pos === size) return done();
    const rec = valid(pos);
    if (rec === undefined) {
      const next = find(pos + 1);
      if (next === undefined || (markRule && !durableBeyond(pos, next))) {
        torn = pos;
        return done();
      }
      if (!skipCorrupt) return fail(pos, next);
      skippedBytes += next - pos;
      skippedRecords++;
      pos = next;
      continue;
    }
    if (rec.type === RECORD_TYPE_SYNC_MARK) {
      const value = markValue(pos);
      if (value < 0 || value > pos) {
        if (!skipCorrupt) return fail(pos);
        skippedBytes += rec.end - pos;
        skippedRecords++;
      } else {
        validLength = rec.end;
      }
      pos = rec.end;
      continue;
    }
    if (rec.type !== RECORD_TYPE_DATA) {
      if (!skipCorrupt) return fail(pos);
      skippedBytes += rec.end - pos;
      skippedRecords++;
      pos = rec.end;
      continue;
    }
    payloads.push(bytes.subarray(pos + 9, rec.end).toString('hex'));
    lastRecordOffset = pos;
    validLength = rec.end;
    pos = rec.end;
  }
}

export function actualRead(bytes: Buffer, skipCorrupt: boolean, windowBytes: number | undefined): Outcome {
  const fs = new MemFs();
  fs.mkdir('/db');
  fs.writeFileRaw(PATH, bytes);
  const file = fs.open(PATH, 'r');
  const opts = windowBytes === undefined ? { skipCorrupt } : { skipCorrupt, windowBytes };
  const reader = new RecordReader(file, PATH, opts);
  const payloads: string[] = [];
  let error: Outcome['error'];
  try {
    for (let p = reader.next(); p !== undefined; p = reader.next()) payloads.push(p.toString('hex'));
    // After the end, next() keeps returning undefined.
    assert.equal(reader.next(), undefined);
  } catch (e) {
    if (!(e instanceof LightningError)) throw new Error(`non-LightningError thrown: ${String(e)}`, { cause: e });
    const m = /at offset (\d+)$/.exec(e.message);
    const f = /follows at offset (\d+)/.exec(e.message);
    error = { code: e.code, offset: m === null ? -1 : Number(m[1]), follows: f === null ? undefined : Number(f[1]) };
    // Sticky error.
    assert.throws(() => reader.next(), (e2: unknown) => e2 === e);
  } finally {
    file.close();
  }
  return {
    payloads,
    error,
    torn: reader.tornTailOffset,
    validLength: reader.validLengthBytes,
    skippedBytes: reader.skippedBytes,
    skippedRecords: reader.skippedRecords,
    lastRecordOffset: reader.lastRecordOffset,
  };
}

/** A valid record header at q over whatever bytes [q + 9, q + 9 + length) hold (overlapping others). */
export function plantRecord(bytes: Buffer, q: number, length: number, type = RECORD_TYPE_DATA): void {
  bytes.writeUInt32LE(length, q + 4);
  bytes[q + 8] = type;
  bytes.writeUInt32LE(maskCrc(crc32(bytes.subarray(q + 4, q + 9 + length))), q);
}

/** One record of an intact log: where it lies, its type, and for a sync mark its durable length. */
export interface LogRecordSpan {
  start: number;
  end: number;
  type: number;
  /** A SYNC_MARK's durable length; -1 for other records. */
  durable: number;
}

/**
 * The records of an intact log image, in order (file header first), up to the zeros a WAL
 * preallocates (type 0 is never a record's) or a record that would run past the end.
 */
export function logRecords(bytes: Buffer): LogRecordSpan[] {
  const out: LogRecordSpan[] = [];
  for (let off = 0; off + 9 <= bytes.length && bytes[off + 8] !== 0;) {
    const end = off + 9 + bytes.readUInt32LE(off + 4);
    if (end > bytes.length) break;
    const type = bytes[off + 8] as number;
    const durable = type === RECORD_TYPE_SYNC_MARK ? bytes.readUInt32LE(off + 9) + bytes.readUInt32LE(off + 13) * 2 ** 32 : -1;
    out.push({ start: off, end, type, durable });
    off = end;
  }
  return out;
}

/**
 * The newest WAL in `fs` (a crash image), its bytes, and the offset of the file header and of every
 * whole DATA record in it (one per write; sync marks are passed over), for tests that damage one
 * record of a database's log.
 */
export function newestWalRecords(fs: MemFs): { path: string; bytes: Buffer; starts: number[] } {
  const path = fs.listAll().filter((p) => p.endsWith('.log')).sort().pop();
  assert.ok(path !== undefined, 'the image has a WAL');
  const bytes = fs.readFileRaw(path);
  const starts = logRecords(bytes).filter((r) => r.type !== RECORD_TYPE_SYNC_MARK).map((r) => r.start);
  return { path, bytes, starts };
}
