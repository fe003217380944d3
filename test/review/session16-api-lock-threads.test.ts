/**
 * Session 16 (API review): the directory lock across worker threads of one process.
 *
 * README "Guarantees": "A second `open` of the same directory fails with `LOCKED`". NodeFs.lock()
 * keeps the in-process lock set (`heldLockPaths`) in module state, which each worker thread (its
 * own isolate, its own module instances) has separately, and treats a LOCK file naming our own pid
 * but missing from that set as stale ("a previous process that had our pid"). A worker thread has
 * the same pid, so an open() in a worker takes over the main thread's live lock: two writers on one
 * directory. The worker's recovery flushes the main thread's WAL and deletes it, and the main
 * thread's later acknowledged (sync) writes go to a deleted file: lost at the next open.
 *
 * Expected (fails until fixed): the worker's open rejects with LOCKED, and every acknowledged
 * write of the main thread survives a reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open } from '../../src/index.js';
import { ProcessErrorRecorder } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();
const INDEX_URL = new URL('../../src/index.js', import.meta.url).href;

/**
 * Opens `dir` in a fresh worker thread (same process, separate module instances), writes one key
 * and closes. Resolves with 'opened' or 'error <code>'.
 */
function openInWorker(dir: string): Promise<string> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then(async (m) => {
      try {
        const db = await m.open(workerData.dir);
        await db.put('from-worker', 'x');
        await db.close();
        parentPort.postMessage('opened');
      } catch (e) {
        parentPort.postMessage('error ' + (e && e.code));
      }
    }, (e) => parentPort.postMessage('import failed ' + e));`;
  const w = new Worker(code, { eval: true, workerData: { url: INDEX_URL, dir } });
  return new Promise<string>((resolve, reject) => {
    w.once('message', (m: string) => {
      void w.terminate().then(() => resolve(m));
    });
    w.once('error', reject);
  });
}

test('session16: a worker thread of the same process cannot open a directory the main thread holds (LOCKED)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-s16-lock-'));
  try {
    const db = await open(dir);
    let workerResult: string;
    try {
      await db.put('before', '1');
      workerResult = await openInWorker(dir);
      await db.put('after', '2'); // sync: true by default, acknowledged as durable
      assert.equal((await db.get('after'))?.toString(), '2');
    } finally {
      await db.close();
    }
    const db2 = await open(dir);
    let after: string | undefined;
    try {
      after = (await db2.get('after'))?.toString();
    } finally {
      await db2.close();
    }
    // Both assertions describe the same bug; report the data loss too, it is the consequence.
    assert.deepEqual(
      { workerResult, afterSurvivedReopen: after === '2' },
      { workerResult: 'error LOCKED', afterSurvivedReopen: true },
      'a second open() from a worker thread took over a live lock of this process',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('session16 (lock threads): no unhandled rejections or uncaught exceptions', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
