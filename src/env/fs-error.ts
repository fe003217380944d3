/**
 * Errors thrown by the FileSystem implementations in this folder that do not come from node:fs
 * itself (MemFs, FaultFs, NodeFs's lock). They look like Node's own errors (`code`, `syscall`,
 * `path`, message `ENOENT: no such file or directory, open 'x'`) so that the engine's
 * `fromIoError` and tests treat every implementation the same way.
 */

/** Node-style codes the env layer produces itself. `ELOCKED` is ours: a lock is held. */
export type FsErrorCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'ENOTEMPTY'
  | 'EBADF'
  | 'EIO'
  | 'ENOSPC'
  | 'EINVAL'
  | 'ENOTSUP'
  | 'ELOCKED';

const descriptions: Record<FsErrorCode, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  EISDIR: 'illegal operation on a directory',
  ENOTDIR: 'not a directory',
  ENOTEMPTY: 'directory not empty',
  EBADF: 'bad file descriptor',
  EIO: 'i/o error',
  ENOSPC: 'no space left on device',
  EINVAL: 'invalid argument',
  ENOTSUP: 'operation not supported',
  ELOCKED: 'lock is held',
};

export class FsError extends Error {
  override readonly name = 'FsError';
  readonly code: FsErrorCode;
  readonly syscall: string;
  readonly path: string;

  constructor(code: FsErrorCode, syscall: string, path: string, detail?: string) {
    const extra = detail === undefined ? '' : ` (${detail})`;
    super(`${code}: ${descriptions[code]}, ${syscall} '${path}'${extra}`);
    this.code = code;
    this.syscall = syscall;
    this.path = path;
  }
}

/** The `code` of an error thrown by a filesystem call, or undefined if it has none. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code: unknown = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
