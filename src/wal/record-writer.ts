/**
 * Appends framed records to a log file (WAL or MANIFEST). Format: docs/formats/wal.md.
 *
 * Every `add`/`addMany`/`addEncoded` is exactly one `FileHandle.write`, so a crash tears at most
 * the records of the last write, and a torn write is always at the tail (see the reader).
 *
 * Zero-fill ahead (WALs): an fdatasync after an append must also commit the file's new size to the
 * filesystem journal, which costs ~25-30% more per durable write on ext4 than an fdatasync after
 * overwriting bytes the file already has. So a writer created with `zeroFillAhead` extends the file
 * with zeros past its end when a small durable write comes near the zeroed region's end; the
 * records that follow overwrite zeros, and their fdatasyncs change no metadata. A zero tail reads
 * as the end of the log (type 0 is invalid; docs/formats/wal.md). `seal()` cuts the zeros off
 * before a log stops growing, so only the newest log ever ends in zeros.
 *
 * Failure: once a write or a sync throws, the bytes on disk past the last successful sync are
 * unknown (a short write may have landed, and after a failed fsync the page cache may have dropped
 * dirty pages). The writer then refuses every later call with the same error; the owner must roll
 * to a new file (or reopen) rather than append after an unknown tail.
 */
import { fromIoError, type LightningError } from '../base/errors.js';
import type { FileHandle } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import {
  encodeFileHeaderPayload,
  encodeRecord,
  encodeRecords,
  FILE_HEADER_RECORD_BYTES,
  RECORD_TYPE_FILE_HEADER,
  type LogFileKind,
} from './format.js';

/** Zeros written ahead of the end of a zero-filled log at a time. */
export const ZERO_FILL_AHEAD_BYTES = 1024 * 1024;
/**
 * Only syncs of at most this many new bytes zero-fill: for bigger ones the journal commit is a
 * small part of the cost, and writing the zeros would double the bytes written.
 */
export const ZERO_FILL_SYNC_BYTES_MAX = 64 * 1024;
/** Zero-fill again once the records come this close to the end of the zeros. */
const ZERO_FILL_REFILL_BYTES = 64 * 1024;

let zeroBlock: Uint8Array | undefined;

export interface RecordWriterOptions {
  /** Extend the file with zeros ahead of small durable writes (see the file comment). */
  zeroFillAhead?: boolean;
}

export class RecordWriter {
  private readonly file: FileHandle;
  readonly fileNumber: number;
  readonly kind: LogFileKind;
  /** Bytes written so far (= file size while healthy). */
  private offsetBytes: number;
  private failure: LightningError | undefined = undefined;
  /** Whether sync() may still zero-fill (off once sealed, or after a zero-fill failed). */
  private zeroFill: boolean;
  /** End of the zeros written ahead (0: none); the file's size while it exceeds offsetBytes. */
  private zeroedEndBytes = 0;
  /** offsetBytes when the last sync() started. */
  private syncStartBytes = 0;

  private constructor(
    file: FileHandle,
    fileNumber: number,
    kind: LogFileKind,
    offsetBytes: number,
    zeroFill: boolean,
  ) {
    this.file = file;
    this.fileNumber = fileNumber;
    this.kind = kind;
    this.offsetBytes = offsetBytes;
    this.zeroFill = zeroFill;
  }

  /**
   * Starts a new log in `file` by writing its FILE_HEADER record (not synced: the first `sync()`
   * makes it durable together with the first records).
   * Requires: `file` is empty and open for writing. Throws LightningError (IO_ERROR/DISK_FULL).
   */
  static create(
    file: FileHandle,
    fileNumber: number,
    kind: LogFileKind = 'wal',
    options: RecordWriterOptions = {},
  ): RecordWriter {
    assert(Number.isSafeInteger(fileNumber) && fileNumber > 0, 'file number must be positive');
    assert(file.size() === 0, 'RecordWriter.create requires an empty file');
    const writer = new RecordWriter(file, fileNumber, kind, 0, options.zeroFillAhead ?? false);
    const header = encodeRecord(encodeFileHeaderPayload(kind, fileNumber), RECORD_TYPE_FILE_HEADER);
    assert(header.length === FILE_HEADER_RECORD_BYTES, 'file header record size');
    writer.addEncoded(header);
    return writer;
  }

  /** Frames and appends one DATA record with a single write. Not durable until `sync()`. */
  add(payload: Uint8Array): void {
    this.addEncoded(encodeRecord(payload));
  }

  /** Frames several DATA records into one buffer and appends it with a single write. */
  addMany(payloads: readonly Uint8Array[]): void {
    if (payloads.length === 0) return;
    this.addEncoded(encodeRecords(payloads));
  }

  /**
   * Appends bytes already framed with `encodeRecordInto`/`encodeRecords` (group commit frames into
   * its own buffer) with a single write.
   */
  addEncoded(framed: Uint8Array): void {
    this.throwIfFailed();
    assert(framed.length > 0, 'addEncoded: nothing to write');
    try {
      this.file.write(framed, 0, framed.length, this.offsetBytes);
    } catch (e) {
      throw this.fail(e, 'write');
    }
    this.offsetBytes += framed.length;
  }

  /** Makes every record added so far durable (and zero-fills ahead first, if due). */
  async sync(): Promise<void> {
    this.throwIfFailed();
    const newBytes = this.offsetBytes - this.syncStartBytes;
    this.syncStartBytes = this.offsetBytes;
    // Not for the header's sync at creation: a log written without durable writes never zero-fills.
    if (
      this.zeroFill &&
      this.offsetBytes > FILE_HEADER_RECORD_BYTES &&
      newBytes <= ZERO_FILL_SYNC_BYTES_MAX &&
      this.offsetBytes + ZERO_FILL_REFILL_BYTES > this.zeroedEndBytes
    ) {
      this.zeroFillAhead();
    }
    try {
      await this.file.sync();
    } catch (e) {
      throw this.fail(e, 'sync');
    }
  }

  /**
   * Ends the log's growth: cuts off zeros written ahead, so that it does not end in what reads as a
   * torn tail once a later log holds records, and makes every record durable. No zero-fill after.
   */
  async seal(): Promise<void> {
    this.throwIfFailed();
    this.zeroFill = false;
    if (this.zeroedEndBytes > this.offsetBytes) {
      try {
        this.file.truncate(this.offsetBytes);
      } catch (e) {
        throw this.fail(e, 'truncate');
      }
    }
    this.zeroedEndBytes = 0;
    await this.sync();
  }

  /**
   * Writes zeros from the end of the records (or of earlier zeros) to ZERO_FILL_AHEAD_BYTES past
   * the records. Best effort: the zeros are an optimisation, so a failure (a full disk) only turns
   * zero-filling off for this log; bytes it left past the records are zeros or nothing.
   */
  private zeroFillAhead(): void {
    const from = Math.max(this.zeroedEndBytes, this.offsetBytes);
    const to = this.offsetBytes + ZERO_FILL_AHEAD_BYTES;
    zeroBlock ??= new Uint8Array(ZERO_FILL_AHEAD_BYTES);
    try {
      this.file.write(zeroBlock, 0, to - from, from);
      this.zeroedEndBytes = to;
    } catch {
      this.zeroFill = false;
      this.zeroedEndBytes = to; // part of it may have landed: seal() and close() cut it off
    }
  }

  /** Size of the log so far, header included. */
  sizeBytes(): number {
    return this.offsetBytes;
  }

  /** The error that disabled this writer, if any. */
  failed(): LightningError | undefined {
    return this.failure;
  }

  /**
   * Closes the file handle. Unsynced records stay unsynced. Idempotent. Zeros written ahead are cut
   * off first (not synced: a crash may leave them, which reads the same).
   */
  close(): void {
    if (this.zeroedEndBytes > this.offsetBytes && this.failure === undefined) {
      try {
        this.file.truncate(this.offsetBytes);
      } catch {
        // Only tidiness: a zero tail reads as the end of the log.
      }
    }
    this.zeroedEndBytes = 0;
    this.file.close();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private fail(e: unknown, op: string): LightningError {
    const err = fromIoError(e, op, this.file.path);
    this.failure = err;
    return err;
  }
}
