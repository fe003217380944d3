/**
 * Record framing shared by write-ahead logs and MANIFEST files. Byte layout, the torn-tail rule and
 * a worked example: docs/formats/wal.md.
 *
 *   record      = crc (4, LE, masked) ++ length (uint32 LE) ++ type (uint8) ++ payload[length]
 *   crc         = maskCrc(crc32(length ++ type ++ payload))   -- i.e. bytes [4, 9 + length)
 *   log file    = FILE_HEADER record ++ (DATA | SYNC_MARK)*   -- SYNC_MARK: WAL version 2 only
 *   header body = magic (8) ++ format version (uint32 LE) ++ file number (fixed64 LE)
 *   mark body   = durable length (fixed64 LE): bytes [0, it) were fsynced before this record
 *
 * ON DISK: every constant in this file is frozen. Never renumber a record type; retire it instead.
 */
import { assert } from '../util/assert.js';
import { getFixed64, putFixed64 } from '../util/coding.js';
import { crc32Of, maskCrc } from '../util/crc.js';

/** crc (4) + length (4) + type (1). */
export const RECORD_HEADER_BYTES = 9;

/** Record types. On disk: never renumber. 0 is deliberately invalid so zeroed bytes never parse. */
export const RECORD_TYPE_FILE_HEADER = 1;
export const RECORD_TYPE_DATA = 2;
/**
 * A WAL (version 2) record saying how much of the file an fsync had made durable before it was
 * written. The reader uses it to tell a power cut's lost pages (after the last mark: a torn tail)
 * from damage to synced bytes (before it: CORRUPTION). docs/formats/wal.md.
 */
export const RECORD_TYPE_SYNC_MARK = 3;
export type RecordType = typeof RECORD_TYPE_FILE_HEADER | typeof RECORD_TYPE_DATA | typeof RECORD_TYPE_SYNC_MARK;

/** Payload of a SYNC_MARK record: the durable length, fixed64 LE. */
export const SYNC_MARK_PAYLOAD_BYTES = 8;
export const SYNC_MARK_RECORD_BYTES = RECORD_HEADER_BYTES + SYNC_MARK_PAYLOAD_BYTES;

/**
 * Largest payload of one record. Bounds the memory a reader allocates for one record and keeps a
 * corrupt length field from asking for gigabytes. Callers (write batches, version edits) must
 * reject anything larger as INVALID_ARGUMENT before it gets here; here it is an assertion.
 */
export const RECORD_PAYLOAD_BYTES_MAX = 256 * 1024 * 1024;

/**
 * Format versions in file headers. Version 1: FILE_HEADER and DATA records (MANIFESTs, and WALs
 * written before sync marks). Version 2 (WALs): also SYNC_MARK records, and the reader's torn-tail
 * rule uses them. Readers accept exactly these; a MANIFEST is always version 1.
 */
export const LOG_FORMAT_VERSION = 1;
export const WAL_FORMAT_VERSION = 2;

/** The version a new log of `kind` is written with. */
export function formatVersionOf(kind: LogFileKind): number {
  return kind === 'wal' ? WAL_FORMAT_VERSION : LOG_FORMAT_VERSION;
}

/** Whether a reader accepts a log of `kind` whose header says `version`. */
export function isKnownVersion(kind: LogFileKind, version: number): boolean {
  return version === LOG_FORMAT_VERSION || (kind === 'wal' && version === WAL_FORMAT_VERSION);
}

/** Magic strings (8 bytes, latin1) that say which kind of log a file is. */
export const WAL_MAGIC = 'LTNGWAL\0';
export const MANIFEST_MAGIC = 'LTNGMAN\0';
export type LogFileKind = 'wal' | 'manifest';

export const MAGIC_BYTES = 8;
/** magic (8) + version (4) + file number (8). */
export const FILE_HEADER_PAYLOAD_BYTES = 20;
export const FILE_HEADER_RECORD_BYTES = RECORD_HEADER_BYTES + FILE_HEADER_PAYLOAD_BYTES;

export function magicOf(kind: LogFileKind): string {
  return kind === 'wal' ? WAL_MAGIC : MANIFEST_MAGIC;
}

/** Bytes one record with a payload of `payloadBytes` takes on disk. */
export function encodedRecordBytes(payloadBytes: number): number {
  return RECORD_HEADER_BYTES + payloadBytes;
}

/**
 * Frames `payload` as a record of `type` into `out` at `off`; returns the offset after it.
 * Requires: `out` has `encodedRecordBytes(payload.length)` bytes free at `off`.
 */
export function encodeRecordInto(
  out: Buffer,
  off: number,
  payload: Uint8Array,
  type: RecordType = RECORD_TYPE_DATA,
): number {
  assert(
    payload.length <= RECORD_PAYLOAD_BYTES_MAX,
    'record payload exceeds RECORD_PAYLOAD_BYTES_MAX',
  );
  const end = off + RECORD_HEADER_BYTES + payload.length;
  assert(end <= out.length, 'encodeRecordInto: output buffer too small');
  out.writeUInt32LE(payload.length, off + 4);
  out.writeUInt8(type, off + 8);
  out.set(payload, off + RECORD_HEADER_BYTES);
  out.writeUInt32LE(maskCrc(crc32Of(out, off + 4, end)), off);
  return end;
}

/** Frames one payload into a fresh buffer. */
export function encodeRecord(payload: Uint8Array, type: RecordType = RECORD_TYPE_DATA): Buffer {
  const out = Buffer.allocUnsafe(encodedRecordBytes(payload.length));
  const end = encodeRecordInto(out, 0, payload, type);
  assert(end === out.length, 'encodeRecord: length mismatch');
  return out;
}

/**
 * Frames a SYNC_MARK record saying bytes [0, durableBytes) are durable into `out` at `off`; returns
 * the offset after it. Requires SYNC_MARK_RECORD_BYTES free at `off`.
 */
export function encodeSyncMarkInto(out: Buffer, off: number, durableBytes: number): number {
  assert(Number.isSafeInteger(durableBytes) && durableBytes >= 0, 'durable length is a safe integer');
  const end = off + SYNC_MARK_RECORD_BYTES;
  assert(end <= out.length, 'encodeSyncMarkInto: output buffer too small');
  out.writeUInt32LE(SYNC_MARK_PAYLOAD_BYTES, off + 4);
  out.writeUInt8(RECORD_TYPE_SYNC_MARK, off + 8);
  putFixed64(out, off + RECORD_HEADER_BYTES, durableBytes);
  out.writeUInt32LE(maskCrc(crc32Of(out, off + 4, end)), off);
  return end;
}

/** The durable length a SYNC_MARK payload holds, or a description of the problem. */
export function decodeSyncMarkPayload(payload: Buffer): number | string {
  if (payload.length !== SYNC_MARK_PAYLOAD_BYTES) {
    return `sync mark payload is ${payload.length} bytes, expected ${SYNC_MARK_PAYLOAD_BYTES}`;
  }
  if (payload.readUInt32LE(4) >= 0x200000) return 'sync mark length is not a safe integer';
  return getFixed64(payload, 0);
}

export function encodeFileHeaderPayload(kind: LogFileKind, fileNumber: number, version = formatVersionOf(kind)): Buffer {
  const out = Buffer.alloc(FILE_HEADER_PAYLOAD_BYTES);
  const n = out.write(magicOf(kind), 0, MAGIC_BYTES, 'latin1');
  assert(n === MAGIC_BYTES, 'magic must be 8 bytes');
  out.writeUInt32LE(version, MAGIC_BYTES);
  putFixed64(out, MAGIC_BYTES + 4, fileNumber);
  return out;
}

export interface FileHeader {
  magic: string;
  version: number;
  fileNumber: number;
}

/** Parses a FILE_HEADER payload; returns a description of the problem if it is malformed. */
export function decodeFileHeaderPayload(payload: Buffer): FileHeader | string {
  if (payload.length !== FILE_HEADER_PAYLOAD_BYTES) {
    return `file header payload is ${payload.length} bytes, expected ${FILE_HEADER_PAYLOAD_BYTES}`;
  }
  const high = payload.readUInt32LE(MAGIC_BYTES + 8);
  if (high >= 0x200000) return 'file number in file header is not a safe integer';
  return {
    magic: payload.toString('latin1', 0, MAGIC_BYTES),
    version: payload.readUInt32LE(MAGIC_BYTES),
    fileNumber: getFixed64(payload, MAGIC_BYTES + 4),
  };
}
