/**
 * Review (session 9): a process that leaves without close() while a flush builds its table in the
 * worker thread (node:fs). It must exit by itself (natural return) or may be cut short
 * (process.exit mid-flush); either way a reopen finds every acknowledged batch (sync: false writes
 * reach the OS before they are acknowledged) and no batch half-applied.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../src/index.js';
import { runChild as runChildScript, type ChildResult } from '../harness/run-child.js';
import { BATCHES, PER_BATCH, batchKey, batchValue } from './session9-flush-exit-child.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'session9-flush-exit-child.js');
function runChild(dir: string, mode: string): Promise<ChildResult> {
  return runChildScript(CHILD, [dir, mode]);
}

for (const mode of ['natural', 'exit', 'unawaited']) {
  test(`leaving without close() during a worker flush (${mode}): exits, reopen has every acked batch, none half-applied`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-flushexit-'));
    try {
      const r = await runChild(dir, mode);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout.slice(-300)} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `child exit code ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /done/);
      const acked = new Set([...r.stdout.matchAll(/acked (\d+)/g)].map((m) => Number(m[1])));
      assert.ok(acked.size > 10, `acked ${acked.size}`);
      const db = await open(dir, { compactionThread: 'main' });
      for (let b = 0; b < BATCHES + 10; b++) {
        let present = 0;
        for (let i = 0; i < PER_BATCH; i++) {
          const v = db.getSync(batchKey(b, i))?.toString();
          if (v !== undefined) {
            assert.equal(v, batchValue(b, i), `batch ${b} key ${i}: wrong value`);
            present++;
          }
        }
        if (acked.has(b)) assert.equal(present, PER_BATCH, `acked batch ${b}: ${present}/${PER_BATCH} keys after reopen`);
        else assert.ok(present === 0 || present === PER_BATCH, `batch ${b} half-applied: ${present}/${PER_BATCH}`);
      }
      await db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('leaving right after an open() that started a compaction in the worker: exits, data intact', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-flushexit-'));
  try {
    const high = { memtableSize: 64 * 1024, sync: false, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 };
    const db = await open(dir, high);
    for (let b = 0; b < 6; b++) {
      await db.batch(Array.from({ length: PER_BATCH }, (_, i) => ({ type: 'put' as const, key: batchKey(b, i), value: batchValue(b, i) })));
      await db.compactRange('zzzz', 'zzzz'); // flush only
    }
    assert.equal(db.stats().levels[0]?.files, 6);
    await db.close();
    const r = await runChild(dir, 'backlog');
    assert.equal(r.hung, false, `child did not exit: ${r.stderr}`);
    assert.equal(r.code, 0, `child exit code ${r.code}: ${r.stderr}`);
    const again = await open(dir, { compactionThread: 'main' });
    assert.ok((again.stats().levels[0]?.files ?? 0) < 6, 'the compaction the child started was installed');
    for (let b = 0; b < 6; b++) for (let i = 0; i < PER_BATCH; i++) assert.equal(again.getSync(batchKey(b, i))?.toString(), batchValue(b, i));
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
