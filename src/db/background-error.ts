/**
 * The database's background-error state. Failures of the WAL, flush or compaction never throw into
 * the void: they land here, and the state decides what happens next.
 *
 *   healthy ──DISK_FULL──────────────▶ retrying (writes fail fast with DISK_FULL; reads work;
 *      ▲                                 a timer with backoff checks free space and retries)
 *      └──────── retry succeeded ◀─────┘
 *   healthy ──IO_ERROR (flush/compaction)─▶ retrying, at most IO_RETRIES_MAX times in a row, then
 *   healthy ──IO_ERROR (WAL write), any WAL fsync error, CORRUPTION ──▶ failed (writes fail until reopen; reads work): after a
 *                                            failed fsync the OS may have dropped dirty pages, so
 *                                            the WAL cannot be trusted (PostgreSQL's fsyncgate).
 */
import type { LightningError } from '../base/errors.js';

export type BackgroundSource = 'wal-write' | 'wal-sync' | 'flush' | 'compaction' | 'recovery';

/** Consecutive IO_ERROR failures of background work before giving up until reopen. */
export const IO_RETRIES_MAX = 3;
const RETRY_DELAY_MS_MIN = 50;
const RETRY_DELAY_MS_MAX = 5_000;

export class BackgroundErrorState {
  error: LightningError | null = null;
  /** 'retrying': a retry is scheduled; 'failed': only reopening helps. */
  mode: 'healthy' | 'retrying' | 'failed' = 'healthy';
  /** Total failures reported (stats). */
  failures = 0;
  retries = 0;
  private consecutive = 0;
  private delayMs = RETRY_DELAY_MS_MIN;
  private timer: NodeJS.Timeout | null = null;

  /**
   * Records a failure. Returns true if the caller should schedule a retry (via `scheduleRetry`).
   */
  report(err: LightningError, source: BackgroundSource): boolean {
    this.failures++;
    this.consecutive++;
    if (this.mode === 'failed') return false;
    this.error = err;
    const retryable =
      source !== 'wal-sync' &&
      (err.code === 'DISK_FULL' ||
        (err.code === 'IO_ERROR' && source !== 'wal-write' && this.consecutive <= IO_RETRIES_MAX));
    this.mode = retryable ? 'retrying' : 'failed';
    return retryable;
  }

  /** Runs `attempt` after the current backoff delay (timer does not keep the process alive). */
  scheduleRetry(attempt: () => void): void {
    if (this.timer !== null || this.mode !== 'retrying') return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, RETRY_DELAY_MS_MAX);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.retries++;
      attempt();
    }, delay);
    this.timer.unref();
  }

  /** A retry (or any background job) succeeded. */
  recovered(): void {
    if (this.mode === 'failed') return;
    this.error = null;
    this.mode = 'healthy';
    this.consecutive = 0;
    this.delayMs = RETRY_DELAY_MS_MIN;
  }

  /** Background work that succeeded without an error pending resets the IO_ERROR streak. */
  succeeded(): void {
    if (this.mode === 'healthy') this.consecutive = 0;
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
