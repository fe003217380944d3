/**
 * Reads the records of a log file (WAL or MANIFEST) written by RecordWriter, and tells a torn tail
 * (a crash during the last write: expected, recoverable) apart from corruption in the middle of the
 * file (data loss: an error). Format and rule: docs/formats/wal.md.
 *
 * The rule: a record that is incomplete, has an implausible header or a bad checksum is a TORN
 * TAIL if no valid record starts at any later byte offset; the reader then stops and reports
 * `tornTailOffset` (the valid length of the file, for truncation). If a valid record does start
 * later, bytes in the middle were lost: CORRUPTION, or with `skipCorrupt` the reader skips to that
 * record and counts what it skipped.
 *
 * Memory: reads go through a window of `windowBytes` (positioned reads); only a single record
 * larger than the window is read into its own buffer. The whole file is never loaded at once.
 */
import { corruption, fromIoError, LightningError } from '../base/errors.js';
import { parseFileName } from '../base/file-names.js';
import type { FileHandle } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import { crc32Extend, unmaskCrc } from '../util/crc.js';
import {
  decodeFileHeaderPayload,
  LOG_FORMAT_VERSION,
  magicOf,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  RECORD_TYPE_DATA,
  RECORD_TYPE_FILE_HEADER,
  type LogFileKind,
} from './format.js';

/** Default read window: large enough that sequential replay costs few read calls. */
export const READ_WINDOW_BYTES_DEFAULT = 256 * 1024;
/** Scratch buffer used to checksum candidate records while scanning past a bad record. */
const SCAN_CHUNK_BYTES = 64 * 1024;
/**
 * Bytes one scan past a bad record may checksum: the larger of this and SCAN_CHECKSUM_FILE_FACTOR
 * times the file size. Data that looks like record headers (period-9 structures with small
 * lengths) inside a torn record would otherwise make every offset a candidate checksummed over up
 * to the rest of the file: quadratic, hours for a few MiB.
 */
const SCAN_CHECKSUM_BYTES_MIN = 64 * 1024 * 1024;
const SCAN_CHECKSUM_FILE_FACTOR = 4;

export interface RecordReaderOptions {
  /**
   * File number the header must carry. Defaults to the number in the file name of `path` when it
   * parses as a file of this kind (000012.log, MANIFEST-000004); otherwise not checked.
   */
  fileNumber?: number;
  /** Which magic the header must carry. Default 'wal'. */
  kind?: LogFileKind;
  /** Skip corrupt regions in the middle of the file instead of throwing CORRUPTION. */
  skipCorrupt?: boolean;
  /** Read window size. Default READ_WINDOW_BYTES_DEFAULT. */
  windowBytes?: number;
}

/** A record whose framing and checksum are valid. */
interface ParsedRecord {
  type: number;
  /** Offset just past the record. */
  end: number;
  /** The payload (an owned copy); empty when the caller only checked the framing. */
  payload: Buffer;
}

type ReaderState = 'header' | 'records' | 'done' | 'failed';

export class RecordReader {
  private readonly file: FileHandle;
  private readonly path: string;
  private readonly kind: LogFileKind;
  private readonly skipCorrupt: boolean;
  private readonly expectedFileNumber: number | undefined;
  /** File size when the reader was created; bytes appended later are not read. */
  private readonly fileSizeBytes: number;

  private readonly window: Buffer;
  private windowStart = 0;
  private windowLength = 0;
  private scratch: Buffer | undefined = undefined;

  private state: ReaderState = 'header';
  private error: LightningError | undefined = undefined;
  /** Offset of the next record to read. */
  private offset = 0;
  private validLength = 0;
  private lastOffset = -1;
  private headerNumber: number | undefined = undefined;
  private torn: number | undefined = undefined;
  private gaveUp = false;
  private readonly headerScratch = Buffer.alloc(RECORD_HEADER_BYTES);
  private skippedBytesTotal = 0;
  private skippedRegions = 0;

  constructor(file: FileHandle, path: string, options: RecordReaderOptions = {}) {
    this.file = file;
    this.path = path;
    this.kind = options.kind ?? 'wal';
    this.skipCorrupt = options.skipCorrupt ?? false;
    this.expectedFileNumber = options.fileNumber ?? fileNumberFromPath(path, this.kind);
    const windowBytes = options.windowBytes ?? READ_WINDOW_BYTES_DEFAULT;
    assert(Number.isSafeInteger(windowBytes) && windowBytes >= RECORD_HEADER_BYTES, 'window size');
    try {
      this.fileSizeBytes = file.size();
    } catch (e) {
      throw fromIoError(e, 'stat', path);
    }
    this.window = Buffer.allocUnsafe(Math.min(windowBytes, this.fileSizeBytes));
  }

  /**
   * The next DATA record's payload (a buffer the caller owns), or undefined at the end of the log
   * (clean end or torn tail: check `tornTailOffset`). Throws CORRUPTION (naming file and offset)
   * for damage in the middle of the file, a bad file header, or a wrong magic/version/file number;
   * IO_ERROR if a read fails. After a throw, every later call throws the same error.
   */
  next(): Buffer | undefined {
    if (this.state === 'failed') throw this.error;
    try {
      if (this.state === 'header') this.readHeader();
      while (this.state === 'records') {
        const payload = this.readNextData();
        if (payload !== undefined) return payload;
      }
      return undefined;
    } catch (e) {
      this.state = 'failed';
      this.error = e instanceof LightningError ? e : fromIoError(e, 'read', this.path);
      throw this.error;
    }
  }

  /**
   * True if a scan past a bad record ran out of its checksum budget and called the rest a torn
   * tail without having ruled out a valid record further on (see findValidRecord).
   */
  get scanGaveUp(): boolean {
    return this.gaveUp;
  }

  /** Set when the log ended in a torn record: the valid length of the file (truncate to it). */
  get tornTailOffset(): number | undefined {
    return this.torn;
  }

  /**
   * End of the last valid record returned (or of the header). After a CORRUPTION error this is the
   * length of the intact prefix, which a caller doing point-in-time recovery may truncate to.
   */
  get validLengthBytes(): number {
    return this.validLength;
  }

  /** Offset of the record most recently returned by next(), -1 before the first. */
  get lastRecordOffset(): number {
    return this.lastOffset;
  }

  /** File number from the header, once read (undefined for an empty or header-torn file). */
  get fileNumber(): number | undefined {
    return this.headerNumber;
  }

  /** Bytes skipped over corrupt regions (skipCorrupt only). */
  get skippedBytes(): number {
    return this.skippedBytesTotal;
  }

  /** Corrupt regions skipped (skipCorrupt only); one region may have held several records. */
  get skippedRecords(): number {
    return this.skippedRegions;
  }

  /** The file size the reader saw when it was created. */
  get fileSize(): number {
    return this.fileSizeBytes;
  }

  private readHeader(): void {
    if (this.fileSizeBytes === 0) {
      this.state = 'done'; // Created but never written: an empty log.
      return;
    }
    const rec = this.parseAt(0, true);
    if (typeof rec === 'string') {
      this.state = 'records';
      this.onBadFraming(0, `bad file header (${rec})`);
      return;
    }
    if (rec.type !== RECORD_TYPE_FILE_HEADER) {
      throw corruption(this.path, 0, 'missing file header');
    }
    const header = decodeFileHeaderPayload(rec.payload);
    if (typeof header === 'string') throw corruption(this.path, 0, header);
    if (header.magic !== magicOf(this.kind)) {
      throw corruption(
        this.path,
        0,
        `bad magic ${JSON.stringify(header.magic)} (not a ${this.kind} file)`,
      );
    }
    if (header.version !== LOG_FORMAT_VERSION) {
      throw corruption(this.path, 0, `unsupported log format version ${header.version}`);
    }
    if (this.expectedFileNumber !== undefined && header.fileNumber !== this.expectedFileNumber) {
      throw corruption(
        this.path,
        0,
        `file header names file ${header.fileNumber}, expected ${this.expectedFileNumber}`,
      );
    }
    this.headerNumber = header.fileNumber;
    this.offset = rec.end;
    this.validLength = rec.end;
    this.state = 'records';
  }

  /** Reads the record at `offset`; returns its payload if it is a DATA record. */
  private readNextData(): Buffer | undefined {
    const pos = this.offset;
    if (pos === this.fileSizeBytes) {
      this.state = 'done';
      return undefined;
    }
    const rec = this.parseAt(pos, true);
    if (typeof rec === 'string') {
      this.onBadFraming(pos, rec);
      return undefined;
    }
    if (rec.type !== RECORD_TYPE_DATA) {
      // Checksummed, so not a torn write: a header in the middle is damage, whatever follows.
      this.onCorruption(pos, rec.end, 'unexpected file header record');
      return undefined;
    }
    this.offset = rec.end;
    this.validLength = rec.end;
    this.lastOffset = pos;
    return rec.payload;
  }

  /** The record at `pos` is not valid: torn tail or mid-file corruption, by what follows it. */
  private onBadFraming(pos: number, reason: string): void {
    const next = this.findValidRecord(pos + 1);
    if (next === undefined) {
      this.torn = pos;
      this.state = 'done';
      return;
    }
    this.onCorruption(pos, next, `${reason}; a valid record follows at offset ${next}`);
  }

  private onCorruption(pos: number, next: number, reason: string): void {
    assert(next > pos, 'corruption skip must move forward');
    if (!this.skipCorrupt) throw corruption(this.path, pos, reason);
    this.skippedBytesTotal += next - pos;
    this.skippedRegions++;
    this.offset = next;
  }

  /**
   * First offset >= `from` where a record with valid framing and checksum starts. A candidate is
   * checksummed only if what follows it could be a record too (the end of the file, a partial
   * header, or a header with a known type and a legal length, which may run past the end: a torn
   * record): that rejects almost every false candidate inside a torn record without reading its
   * length's worth of bytes. If the checksum budget still runs out, the scan gives up and the bad
   * record counts as a torn tail (`scanGaveUp`): the reader returns a prefix of the log, which
   * loses nothing a crash could not have lost, at the price of not telling that tail from damage.
   */
  private findValidRecord(from: number): number | undefined {
    let budget = Math.max(SCAN_CHECKSUM_BYTES_MIN, SCAN_CHECKSUM_FILE_FACTOR * this.fileSizeBytes);
    const size = this.fileSizeBytes;
    for (let q = from; q + RECORD_HEADER_BYTES <= size; q++) {
      const end = this.candidateEnd(q);
      if (end < 0) continue;
      if (end < size && size - end >= RECORD_HEADER_BYTES && !this.headerPlausibleAt(end)) continue;
      budget -= end - q;
      if (budget < 0) {
        this.gaveUp = true;
        return undefined;
      }
      if (typeof this.parseAt(q, false) !== 'string') return q;
    }
    return undefined;
  }

  /** End of the record whose header starts at `pos` if its type is known and it fits, else -1. */
  private candidateEnd(pos: number): number {
    const header = this.view(pos, RECORD_HEADER_BYTES);
    const type = header[8] as number;
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER) return -1;
    const length = header.readUInt32LE(4);
    if (length > RECORD_PAYLOAD_BYTES_MAX || length > this.fileSizeBytes - pos - RECORD_HEADER_BYTES) return -1;
    return pos + RECORD_HEADER_BYTES + length;
  }

  /**
   * True if a whole header at `pos` has a known type and a legal length (it may run past EOF).
   * Reads those 9 bytes alone when they are outside the window, so the window stays on the scan.
   */
  private headerPlausibleAt(pos: number): boolean {
    let header: Buffer;
    if (pos >= this.windowStart && pos + RECORD_HEADER_BYTES <= this.windowStart + this.windowLength) {
      header = this.window.subarray(pos - this.windowStart, pos - this.windowStart + RECORD_HEADER_BYTES);
    } else {
      header = this.headerScratch;
      this.readFully(header, RECORD_HEADER_BYTES, pos);
    }
    const type = header[8] as number;
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER) return false;
    return header.readUInt32LE(4) <= RECORD_PAYLOAD_BYTES_MAX;
  }

  /**
   * Parses the record at `pos`. Returns a reason string if the framing or the checksum is bad.
   * With `wantPayload` false only the checksum is verified (scan mode: no large allocation).
   */
  private parseAt(pos: number, wantPayload: boolean): ParsedRecord | string {
    const available = this.fileSizeBytes - pos;
    if (available < RECORD_HEADER_BYTES) return 'truncated record header';
    const header = this.view(pos, RECORD_HEADER_BYTES);
    const storedCrc = unmaskCrc(header.readUInt32LE(0));
    const length = header.readUInt32LE(4);
    const type = header.readUInt8(8);
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER) {
      return `invalid record type ${type}`;
    }
    if (length > RECORD_PAYLOAD_BYTES_MAX) return `record length ${length} exceeds maximum`;
    if (length > available - RECORD_HEADER_BYTES) return 'record extends past end of file';
    const end = pos + RECORD_HEADER_BYTES + length;
    if (!wantPayload) {
      if (this.crcOfRange(pos + 4, end) !== storedCrc) return 'checksum mismatch';
      return { type, end, payload: EMPTY };
    }
    // Bytes [pos + 4, end): length, type, payload: what the checksum covers.
    const inWindow = length + 5 <= this.window.length;
    const body = inWindow ? this.view(pos + 4, length + 5) : this.readFresh(pos + 4, length + 5);
    if (crc32Extend(0, body) !== storedCrc) return 'checksum mismatch';
    // A window view is overwritten by the next read: hand the caller a copy.
    const payload = inWindow ? Buffer.from(body.subarray(5)) : body.subarray(5);
    assert(payload.length === length, 'payload length');
    return { type, end, payload };
  }

  /** CRC-32 of file bytes [start, end) without disturbing the window more than needed. */
  private crcOfRange(start: number, end: number): number {
    if (start >= this.windowStart && end <= this.windowStart + this.windowLength) {
      const off = start - this.windowStart;
      return crc32Extend(0, this.window, off, off + (end - start));
    }
    this.scratch ??= Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
    let crc = 0;
    for (let p = start; p < end;) {
      const n = Math.min(this.scratch.length, end - p);
      this.readFully(this.scratch, n, p);
      crc = crc32Extend(crc, this.scratch, 0, n);
      p += n;
    }
    return crc;
  }

  /**
   * A view of file bytes [pos, pos + n) inside the window, refilling it if needed. Valid until the
   * next call. Requires: n <= window size and pos + n <= file size.
   */
  private view(pos: number, n: number): Buffer {
    assert(n <= this.window.length, 'view larger than the window');
    assert(pos + n <= this.fileSizeBytes, 'view past end of file');
    if (pos < this.windowStart || pos + n > this.windowStart + this.windowLength) {
      const length = Math.min(this.window.length, this.fileSizeBytes - pos);
      this.readFully(this.window, length, pos);
      this.windowStart = pos;
      this.windowLength = length;
    }
    const off = pos - this.windowStart;
    return this.window.subarray(off, off + n);
  }

  /** Reads [pos, pos + n) into a new buffer: for a record larger than the window. */
  private readFresh(pos: number, n: number): Buffer {
    const buf = Buffer.allocUnsafe(n);
    this.readFully(buf, n, pos);
    return buf;
  }

  private readFully(buf: Buffer, n: number, pos: number): void {
    let done = 0;
    while (done < n) {
      let got: number;
      try {
        got = this.file.read(buf, done, n - done, pos + done);
      } catch (e) {
        throw fromIoError(e, 'read', this.path);
      }
      if (got === 0) {
        throw new LightningError('IO_ERROR', `read ${this.path}: file shrank while being read`);
      }
      done += got;
    }
  }
}

const EMPTY = Buffer.alloc(0);

function fileNumberFromPath(path: string, kind: LogFileKind): number | undefined {
  const parsed = parseFileName(path.slice(path.lastIndexOf('/') + 1));
  if (parsed === undefined) return undefined;
  const wanted = kind === 'wal' ? 'log' : 'manifest';
  return parsed.kind === wanted ? parsed.number : undefined;
}
