/**
 * Review: a process that opened a database with worker merges and never closed it exits by itself
 * (the worker is unref'd while idle; a running merge holds the process only until it is done).
 * A hang shows as the child still running when the parent's safety timeout fires (a failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../src/index.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-exit-child.js');
/** Only a safety net against a hung child (the test fails then); never a timing assertion. */
const HANG_MS = 60_000;

function runChild(dir: string, mode: string): Promise<{ code: number | null; stdout: string; stderr: string; hung: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
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
