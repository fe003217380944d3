/**
 * Runs merges and flushes' table builds in a worker thread, so their CPU (decode, merge, encode,
 * bloom, CRC) does not share the event loop with the application's reads and writes. A database
 * has one, for both: at most one merge and one flush at a time, each request tagged with an id
 * that its reply carries. The worker lets a flush in between a merge's slices (a flush must not
 * wait behind a long merge; compaction-worker.ts); a second instance runs the upper halves of split
 * merges (subcompactions, compaction-job.ts). It is started at the first job (or by
 * prestart), and ref'd only while a job runs, so an idle database never keeps the process alive.
 *
 * If the worker cannot start (creating it throws, or it fails before it posts WorkerReady), the
 * job rejects with an IO_ERROR marked as a start failure and `broken` becomes true: through
 * orHere(), the database runs that job, and every later one, on the main thread. If it dies after WorkerReady
 * (possibly mid-job), every job in flight rejects with a plain IO_ERROR: the usual retry path. (A
 * worker 'error' event can overtake its ready message; the job is then rerun on the main thread,
 * which finds any output file the worker began and fails with it into that same retry path.)
 * docs/decisions/2026-11-25-compaction-worker.md.
 */
import { Worker } from 'node:worker_threads';
import { LightningError } from '../base/errors.js';
import { assert } from '../util/assert.js';
import type { MergeOutcome, MergeSpec } from './merge-tables.js';
import type { FlushSpec } from '../db/flush-table.js';
import type { FileMetadata } from '../version/file-metadata.js';
import { errorFromWire, outcomeFromWire, type WorkerJob, type WorkerReady, type WorkerReply, type WorkerRequest } from './worker-protocol.js';

const WORKER_URL = new URL('./compaction-worker.js', import.meta.url);

/**
 * A worker's young generation is capped at 4 MiB (V8 grows it to 16 MiB or more by default): the
 * worker allocates little per entry (its buffers are reused), so scavenges stay rare, and each
 * worker's heap stays ~7 MiB smaller. Measured, fillrandom at 1M: peak RSS 188-193 -> 179-181 MiB,
 * throughput unchanged within noise. The old generation is not capped: a large merge must not
 * run out of memory.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

/**
 * Starts the worker. It inherits the process's Node options, except that `--input-type` (as in
 * `node --input-type=module -e ...`) is rejected for a worker started from a file, which could then
 * never flush or compact: without it, the worker gets the other options passed explicitly, or none
 * if Node refuses those in a worker (an explicit list is checked, and V8 flags such as --expose-gc
 * fail the check, while inherited ones do not).
 */
function newWorker(): Worker {
  const argv = process.execArgv;
  const isInputType = (a: string): boolean => a === '--input-type' || a.startsWith('--input-type=');
  if (!argv.some(isInputType)) return new Worker(WORKER_URL, { resourceLimits: WORKER_LIMITS });
  const execArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--input-type') i++; // its value is the next argument
    else if (!isInputType(a)) execArgv.push(a);
  }
  try {
    return new Worker(WORKER_URL, { execArgv, resourceLimits: WORKER_LIMITS });
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(WORKER_URL, { execArgv: [], resourceLimits: WORKER_LIMITS });
  }
}

interface PendingJob {
  /** At most one job of each kind is pending. */
  kind: WorkerJob['kind'];
  resolve(r: MergeOutcome): void;
  reject(e: Error): void;
}

/**
 * A worker idle this long is terminated (and started again at the next job, ~30-50 ms): a
 * read-mostly database then does not keep a thread's heap (tens of MiB after a large merge) alive.
 */
export const WORKER_IDLE_RETIRE_MS = 2000;

export class CompactionThread {
  private worker: Worker | null = null;
  /** Jobs posted and not yet answered, by id: at most one flush and one merge. */
  private readonly pending = new Map<number, PendingJob>();
  private nextJobId = 1;
  private closed = false;
  /** Terminates the idle worker (unref'd: it never keeps the process alive). */
  private idleTimer: NodeJS.Timeout | null = null;
  /** Workers terminated for idleness: their exit is expected, not a failure. */
  private readonly retired = new WeakSet<Worker>();
  /** True once the worker failed: callers should merge on their own thread instead. */
  broken = false;
  /** Whether the current worker said it was ready (its code loaded; see WorkerReady). */
  private ready = false;
  /** Errors of jobs the worker never started (it could not start): see orHere. */
  private readonly startFailures = new WeakSet<Error>();

  /**
   * `name` says which worker this is in error messages ("the background worker failed: ...").
   * `newThread` starts the worker thread (tests pass one that fails).
   */
  constructor(
    private readonly name: string = 'background',
    private readonly newThread: () => Worker = newWorker,
  ) {}

  /**
   * Starts the worker ahead of a job that will come soon, taking its start-up (~50 ms) off that
   * job's path. Idle, it is unref'd and retires like any idle worker. Never throws: a worker that
   * cannot start is left for the job to report.
   */
  prestart(): void {
    if (this.worker !== null || this.closed || this.broken || this.pending.size > 0) return;
    let w: Worker;
    try {
      w = this.start();
    } catch {
      return;
    }
    this.scheduleRetire(w);
  }

  /**
   * Runs `inWorker` (a run or flush of this thread), or `here` instead when no worker can run it:
   * the thread is broken, or its worker failed to start for this job, which then never ran (no
   * output file was created), so the same job can run on the caller's thread.
   */
  async orHere<T>(inWorker: () => Promise<T>, here: () => Promise<T>): Promise<T> {
    if (this.broken) return here();
    try {
      return await inWorker();
    } catch (e) {
      if (!(e instanceof Error && this.startFailures.has(e))) throw e;
      return here();
    }
  }

  /** Runs a compaction merge. */
  async run(spec: MergeSpec): Promise<MergeOutcome> {
    return this.post({ kind: 'merge', spec });
  }

  /**
   * Builds a flushed memtable's table; resolves with its metadata. The worker reads the
   * memtable's shared buffers in place: they must not change or be reused until this settles.
   */
  async flush(spec: FlushSpec): Promise<FileMetadata> {
    const outcome = await this.post({ kind: 'flush', spec });
    const meta = outcome.outputs[0];
    assert(outcome.outputs.length === 1 && meta !== undefined, 'a flush builds one table');
    return meta;
  }

  private post(job: WorkerJob): Promise<MergeOutcome> {
    for (const p of this.pending.values()) assert(p.kind !== job.kind, 'one job of a kind at a time');
    assert(!this.closed, 'compaction thread used after close');
    this.cancelRetire();
    return new Promise<MergeOutcome>((resolve, reject) => {
      let w: Worker;
      try {
        w = this.worker ?? this.start();
      } catch (e) {
        this.broken = true;
        const err = new LightningError('IO_ERROR', `cannot start the ${this.name} worker: ${(e as Error).message}`, { cause: e });
        this.startFailures.add(err);
        reject(err);
        return;
      }
      const id = this.nextJobId++;
      this.pending.set(id, { kind: job.kind, resolve, reject });
      w.ref();
      w.postMessage({ id, job } satisfies WorkerRequest);
    });
  }

  /** Stops the worker (after the running jobs, which the callers await first). */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelRetire();
    // Callers wait for their jobs first. Should one still be in flight (an ordering bug), it fails
    // with CLOSED rather than waiting forever on a worker that is gone.
    for (const p of this.takeAll()) p.reject(new LightningError('CLOSED', `the ${this.name} worker was stopped with a job in flight`));
    const w = this.worker;
    this.worker = null;
    if (w === null) return;
    // Ref it first: terminate()'s promise settles on the 'exit' event, and an unref'd worker does
    // not keep the event loop alive until then — a caller awaiting close() as the last thing in
    // its process would see its promise never settle (seen under load in the soak run).
    w.ref();
    await w.terminate();
  }

  private start(): Worker {
    const w = this.newThread();
    this.ready = false;
    w.on('message', (reply: WorkerReply | WorkerReady) => {
      if (this.worker !== w) return;
      if ('ready' in reply) {
        this.ready = true;
        return;
      }
      const p = this.take(reply.id);
      if (this.pending.size === 0) {
        w.unref();
        this.scheduleRetire(w);
      }
      if (p === undefined) return;
      if (reply.ok) p.resolve(outcomeFromWire(reply.outcome));
      else p.reject(errorFromWire(reply.error));
    });
    w.on('error', (e: Error) => this.fail(w, `the ${this.name} worker failed: ${e.message}`, e));
    w.on('exit', (code: number) => this.fail(w, `the ${this.name} worker exited (code ${code})`, undefined));
    // After the listeners: adding a 'message' listener refs the worker again.
    w.unref();
    this.worker = w;
    return w;
  }

  /** Removes job `id` from the pending jobs and returns it (undefined if unknown). */
  private take(id: number): PendingJob | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  /** Removes and returns every pending job. */
  private takeAll(): PendingJob[] {
    const all = [...this.pending.values()];
    this.pending.clear();
    return all;
  }

  private scheduleRetire(w: Worker): void {
    this.cancelRetire();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.worker !== w || this.pending.size > 0) return;
      this.worker = null;
      this.retired.add(w);
      w.terminate().catch(() => undefined); // nothing of ours runs there; its exit is ignored
    }, WORKER_IDLE_RETIRE_MS);
    this.idleTimer.unref();
  }

  private cancelRetire(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private fail(w: Worker, message: string, cause: unknown): void {
    if (this.retired.has(w)) return; // terminated for idleness: a later job starts a new one
    if (this.worker !== w) return; // a worker already replaced or closed: nothing of ours runs there
    this.worker = null;
    w.unref();
    const jobs = this.takeAll();
    if (this.closed && jobs.length === 0) return; // terminate() after close
    this.broken = true;
    for (const p of jobs) {
      const err = new LightningError('IO_ERROR', message, { cause });
      if (!this.ready) this.startFailures.add(err); // it died before its code loaded: no job ran
      p.reject(err);
    }
  }
}
