/**
 * The one seam between the engine and storage. Every byte the engine reads or writes goes through
 * a `FileSystem`: `NodeFs` in production, `MemFs` (strict, crashable) and `FaultFs` (error
 * injection) in tests.
 *
 * Design decision (docs/decisions/2026-11-25-sync-io.md): reads, writes, renames and listings are
 * synchronous; only fsync (of a file or a directory) and statfs are asynchronous. Positioned reads of
 * page-cached data cost ~1-2 µs synchronously and ~20 µs through libuv's thread pool, and a
 * synchronous read path is what makes `getSync` and fast iterators possible. fsync is the one call
 * whose latency (ms) must not block the event loop.
 *
 * Errors: implementations throw `Error`s with a Node-style `code` (`ENOENT`, `EEXIST`, `EIO`,
 * `ENOSPC`, ...). The engine converts them with `fromIoError`.
 */

export interface FileHandle {
  /** Path this handle was opened with. */
  readonly path: string;
  /**
   * Positioned read into `buf[bufOffset, bufOffset+length)` from file offset `position`.
   * Returns the number of bytes read; fewer than `length` only at end of file.
   */
  read(buf: Uint8Array, bufOffset: number, length: number, position: number): number;
  /**
   * Writes all of `buf[bufOffset, bufOffset+length)` at file offset `position`, or at the end
   * of the file when `position` is null (append). Bytes are in the OS (survive a process kill)
   * when this returns, but not durable until `sync()` resolves.
   */
  write(buf: Uint8Array, bufOffset: number, length: number, position: number | null): void;
  /**
   * Makes every byte written so far durable (fdatasync). `inline` asks for the fdatasync to run on
   * the calling thread, blocking it (the result is still a promise; a failure rejects it), rather
   * than in a background thread; implementations without that distinction ignore it.
   */
  sync(inline?: boolean): Promise<void>;
  /** Current file size in bytes. */
  size(): number;
  /** Truncates (or extends with zeros) to `length` bytes. Not durable until `sync()`. */
  truncate(length: number): void;
  /** Releases the handle. Idempotent. Unsynced bytes stay unsynced. */
  close(): void;
}

/**
 * `r`: read only, must exist. `rw`: read/write, must exist. `create`: read/write, created empty if
 * missing (existing content kept). `create-excl`: read/write, fails with EEXIST if it exists.
 * `truncate`: read/write, created or truncated to empty.
 */
export type OpenMode = 'r' | 'rw' | 'create' | 'create-excl' | 'truncate';

export interface FileStat {
  size: number;
  isDirectory: boolean;
}

export interface FsStats {
  /** Bytes available to an unprivileged writer. */
  availableBytes: number;
  totalBytes: number;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): FileHandle;
  /** Atomically replaces `to` with `from`. Durable only after `syncDir` of the parent. */
  rename(from: string, to: string): void;
  /** Removes a file. Durable only after `syncDir` of the parent. */
  unlink(path: string): void;
  /**
   * unlink without blocking the caller where the implementation can (node:fs: the libuv thread
   * pool — freeing a large file's blocks can take milliseconds). Same errors, as a rejection.
   */
  remove(path: string): Promise<void>;
  /** Creates a directory and missing parents; no error if it exists. */
  mkdir(path: string): void;
  /** Names (not paths) in a directory, sorted. */
  readdir(path: string): string[];
  /** Throws ENOENT if missing. */
  stat(path: string): FileStat;
  exists(path: string): boolean;
  /** Makes the directory's entries (creates, renames, unlinks) durable. */
  syncDir(path: string): Promise<void>;
  statfs(path: string): Promise<FsStats>;
  /**
   * Takes the exclusive lock on `path` for this process, creating the file if needed. Throws an
   * error with code `ELOCKED` if another holder (this or another process) has it. A lock whose holder
   * died is free. Returns the function that releases it.
   */
  lock(path: string): () => void;
}

/** Joins path segments with '/'. The engine only ever builds paths inside the DB directory. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}
