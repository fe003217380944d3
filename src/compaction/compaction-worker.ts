/**
 * Entry point of a database's background worker thread (started by compaction-thread.ts). It
 * receives WorkerRequests — compaction merges (mergeTables) and flushes (buildFlushTable), at most
 * one of each at a time — runs them on node:fs and replies to each with its outputs or its error.
 * It touches no database state: the main thread reserved the output file numbers and installs the
 * results.
 *
 * Flushes come first: a merge yields to the event loop every MERGE_SLICE_ENTRIES entries or
 * SLICE_BYTES_MAX bytes (util/yield.ts), so a flush posted while it runs starts within one slice
 * (measured ~5-10 ms; ~25 ms where the merge finishes an 8 MiB output's filter and index), and
 * the flush, which never yields, runs to its end (or its fsync) before the merge goes on.
 * Writers stall on a flush, never directly on a merge. docs/decisions/2026-11-26-one-background-thread.md.
 */
import { parentPort } from 'node:worker_threads';
import { NodeFs } from '../env/node-fs.js';
import { mergeTables, type MergeOutcome } from './merge-tables.js';
import { buildFlushTable } from '../db/flush-table.js';
import { errorToWire, outcomeToWire, type WorkerJob, type WorkerReady, type WorkerReply, type WorkerRequest } from './worker-protocol.js';

/** Most entries a merge processes between turns of this thread's event loop. */
const MERGE_SLICE_ENTRIES = 4096;

const port = parentPort;
if (port !== null) {
  const fs = new NodeFs();
  const run = async (job: WorkerJob): Promise<MergeOutcome> => {
    if (job.kind === 'merge') return mergeTables(fs, job.spec, MERGE_SLICE_ENTRIES);
    return { outputs: [await buildFlushTable(fs, job.spec, 0)], entriesDropped: 0 };
  };
  port.on('message', ({ id, job }: WorkerRequest) => {
    run(job).then(
      (outcome) => port.postMessage({ id, ok: true, outcome: outcomeToWire(outcome) } satisfies WorkerReply),
      (e: unknown) => port.postMessage({ id, ok: false, error: errorToWire(e) } satisfies WorkerReply),
    );
  });
  port.postMessage({ ready: true } satisfies WorkerReady);
}
