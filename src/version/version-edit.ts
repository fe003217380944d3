/**
 * A VersionEdit is one record of the MANIFEST: the difference between two versions of the LSM
 * (files added and deleted per level) plus the counters that must survive a restart. Encoding:
 * a sequence of tagged fields, `tag (varint) ++ value`; see docs/formats/manifest.md.
 */
import { corruption } from '../base/errors.js';
import { assert } from '../util/assert.js';
import { getVarint, putVarint, type Decoded } from '../util/coding.js';
import { checkFileMetadata, describeFile, NUM_LEVELS, type FileMetadata } from './file-metadata.js';

/**
 * Field tags. ON DISK: frozen. Never renumber or reuse a tag; when a field is retired, keep its
 * number here in a comment ("7: retired, was ...") so nobody reuses it.
 */
export const TAG_COMPARATOR = 1;
export const TAG_LOG_NUMBER = 2;
export const TAG_NEXT_FILE_NUMBER = 3;
export const TAG_LAST_SEQUENCE = 4;
export const TAG_DELETED_FILE = 5;
export const TAG_NEW_FILE = 6;

/** Longest comparator name accepted when decoding. */
export const COMPARATOR_NAME_BYTES_MAX = 256;

export interface DeletedFile {
  level: number;
  number: number;
}

export interface NewFile {
  level: number;
  meta: FileMetadata;
}

export class VersionEdit {
  /** Name of the user-key ordering; recovery refuses a manifest written with another one. */
  comparatorName?: string;
  /** WALs with a number below this are obsolete: their contents are in tables. */
  logNumber?: number;
  /** Next file number to hand out; every file in the database has a smaller number. */
  nextFileNumber?: number;
  /** Highest sequence number that was assigned before this edit. */
  lastSequence?: number;
  deletedFiles: DeletedFile[] = [];
  newFiles: NewFile[] = [];

  addFile(level: number, meta: FileMetadata): void {
    assert(level >= 0 && level < NUM_LEVELS, 'level out of range');
    const problem = checkFileMetadata(meta);
    assert(problem === undefined, problem ?? '');
    this.newFiles.push({ level, meta });
  }

  deleteFile(level: number, number: number): void {
    assert(level >= 0 && level < NUM_LEVELS, 'level out of range');
    assert(Number.isSafeInteger(number) && number > 0, 'file number must be positive');
    this.deletedFiles.push({ level, number });
  }

  encode(): Buffer {
    const name =
      this.comparatorName === undefined ? undefined : Buffer.from(this.comparatorName, 'utf8');
    const out = Buffer.allocUnsafe(this.encodedBytesMax(name));
    let off = 0;
    if (name !== undefined) {
      off = putVarint(out, off, TAG_COMPARATOR);
      off = putBytes(out, off, name);
    }
    off = putOptional(out, off, TAG_LOG_NUMBER, this.logNumber);
    off = putOptional(out, off, TAG_NEXT_FILE_NUMBER, this.nextFileNumber);
    off = putOptional(out, off, TAG_LAST_SEQUENCE, this.lastSequence);
    for (const d of this.deletedFiles) {
      off = putVarint(out, off, TAG_DELETED_FILE);
      off = putVarint(out, off, d.level);
      off = putVarint(out, off, d.number);
    }
    for (const f of this.newFiles) {
      off = putVarint(out, off, TAG_NEW_FILE);
      off = putVarint(out, off, f.level);
      off = putNewFileBody(out, off, f.meta);
    }
    assert(off <= out.length, 'version edit encoding overran its estimate');
    return out.subarray(0, off);
  }

  /**
   * Decodes an encoded edit. Any malformed input (truncated field, unknown tag, repeated scalar
   * field, bad level, malformed file metadata) throws CORRUPTION naming `file` and the offset
   * `baseOffset + position in buf`.
   */
  static decode(buf: Buffer, file = '<version edit>', baseOffset = 0): VersionEdit {
    return new EditDecoder(buf, file, baseOffset).decode();
  }

  /** One line per field, for tests, the CLI and error messages. */
  describe(): string {
    const lines: string[] = [];
    if (this.comparatorName !== undefined) lines.push(`comparator: ${this.comparatorName}`);
    if (this.logNumber !== undefined) lines.push(`log-number: ${this.logNumber}`);
    if (this.nextFileNumber !== undefined) lines.push(`next-file-number: ${this.nextFileNumber}`);
    if (this.lastSequence !== undefined) lines.push(`last-sequence: ${this.lastSequence}`);
    for (const d of this.deletedFiles) lines.push(`deleted: L${d.level} ${d.number}`);
    for (const f of this.newFiles) {
      const m = f.meta;
      const seqs = `seqs=[${m.smallestSeq}-${m.largestSeq}]`;
      lines.push(
        `added: L${f.level} ${describeFile(m)} size=${m.sizeBytes} ${seqs} entries=${m.entryCount}`,
      );
    }
    return lines.join('\n');
  }

  private encodedBytesMax(name: Buffer | undefined): number {
    const V = 9; // Longest varint of a safe integer.
    let n = 3 * (1 + V);
    if (name !== undefined) n += 1 + V + name.length;
    n += this.deletedFiles.length * (1 + 3 * V);
    for (const f of this.newFiles) {
      n += 2 + 8 * V + f.meta.smallest.length + f.meta.largest.length;
    }
    return n;
  }
}

function putOptional(out: Buffer, off: number, tag: number, v: number | undefined): number {
  if (v === undefined) return off;
  off = putVarint(out, off, tag);
  return putVarint(out, off, v);
}

function putBytes(out: Buffer, off: number, bytes: Uint8Array): number {
  off = putVarint(out, off, bytes.length);
  out.set(bytes, off);
  return off + bytes.length;
}

/** number, size, smallest, largest, smallestSeq, largestSeq, entryCount. */
function putNewFileBody(out: Buffer, off: number, m: FileMetadata): number {
  off = putVarint(out, off, m.number);
  off = putVarint(out, off, m.sizeBytes);
  off = putBytes(out, off, m.smallest);
  off = putBytes(out, off, m.largest);
  off = putVarint(out, off, m.smallestSeq);
  off = putVarint(out, off, m.largestSeq);
  return putVarint(out, off, m.entryCount);
}

/** Cursor over an encoded edit; every read either succeeds or throws CORRUPTION. */
class EditDecoder {
  private readonly buf: Buffer;
  private readonly file: string;
  private readonly baseOffset: number;
  private off = 0;
  private readonly tmp: Decoded = { value: 0, next: 0 };

  constructor(buf: Buffer, file: string, baseOffset: number) {
    this.buf = buf;
    this.file = file;
    this.baseOffset = baseOffset;
  }

  decode(): VersionEdit {
    const edit = new VersionEdit();
    while (this.off < this.buf.length) {
      const tagOffset = this.off;
      const tag = this.varint('tag');
      switch (tag) {
        case TAG_COMPARATOR:
          if (edit.comparatorName !== undefined) this.fail(tagOffset, 'repeated comparator field');
          edit.comparatorName = this.comparatorName();
          break;
        case TAG_LOG_NUMBER:
          if (edit.logNumber !== undefined) this.fail(tagOffset, 'repeated log number field');
          edit.logNumber = this.varint('log number');
          break;
        case TAG_NEXT_FILE_NUMBER:
          if (edit.nextFileNumber !== undefined) this.fail(tagOffset, 'repeated next file number');
          edit.nextFileNumber = this.varint('next file number');
          break;
        case TAG_LAST_SEQUENCE:
          if (edit.lastSequence !== undefined) this.fail(tagOffset, 'repeated last sequence');
          edit.lastSequence = this.varint('last sequence');
          break;
        case TAG_DELETED_FILE:
          edit.deletedFiles.push({
            level: this.level(),
            number: this.varint('deleted file number'),
          });
          break;
        case TAG_NEW_FILE:
          edit.newFiles.push(this.newFile(tagOffset));
          break;
        default:
          this.fail(tagOffset, `unknown version edit tag ${tag}`);
      }
    }
    return edit;
  }

  private newFile(tagOffset: number): NewFile {
    const level = this.level();
    const meta: FileMetadata = {
      number: this.varint('file number'),
      sizeBytes: this.varint('file size'),
      smallest: this.bytes('smallest key'),
      largest: this.bytes('largest key'),
      smallestSeq: this.varint('smallest seq'),
      largestSeq: this.varint('largest seq'),
      entryCount: this.varint('entry count'),
    };
    const problem = checkFileMetadata(meta);
    if (problem !== undefined) this.fail(tagOffset, `bad new file: ${problem}`);
    return { level, meta };
  }

  private comparatorName(): string {
    const at = this.off;
    const bytes = this.bytes('comparator name');
    if (bytes.length > COMPARATOR_NAME_BYTES_MAX) this.fail(at, 'comparator name too long');
    return bytes.toString('utf8');
  }

  private level(): number {
    const at = this.off;
    const level = this.varint('level');
    if (level >= NUM_LEVELS) this.fail(at, `level ${level} out of range`);
    return level;
  }

  private varint(what: string): number {
    const d = getVarint(this.buf, this.off, this.buf.length, this.tmp);
    if (d.next < 0) this.fail(this.off, `truncated or overlong varint (${what})`);
    this.off = d.next;
    return d.value;
  }

  /** Length-prefixed bytes, copied out of `buf` so the edit does not pin the record buffer. */
  private bytes(what: string): Buffer {
    const at = this.off;
    const length = this.varint(`${what} length`);
    if (length > this.buf.length - this.off) this.fail(at, `${what} extends past end of edit`);
    const out = Buffer.from(this.buf.subarray(this.off, this.off + length));
    this.off += length;
    return out;
  }

  private fail(at: number, what: string): never {
    throw corruption(this.file, this.baseOffset + at, what);
  }
}
