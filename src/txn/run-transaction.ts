/**
 * `db.transaction(fn, options)`: begins a transaction, runs `fn(tx)`, commits, and re-runs the
 * whole thing after CONFLICT or DEADLOCK, at most `retries` times, sleeping a jittered exponential
 * backoff between attempts. Anything else `fn` throws propagates unchanged after a rollback, and
 * nothing is written. If `fn` commits or rolls back `tx` itself, that stands (a rollback is an
 * abort: the call resolves with `fn`'s result and writes nothing).
 */
import { invalidArgument, isLightningError } from '../base/errors.js';
import type { Transaction } from './transaction.js';
import type { TransactionManager } from './transaction-manager.js';
import { resolveTransactionOptions } from './transaction-options.js';

export type TransactionCallback<T> = (tx: Transaction) => Promise<T> | T;

/** Errors another attempt may not hit: conflicts and deadlock victims. */
function retryable(e: unknown): boolean {
  return isLightningError(e, 'CONFLICT') || isLightningError(e, 'DEADLOCK');
}

export async function runTransaction<T>(
  manager: TransactionManager,
  fn: unknown,
  options: unknown,
): Promise<T> {
  const opts = resolveTransactionOptions(options, true);
  if (typeof fn !== 'function') throw invalidArgument('db.transaction needs a callback function');
  const callback = fn as TransactionCallback<T>;
  for (let attempt = 0; ; attempt++) {
    const tx = manager.beginResolved(opts);
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await runAttempt(tx, callback) };
    } catch (e) {
      outcome = { ok: false, error: e };
    }
    if (outcome.ok) return outcome.value;
    if (!retryable(outcome.error) || attempt >= opts.retries) throw outcome.error;
    await sleep(manager.backoffMs(attempt));
  }
}

/** One attempt: the callback, then the commit. Leaves `tx` finished whatever happens. */
async function runAttempt<T>(tx: Transaction, fn: TransactionCallback<T>): Promise<T> {
  let value: T;
  try {
    value = await fn(tx);
  } catch (e) {
    tx.abandon();
    // The callback may still be committing (it called commit() without awaiting it).
    await tx.pendingCommit?.catch(() => undefined);
    throw e;
  }
  const pending = tx.pendingCommit;
  if (pending !== null) await pending;
  else if (tx.state === 'active') await tx.commit();
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
