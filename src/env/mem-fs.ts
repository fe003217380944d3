/**
 * A strict in-memory FileSystem for crash testing (after Pebble's vfs/mem_fs.go and LevelDB's
 * fault_injection_test.cc).
 *
 * Each file keeps its current bytes and its durable bytes; each directory keeps its current
 * entries and its durable (synced) entries. `sync()` of a handle makes the file's bytes durable but
 * not its name; `syncDir()` makes the directory's names durable (creates, renames, unlinks).
 * `crash()` / `crashClone()` model a power cut: everything reverts to its durable state, optionally
 * keeping a torn prefix of unsynced appends. A rename of CURRENT without a `syncDir` is therefore
 * undone by a crash, which is exactly the bug this class exists to catch.
 *
 * Simplifications, each chosen because the engine never depends on the difference:
 * - Directories made by `mkdir` are durable at once (in their parent's synced entries).
 * - Renaming a directory throws ENOTSUP; the engine only renames files.
 * - A `sync()` or `syncDir()` captures the state at the call and makes it durable when its promise
 *   settles (one microtask later), so a crash before the engine awaits it loses the data, as a
 *   power cut during fdatasync could.
 * - Space accounting (for ENOSPC) counts the current length of each linked file; durable
 *   snapshots and unlinked-but-open files are free.
 *
 * Paths are '/'-separated and normalised ('a//b/', './a', '/a' all name '/a'); all paths are
 * relative to the one root.
 */
import { assert, invariants } from '../util/assert.js';
import type { Random } from '../util/random.js';
import type { FileHandle, FileStat, FileSystem, FsStats, OpenMode } from './file-system.js';
import { FsError } from './fs-error.js';

/** Default capacity: big enough for every unit test, small enough to fill in a full-disk test. */
const capacityBytesDefault = 1024 * 1024 * 1024;
/** Smallest buffer a file grows into, so tiny appends do not reallocate each time. */
const fileCapacityBytesMin = 64;

/** A `sync()` in flight: the file's state at the call, made durable when the promise settles. */
interface PendingFileSync {
  seq: number;
  /** Length at the call. While `bytes` is null nothing below it has changed since the call. */
  length: number;
  /** Copy of the bytes at the call, taken only when a write or truncate touches them. */
  bytes: Buffer | null;
}

class FileInode {
  readonly kind = 'file';
  /** Current bytes are data[0, length); the rest is spare capacity. */
  data: Buffer = Buffer.alloc(0);
  length = 0;
  /**
   * Durable bytes: `durable` if non-null, else data[0, syncedLength). The snapshot is taken
   * (copy-on-write) only when a write or truncate touches a byte below syncedLength, so a file that
   * is only appended to, like a WAL, never copies its bytes.
   */
  durable: Buffer | null = null;
  syncedLength = 0;
  /** In a directory's current entries, so its length counts toward the used space. */
  linked = true;
  private syncSeqNext = 1;
  private syncSeqApplied = 0;
  /** Pending syncs whose bytes are still data[0, p.length). */
  private uncaptured: PendingFileSync[] = [];

  static withBytes(bytes: Uint8Array): FileInode {
    const inode = new FileInode();
    inode.data = Buffer.from(bytes);
    inode.length = bytes.length;
    inode.syncedLength = bytes.length;
    return inode;
  }

  current(): Buffer {
    return this.data.subarray(0, this.length);
  }

  durableBytes(): Buffer {
    if (this.durable !== null) return this.durable;
    assert(this.syncedLength <= this.length, 'durable prefix is inside the current bytes');
    return this.data.subarray(0, this.syncedLength);
  }

  write(src: Uint8Array, position: number): void {
    const end = position + src.length;
    this.beforeModify(position);
    this.ensureCapacity(end);
    if (position > this.length) this.data.fill(0, this.length, position);
    this.data.set(src, position);
    if (end > this.length) this.length = end;
    assert(this.length >= end, 'file covers the written range');
  }

  truncate(length: number): void {
    if (length < this.length) {
      this.beforeModify(length);
      this.length = length;
    } else if (length > this.length) {
      this.beforeModify(this.length);
      this.ensureCapacity(length);
      // Spare capacity may hold bytes from before an earlier shrink.
      this.data.fill(0, this.length, length);
      this.length = length;
    }
    assert(this.length === length, 'truncated to the asked length');
  }

  beginSync(): PendingFileSync {
    const pending: PendingFileSync = { seq: this.syncSeqNext++, length: this.length, bytes: null };
    this.uncaptured.push(pending);
    return pending;
  }

  finishSync(pending: PendingFileSync): void {
    const i = this.uncaptured.indexOf(pending);
    if (i >= 0) this.uncaptured.splice(i, 1);
    // A later sync that already settled made a newer state durable.
    if (pending.seq <= this.syncSeqApplied) return;
    this.syncSeqApplied = pending.seq;
    if (pending.bytes === null) {
      assert(pending.length <= this.length, 'an uncaptured sync has its bytes in data');
      this.durable = null;
      this.syncedLength = pending.length;
    } else {
      this.durable = pending.bytes;
      this.syncedLength = pending.bytes.length;
    }
  }

  /** Saves whatever a durable state or pending sync still needs before bytes >= offset change. */
  private beforeModify(offset: number): void {
    if (this.uncaptured.length > 0) {
      const keep: PendingFileSync[] = [];
      for (const p of this.uncaptured) {
        if (offset < p.length) {
          p.bytes = Buffer.from(this.data.subarray(0, p.length));
        } else {
          keep.push(p); // An append past its length leaves its bytes in place.
        }
      }
      this.uncaptured = keep;
    }
    if (this.durable === null && offset < this.syncedLength) {
      this.durable = Buffer.from(this.data.subarray(0, this.syncedLength));
    }
  }

  private ensureCapacity(lengthBytes: number): void {
    if (lengthBytes <= this.data.length) return;
    const capacity = Math.max(lengthBytes, this.data.length * 2, fileCapacityBytesMin);
    const grown = Buffer.alloc(capacity);
    // The durable prefix (when `durable` is null) lies inside data[0, length), so this keeps it.
    this.data.copy(grown, 0, 0, this.length);
    this.data = grown;
  }
}

/** A `syncDir()` in flight: the entries at the call, made durable when the promise settles. */
interface PendingDirSync {
  seq: number;
  entries: Map<string, Inode>;
}

class DirInode {
  readonly kind = 'dir';
  entries = new Map<string, Inode>();
  synced = new Map<string, Inode>();
  private syncSeqNext = 1;
  private syncSeqApplied = 0;
  private pending: PendingDirSync[] = [];

  beginSync(): PendingDirSync {
    const p: PendingDirSync = { seq: this.syncSeqNext++, entries: new Map(this.entries) };
    this.pending.push(p);
    return p;
  }

  finishSync(p: PendingDirSync): void {
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    if (p.seq <= this.syncSeqApplied) return;
    this.syncSeqApplied = p.seq;
    this.synced = p.entries;
  }

  /** Adds an entry that is durable at once, including in syncs already in flight. */
  setDurable(name: string, inode: Inode): void {
    this.entries.set(name, inode);
    this.synced.set(name, inode);
    for (const p of this.pending) p.entries.set(name, inode);
  }
}

type Inode = FileInode | DirInode;

/** Everything a crash replaces; shared with the handles so that they can see they are stale. */
class MemState {
  root = new DirInode();
  /** Bumped by crash(); a handle opened under an older generation is dead. */
  generation = 0;
  usedBytes = 0;
  readonly capacityBytes: number;
  /** Held locks by normalised path; the value identifies the holder's release function. */
  locks = new Map<string, object>();

  constructor(capacityBytes: number) {
    this.capacityBytes = capacityBytes;
  }

  /** Accounts for a file changing length; throws ENOSPC (changing nothing) past capacity. */
  resize(inode: FileInode, lengthBytes: number, syscall: string, path: string): void {
    if (!inode.linked) return;
    const delta = lengthBytes - inode.length;
    if (delta > 0 && this.usedBytes + delta > this.capacityBytes) {
      throw new FsError('ENOSPC', syscall, path);
    }
    this.usedBytes += delta;
    assert(this.usedBytes >= 0, 'used space is never negative');
  }

  detach(inode: FileInode): void {
    assert(inode.linked, 'detach a linked file once');
    inode.linked = false;
    this.usedBytes -= inode.length;
    assert(this.usedBytes >= 0, 'used space is never negative');
  }
}

export interface MemFsOptions {
  /** Size of the simulated disk; writes past it throw ENOSPC. Default 1 GiB. */
  capacityBytes?: number;
}

export interface CrashOptions {
  /** Source of the choices below; required when either is used. Same rng state, same result. */
  rng?: Random;
  /** Each file keeps a random prefix (0..all bytes) of its unsynced tail: a torn write. */
  tearLastWrite?: boolean;
  /** Chance that a file keeps all of its unsynced data (the page cache got flushed). Default 0. */
  keepUnsyncedProbability?: number;
  /**
   * Pages are written back in no particular order: each CRASH_PAGE_BYTES page of a file keeps its
   * durable bytes, its current bytes, or its current bytes up to a random point and durable ones
   * after it (written back while a write into it was under way), chosen independently per page;
   * the length is anything between the durable and the current one (bytes past the durable length
   * that no kept page holds read as zeros: a hole). Overrides tearLastWrite; applied to files the
   * keepUnsyncedProbability draw did not keep whole.
   */
  scrambleUnsyncedPages?: boolean;
}

/** Page size of the scrambleUnsyncedPages crash model. */
export const CRASH_PAGE_BYTES = 4096;

export class MemFs implements FileSystem {
  private state: MemState;

  constructor(options: MemFsOptions = {}) {
    const capacityBytes = options.capacityBytes ?? capacityBytesDefault;
    assert(Number.isSafeInteger(capacityBytes) && capacityBytes >= 0, 'capacityBytes is valid');
    this.state = new MemState(capacityBytes);
  }

  open(path: string, mode: OpenMode): FileHandle {
    const { dir, name } = this.parentOf(path, 'open');
    let inode = dir.entries.get(name);
    if (inode?.kind === 'dir') throw new FsError('EISDIR', 'open', path);
    if (inode === undefined) {
      if (mode === 'r' || mode === 'rw') throw new FsError('ENOENT', 'open', path);
      inode = new FileInode();
      dir.entries.set(name, inode);
    } else if (mode === 'create-excl') {
      throw new FsError('EEXIST', 'open', path);
    } else if (mode === 'truncate') {
      this.state.resize(inode, 0, 'open', path);
      inode.truncate(0);
    }
    return new MemFileHandle(path, inode, this.state, mode !== 'r');
  }

  rename(from: string, to: string): void {
    const src = this.parentOf(from, 'rename');
    const inode = src.dir.entries.get(src.name);
    if (inode === undefined) throw new FsError('ENOENT', 'rename', from);
    if (inode.kind === 'dir') {
      throw new FsError('ENOTSUP', 'rename', from, 'MemFs does not rename directories');
    }
    const dst = this.parentOf(to, 'rename');
    const existing = dst.dir.entries.get(dst.name);
    if (existing === inode) return; // Same file: POSIX rename does nothing.
    if (existing?.kind === 'dir') throw new FsError('EISDIR', 'rename', to);
    if (existing !== undefined) this.state.detach(existing);
    src.dir.entries.delete(src.name);
    dst.dir.entries.set(dst.name, inode);
    assert(dst.dir.entries.get(dst.name) === inode, 'renamed file is at its new name');
  }

  /** Removes at once (there is nothing to wait for in memory), reporting through the promise. */
  remove(path: string): Promise<void> {
    try {
      this.unlink(path);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  unlink(path: string): void {
    const { dir, name } = this.parentOf(path, 'unlink');
    const inode = dir.entries.get(name);
    if (inode === undefined) throw new FsError('ENOENT', 'unlink', path);
    if (inode.kind === 'dir') throw new FsError('EISDIR', 'unlink', path);
    dir.entries.delete(name);
    this.state.detach(inode);
  }

  mkdir(path: string): void {
    const parts = splitPath(path);
    let dir = this.state.root;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i];
      assert(name !== undefined, 'index inside parts');
      const next = dir.entries.get(name);
      if (next === undefined) {
        const created = new DirInode();
        dir.setDurable(name, created); // Durable at once; see the file comment.
        dir = created;
      } else if (next.kind === 'file') {
        throw new FsError(i === parts.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
      } else {
        dir = next;
      }
    }
  }

  readdir(path: string): string[] {
    const inode = this.lookup(path, 'scandir');
    if (inode.kind !== 'dir') throw new FsError('ENOTDIR', 'scandir', path);
    return [...inode.entries.keys()].sort();
  }

  stat(path: string): FileStat {
    const inode = this.lookup(path, 'stat');
    return inode.kind === 'dir'
      ? { size: 0, isDirectory: true }
      : { size: inode.length, isDirectory: false };
  }

  exists(path: string): boolean {
    return this.find(splitPath(path)) !== undefined;
  }

  async syncDir(path: string): Promise<void> {
    const inode = this.lookup(path, 'fsync');
    // Strict: NodeFs would fsync a file here too, but a syncDir of a file is an engine bug.
    if (inode.kind !== 'dir') throw new FsError('ENOTDIR', 'fsync', path);
    const state = this.state;
    const generation = state.generation;
    const pending = inode.beginSync();
    await Promise.resolve();
    // crash() bumps the generation of the state it replaces, so this sees a crash meanwhile.
    if (state.generation !== generation) throw new FsError('EBADF', 'fsync', path);
    inode.finishSync(pending);
  }

  async statfs(path: string): Promise<FsStats> {
    this.lookup(path, 'statfs');
    const { capacityBytes, usedBytes } = this.state;
    assert(usedBytes <= capacityBytes, 'never more used than the capacity');
    return { availableBytes: capacityBytes - usedBytes, totalBytes: capacityBytes };
  }

  lock(path: string): () => void {
    const key = normalisePath(path);
    if (this.state.locks.has(key)) throw new FsError('ELOCKED', 'lock', path);
    this.open(path, 'create').close(); // Like NodeFs, the lock is a file in the directory.
    const holder = {};
    const state = this.state;
    state.locks.set(key, holder);
    // Idempotent, and a no-op after crash() (which frees every lock) or a later holder took it.
    return () => {
      if (state.locks.get(key) === holder) state.locks.delete(key);
    };
  }

  /**
   * Power loss, in place: every directory reverts to its synced entries and every file to its
   * durable bytes (plus what `opts` keeps); every open handle then throws EBADF and every lock
   * is free.
   */
  crash(opts: CrashOptions = {}): void {
    const after = crashedState(this.state, opts);
    this.state.generation += 1; // Kills the handles and syncs in flight, which hold the old state.
    this.state = after;
  }

  /** What `crash(opts)` would leave, as a new MemFs; this one is untouched (except `opts.rng`). */
  crashClone(opts: CrashOptions = {}): MemFs {
    const clone = new MemFs({ capacityBytes: this.state.capacityBytes });
    clone.state = crashedState(this.state, opts);
    return clone;
  }

  // ---- Helpers for tests -----------------------------------------------------------------------

  /** Every file path (normalised, '/'-prefixed), sorted. */
  listAll(): string[] {
    const out: string[] = [];
    const stack: Array<[string, DirInode]> = [['', this.state.root]];
    for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
      const [prefix, dir] = item;
      for (const [name, inode] of dir.entries) {
        if (inode.kind === 'dir') stack.push([`${prefix}/${name}`, inode]);
        else out.push(`${prefix}/${name}`);
      }
    }
    return out.sort();
  }

  /** A copy of a file's current bytes. */
  readFileRaw(path: string): Buffer {
    return Buffer.from(this.fileAt(path, 'open').current());
  }

  /**
   * Replaces a file (a new inode) with `bytes`. With `synced` (the default) both the bytes and the
   * name are durable, as a file left on disk by an earlier run would be.
   */
  writeFileRaw(path: string, bytes: Uint8Array, opts: { synced?: boolean } = {}): void {
    const { dir, name } = this.parentOf(path, 'open');
    const existing = dir.entries.get(name);
    if (existing?.kind === 'dir') throw new FsError('EISDIR', 'open', path);
    const { usedBytes, capacityBytes } = this.state;
    const freedBytes = existing?.linked === true ? existing.length : 0;
    if (usedBytes - freedBytes + bytes.length > capacityBytes) {
      throw new FsError('ENOSPC', 'write', path);
    }
    if (existing !== undefined) this.state.detach(existing);
    const inode = FileInode.withBytes(bytes);
    this.state.usedBytes += inode.length;
    if (opts.synced ?? true) {
      dir.setDurable(name, inode);
    } else {
      inode.syncedLength = 0;
      dir.entries.set(name, inode);
    }
  }

  /** Corrupts one byte (XOR `mask`) on "disk": in the current bytes and, if durable, there too. */
  flipByte(path: string, offset: number, mask = 0xff): void {
    const inode = this.fileAt(path, 'open');
    assert(Number.isSafeInteger(offset) && offset >= 0, 'offset is valid');
    assert(offset < inode.length, 'offset inside the file');
    assert(mask > 0 && mask <= 0xff, 'mask flips some bits of one byte');
    inode.data.writeUInt8(inode.data.readUInt8(offset) ^ mask, offset);
    // When `durable` is null the durable bytes share data[], so the flip above covered them.
    if (inode.durable !== null && offset < inode.durable.length) {
      inode.durable.writeUInt8(inode.durable.readUInt8(offset) ^ mask, offset);
    }
  }

  /** Bytes counted against the capacity. */
  usedBytes(): number {
    return this.state.usedBytes;
  }

  /** One line per file: path, current size, durable size. For failure messages. */
  describe(): string {
    return this.listAll()
      .map((path) => {
        const inode = this.fileAt(path, 'open');
        return `${path} ${inode.length} bytes (durable ${inode.durableBytes().length})`;
      })
      .join('\n');
  }

  // ---- Path resolution -------------------------------------------------------------------------

  private find(parts: string[]): Inode | undefined {
    let inode: Inode = this.state.root;
    for (const name of parts) {
      if (inode.kind !== 'dir') return undefined;
      const next = inode.entries.get(name);
      if (next === undefined) return undefined;
      inode = next;
    }
    return inode;
  }

  private lookup(path: string, syscall: string): Inode {
    const parts = splitPath(path);
    let inode: Inode = this.state.root;
    for (const name of parts) {
      if (inode.kind !== 'dir') throw new FsError('ENOTDIR', syscall, path);
      const next = inode.entries.get(name);
      if (next === undefined) throw new FsError('ENOENT', syscall, path);
      inode = next;
    }
    return inode;
  }

  private parentOf(path: string, syscall: string): { dir: DirInode; name: string } {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new FsError('EISDIR', syscall, path); // The root.
    const parent = this.lookup(parts.join('/'), syscall);
    if (parent.kind !== 'dir') throw new FsError('ENOTDIR', syscall, path);
    return { dir: parent, name };
  }

  private fileAt(path: string, syscall: string): FileInode {
    const inode = this.lookup(path, syscall);
    if (inode.kind !== 'file') throw new FsError('EISDIR', syscall, path);
    return inode;
  }
}

class MemFileHandle implements FileHandle {
  readonly path: string;
  private readonly inode: FileInode;
  private readonly state: MemState;
  private readonly generation: number;
  private readonly writable: boolean;
  private closed = false;

  constructor(path: string, inode: FileInode, state: MemState, writable: boolean) {
    this.path = path;
    this.inode = inode;
    this.state = state;
    this.generation = state.generation;
    this.writable = writable;
  }

  read(buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.check('read');
    checkRange(buf, bufOffset, length);
    assert(Number.isSafeInteger(position) && position >= 0, 'read position is valid');
    const inode = this.inode;
    if (position >= inode.length) return 0;
    const n = Math.min(length, inode.length - position);
    buf.set(inode.data.subarray(position, position + n), bufOffset);
    assert(n >= 0 && n <= length, 'read no more than asked');
    return n;
  }

  write(buf: Uint8Array, bufOffset: number, length: number, position: number | null): void {
    this.check('write');
    if (!this.writable) throw new FsError('EBADF', 'write', this.path, 'opened read-only');
    checkRange(buf, bufOffset, length);
    assert(position === null || (Number.isSafeInteger(position) && position >= 0), 'position');
    const start = position ?? this.inode.length;
    const end = start + length;
    this.state.resize(this.inode, Math.max(end, this.inode.length), 'write', this.path);
    this.inode.write(buf.subarray(bufOffset, bufOffset + length), start);
  }

  async sync(): Promise<void> {
    this.check('fdatasync');
    const pending = this.inode.beginSync();
    await Promise.resolve();
    // A crash while the fdatasync was in flight: the caller must not count the data as durable.
    if (this.state.generation !== this.generation) {
      throw new FsError('EBADF', 'fdatasync', this.path, 'crashed during sync');
    }
    this.inode.finishSync(pending);
  }

  size(): number {
    this.check('fstat');
    return this.inode.length;
  }

  truncate(length: number): void {
    this.check('ftruncate');
    if (!this.writable) throw new FsError('EBADF', 'ftruncate', this.path, 'opened read-only');
    assert(Number.isSafeInteger(length) && length >= 0, 'truncate length is valid');
    this.state.resize(this.inode, length, 'ftruncate', this.path);
    this.inode.truncate(length);
  }

  /** Never throws, even after a crash, so that cleanup paths can always call it. */
  close(): void {
    this.closed = true;
  }

  private check(syscall: string): void {
    if (this.closed) throw new FsError('EBADF', syscall, this.path, 'closed');
    if (this.state.generation !== this.generation) {
      throw new FsError('EBADF', syscall, this.path, 'handle from before a crash');
    }
  }
}

function checkRange(buf: Uint8Array, bufOffset: number, length: number): void {
  assert(Number.isSafeInteger(bufOffset) && bufOffset >= 0, 'bufOffset is valid');
  assert(Number.isSafeInteger(length) && length >= 0, 'length is valid');
  assert(bufOffset + length <= buf.length, 'range inside the buffer');
}

function splitPath(path: string): string[] {
  assert(typeof path === 'string', 'path is a string');
  const parts: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') parts.pop();
    else parts.push(segment);
  }
  return parts;
}

function normalisePath(path: string): string {
  return `/${splitPath(path).join('/')}`;
}

/**
 * The state a power cut leaves: a new tree built from each directory's synced entries, each file
 * holding its durable bytes plus what `opts` keeps of the rest. Everything in it is durable.
 * Directories are walked in sorted order so that the rng is consumed deterministically.
 */
function crashedState(before: MemState, opts: CrashOptions): MemState {
  const keepProbability = opts.keepUnsyncedProbability ?? 0;
  assert(keepProbability >= 0 && keepProbability <= 1, 'keepUnsyncedProbability in [0, 1]');
  const needsRng = keepProbability > 0 || opts.tearLastWrite === true || opts.scrambleUnsyncedPages === true;
  assert(!needsRng || opts.rng !== undefined, 'tearing or keeping unsynced data needs an rng');
  const after = new MemState(before.capacityBytes);
  const seen = new Set<DirInode>([before.root]);
  const stack: Array<[DirInode, DirInode]> = [[before.root, after.root]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [oldDir, newDir] = item;
    for (const name of [...oldDir.synced.keys()].sort()) {
      const inode = oldDir.synced.get(name);
      assert(inode !== undefined, 'name came from the map');
      if (inode.kind === 'dir') {
        // Directories are never renamed, so each is reachable once; the check keeps that true.
        assert(!seen.has(inode), 'a directory appears once in the synced tree');
        seen.add(inode);
        const created = new DirInode();
        newDir.entries.set(name, created);
        stack.push([inode, created]);
      } else {
        const file = FileInode.withBytes(bytesAfterCrash(inode, opts, keepProbability));
        after.usedBytes += file.length;
        newDir.entries.set(name, file);
      }
    }
    newDir.synced = new Map(newDir.entries);
  }
  if (invariants.enabled) checkUsedBytes(after);
  return after;
}

/** A view (not a copy) of what survives; the caller copies it. */
function bytesAfterCrash(inode: FileInode, opts: CrashOptions, keepProbability: number): Buffer {
  const current = inode.current();
  const durable = inode.durableBytes();
  const rng = opts.rng;
  if (rng === undefined) return durable;
  if (keepProbability > 0 && rng.nextFloat() < keepProbability) return current;
  if (opts.scrambleUnsyncedPages === true) return scrambledPages(durable, current, rng);
  const tailBytes = Math.max(0, current.length - durable.length);
  if (opts.tearLastWrite !== true || tailBytes === 0) return durable;
  const keptBytes = rng.nextInt(tailBytes + 1);
  assert(keptBytes >= 0 && keptBytes <= tailBytes, 'torn prefix inside the tail');
  return Buffer.concat([durable, current.subarray(durable.length, durable.length + keptBytes)]);
}

/** What a crash leaves of a file under CrashOptions.scrambleUnsyncedPages (a fresh buffer). */
function scrambledPages(durable: Buffer, current: Buffer, rng: Random): Buffer {
  const lo = Math.min(durable.length, current.length);
  const hi = Math.max(durable.length, current.length);
  const out = Buffer.alloc(lo + rng.nextInt(hi - lo + 1));
  for (let page = 0; page < out.length; page += CRASH_PAGE_BYTES) {
    const end = Math.min(out.length, page + CRASH_PAGE_BYTES);
    const choice = rng.nextInt(3);
    // Current bytes up to `cut`, durable bytes from there (choice 0: all durable, 1: all current).
    const cut = choice === 0 ? page : choice === 1 ? end : page + rng.nextInt(end - page + 1);
    current.copy(out, page, Math.min(page, current.length), Math.min(cut, current.length));
    durable.copy(out, cut, Math.min(cut, durable.length), Math.min(end, durable.length));
  }
  return out;
}

function checkUsedBytes(state: MemState): void {
  let total = 0;
  const stack: DirInode[] = [state.root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const inode of dir.entries.values()) {
      if (inode.kind === 'dir') stack.push(inode);
      else total += inode.length;
    }
  }
  assert(total === state.usedBytes, 'usedBytes is the sum of the linked files');
}
