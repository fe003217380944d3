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

/** The reference: every candidate checksummed over its whole claimed range. */
export function referenceRead(bytes: Buffer, skipCorrupt: boolean, fileNumber = 7): Outcome {
  const size = bytes.length;
  const payloads: string[] = [];
  let validLength = 0;
  let skippedBytes = 0;
  let skippedRecords = 0;
  let lastRecordOffset = -1;
  let torn: number | undefined;
  const valid = (q: number): { type: number; end: number } | undefined => {
    if (size - q < 9) return undefined;
    const type = bytes[q + 8] as number;
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER) return undefined;
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
    if (hdr.magic !== 'LTNGWAL\0' || hdr.version !== LOG_FORMAT_VERSION || hdr.fileNumber !== fileNumber) return fail(0);
    pos = h.end;
    validLength = h.end;
  }
  for (;;) {
    if (pos === size) return done();
    const rec = valid(pos);
    if (rec === undefined) {
      const next = find(pos + 1);
      if (next === undefined) {
        torn = pos;
        return done();
      }
      if (!skipCorrupt) return fail(pos, next);
      skippedBytes += next - pos;
      skippedRecords++;
      pos = next;
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

/**
 * The newest WAL in `fs` (a crash image), its bytes, and the offset of every whole record in it
 * (file header first), for tests that damage one record of a database's log.
 */
export function newestWalRecords(fs: MemFs): { path: string; bytes: Buffer; starts: number[] } {
  const path = fs.listAll().filter((p) => p.endsWith('.log')).sort().pop();
  assert.ok(path !== undefined, 'the image has a WAL');
  const bytes = fs.readFileRaw(path);
  const starts: number[] = [];
  for (let off = 0; off + 9 <= bytes.length; off += 9 + bytes.readUInt32LE(off + 4)) starts.push(off);
  return { path, bytes, starts };
}
