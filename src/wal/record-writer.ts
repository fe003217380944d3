/**
 * Appends framed records to a log file (WAL or MANIFEST). Format: docs/formats/wal.md.
 *
 * Every `add`/`addMany`/`addEncoded` is exactly one `FileHandle.write`, so a crash tears at most
 * the records of the last write, and a torn write is always at the tail (see the reader).
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

export class RecordWriter {
  private readonly file: FileHandle;
  readonly fileNumber: number;
  readonly kind: LogFileKind;
  /** Bytes written so far (= file size while healthy). */
  private offsetBytes: number;
  private failure: LightningError | undefined = undefined;
  /** offsetBytes when the last sync() started. */
  private syncStartBytes = 0;
  /** The sync started by syncInBackground(), while it runs. */
  private backgroundSync: Promise<void> | null = null;

  private constructor(
    file: FileHandle,
    fileNumber: number,
    kind: LogFileKind,
    offsetBytes: number,
  ) {
    this.file = file;
    this.fileNumber = fileNumber;
    this.kind = kind;
    this.offsetBytes = offsetBytes;
  }

  /**
   * Starts a new log in `file` by writing its FILE_HEADER record (not synced: the first `sync()`
   * makes it durable together with the first records).
   * Requires: `file` is empty and open for writing. Throws LightningError (IO_ERROR/DISK_FULL).
   */
  static create(file: FileHandle, fileNumber: number, kind: LogFileKind = 'wal'): RecordWriter {
    assert(Number.isSafeInteger(fileNumber) && fileNumber > 0, 'file number must be positive');
    assert(file.size() === 0, 'RecordWriter.create requires an empty file');
    const writer = new RecordWriter(file, fileNumber, kind, 0);
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

  /** Bytes added since the last sync started (what a sync now would have to write). */
  unsyncedBytes(): number {
    return this.offsetBytes - this.syncStartBytes;
  }

  /**
   * Starts a sync without waiting for it, unless one started this way is still running: a log
   * written without durable writes then reaches the disk in steps, and the sync that must wait
   * (at a memtable switch) finds little left to write. A failure disables the writer (as
   * any failed sync does) and goes to `onError`; nothing is thrown. Returns whether it started one.
   */
  syncInBackground(onError: (e: LightningError) => void): boolean {
    if (this.backgroundSync !== null || this.failure !== undefined) return false;
    this.backgroundSync = this.sync().then(
      () => {
        this.backgroundSync = null;
      },
      (e: unknown) => {
        this.backgroundSync = null;
        onError(e as LightningError);
      },
    );
    return true;
  }

  /** Resolves once no background sync is running (call before close()). Never rejects. */
  async settled(): Promise<void> {
    while (this.backgroundSync !== null) await this.backgroundSync;
  }

  /** Makes every record added so far durable; `inline`: see FileHandle.sync. */
  async sync(inline = false): Promise<void> {
    this.throwIfFailed();
    this.syncStartBytes = this.offsetBytes;
    try {
      await this.file.sync(inline);
    } catch (e) {
      throw this.fail(e, 'sync');
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

  /** Closes the file handle (after settled(), if syncs ran in the background). Idempotent. */
  close(): void {
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
