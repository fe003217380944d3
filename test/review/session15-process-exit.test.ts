/**
 * Reviewer tests (session 15): the shared background worker and process lifetime. The worker is
 * ref'd while any job (flush or merge) is pending and unref'd when none is. In a child process
 * that never awaits anything after posting its jobs:
 *   - a long merge and a flush posted together: both replies arrive (the flush's reply, while the
 *     merge is still pending, must not let the process exit), then the process exits by itself;
 *   - a short merge and a long flush: same with the other reply order;
 *   - a database that prestarted its worker (memtable half full) and is left idle, never closed:
 *     the process exits by itself (unref'd worker, unref'd retire timer);
 *   - a database left with a flush and a merge in flight, never closed: exits by itself, and the
 *     directory reopens with every acknowledged write.
 * The child is this file run with SESSION15_CHILD set. A hang is the parent's safety timeout
 * killing the child (a failure), never a timing assertion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, type Database } from '../../src/index.js';
import { CompactionThread } from '../../src/compaction/compaction-thread.js';
import type { MergeSpec } from '../../src/compaction/merge-tables.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_VALUE } from '../../src/base/internal-key.js';

const SELF = fileURLToPath(import.meta.url);
const HANG_MS = 45_000;
const key = (i: number): string => `k${String(i).padStart(8, '0')}`;

function mergeSpec(dir: string, inputs: { number: number; sizeBytes: number }[]): MergeSpec {
  return {
    dir,
    inputs,
    firstOutputNumber: 100_000,
    outputNumberCount: 1000,
    smallestSnapshot: Number.MAX_SAFE_INTEGER,
    deeperLevels: [],
    blockSizeBytes: 2048,
    bloomBitsPerKey: 10,
    compression: 'lz',
    targetFileBytes: 4 * 1024 * 1024,
  };
}

function memTable(entries: number): MemTable {
  const mem = new MemTable(1, entries * 120);
  for (let i = 0; i < entries; i++) mem.add(i + 1, KIND_VALUE, Buffer.from(key(i)), Buffer.from(`flushed ${i}`.padEnd(60, '*')));
  return mem;
}

function inputsOf(dir: string): { number: number; sizeBytes: number }[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.sst'))
    .map((n) => ({ number: Number(n.slice(0, -4)), sizeBytes: fs.statSync(path.join(dir, n)).size }));
}

// ------------------------------------------------------------------------------------ child side

async function child(mode: string, dir: string): Promise<void> {
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  if (mode === 'long-merge' || mode === 'short-merge') {
    const thread = new CompactionThread();
    const inputs = inputsOf(dir);
    const spec = mergeSpec(dir, mode === 'long-merge' ? inputs : inputs.slice(0, 1));
    // Nothing below is awaited: only the worker's ref can keep this process alive.
    thread.run(spec).then(
      (o) => out(`merge ok ${o.outputs.reduce((n, f) => n + f.entryCount, 0)}`),
      (e: unknown) => out(`merge failed ${String(e)}`),
    );
    const entries = mode === 'long-merge' ? 2000 : 400_000;
    thread.flush({ dir, fileNumber: 90_000, blockSizeBytes: 2048, bloomBitsPerKey: 10, compression: 'lz', sorted: memTable(entries).sortedEntries() }).then(
      (m) => out(`flush ok ${m.entryCount}`),
      (e: unknown) => out(`flush failed ${String(e)}`),
    );
    return;
  }
  const db: Database = await open(dir, {
    compactionThread: 'worker',
    memtableSize: 4 * 1024 * 1024,
    targetFileSize: 1024 * 1024,
    l0CompactionTrigger: 2,
    sync: false,
  });
  if (mode === 'prestarted-idle') {
    // Half a memtable: the worker is prestarted for the coming flush, which never comes.
    for (let b = 0; b < 25; b++) await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key(b * 100 + i), value: 'p'.repeat(1000) })));
    const t = (db as unknown as { sharedThread: { worker: unknown } | null }).sharedThread;
    out(`prestarted ${t !== null && t.worker !== null}`);
    return;
  }
  if (mode === 'db-in-flight') {
    let n = 0;
    for (let b = 0; b < 120; b++) {
      await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: key((b * 7919 + i * 104729) % 1_000_000), value: `${b}`.padEnd(1000, 'x') })));
      n += 100;
    }
    const s = db.stats();
    out(`written ${n} imm ${s.immutableMemtables} compacting ${s.compactions.running}`);
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

const childMode = process.env['SESSION15_CHILD'];
if (childMode !== undefined) {
  child(childMode, process.argv[2] as string).catch((e: unknown) => {
    process.stderr.write(`child failed: ${String((e as Error)?.stack ?? e)}\n`);
    process.exit(2);
  });
}

// ----------------------------------------------------------------------------------- parent side

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  hung: boolean;
}

function runChild(mode: string, dir: string): Promise<ChildResult> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [SELF, dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SESSION15_CHILD: mode } });
    let stdout = '';
    let stderr = '';
    let hung = false;
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      hung = true;
      c.kill('SIGKILL');
    }, HANG_MS);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}

async function makeInputs(dir: string, tables: number, perTable: number): Promise<void> {
  const db = await open(dir, { memtableSize: 64 * 1024 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100, compactionThread: 'main', sync: false });
  for (let t = 0; t < tables; t++) {
    for (let b = 0; b < perTable; b += 1000) {
      await db.batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: key((b + i) * tables + t), value: 'v'.repeat(60) })));
    }
    await db.compactRange(key(999_999_999), key(999_999_999)); // flush only
  }
  await db.close();
}

if (childMode === undefined) {
  for (const mode of ['long-merge', 'short-merge'] as const) {
    test(`a child that posts a merge and a flush and awaits nothing (${mode}): both replies arrive, then it exits by itself`, { timeout: 90_000 }, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-exit-'));
      try {
        await makeInputs(dir, 4, 50_000);
        const r = await runChild(mode, dir);
        assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
        assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
        assert.match(r.stdout, /flush ok (2000|400000)/, `the flush reply never arrived: ${r.stdout}`);
        assert.match(r.stdout, /merge ok \d+/, `the merge reply never arrived (the process exited with the job pending): ${r.stdout}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('a database with a prestarted, idle shared worker that is never closed: the process exits by itself', { timeout: 90_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-exit-'));
    try {
      const r = await runChild('prestarted-idle', dir);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /prestarted true/, 'the worker was prestarted');
      const db = await open(dir, { compactionThread: 'main' });
      let n = 0;
      for await (const _ of db.iterator()) n++;
      assert.equal(n, 2500);
      await db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a database left with flushes and merges in flight, never closed: the process exits by itself and reopens with every write', { timeout: 90_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15-exit-'));
    try {
      const r = await runChild('db-in-flight', dir);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
      const m = /written (\d+)/.exec(r.stdout);
      assert.ok(m !== null, r.stdout);
      const want = new Set<string>();
      for (let b = 0; b < 120; b++) for (let i = 0; i < 100; i++) want.add(key((b * 7919 + i * 104729) % 1_000_000));
      const db = await open(dir, { compactionThread: 'main' });
      let n = 0;
      for await (const [k] of db.iterator()) {
        assert.ok(want.has(k.toString()), `unexpected key ${k.toString()}`);
        n++;
      }
      assert.equal(n, want.size);
      await db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
