/**
 * Runs merges in a worker thread, so compaction's CPU (decode, merge, encode, bloom, CRC) does not
 * share the event loop with the application's reads and writes. One worker per database, started
 * at the first compaction, one merge at a time; it is ref'd only while a merge runs, so an idle
 * database never keeps the process alive.
 *
 * If the worker cannot start or dies (error, unexpected exit), the running merge rejects with
 * IO_ERROR — compaction's usual retry path — and `broken` becomes true: the database then runs
 * its merges on the main thread for the rest of the session (docs/decisions/2026-11-25-compaction-worker.md).
 */
import { Worker } from 'node:worker_threads';
import { LightningError } from '../base/errors.js';
import { assert } from '../util/assert.js';
import type { MergeOutcome, MergeSpec } from './merge-tables.js';
import { errorFromWire, outcomeFromWire, type WorkerReply } from './worker-protocol.js';

const WORKER_URL = new URL('./compaction-worker.js', import.meta.url);

interface PendingMerge {
  resolve(o: MergeOutcome): void;
  reject(e: Error): void;
}

export class CompactionThread {
  private worker: Worker | null = null;
  private pending: PendingMerge | null = null;
  private closed = false;
  /** True once the worker failed: callers should merge on their own thread instead. */
  broken = false;

  run(spec: MergeSpec): Promise<MergeOutcome> {
    assert(this.pending === null, 'one merge at a time');
    assert(!this.closed, 'compaction thread used after close');
    return new Promise<MergeOutcome>((resolve, reject) => {
      let w: Worker;
      try {
        w = this.worker ?? this.start();
      } catch (e) {
        this.broken = true;
        reject(new LightningError('IO_ERROR', `cannot start the compaction worker: ${(e as Error).message}`, { cause: e }));
        return;
      }
      this.pending = { resolve, reject };
      w.ref();
      w.postMessage(spec);
    });
  }

  /** Stops the worker (after the running merge, which the caller awaits first). */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
  }

  private start(): Worker {
    const w = new Worker(WORKER_URL);
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      const p = this.settle(w);
      if (p === null) return;
      if (reply.ok) p.resolve(outcomeFromWire(reply.outcome));
      else p.reject(errorFromWire(reply.error));
    });
    w.on('error', (e: Error) => this.fail(w, `the compaction worker failed: ${e.message}`, e));
    w.on('exit', (code: number) => this.fail(w, `the compaction worker exited (code ${code})`, undefined));
    this.worker = w;
    return w;
  }

  /** Takes the pending merge (if any) and lets the worker idle without holding the process. */
  private settle(w: Worker): PendingMerge | null {
    const p = this.pending;
    this.pending = null;
    w.unref();
    return p;
  }

  private fail(w: Worker, message: string, cause: unknown): void {
    if (this.worker === w) this.worker = null;
    const p = this.settle(w);
    if (this.closed && p === null) return; // terminate() after close
    this.broken = true;
    p?.reject(new LightningError('IO_ERROR', message, { cause }));
  }
}
