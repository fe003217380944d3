/**
 * Transaction options: defaults, limits and strict validation (an unknown name or a bad value is
 * INVALID_ARGUMENT, never ignored). docs/transactions.md explains what each setting guarantees.
 */
import { invalidArgument } from '../base/errors.js';
import { LOCK_TIMEOUT_MS_MAX } from './lock-table.js';

export type IsolationLevel = 'snapshot' | 'serializable';
export type ConcurrencyMode = 'optimistic' | 'pessimistic';

/** Options of `db.beginTransaction()`. */
export interface TransactionOptions {
  /** 'snapshot' (default): snapshot isolation. 'serializable': also validates everything read. */
  isolation?: IsolationLevel;
  /** 'optimistic' (default): conflicts found at commit. 'pessimistic': key locks, waits. */
  mode?: ConcurrencyMode;
  /** Pessimistic mode: longest wait for one key lock before TIMEOUT. Default 1000; 0 = never wait. */
  timeoutMs?: number;
  /** Durability of the commit; default: the database's `sync` option. */
  sync?: boolean;
}

/** Options of `db.transaction(fn)`: a transaction's options plus automatic retries. */
export interface RunTransactionOptions extends TransactionOptions {
  /** Re-runs after CONFLICT or DEADLOCK, at most this many times. Default 5. */
  retries?: number;
}

export interface ResolvedTransactionOptions {
  isolation: IsolationLevel;
  mode: ConcurrencyMode;
  timeoutMs: number;
  /** undefined: the database's default. */
  sync: boolean | undefined;
  retries: number;
}

/** Default lock wait (RocksDB's default too): long enough for a holder to commit. */
export const LOCK_TIMEOUT_MS_DEFAULT = 1000;
export const RETRIES_DEFAULT = 5;
/** Most automatic retries of one `db.transaction()` call. */
export const RETRIES_MAX = 1000;

const TX_KEYS = ['isolation', 'mode', 'timeoutMs', 'sync'];

/** Validates `db.beginTransaction` options (`withRetries` false) or `db.transaction` options. */
export function resolveTransactionOptions(
  options: unknown,
  withRetries: boolean,
): ResolvedTransactionOptions {
  const r: ResolvedTransactionOptions = {
    isolation: 'snapshot',
    mode: 'optimistic',
    timeoutMs: LOCK_TIMEOUT_MS_DEFAULT,
    sync: undefined,
    retries: RETRIES_DEFAULT,
  };
  if (options === undefined || options === null) return r;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument('transaction options must be an object');
  }
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (TX_KEYS.includes(k) || (withRetries && k === 'retries')) continue;
    const hint = k === 'retries' ? ' (retries belong to db.transaction(fn, options))' : '';
    throw invalidArgument(`unknown transaction option ${JSON.stringify(k)}${hint}`);
  }
  const isolation = o['isolation'];
  if (isolation !== undefined) {
    if (isolation !== 'snapshot' && isolation !== 'serializable') {
      throw invalidArgument("transaction option isolation must be 'snapshot' or 'serializable'");
    }
    r.isolation = isolation;
  }
  const mode = o['mode'];
  if (mode !== undefined) {
    if (mode !== 'optimistic' && mode !== 'pessimistic') {
      throw invalidArgument("transaction option mode must be 'optimistic' or 'pessimistic'");
    }
    r.mode = mode;
  }
  r.timeoutMs = integer(o, 'timeoutMs', 0, LOCK_TIMEOUT_MS_MAX, r.timeoutMs);
  if (withRetries) r.retries = integer(o, 'retries', 0, RETRIES_MAX, r.retries);
  const sync = o['sync'];
  if (sync !== undefined) {
    if (typeof sync !== 'boolean') throw invalidArgument('transaction option sync must be a boolean');
    r.sync = sync;
  }
  return r;
}

function integer(o: Record<string, unknown>, name: string, min: number, max: number, dflt: number): number {
  const v = o[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = `[${min}, ${max}]`;
    throw invalidArgument(`transaction option ${name} must be an integer in ${range}, got ${String(v)}`);
  }
  return v;
}
