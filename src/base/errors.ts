/**
 * The one error type users see. Every operating failure (bad input, I/O, corruption, lock held...)
 * is a `LightningError` with a stable `code`; codes are documented in docs/errors.md and never
 * renamed. Programmer errors (broken engine invariants) are `AssertionError`s instead.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'LOCKED'
  | 'NOT_FOUND'
  | 'CORRUPTION'
  | 'IO_ERROR'
  | 'DISK_FULL'
  | 'READ_ONLY'
  | 'NOT_SUPPORTED'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'DEADLOCK'
  | 'TIMEOUT'
  | 'BUSY';

export class LightningError extends Error {
  override readonly name = 'LightningError';
  /** Stable machine-readable code; see docs/errors.md. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
  }
}

export function isLightningError(e: unknown, code?: ErrorCode): e is LightningError {
  return e instanceof LightningError && (code === undefined || e.code === code);
}

export function invalidArgument(message: string): LightningError {
  return new LightningError('INVALID_ARGUMENT', message);
}

export function corruption(file: string, offset: number, what: string): LightningError {
  return new LightningError('CORRUPTION', `${what} in ${file} at offset ${offset}`);
}

/**
 * Converts an error thrown by a filesystem call into a `LightningError`: ENOSPC/EDQUOT become
 * DISK_FULL, anything else IO_ERROR. A `LightningError` passes through unchanged.
 */
export function fromIoError(e: unknown, op: string, path: string): LightningError {
  if (e instanceof LightningError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new LightningError('DISK_FULL', `${op} ${path}: no space left on device`, { cause: e });
  }
  return new LightningError('IO_ERROR', `${op} ${path}: ${messageOf(e)}`, { cause: e });
}

/** The message of anything thrown (an Error's message, or the value as a string). */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
