/**
 * Entry point of a background worker thread (started by compaction-thread.ts). It receives one
 * WorkerJob at a time — a compaction merge (mergeTables) or a flush (buildFlushTable) — runs it
 * on node:fs without yielding (this thread has nothing else to do) and replies with the outputs
 * or the error. It touches no database state: the main thread reserved the output file numbers
 * and installs the result.
 */
import { parentPort } from 'node:worker_threads';
import { NodeFs } from '../env/node-fs.js';
import { mergeTables, type MergeOutcome } from './merge-tables.js';
import { buildFlushTable } from '../db/flush-table.js';
import { errorToWire, outcomeToWire, type WorkerJob, type WorkerReady, type WorkerReply } from './worker-protocol.js';

const port = parentPort;
if (port !== null) {
  const fs = new NodeFs();
  const reply = (outcome: MergeOutcome): void => {
    port.postMessage({ ok: true, outcome: outcomeToWire(outcome) } satisfies WorkerReply);
  };
  const run = async (job: WorkerJob): Promise<MergeOutcome> => {
    if (job.kind === 'merge') return mergeTables(fs, job.spec, 0);
    return { outputs: [await buildFlushTable(fs, job.spec, 0)], entriesDropped: 0 };
  };
  port.on('message', (job: WorkerJob) => {
    run(job).then(
      (outcome) => reply(outcome),
      (e: unknown) => port.postMessage({ ok: false, error: errorToWire(e) } satisfies WorkerReply),
    );
  });
  port.postMessage({ ready: true } satisfies WorkerReady);
}
