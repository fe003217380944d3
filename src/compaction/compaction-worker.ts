/**
 * Entry point of the compaction worker thread (started by compaction-thread.ts). It receives one
 * MergeSpec at a time, runs mergeTables() on node:fs without yielding (this thread has nothing
 * else to do) and replies with the outputs or the error. It touches no database state: the main
 * thread reserved the output file numbers and installs the result.
 */
import { parentPort } from 'node:worker_threads';
import { NodeFs } from '../env/node-fs.js';
import { mergeTables, type MergeSpec } from './merge-tables.js';
import { errorToWire, outcomeToWire, type WorkerReply } from './worker-protocol.js';

const port = parentPort;
if (port !== null) {
  const fs = new NodeFs();
  port.on('message', (spec: MergeSpec) => {
    mergeTables(fs, spec, 0).then(
      (outcome) => port.postMessage({ ok: true, outcome: outcomeToWire(outcome) } satisfies WorkerReply),
      (e: unknown) => port.postMessage({ ok: false, error: errorToWire(e) } satisfies WorkerReply),
    );
  });
}
