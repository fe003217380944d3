/**
 * Review: a process that opened a database with worker merges and never closed it exits by itself
 * (the worker is unref'd while idle; a running merge holds the process only until it is done).
 * A hang shows as the child still running when the parent's safety timeout fires (a failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../src/index.js';
import { runChild as runChildScript, type ChildResult } from '../harness/run-child.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-exit-child.js');
function runChild(dir: string, mode: string): Promise<ChildResult> {
  return runChildScript(CHILD, [dir, mode]);
}

for (const mode of ['idle', 'running']) {
  test(`a process that never closes its database exits by itself (worker ${mode})`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-exit-'));
    try {
      const r = await runChild(dir, mode);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `child exit code ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /done/);
      // The directory reopens (a stale lock of a dead process does not block it) with every key.
      const db = await open(dir);
      let n = 0;
      for (const _ of db.iterator()) n++;
      assert.ok(n > 0 && n <= 8000, `keys: ${n}`);
      await db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
