/**
 * Reviewer tests (session 15c): process lifetime with the aside (subcompaction) worker. In a
 * child process (this file run with SESSION15C_CHILD set) that never closes its database:
 *   - after split merges, with the aside worker started and now idle: the process exits by itself;
 *   - with a split merge in flight (compactRange() not awaited): the process stays alive until
 *     it ends, exits by itself, and the directory reopens with every acknowledged write.
 * A hang is the parent's safety timeout killing the child (a failure), not a timing assertion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, type OpenOptions } from '../../src/index.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';

const SELF = fileURLToPath(import.meta.url);
const HANG_MS = 45_000;
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;

const SHAPE: OpenOptions = {
  memtableSize: 256 * 1024,
  blockSize: 1024,
  levelBaseSize: 64 * 1024 * 1024,
  targetFileSize: 64 * 1024,
  l0CompactionTrigger: 100,
  l0SlowdownTrigger: 200,
  l0StopTrigger: 300,
  subcompactionMinSize: 128 * 1024,
  compactionThread: 'worker',
  sync: false,
};

const value = (round: number, i: number): string => `${round}:${i}`.padEnd(100, 'x');

async function child(mode: string, dir: string): Promise<void> {
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  const db = await open(dir, SHAPE);
  for (let round = 0; round < 4; round++) {
    for (let b = 0; b < 20_000; b += 1000) {
      await db.batch(Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: key(((b + i) * 7919) % 20_000), value: value(round, b + i) })));
    }
    if (round === 0) await db.compactRange(); // L1 of many files
    else await db.compactRange(key(99_999_999), key(99_999_999)); // flush only
  }
  const h = db as unknown as { mergeAside(s: MergeSpec): Promise<MergeOutcome>; asideThread: { worker: unknown } | null };
  const aside = h.mergeAside.bind(db);
  let asideRan = 0;
  h.mergeAside = (s) => {
    asideRan++;
    return aside(s).then((o) => {
      out(`aside done ${o.outputs.length}`);
      return o;
    });
  };
  if (mode === 'idle-aside') {
    await db.compactRange();
    const s = db.stats().compactions;
    out(`split ${s.splitCompactions} aside ${asideRan} worker ${h.asideThread !== null && h.asideThread.worker !== null}`);
    return; // never closed; the aside worker is idle
  }
  if (mode === 'in-flight') {
    // Written, durable once the merge or the WAL says so: the last batch is synced.
    await db.batch([{ type: 'put', key: 'zz-last', value: 'synced' }], { sync: true });
    db.compactRange().then(
      () => out(`compactRange ok split ${db.stats().compactions.splitCompactions}`),
      (e: unknown) => out(`compactRange failed ${String(e)}`),
    );
    out('returned');
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

const childMode = process.env['SESSION15C_CHILD'];
if (childMode !== undefined) {
  child(childMode, process.argv[2] as string).catch((e: unknown) => {
    process.stderr.write(`child failed: ${String((e as Error)?.stack ?? e)}\n`);
    process.exit(2);
  });
}

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  hung: boolean;
}

function runChild(mode: string, dir: string): Promise<ChildResult> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [SELF, dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SESSION15C_CHILD: mode } });
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

async function checkReopen(dir: string, withLast: boolean): Promise<void> {
  const db = await open(dir, { ...SHAPE, compactionThread: 'main' });
  let n = 0;
  for await (const [k, v] of db.iterator()) {
    if (k.toString() === 'zz-last') {
      assert.equal(v.toString(), 'synced');
      continue;
    }
    n++;
    const i = Number(k.toString().slice(1));
    // Round 3 wrote every key last.
    assert.equal(v.toString().split(':')[0], '3', `key ${k} holds ${v.toString().slice(0, 12)}`);
    assert.ok(i >= 0 && i < 20_000);
  }
  assert.equal(n, 20_000);
  if (withLast) assert.equal(db.getSync('zz-last')?.toString(), 'synced');
  assert.equal(db.stats().recovery.orphansRemoved, 0, 'orphans at reopen');
  await db.close();
}

if (childMode === undefined) {
  test('a database whose aside worker is idle, never closed: the process exits by itself', { timeout: 90_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-exit-'));
    try {
      const r = await runChild('idle-aside', dir);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
      const m = /split (\d+) aside (\d+) worker (true|false)/.exec(r.stdout);
      assert.ok(m !== null, r.stdout);
      assert.ok(Number(m[1]) >= 1 && Number(m[2]) >= 1, `no split merge ran: ${r.stdout}`);
      await checkReopen(dir, false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a split merge in flight, database never closed: the process waits for it, exits by itself, reopens intact', { timeout: 90_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-exit-'));
    try {
      const r = await runChild('in-flight', dir);
      assert.equal(r.hung, false, `child did not exit: stdout=${r.stdout} stderr=${r.stderr}`);
      assert.equal(r.code, 0, `exit code ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /returned/);
      assert.match(r.stdout, /aside done \d+/, `the aside half never finished: ${r.stdout}`);
      assert.match(r.stdout, /compactRange ok split [1-9]/, `the split merge did not complete before exit: ${r.stdout}`);
      await checkReopen(dir, true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
