/**
 * The transactions of one database: creation (bounded by `maxActiveTransactions`), the lock table
 * of pessimistic transactions, the commit order, stats, and shutdown (lock waiters fail with
 * CLOSED when the database closes).
 */
import { LightningError } from '../base/errors.js';
import { Random } from '../util/random.js';
import { assert } from '../util/assert.js';
import { LockTable } from './lock-table.js';
import { Transaction, type TransactionHost, type TransactionRegistry } from './transaction.js';
import { resolveTransactionOptions, type ResolvedTransactionOptions } from './transaction-options.js';

/** Retry backoff of db.transaction(): exponential from the base, capped, with jitter. */
const RETRY_BACKOFF_BASE_MS = 1;
const RETRY_BACKOFF_MAX_MS = 100;

export class TransactionManager implements TransactionRegistry {
  readonly locks = new LockTable();
  private readonly active = new Set<Transaction>();
  private nextId = 1;
  private commitCount = 0;
  private closed = false;
  /** Seeded: retry delays replay exactly with the database's seed. */
  private readonly rng: Random;

  constructor(
    private readonly host: TransactionHost,
    private readonly maxActive: number,
    seed: number,
  ) {
    assert(Number.isInteger(maxActive) && maxActive >= 1, 'maxActiveTransactions is a positive integer');
    this.rng = new Random(seed ^ 0x7a5c7e11);
  }

  /** `db.beginTransaction(options)`: throws INVALID_ARGUMENT, CLOSED or BUSY. */
  begin(options: unknown): Transaction {
    return this.beginResolved(resolveTransactionOptions(options, false));
  }

  /** Begins with validated options. */
  beginResolved(options: ResolvedTransactionOptions): Transaction {
    this.checkOpen();
    this.host.checkReadable();
    if (this.active.size >= this.maxActive) {
      throw new LightningError(
        'BUSY',
        `${this.active.size} transactions are active, the most maxActiveTransactions allows; ` +
          'commit or roll back some first',
      );
    }
    const tx = new Transaction(this, this.host, this.nextId++, options, Date.now());
    this.active.add(tx);
    return tx;
  }

  /** @internal TransactionRegistry */
  checkOpen(): void {
    if (this.closed) throw new LightningError('CLOSED', 'the database is closed');
  }

  /** @internal TransactionRegistry */
  finished(tx: Transaction): void {
    const had = this.active.delete(tx);
    assert(had, 'a transaction finishes once');
  }

  /** @internal TransactionRegistry */
  nextCommitOrder(): number {
    return ++this.commitCount;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Age of the oldest active transaction (0 if none). */
  oldestAgeMs(nowMs: number): number {
    let oldest = 0;
    for (const tx of this.active) oldest = Math.max(oldest, nowMs - tx.createdAtMs);
    return oldest;
  }

  /** Delay before retry number `attempt` (0-based): half fixed, half seeded jitter. */
  backoffMs(attempt: number): number {
    const cap = Math.min(RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_BASE_MS * 2 ** Math.min(attempt, 30));
    return cap / 2 + (this.rng.nextFloat() * cap) / 2;
  }

  /** The database is closing: no new transactions; lock waits fail with CLOSED. Idempotent. */
  close(): void {
    this.closed = true;
    this.locks.close(new LightningError('CLOSED', 'the database is closed'));
  }
}
