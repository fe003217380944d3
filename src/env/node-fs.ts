/**
 * The production FileSystem, on node:fs. This is the only file in src/ that imports node:fs.
 *
 * Reads, writes and metadata calls are synchronous (see file-system.ts for why); fdatasync, the
 * directory fsync and statfs are asynchronous so their milliseconds never block the event loop.
 */
import * as fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as nodePath from 'node:path';

import { assert } from '../util/assert.js';
import type { FileHandle, FileStat, FileSystem, FsStats, OpenMode } from './file-system.js';
import { FsError, errorCode } from './fs-error.js';

/** Stale-lock takeovers before giving up; each retry means someone else raced us for it. */
const lockAttemptsMax = 3;
/**
 * An empty LOCK file younger than this is a taker between its create and its write, so it is
 * held; an older one is a taker that died in that window, so it is stale.
 */
const lockEmptyGraceMs = 2_000;
/** A LOCK file is a few dozen bytes of JSON; anything bigger is garbage, so is stale. */
const lockFileSizeBytesMax = 4_096;

function openFlags(mode: OpenMode): string | number {
  switch (mode) {
    case 'r':
      return 'r';
    case 'rw':
      return 'r+';
    case 'create':
      // No string flag means "read/write, create if missing, keep content".
      return fs.constants.O_RDWR | fs.constants.O_CREAT;
    case 'create-excl':
      return 'wx+';
    case 'truncate':
      return 'w+';
  }
}

class NodeFileHandle implements FileHandle {
  readonly path: string;
  private fd: number;
  private closed = false;

  constructor(path: string, fd: number) {
    assert(Number.isInteger(fd) && fd >= 0, 'fd is a non-negative integer');
    this.path = path;
    this.fd = fd;
  }

  read(buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.checkOpen('read');
    checkRange(buf, bufOffset, length);
    assert(Number.isSafeInteger(position) && position >= 0, 'read position is valid');
    let done = 0;
    // readSync may return fewer bytes than asked before end of file (signals, network fs).
    while (done < length) {
      const n = fs.readSync(this.fd, buf, bufOffset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    assert(done <= length, 'read no more than asked');
    return done;
  }

  write(buf: Uint8Array, bufOffset: number, length: number, position: number | null): void {
    this.checkOpen('write');
    checkRange(buf, bufOffset, length);
    assert(position === null || (Number.isSafeInteger(position) && position >= 0), 'position');
    // An append asks the file for its size each time rather than caching it, so that another
    // handle on the same file can never make us overwrite its bytes. fstat costs ~1 µs.
    const start = position ?? fs.fstatSync(this.fd).size;
    let done = 0;
    while (done < length) {
      const n = fs.writeSync(this.fd, buf, bufOffset + done, length - done, start + done);
      assert(n > 0, 'writeSync makes progress');
      done += n;
    }
    assert(done === length, 'every byte written');
  }

  sync(inline = false): Promise<void> {
    if (this.closed) return Promise.reject(new FsError('EBADF', 'fdatasync', this.path));
    const fd = this.fd;
    if (inline) {
      try {
        fs.fdatasyncSync(fd);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e as Error);
      }
    }
    return new Promise((resolve, reject) => {
      fs.fdatasync(fd, (err) => (err === null ? resolve() : reject(err)));
    });
  }

  size(): number {
    this.checkOpen('fstat');
    return fs.fstatSync(this.fd).size;
  }

  truncate(length: number): void {
    this.checkOpen('ftruncate');
    assert(Number.isSafeInteger(length) && length >= 0, 'truncate length is valid');
    fs.ftruncateSync(this.fd, length);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  private checkOpen(syscall: string): void {
    // Using a closed fd number could hit a file opened later under the same number.
    if (this.closed) throw new FsError('EBADF', syscall, this.path);
  }
}

function checkRange(buf: Uint8Array, bufOffset: number, length: number): void {
  assert(Number.isSafeInteger(bufOffset) && bufOffset >= 0, 'bufOffset is valid');
  assert(Number.isSafeInteger(length) && length >= 0, 'length is valid');
  assert(bufOffset + length <= buf.length, 'range inside the buffer');
}

/**
 * Locks held by this process, by real path, shared by every NodeFs instance: the LOCK file
 * alone cannot tell two holders in one process apart (both have our pid).
 */
const heldLockPaths = new Set<string>();

interface LockHolder {
  pid: number;
  token: string;
  /** The holding process's start (processStart()); absent in LOCK files of older releases. */
  start?: string;
}

/**
 * What tells this process apart from an earlier one that had the same pid: on Linux its start
 * time in clock ticks after boot (/proc/self/stat field 22, exact and the same in every thread),
 * elsewhere the wall-clock time it started, in ms (compared with a tolerance, sameStart). Worker
 * threads, and second copies of this module, do not share heldLockPaths: a LOCK with our pid and
 * our start is held by one of them, not stale.
 */
const PROCESS_START = processStart();

function processStart(): string {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = fields[19];
    if (startTicks !== undefined && /^\d+$/.test(startTicks)) return `ticks:${startTicks}`;
  } catch {
    // No procfs: the wall-clock estimate below.
  }
  return `ms:${Math.round(Date.now() - process.uptime() * 1000)}`;
}

/** Wall-clock start estimates of one process differ by milliseconds between threads. */
const START_MS_TOLERANCE = 2000;

function sameStart(a: string, b: string): boolean {
  if (a === b) return true;
  if (!a.startsWith('ms:') || !b.startsWith('ms:')) return false;
  return Math.abs(Number(a.slice(3)) - Number(b.slice(3))) <= START_MS_TOLERANCE;
}

export class NodeFs implements FileSystem {
  open(path: string, mode: OpenMode): FileHandle {
    const fd = fs.openSync(path, openFlags(mode), 0o644);
    return new NodeFileHandle(path, fd);
  }

  rename(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  unlink(path: string): void {
    fs.unlinkSync(path);
  }

  remove(path: string): Promise<void> {
    return fs.promises.unlink(path);
  }

  /**
   * Creates `path` and its missing parents one level at a time. Not `mkdirSync(recursive)`: in
   * Node 20 that loops forever (synchronously, at 100% CPU) on paths it can never create, such as
   * anything under /proc. Bounded by the number of path components.
   */
  mkdir(path: string): void {
    const parts = nodePath.resolve(path).split(nodePath.sep).filter((p) => p.length > 0);
    let cur: string = nodePath.sep;
    for (const part of parts) {
      cur = nodePath.join(cur, part);
      try {
        fs.mkdirSync(cur);
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
        if (!fs.statSync(cur).isDirectory()) throw e;
      }
    }
  }

  readdir(path: string): string[] {
    return fs.readdirSync(path).sort();
  }

  stat(path: string): FileStat {
    const st = fs.statSync(path);
    return { size: st.size, isDirectory: st.isDirectory() };
  }

  exists(path: string): boolean {
    return fs.existsSync(path);
  }

  async syncDir(path: string): Promise<void> {
    // fsync of a directory fd is how POSIX makes creates, renames and unlinks in it durable.
    const dir = await fs.promises.open(path, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async statfs(path: string): Promise<FsStats> {
    const st = await fs.promises.statfs(path);
    return { availableBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
  }

  /**
   * Cross-process exclusive lock without native code (no flock in node:fs). Within this thread
   * and module copy a Set of real paths decides. Across processes, the LOCK file holds
   * `{pid, token, start}` as JSON and is created with O_EXCL; a LOCK file whose pid is not alive
   * is stale and is taken over. One with our pid is held by another thread of this process (or
   * another copy of this module) if its `start` is ours (PROCESS_START), else stale.
   *
   * Limitations, accepted because the alternative is a native addon:
   * - PID reuse: if the holder died and the OS gave its pid to an unrelated live process (common
   *   after a reboot, or in containers where pids restart at 1), the lock looks held and open
   *   fails with ELOCKED until the LOCK file is deleted by hand. A pid equal to our own but with
   *   another process start is recognised as stale, which covers the container case for pid 1.
   * - A worker thread that ends without releasing its lock leaves a LOCK that this process keeps
   *   seeing as held (ELOCKED) until it exits.
   * - Two processes taking over the same stale LOCK at the same instant: both can unlink and one
   *   can unlink the other's fresh file. We re-read the file just before unlinking to shrink that
   *   window to microseconds; it is not closed.
   * - Another process's pid is only visible on the same host: do not share a DB over NFS.
   */
  lock(path: string): () => void {
    const key = realLockKey(path);
    if (heldLockPaths.has(key)) {
      throw new FsError('ELOCKED', 'lock', path, 'held by this process');
    }
    const token = randomUUID();
    for (let attempt = 0; attempt < lockAttemptsMax; attempt++) {
      if (tryCreateLockFile(path, token)) {
        heldLockPaths.add(key);
        return makeRelease(path, key, token);
      }
      const seen = readLockFile(path);
      if (seen === 'missing') continue; // The holder released it between our create and read.
      if (isLockHeld(seen)) {
        throw new FsError('ELOCKED', 'lock', path, describeHolder(seen));
      }
      removeStaleLockFile(path);
    }
    throw new FsError('ELOCKED', 'lock', path, 'lost the race for a stale lock');
  }
}

/** The same LOCK reached through different paths (symlinks, `..`) must map to one key. */
function realLockKey(path: string): string {
  const dir = fs.realpathSync(nodePath.dirname(path));
  return nodePath.join(dir, nodePath.basename(path));
}

/** True when we created the LOCK file; false when it already exists. */
function tryCreateLockFile(path: string, token: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, 'wx', 0o644);
  } catch (e) {
    if (errorCode(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    const holder: LockHolder = { pid: process.pid, token, start: PROCESS_START };
    // One write: a reader sees either an empty file or the whole JSON, never half of it.
    const bytes = Buffer.from(JSON.stringify(holder));
    const n = fs.writeSync(fd, bytes, 0, bytes.length, 0);
    assert(n === bytes.length, 'LOCK content written in one write');
  } catch (e) {
    fs.closeSync(fd);
    fs.unlinkSync(path);
    throw e;
  }
  fs.closeSync(fd);
  return true;
}

/** What a LOCK file says: a holder, 'empty' (being created), 'garbage', or 'missing'. */
type LockContent = LockHolder | 'empty-young' | 'empty-old' | 'garbage' | 'missing';

function readLockFile(path: string): LockContent {
  let bytes: Buffer;
  let mtimeMs: number;
  try {
    const st = fs.statSync(path);
    if (st.size > lockFileSizeBytesMax) return 'garbage';
    mtimeMs = st.mtimeMs;
    bytes = fs.readFileSync(path);
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return 'missing';
    throw e;
  }
  if (bytes.length === 0) {
    return Date.now() - mtimeMs < lockEmptyGraceMs ? 'empty-young' : 'empty-old';
  }
  return parseLockHolder(bytes) ?? 'garbage';
}

function parseLockHolder(bytes: Buffer): LockHolder | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null; // Not JSON: garbage, which the caller treats as stale.
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { pid, token, start } = parsed as { pid?: unknown; token?: unknown; start?: unknown };
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  if (typeof token !== 'string') return null;
  return typeof start === 'string' ? { pid, token, start } : { pid, token };
}

function isLockHeld(seen: LockContent): boolean {
  if (seen === 'empty-young') return true;
  if (typeof seen === 'string') return false; // empty-old, garbage: the taker died.
  // Our own pid: held by another thread (or module copy) of this process if it names our start;
  // otherwise a previous process that had our pid (pid 1 in a restarted container). A LOCK of an
  // older release names no start and is judged as before: stale.
  if (seen.pid === process.pid) return seen.start !== undefined && sameStart(seen.start, PROCESS_START);
  return isProcessAlive(seen.pid);
}

function isProcessAlive(pid: number): boolean {
  // pid 0 and negative pids address process groups; parseLockHolder never lets them through.
  assert(Number.isSafeInteger(pid) && pid > 0, 'pid is a positive integer');
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user. Anything unknown: assume alive,
    // because wrongly taking a live lock corrupts a database and wrongly refusing does not.
    return errorCode(e) !== 'ESRCH';
  }
}

function describeHolder(seen: LockContent): string {
  if (typeof seen === 'string') return 'being created by another process';
  if (seen.pid === process.pid) return 'held by this process (another worker thread, or another copy of this library)';
  return `held by pid ${seen.pid}`;
}

function removeStaleLockFile(path: string): void {
  // Judge again just before unlinking: a taker may have replaced the stale file meanwhile.
  const again = readLockFile(path);
  if (again === 'missing' || isLockHeld(again)) return; // The next attempt looks again.
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
  }
}

function makeRelease(path: string, key: string, token: string): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    heldLockPaths.delete(key);
    const seen = readLockFile(path);
    // Delete only our own file: if someone judged us dead and took over, the file is theirs.
    if (typeof seen !== 'string' && seen.token === token) {
      try {
        fs.unlinkSync(path);
      } catch (e) {
        if (errorCode(e) !== 'ENOENT') throw e;
      }
    }
  };
}
