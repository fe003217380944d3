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
 * WAL version 2 narrows CORRUPTION to bytes known to be durable. A power cut may keep any subset of
 * the pages written since the last fsync (pages are written back in no particular order, and a WAL
 * that preallocated zeros overwrites them in place), so "bad bytes, then valid records" is also what
 * an ordinary crash leaves. The writer records each completed fsync in a SYNC_MARK record; a bad
 * record at G is CORRUPTION only if a valid SYNC_MARK at a later offset says more than G bytes were
 * durable. Otherwise it is a torn tail at G, and the records after it (never durable) are dropped.
 *
 * The scan for a later valid record looks at every byte offset, and a candidate may claim any
 * length that fits in the file. Long candidates are checksummed from prefix-CRC checkpoints
 * (PrefixCrcs, built once per reader), so the scan is linear in the file size whatever the torn or
 * damaged bytes hold, with the same verdicts as checksumming every candidate in full.
 *
 * Memory: reads go through a window of `windowBytes` (positioned reads); only a single record
 * larger than the window is read into its own buffer. The whole file is never loaded at once. A
 * scan that meets a long candidate adds 4 bytes of checkpoint per CHECKPOINT_BYTES of the rest of
 * the file.
 */
import { corruption, fromIoError, LightningError } from '../base/errors.js';
import { parseFileName } from '../base/file-names.js';
import type { FileHandle } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import { crc32Extend, unmaskCrc } from '../util/crc.js';
import { byteShiftFactor, crc32Continue, mulModPoly } from '../util/crc-combine.js';
import {
  decodeFileHeaderPayload,
  decodeSyncMarkPayload,
  isKnownVersion,
  magicOf,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  RECORD_TYPE_DATA,
  RECORD_TYPE_FILE_HEADER,
  RECORD_TYPE_SYNC_MARK,
  SYNC_MARK_PAYLOAD_BYTES,
  SYNC_MARK_RECORD_BYTES,
  WAL_FORMAT_VERSION,
  type LogFileKind,
} from './format.js';

/** Default read window: large enough that sequential replay costs few read calls. */
export const READ_WINDOW_BYTES_DEFAULT = 256 * 1024;
/** Scratch buffer used to checksum candidate records while scanning past a bad record. */
const SCAN_CHUNK_BYTES = 64 * 1024;
/**
 * Candidates in a scan whose checksum covers more than this are checked from prefix checkpoints
 * (PrefixCrcs) instead of reading their bytes: data that looks like record headers (a byte array
 * of 0/1 flags: every eighth offset claims up to 16 MiB that fit) made the scan quadratic, hours
 * for a few MiB.
 */
const DIRECT_CHECKSUM_BYTES_MAX = 4096;
/** Distance between prefix-CRC checkpoints (memory: 4 bytes per checkpoint, while a scan runs). */
const CHECKPOINT_BYTES = 128;
/** Size of each extra read window the checkpoint path reads through. */
const SIDE_WINDOW_BYTES = 64 * 1024;

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
  /** The payload (an owned copy). */
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
  /** Checkpointed prefix CRCs for long scan candidates, once a scan met one. */
  private prefixCrcs: PrefixCrcs | undefined = undefined;
  private skippedBytesTotal = 0;
  private skippedRegions = 0;
  /**
   * Whether SYNC_MARK records are valid: in a WAL of version 2, or a WAL whose header is unreadable
   * (its version is unknown, so a valid mark after it counts as a valid record).
   */
  private marks: boolean;
  /**
   * Whether sync marks decide torn tail versus corruption: only in a WAL whose header says version
   * 2. An unreadable header keeps the version 1 rule: the database syncs a WAL's header before it
   * writes records, so records after a bad header are damage.
   */
  private markRule = false;
  /** Offsets below this were scanned for a sync mark (durableBeyond), up to the one it found. */
  private markScanTo = 0;
  /** The sync mark the last scan stopped at (offset, durable length), or -1. */
  private markAt = -1;
  private markValue = -1;
  /**
   * The mark scan's own read window (allocated at its first use), so the scan, which runs ahead
   * of the reader, never moves the reader's window back and forth.
   */
  private markWindow: Buffer | undefined = undefined;
  private markWindowStart = 0;
  private markWindowLength = 0;

  constructor(file: FileHandle, path: string, options: RecordReaderOptions = {}) {
    this.file = file;
    this.path = path;
    this.kind = options.kind ?? 'wal';
    this.skipCorrupt = options.skipCorrupt ?? false;
    this.expectedFileNumber = options.fileNumber ?? fileNumberFromPath(path, this.kind);
    this.marks = this.kind === 'wal';
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
    const rec = this.parseAt(0);
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
    if (!isKnownVersion(this.kind, header.version)) {
      throw corruption(this.path, 0, `unsupported log format version ${header.version}`);
    }
    this.marks = this.kind === 'wal' && header.version === WAL_FORMAT_VERSION;
    this.markRule = this.marks;
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
    const rec = this.parseAt(pos);
    if (typeof rec === 'string') {
      this.onBadFraming(pos, rec);
      return undefined;
    }
    if (rec.type === RECORD_TYPE_SYNC_MARK && this.marks) {
      const durable = decodeSyncMarkPayload(rec.payload);
      if (typeof durable === 'string' || durable > pos) {
        this.onCorruption(pos, rec.end, typeof durable === 'string' ? durable : `sync mark claims ${durable} durable bytes at offset ${pos}`);
        return undefined;
      }
      this.offset = rec.end;
      this.validLength = rec.end;
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
    // With sync marks, valid records after a bad one are a torn tail too unless a mark after
    // them proves the bad bytes had been made durable (see the file comment).
    if (next === undefined || (this.markRule && !this.durableBeyond(pos, next))) {
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
   * First offset >= `from` where a record with valid framing and checksum starts. Reads headers
   * straight from the window (no view per offset): every offset of a torn region is looked at.
   */
  private findValidRecord(from: number): number | undefined {
    const size = this.fileSizeBytes;
    const win = this.window;
    for (let q = from; q + RECORD_HEADER_BYTES <= size; q++) {
      if (q < this.windowStart || q + RECORD_HEADER_BYTES > this.windowStart + this.windowLength) {
        this.view(q, RECORD_HEADER_BYTES); // refills the window at q
      }
      const h = q - this.windowStart;
      const type = win[h + 8] as number;
      if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER && (type !== RECORD_TYPE_SYNC_MARK || !this.marks)) continue;
      const length = win.readUInt32LE(h + 4);
      if (length > RECORD_PAYLOAD_BYTES_MAX || length > size - q - RECORD_HEADER_BYTES) continue;
      const storedCrc = unmaskCrc(win.readUInt32LE(h));
      if (this.candidateCrc(q + 4, q + RECORD_HEADER_BYTES + length) === storedCrc) return q;
    }
    return undefined;
  }

  /**
   * True if a valid SYNC_MARK record starts at some offset >= `from` and says more than `gap`
   * bytes of the file were durable. Checks every offset (as findValidRecord does), so overlapping
   * or damaged records cannot hide a mark. Calls come with rising `gap` and `from` (the reader
   * moves forward), so offsets a scan passed are never looked at again: linear in the file size.
   */
  private durableBeyond(gap: number, from: number): boolean {
    if (this.markAt >= from && this.markValue > gap) return true;
    const size = this.fileSizeBytes;
    const win = (this.markWindow ??= Buffer.allocUnsafe(Math.min(SIDE_WINDOW_BYTES, size)));
    for (let q = Math.max(from, this.markScanTo); q + SYNC_MARK_RECORD_BYTES <= size; q++) {
      if (q < this.markWindowStart || q + SYNC_MARK_RECORD_BYTES > this.markWindowStart + this.markWindowLength) {
        // Moves only forward (q rises across calls): each byte is read at most twice.
        this.markWindowLength = Math.min(win.length, size - q);
        this.readFully(win, this.markWindowLength, q);
        this.markWindowStart = q;
      }
      const h = q - this.markWindowStart;
      if (win[h + 8] !== RECORD_TYPE_SYNC_MARK || win.readUInt32LE(h + 4) !== SYNC_MARK_PAYLOAD_BYTES) continue;
      const b = h + RECORD_HEADER_BYTES;
      const high = win.readUInt32LE(b + 4);
      if (high >= 0x200000) continue; // not a safe integer: not a mark the writer wrote
      const durable = high * 0x1_0000_0000 + win.readUInt32LE(b);
      if (durable <= gap) continue;
      if (crc32Extend(0, win, h + 4, h + SYNC_MARK_RECORD_BYTES) !== unmaskCrc(win.readUInt32LE(h))) continue;
      this.markAt = q;
      this.markValue = durable;
      this.markScanTo = q + 1;
      return true;
    }
    this.markScanTo = size;
    return false;
  }

  /**
   * CRC-32 of file bytes [start, end) for a scan candidate: read directly when short, else from
   * prefix checkpoints (built once per reader, from the first long candidate to the end of the
   * file), so each candidate costs O(CHECKPOINT_BYTES + log length) whatever length it claims.
   */
  private candidateCrc(start: number, end: number): number {
    if (end - start <= DIRECT_CHECKSUM_BYTES_MAX) return this.crcOfRange(start, end);
    if (this.prefixCrcs === undefined || start < this.prefixCrcs.base) {
      this.prefixCrcs = new PrefixCrcs((buf, n, pos) => this.readFully(buf, n, pos), start, this.fileSizeBytes);
    }
    return this.prefixCrcs.crcOf(start, end);
  }

  /** Parses the record at `pos`. Returns a reason string if the framing or the checksum is bad. */
  private parseAt(pos: number): ParsedRecord | string {
    const available = this.fileSizeBytes - pos;
    if (available < RECORD_HEADER_BYTES) return 'truncated record header';
    const header = this.view(pos, RECORD_HEADER_BYTES);
    const storedCrc = unmaskCrc(header.readUInt32LE(0));
    const length = header.readUInt32LE(4);
    const type = header.readUInt8(8);
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_FILE_HEADER && (type !== RECORD_TYPE_SYNC_MARK || !this.marks)) {
      return `invalid record type ${type}`;
    }
    if (length > RECORD_PAYLOAD_BYTES_MAX) return `record length ${length} exceeds maximum`;
    if (length > available - RECORD_HEADER_BYTES) return 'record extends past end of file';
    const end = pos + RECORD_HEADER_BYTES + length;
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

type ReadBytes = (buf: Buffer, n: number, pos: number) => void;

/**
 * CRC-32 of any byte range of [base, size) of a file, from the CRCs of its prefixes: P(n) = CRC of
 * [base, n) is kept every CHECKPOINT_BYTES and completed from the nearest checkpoint below, and
 * CRC([a, b)) = P(b) ⊕ P(a) · x^(8(b−a)) (src/util/crc-combine.ts). Building reads the range once.
 */
class PrefixCrcs {
  private readonly checkpoints: Uint32Array;
  /** Two read windows: candidates' starts and ends each move forward through the file. */
  private readonly windows = [new SideWindow(), new SideWindow()] as const;
  /** byteShiftFactor by length: candidates of a repetitive payload claim few distinct lengths. */
  private readonly factors = new Map<number, number>();

  constructor(
    /** Reads file bytes [pos, pos + n) into `buf` (the reader's readFully: IO_ERROR on failure). */
    private readonly read: ReadBytes,
    readonly base: number,
    private readonly size: number,
  ) {
    const count = Math.floor((size - base) / CHECKPOINT_BYTES) + 1;
    this.checkpoints = new Uint32Array(count);
    const chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
    let crc = 0;
    let i = 1;
    for (let p = base; p < size;) {
      const n = Math.min(chunk.length, size - p);
      read(chunk, n, p);
      // CHECKPOINT_BYTES divides SCAN_CHUNK_BYTES, so checkpoints never straddle chunks.
      for (let off = 0; off < n; off += CHECKPOINT_BYTES) {
        const stop = Math.min(n, off + CHECKPOINT_BYTES);
        crc = crc32Extend(crc, chunk, off, stop);
        if (stop - off === CHECKPOINT_BYTES && i < count) this.checkpoints[i++] = crc;
      }
      p += n;
    }
  }

  crcOf(start: number, end: number): number {
    assert(this.base <= start && start <= end && end <= this.size, 'range inside the checkpointed part');
    const whole = this.prefix(end, 1);
    const prefix = this.prefix(start, 0);
    const length = end - start;
    let factor = this.factors.get(length);
    if (factor === undefined) {
      if (this.factors.size >= 4096) this.factors.clear();
      factor = byteShiftFactor(length);
      this.factors.set(length, factor);
    }
    return (whole ^ mulModPoly(factor, prefix)) >>> 0;
  }

  /** CRC of [base, n), completed from the checkpoint below through read window `w`. */
  private prefix(n: number, w: 0 | 1): number {
    const i = Math.floor((n - this.base) / CHECKPOINT_BYTES);
    const from = this.base + i * CHECKPOINT_BYTES;
    const crc = this.checkpoints[i] as number;
    if (n === from) return crc;
    const window = this.windows[w];
    const off = window.cover(this.read, from, n - from, this.size);
    return crc32Continue(crc, window.buf, off, off + (n - from));
  }
}

/** A read window of its own for PrefixCrcs. */
class SideWindow {
  readonly buf = Buffer.allocUnsafe(SIDE_WINDOW_BYTES);
  private start = 0;
  private length = 0;

  /**
   * Makes file bytes [pos, pos + n) available; returns their offset in `buf`. A miss just past the
   * window (candidates moving forward) reads a whole window ahead; any other miss reads only the
   * n bytes asked for, so candidates whose ends jump around cost n bytes each, not a window.
   */
  cover(read: ReadBytes, pos: number, n: number, size: number): number {
    assert(n <= this.buf.length, 'side window read too large');
    if (pos < this.start || pos + n > this.start + this.length) {
      const end = this.start + this.length;
      const ahead = pos >= end && pos < end + this.buf.length;
      this.length = ahead ? Math.min(this.buf.length, size - pos) : n;
      read(this.buf, this.length, pos);
      this.start = pos;
    }
    return pos - this.start;
  }
}

function fileNumberFromPath(path: string, kind: LogFileKind): number | undefined {
  const parsed = parseFileName(path.slice(path.lastIndexOf('/') + 1));
  if (parsed === undefined) return undefined;
  const wanted = kind === 'wal' ? 'log' : 'manifest';
  return parsed.kind === wanted ? parsed.number : undefined;
}
