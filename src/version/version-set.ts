/**
 * VersionSet owns the current Version and the counters that must survive restarts (next file
 * number, last sequence, log number), and persists every change as a VersionEdit appended to the
 * MANIFEST. CURRENT names the live MANIFEST. Formats and the crash-safety argument:
 * docs/formats/manifest.md.
 *
 * Durability: logAndApply resolves only after the edit is fsynced; only then does the new Version
 * become current. Edits are serialized: concurrent calls queue and commit in call order.
 *
 * Failure policy: if writing or syncing the manifest fails, the edit may or may not be on disk.
 * The in-memory version does not change and the error is rethrown (IO_ERROR / DISK_FULL). The
 * next edit never appends after that unknown tail: it rolls to a fresh snapshot manifest and
 * switches CURRENT (docs/formats/manifest.md, "Failure"). Files the failed edit added stay in
 * liveFileNumbers() so garbage collection never deletes a file a recovered manifest may name.
 *
 * Manifest size: when the manifest exceeds `manifestRollBytes`, the next edit goes into a NEW
 * manifest holding one snapshot of the whole state, and CURRENT switches to it. Recovery always
 * does the same, so the manifest never grows without bound across restarts.
 */
import { corruption, fromIoError, LightningError } from '../base/errors.js';
import { CURRENT_FILE, logFileName, manifestFileName, parseFileName, tableFileName } from '../base/file-names.js';
import { joinPath, type FileHandle, type FileSystem } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import { RECORD_HEADER_BYTES } from '../wal/format.js';
import { RecordReader } from '../wal/record-reader.js';
import { RecordWriter } from '../wal/record-writer.js';
import { readCurrent, writeCurrent } from './current-file.js';
import type { FileMetadata } from './file-metadata.js';
import { VersionBuilder } from './version-builder.js';
import { VersionEdit } from './version-edit.js';
import { emptyLevels, Version, type Levels } from './version.js';

/** The only ordering we implement: bytewise user keys. Written to every manifest snapshot. */
export const COMPARATOR_NAME_DEFAULT = 'lightning.bytewise';
/** Roll to a fresh snapshot manifest past this size: bounds recovery time and disk use. */
export const MANIFEST_ROLL_BYTES_DEFAULT = 4 * 1024 * 1024;

export interface VersionSetOptions {
  /** Must match the manifest's comparator on recover. Default COMPARATOR_NAME_DEFAULT. */
  comparatorName?: string;
  /** Manifest size that triggers a roll to a new snapshot manifest. */
  manifestRollBytes?: number;
  /** recover() only: write nothing (no new manifest, no CURRENT switch); logAndApply refuses. */
  readOnly?: boolean;
  /**
   * recover() only: fail with CORRUPTION if a table or the WAL the recovered state names is missing
   * from the directory (the database always sets this; unit tests of edits alone do not).
   */
  checkFiles?: boolean;
  /** Called whenever a Version's reference count drops to zero (time to collect obsolete files). */
  onVersionReleased?: () => void;
}

/** Recovered counters; everything a snapshot edit records besides the files. */
interface Counters {
  nextFileNumber: number;
  lastSequence: number;
  logNumber: number;
}

export class VersionSet {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly comparatorName: string;
  private readonly manifestRollBytes: number;
  private readonly readOnly: boolean;
  private readonly onVersionReleased: (() => void) | undefined;

  private cur: Version;
  private nextFile: number;
  private lastSeq: number;
  private logNum: number;
  private manifestNum = 0;
  private manifest: RecordWriter | undefined = undefined;
  /** Versions with refs > 0 (current included: the set holds one ref on it). */
  private readonly live = new Set<Version>();
  /** Files added by an edit whose manifest write failed: maybe committed, never collect them. */
  private readonly maybeCommitted = new Set<number>();
  private failure: LightningError | undefined = undefined;
  private closed = false;
  /** Tail of the edit queue; never rejects. */
  private tail: Promise<void> = Promise.resolve();

  private constructor(
    fs: FileSystem,
    dir: string,
    options: VersionSetOptions,
    levels: Levels,
    c: Counters,
  ) {
    this.fs = fs;
    this.dir = dir;
    this.comparatorName = options.comparatorName ?? COMPARATOR_NAME_DEFAULT;
    this.manifestRollBytes = options.manifestRollBytes ?? MANIFEST_ROLL_BYTES_DEFAULT;
    this.readOnly = options.readOnly ?? false;
    this.onVersionReleased = options.onVersionReleased;
    assert(this.manifestRollBytes > 0, 'manifestRollBytes must be positive');
    this.nextFile = c.nextFileNumber;
    this.lastSeq = c.lastSequence;
    this.logNum = c.logNumber;
    this.cur = this.install(levels);
  }

  /**
   * Creates the version state of a new, empty database in `dir` (which must exist): writes
   * MANIFEST-000001 holding one snapshot edit, syncs it, then points CURRENT at it durably.
   * ALREADY_EXISTS if `dir` already has a CURRENT.
   */
  static async create(
    fs: FileSystem,
    dir: string,
    options: VersionSetOptions = {},
  ): Promise<VersionSet> {
    assert(options.readOnly !== true, 'cannot create a database read-only');
    if (fs.exists(joinPath(dir, CURRENT_FILE))) {
      throw new LightningError('ALREADY_EXISTS', `a database already exists in ${dir}`);
    }
    const levels = emptyLevels();
    const vs = new VersionSet(fs, dir, options, levels, {
      nextFileNumber: 2,
      lastSequence: 0,
      logNumber: 0,
    });
    vs.manifest = await vs.writeSnapshotManifest(1, levels, vs.counters());
    vs.manifestNum = 1;
    return vs;
  }

  /**
   * Recovers the state CURRENT points at: replays every edit of that manifest (a torn last edit is
   * an edit that never committed and is ignored; damage before the end is CORRUPTION). Unless
   * `readOnly`, then writes a new manifest holding one snapshot, switches CURRENT to it and deletes
   * the old manifest. NOT_FOUND if there is no CURRENT; INVALID_ARGUMENT on a comparator mismatch.
   */
  static async recover(
    fs: FileSystem,
    dir: string,
    options: VersionSetOptions = {},
  ): Promise<VersionSet> {
    const oldNumber = readCurrent(fs, dir);
    const { levels, counters } = replayManifest(fs, dir, oldNumber, options);
    const names = listNames(fs, dir);
    if (options.checkFiles === true) {
      checkFilesExist(names, levels, counters.logNumber, joinPath(dir, manifestFileName(oldNumber)));
    }
    let maxNumber = 0;
    for (const name of names) maxNumber = Math.max(maxNumber, parseFileName(name)?.number ?? 0);
    counters.nextFileNumber = Math.max(counters.nextFileNumber, oldNumber + 1, maxNumber + 1);
    const vs = new VersionSet(fs, dir, options, levels, counters);
    vs.manifestNum = oldNumber;
    if (vs.readOnly) return vs;
    const newNumber = vs.newFileNumber();
    vs.manifest = await vs.writeSnapshotManifest(newNumber, levels, vs.counters());
    vs.manifestNum = newNumber;
    vs.removeObsoleteManifest(oldNumber);
    return vs;
  }

  /** The current version. Callers that keep it across an await must ref() it. */
  current(): Version {
    return this.cur;
  }

  /** Allocates a file number (WAL, table or manifest). Numbers are never reused. */
  newFileNumber(): number {
    return this.nextFile++;
  }

  /** Allocates `count` consecutive file numbers and returns the first. Unused ones are skipped. */
  reserveFileNumbers(count: number): number {
    assert(Number.isSafeInteger(count) && count > 0, 'bad file number count');
    const first = this.nextFile;
    this.nextFile += count;
    return first;
  }

  /** The number newFileNumber() will return next. */
  peekNextFileNumber(): number {
    return this.nextFile;
  }

  /**
   * Makes sure `number` is never handed out again (recovery calls this for every file it finds,
   * e.g. a WAL newer than anything the manifest recorded).
   */
  markFileNumberUsed(number: number): void {
    assert(Number.isSafeInteger(number) && number >= 0, 'file number');
    if (number >= this.nextFile) this.nextFile = number + 1;
  }

  /** Highest sequence number in use, as last recorded or set. */
  lastSequence(): number {
    return this.lastSeq;
  }

  /** Records that sequence numbers up to `seq` are in use. Requires: monotonic. */
  setLastSequence(seq: number): void {
    assert(seq >= this.lastSeq, 'last sequence must not go backwards');
    this.lastSeq = seq;
  }

  /** WALs numbered below this are obsolete. */
  logNumber(): number {
    return this.logNum;
  }

  /** Number of the live MANIFEST (the one CURRENT names). */
  manifestFileNumber(): number {
    return this.manifestNum;
  }

  /** The error that disabled edits, if a manifest write failed. */
  failed(): LightningError | undefined {
    return this.failure;
  }

  /**
   * Table numbers referenced by any version still referenced (current included), plus files of a
   * failed edit that might have committed. Any table not in this set (and not being written) may
   * be deleted.
   */
  liveFileNumbers(): Set<number> {
    const out = new Set<number>(this.maybeCommitted);
    for (const v of this.live) {
      for (const f of v.allFiles()) out.add(f.meta.number);
    }
    return out;
  }

  /**
   * Fills in `edit.nextFileNumber` and `edit.lastSequence`, appends the edit to the manifest,
   * fsyncs it, and only then installs the resulting Version. Calls are queued and run one at a
   * time, in call order.
   * Requires: the edit is valid against the version it will apply to (deleted files exist, added
   * files are new, L1+ stays disjoint, logNumber does not go backwards): violations are assertion
   * failures, detected before anything is written. Throws READ_ONLY, CLOSED, or the manifest I/O
   * error (IO_ERROR/DISK_FULL), after which the next edit rolls to a new manifest (file comment).
   */
  logAndApply(edit: VersionEdit): Promise<void> {
    if (this.closed) return Promise.reject(new LightningError('CLOSED', 'version set is closed'));
    const run = this.tail.then(() => this.applyOne(edit));
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Refuses new edits (CLOSED), lets the ones already queued finish, then closes the manifest.
   * Idempotent.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    this.manifest?.close();
    this.manifest = undefined;
  }

  private async applyOne(edit: VersionEdit): Promise<void> {
    const manifest = this.writableManifest();
    const levels = this.checkedResult(edit);
    const lastSequence = Math.max(this.lastSeq, edit.lastSequence ?? 0);
    const logNumber = edit.logNumber ?? this.logNum;
    // After a failed manifest write the old manifest's tail is unknown: the next edit starts a
    // fresh manifest (a snapshot of the in-memory state, which excludes the failed edit) and
    // switches CURRENT to it. That is how the database resumes after a full disk.
    const roll = this.failure !== undefined || manifest.sizeBytes() >= this.manifestRollBytes;
    const rollNumber = roll ? this.newFileNumber() : 0;
    edit.nextFileNumber = this.nextFile;
    edit.lastSequence = lastSequence;
    const payload = roll ? undefined : edit.encode();
    try {
      if (payload !== undefined) {
        manifest.add(payload);
        await manifest.sync();
      } else {
        const counters = { nextFileNumber: this.nextFile, lastSequence, logNumber };
        this.manifest = await this.writeSnapshotManifest(rollNumber, levels, counters);
        this.manifestNum = rollNumber;
      }
    } catch (e) {
      const err = fromIoError(
        e,
        'write manifest',
        this.manifestPath(roll ? rollNumber : this.manifestNum),
      );
      this.failure = err;
      for (const f of edit.newFiles) this.maybeCommitted.add(f.meta.number);
      throw err;
    }
    if (roll) {
      manifest.close();
      this.removeObsoleteManifest(manifest.fileNumber);
      this.failure = undefined;
    }
    this.lastSeq = lastSequence;
    this.logNum = logNumber;
    const old = this.cur;
    this.cur = this.install(levels);
    old.unref();
  }

  private writableManifest(): RecordWriter {
    if (this.readOnly) throw new LightningError('READ_ONLY', 'database was opened read-only');
    assert(this.manifest !== undefined, 'writable version set has a manifest');
    return this.manifest;
  }

  /** The levels `edit` produces from the current version; asserts the edit is valid. */
  private checkedResult(edit: VersionEdit): FileMetadata[][] {
    assert(
      edit.comparatorName === undefined || edit.comparatorName === this.comparatorName,
      'edit names another comparator',
    );
    if (edit.logNumber !== undefined) {
      assert(edit.logNumber >= this.logNum, 'log number must not go backwards');
      assert(edit.logNumber < this.nextFile, 'log number was never allocated');
    }
    for (const f of edit.newFiles)
      assert(f.meta.number < this.nextFile, 'file number was never allocated');
    const builder = new VersionBuilder(this.cur);
    const problem = builder.apply(edit);
    assert(problem === undefined, `invalid version edit: ${problem ?? ''}`);
    const levels = builder.build();
    assert(typeof levels !== 'string', `invalid version edit: ${String(levels)}`);
    return levels;
  }

  private install(levels: Levels): Version {
    const v = new Version(levels, (released) => {
      this.live.delete(released);
      this.onVersionReleased?.();
    });
    v.ref();
    this.live.add(v);
    return v;
  }

  private counters(): Counters {
    return { nextFileNumber: this.nextFile, lastSequence: this.lastSeq, logNumber: this.logNum };
  }

  /**
   * Writes MANIFEST-`number` holding one snapshot edit, syncs it and its directory entry, then
   * switches CURRENT to it (durably). Returns the writer, positioned for further edits.
   */
  private async writeSnapshotManifest(
    number: number,
    levels: Levels,
    c: Counters,
  ): Promise<RecordWriter> {
    assert(number < c.nextFileNumber, 'snapshot must cover its own manifest number');
    const snapshot = snapshotEdit(this.comparatorName, levels, c);
    const path = this.manifestPath(number);
    let file: FileHandle;
    try {
      file = this.fs.open(path, 'truncate');
    } catch (e) {
      throw fromIoError(e, 'open', path);
    }
    try {
      const writer = RecordWriter.create(file, number, 'manifest');
      writer.add(snapshot.encode());
      await writer.sync();
      await this.syncDir();
      await writeCurrent(this.fs, this.dir, number);
      return writer;
    } catch (e) {
      file.close();
      throw fromIoError(e, 'write', path);
    }
  }

  private async syncDir(): Promise<void> {
    try {
      await this.fs.syncDir(this.dir);
    } catch (e) {
      throw fromIoError(e, 'syncDir', this.dir);
    }
  }

  /**
   * Deletes a manifest CURRENT no longer names. Best effort by design: the new state is already
   * durable, so failing the caller now would report a committed change as failed. A manifest left
   * behind is garbage that the DB's obsolete-file sweep removes (any MANIFEST-n other than
   * manifestFileNumber()).
   */
  private removeObsoleteManifest(number: number): void {
    assert(number !== this.manifestNum, 'never delete the live manifest');
    try {
      this.fs.unlink(this.manifestPath(number));
    } catch {
      // See above: leaving the file is safe.
    }
  }

  private manifestPath(number: number): string {
    return joinPath(this.dir, manifestFileName(number));
  }
}

/** One edit that recreates the whole state from nothing. */
function snapshotEdit(comparatorName: string, levels: Levels, c: Counters): VersionEdit {
  const edit = new VersionEdit();
  edit.comparatorName = comparatorName;
  edit.logNumber = c.logNumber;
  edit.nextFileNumber = c.nextFileNumber;
  edit.lastSequence = c.lastSequence;
  levels.forEach((files, level) => {
    for (const meta of files) edit.newFiles.push({ level, meta });
  });
  return edit;
}

/** Replays MANIFEST-`number`; every inconsistency is CORRUPTION naming the manifest and offset. */
function replayManifest(
  fs: FileSystem,
  dir: string,
  number: number,
  options: VersionSetOptions,
): { levels: FileMetadata[][]; counters: Counters } {
  const path = joinPath(dir, manifestFileName(number));
  let file: FileHandle;
  try {
    file = fs.open(path, 'r');
  } catch (e) {
    if ((e as { code?: unknown } | null)?.code === 'ENOENT') {
      throw corruption(path, 0, 'CURRENT names a manifest that does not exist');
    }
    throw fromIoError(e, 'open', path);
  }
  try {
    return replayRecords(
      new RecordReader(file, path, { kind: 'manifest', fileNumber: number }),
      path,
      options,
    );
  } finally {
    file.close();
  }
}

function replayRecords(
  reader: RecordReader,
  path: string,
  options: VersionSetOptions,
): { levels: FileMetadata[][]; counters: Counters } {
  const builder = new VersionBuilder(Version.empty());
  let comparator: string | undefined;
  let logNumber: number | undefined;
  let nextFileNumber: number | undefined;
  let lastSequence: number | undefined;
  for (let payload = reader.next(); payload !== undefined; payload = reader.next()) {
    const at = reader.lastRecordOffset;
    const edit = VersionEdit.decode(payload, path, at + RECORD_HEADER_BYTES);
    if (edit.comparatorName !== undefined) {
      if (comparator !== undefined && comparator !== edit.comparatorName) {
        throw corruption(path, at, 'comparator changes within the manifest');
      }
      comparator = edit.comparatorName;
    }
    if (edit.logNumber !== undefined) {
      if (logNumber !== undefined && edit.logNumber < logNumber) {
        throw corruption(path, at, 'log number goes backwards');
      }
      logNumber = edit.logNumber;
    }
    nextFileNumber = edit.nextFileNumber ?? nextFileNumber;
    lastSequence = edit.lastSequence ?? lastSequence;
    const problem = builder.apply(edit);
    if (problem !== undefined) throw corruption(path, at, problem);
  }
  if (comparator === undefined || logNumber === undefined) {
    throw corruption(path, 0, 'manifest does not start with a snapshot edit');
  }
  if (nextFileNumber === undefined || lastSequence === undefined) {
    throw corruption(path, 0, 'manifest lacks the next file number or last sequence');
  }
  const wanted = options.comparatorName ?? COMPARATOR_NAME_DEFAULT;
  if (comparator !== wanted) {
    throw new LightningError(
      'INVALID_ARGUMENT',
      `database uses comparator ${comparator}, not ${wanted}`,
    );
  }
  const levels = builder.build();
  if (typeof levels === 'string') throw corruption(path, 0, levels);
  nextFileNumber = Math.max(nextFileNumber, builder.maxFileNumber() + 1, logNumber + 1);
  return { levels, counters: { nextFileNumber, lastSequence, logNumber } };
}

/** Highest file number of any engine file in `dir`, so recovery never reuses an orphan's number. */
function listNames(fs: FileSystem, dir: string): string[] {
  try {
    return fs.readdir(dir);
  } catch (e) {
    throw fromIoError(e, 'readdir', dir);
  }
}

/**
 * The recovered state must name only files that exist: every table, and the WAL its log number
 * names (that WAL is deleted only after an edit moving the log number past it commits). A missing
 * one means a later edit did commit and the manifest lost it (a damaged last record looks like an
 * unfinished write), so opening would silently drop data: CORRUPTION instead.
 */
function checkFilesExist(names: string[], levels: Levels, logNumber: number, manifestPath: string): void {
  const present = new Set(names);
  for (const files of levels) {
    for (const f of files) {
      if (!present.has(tableFileName(f.number))) {
        throw corruption(manifestPath, 0, `table ${tableFileName(f.number)} named by the manifest is missing`);
      }
    }
  }
  if (logNumber > 0 && !present.has(logFileName(logNumber))) {
    throw corruption(
      manifestPath,
      0,
      `WAL ${logFileName(logNumber)} named by the manifest is missing (the manifest lost a committed edit)`,
    );
  }
}
