/**
 * Error injection as a wrapper (after Pebble's vfs/errorfs). `FaultFs` asks its injector before
 * each operation whether to fail it; the engine above sees an ordinary Node-style error (`EIO`,
 * `ENOSPC`) and must pass every one of them to its caller. The classic loop:
 *
 *   const counter = countOps();  run the workload on new FaultFs(fs, counter)
 *   for i in 0..counter.count: run it again on new FaultFs(fs, failNth(i)); expect an error, then
 *   reopen on the plain fs and check that nothing acknowledged was lost.
 *
 * The injector is asked once per operation, after argument checks and before the inner call, with
 * the handle's path for handle operations and the source path for `rename`. `exists()` is a probe
 * and never fails; `size()` and `close()` never fail either.
 */
import { assert } from '../util/assert.js';
import type { Random } from '../util/random.js';
import type { FileHandle, FileStat, FileSystem, FsStats, OpenMode } from './file-system.js';
import { FsError } from './fs-error.js';

export type FaultOp =
  | 'open'
  | 'read'
  | 'write'
  | 'sync'
  | 'truncate'
  | 'rename'
  | 'unlink'
  | 'mkdir'
  | 'readdir'
  | 'stat'
  | 'syncDir'
  | 'statfs'
  | 'lock';

export type FaultCode = 'EIO' | 'ENOSPC';

export interface FaultInjector {
  /** The error to throw instead of doing `op` on `path`, or null to let it run. */
  maybeFail(op: FaultOp, path: string): FaultCode | null;
}

/** Chooses which operations an injector looks at. */
export type FaultFilter = (op: FaultOp, path: string) => boolean;

export interface FaultFsOptions {
  /**
   * An ENOSPC on `write` first writes a prefix of the bytes (a short write, as a full disk does),
   * then throws. The prefix is `rng.nextInt(length)` bytes with an rng, else half.
   */
  shortWrite?: boolean;
  rng?: Random;
}

export class FaultFs implements FileSystem {
  /** Replaceable at any time, e.g. to stop failing before a reopen. */
  injector: FaultInjector;
  /** Faults thrown so far. */
  injected = 0;
  private readonly inner: FileSystem;
  private readonly shortWrite: boolean;
  private readonly rng: Random | undefined;

  constructor(inner: FileSystem, injector: FaultInjector, options: FaultFsOptions = {}) {
    this.inner = inner;
    this.injector = injector;
    this.shortWrite = options.shortWrite ?? false;
    this.rng = options.rng;
  }

  open(path: string, mode: OpenMode): FileHandle {
    this.check('open', path);
    return this.wrap(this.inner.open(path, mode));
  }

  rename(from: string, to: string): void {
    this.check('rename', from);
    this.inner.rename(from, to);
  }

  unlink(path: string): void {
    this.check('unlink', path);
    this.inner.unlink(path);
  }

  /** An injected fault fails the removal (as a rejection) exactly like unlink. */
  remove(path: string): Promise<void> {
    try {
      this.check('unlink', path);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.inner.remove(path);
  }

  mkdir(path: string): void {
    this.check('mkdir', path);
    this.inner.mkdir(path);
  }

  readdir(path: string): string[] {
    this.check('readdir', path);
    return this.inner.readdir(path);
  }

  stat(path: string): FileStat {
    this.check('stat', path);
    return this.inner.stat(path);
  }

  exists(path: string): boolean {
    return this.inner.exists(path);
  }

  async syncDir(path: string): Promise<void> {
    this.check('syncDir', path); // Inside an async function, so a fault is a rejection.
    await this.inner.syncDir(path);
  }

  async statfs(path: string): Promise<FsStats> {
    this.check('statfs', path);
    return this.inner.statfs(path);
  }

  lock(path: string): () => void {
    this.check('lock', path);
    return this.inner.lock(path);
  }

  private check(op: FaultOp, path: string): void {
    const code = this.injector.maybeFail(op, path);
    if (code === null) return;
    this.injected += 1;
    throw new FsError(code, op, path, 'injected');
  }

  /** Like `check` for a write, doing the short write first when configured. */
  private checkWrite(
    inner: FileHandle,
    buf: Uint8Array,
    bufOffset: number,
    length: number,
    position: number | null,
  ): void {
    const code = this.injector.maybeFail('write', inner.path);
    if (code === null) return;
    this.injected += 1;
    if (code === 'ENOSPC' && this.shortWrite && length > 0) {
      const prefixBytes = this.rng === undefined ? length >>> 1 : this.rng.nextInt(length);
      assert(prefixBytes >= 0 && prefixBytes < length, 'a short write writes less than asked');
      if (prefixBytes > 0) inner.write(buf, bufOffset, prefixBytes, position);
    }
    throw new FsError(code, 'write', inner.path, 'injected');
  }

  /** A literal in the class body, so the handle can call the private `check`. */
  private wrap(inner: FileHandle): FileHandle {
    const path = inner.path;
    return {
      path,
      read: (buf, bufOffset, length, position) => {
        this.check('read', path);
        return inner.read(buf, bufOffset, length, position);
      },
      write: (buf, bufOffset, length, position) => {
        this.checkWrite(inner, buf, bufOffset, length, position);
        inner.write(buf, bufOffset, length, position);
      },
      sync: async (inline?: boolean) => {
        this.check('sync', path); // Inside an async function, so a fault is a rejection.
        await inner.sync(inline);
      },
      size: () => inner.size(),
      truncate: (length) => {
        this.check('truncate', path);
        inner.truncate(length);
      },
      close: () => inner.close(),
    };
  }
}

// ---- Injectors ---------------------------------------------------------------------------------

const everyOp: FaultFilter = () => true;

export interface NthFailure extends FaultInjector {
  /** Matching operations seen so far, the failed one included. */
  readonly seen: number;
  /** Whether the nth matching operation has happened (and failed). */
  readonly fired: boolean;
}

/** Fails exactly the nth (0-based) operation that matches `filter`; all others run. */
export function failNth(n: number, code: FaultCode = 'EIO', filter = everyOp): NthFailure {
  assert(Number.isSafeInteger(n) && n >= 0, 'n is a non-negative integer');
  let seen = 0;
  return {
    get seen() {
      return seen;
    },
    get fired() {
      return seen > n;
    },
    maybeFail(op, path) {
      if (!filter(op, path)) return null;
      seen += 1;
      return seen - 1 === n ? code : null;
    },
  };
}

/** Fails every operation that matches `predicate`. */
export function failAll(predicate: FaultFilter, code: FaultCode = 'EIO'): FaultInjector {
  return { maybeFail: (op, path) => (predicate(op, path) ? code : null) };
}

export interface SwitchableInjector extends FaultInjector {
  /** While false, nothing fails. */
  enabled: boolean;
}

/** Wraps an injector with an on/off switch (on at first unless `enabled` says otherwise). */
export function switchable(inner: FaultInjector, enabled = true): SwitchableInjector {
  const injector: SwitchableInjector = {
    enabled,
    maybeFail: (op, path) => (injector.enabled ? inner.maybeFail(op, path) : null),
  };
  return injector;
}

/** Fails every operation matching `predicate` while its `enabled` switch is on. */
export function failWhile(predicate: FaultFilter, code: FaultCode = 'EIO'): SwitchableInjector {
  return switchable(failAll(predicate, code));
}

export interface OpCounter extends FaultInjector {
  /** Operations matching the filter seen so far. */
  readonly count: number;
}

/** Never fails; counts operations so a test can then fail each one in turn with `failNth`. */
export function countOps(filter = everyOp): OpCounter {
  let count = 0;
  return {
    get count() {
      return count;
    },
    maybeFail(op, path) {
      if (filter(op, path)) count += 1;
      return null;
    },
  };
}

/** Filter: only these operations. */
export function opIn(...ops: FaultOp[]): FaultFilter {
  assert(ops.length > 0, 'at least one op');
  const set = new Set(ops);
  return (op) => set.has(op);
}

/** Filter: only paths ending with `suffix` (e.g. '.log', 'CURRENT'). */
export function pathEndsWith(suffix: string): FaultFilter {
  return (_op, path) => path.endsWith(suffix);
}
