/**
 * Reviewer tests (session 15c): SIGKILL of a process whose database runs split merges in two
 * workers (node:fs). The child (this file with SESSION15C_KILL set) writes seeded durable batches
 * one after another, printing "ack <b>" after each, while background compactions split merges
 * (tiny subcompactionMinSize). The parent kills it once it acknowledged a random number of
 * batches after at least one split merge, reopens, and checks: the contents are exactly the
 * model after some batch >= the last acknowledged one (batches are atomic and ordered), levels
 * are disjoint, no table is left unreferenced once open. Three rounds on one directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, type Database, type OpenOptions } from '../../src/index.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const SELF = fileURLToPath(import.meta.url);

const SHAPE: OpenOptions = {
  memtableSize: 32 * 1024,
  blockSize: 1024,
  levelBaseSize: 128 * 1024,
  levelMultiplier: 4,
  targetFileSize: 16 * 1024,
  l0CompactionTrigger: 3,
  subcompactionMinSize: 16 * 1024,
  compactionThread: 'worker',
};

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/** Batch `b` of round `round` (deterministic from the seed). */
function batchOf(seed: number, round: number, b: number): Op[] {
  const rng = new Random((seed ^ (round * 0x9e3779b1) ^ (b * 0x85ebca6b)) >>> 0);
  const ops: Op[] = [];
  for (let i = 0; i < 120; i++) {
    const k = key(rng.nextInt(6000));
    if (rng.nextInt(7) === 0) ops.push({ type: 'del', key: k });
    else ops.push({ type: 'put', key: k, value: `${round}.${b}.${i}`.padEnd(30 + rng.nextInt(90), 'y') });
  }
  return ops;
}

async function child(dir: string, seed: number, round: number, start: number): Promise<void> {
  const db = await open(dir, SHAPE);
  let splits = db.stats().compactions.splitCompactions;
  process.stdout.write(`ready\n`);
  for (let b = start; ; b++) {
    await db.batch(batchOf(seed, round, b), { sync: true });
    process.stdout.write(`ack ${b}\n`);
    const s = db.stats().compactions.splitCompactions;
    if (s !== splits) {
      splits = s;
      process.stdout.write(`split ${s}\n`);
    }
  }
}

const kill = process.env['SESSION15C_KILL'];
if (kill !== undefined) {
  const [seed, round] = kill.split(',').map(Number) as [number, number];
  child(process.argv[2] as string, seed, round, 0).catch((e: unknown) => {
    process.stderr.write(`child failed: ${String((e as Error)?.stack ?? e)}\n`);
    process.exit(2);
  });
}

function runAndKill(dir: string, seed: number, round: number, acksAfterSplit: number): Promise<{ lastAck: number; splits: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [SELF, dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SESSION15C_KILL: `${seed},${round}` } });
    let lastAck = -1;
    let splits = 0;
    let acksSinceSplit = 0;
    let buf = '';
    let stderr = '';
    let killed = false;
    const safety = setTimeout(() => {
      killed = true;
      c.kill('SIGKILL');
    }, 45_000);
    c.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('ack ')) {
          lastAck = Number(line.slice(4));
          if (splits > 0) acksSinceSplit++;
        } else if (line.startsWith('split ')) splits = Number(line.slice(6));
      }
      if (!killed && splits > 0 && acksSinceSplit >= acksAfterSplit) {
        killed = true;
        c.kill('SIGKILL');
      }
    });
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', reject);
    c.on('exit', (code, signal) => {
      clearTimeout(safety);
      if (signal === 'SIGKILL') resolve({ lastAck, splits });
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}

function assertLevelsDisjoint(db: Database, what: string): void {
  const version = (db as unknown as { versions: { current(): { files(level: number): readonly FileMetadata[] } } }).versions.current();
  for (let level = 1; level < 7; level++) {
    const files = version.files(level);
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1] as FileMetadata;
      const cur = files[i] as FileMetadata;
      const a = prev.largest.subarray(0, prev.largest.length - TRAILER_BYTES);
      const b = cur.smallest.subarray(0, cur.smallest.length - TRAILER_BYTES);
      assert.ok(Buffer.compare(a, b) < 0, `${what}: L${level} files ${prev.number} and ${cur.number} overlap`);
    }
  }
}

if (kill === undefined) {
  test('SIGKILL while split merges run in two workers loses no acknowledged batch', { timeout: 150_000 }, async (t) => {
    await withSeed('session15c kill', async (seed) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-rev15c-kill-'));
      const rng = new Random(seed);
      try {
        const model = new Map<string, string>();
        for (let round = 0; round < 3; round++) {
          const { lastAck, splits } = await runAndKill(dir, seed, round, 1 + rng.nextInt(40));
          t.diagnostic(`round ${round}: killed after ack ${lastAck}, ${splits} split merges`);
          assert.ok(splits > 0, 'the child ran split merges before the kill');
          const db = await open(dir, { ...SHAPE, compactionThread: 'main' });
          // Checked before anything else runs: the reads below let the event loop turn (ReadPacer),
          // and a compaction started at open then writes outputs not yet in the version.
          const live = (db as unknown as { versions: { liveFileNumbers(): Set<number> } }).versions.liveFileNumbers();
          const stray = fs
            .readdirSync(dir)
            .filter((n) => n.endsWith('.sst'))
            .map((n) => Number(n.slice(0, -4)))
            .filter((n) => !live.has(n));
          assert.deepEqual(stray, [], `round ${round}: unreferenced tables after reopen`);
          const got = new Map<string, string>();
          for await (const [k, v] of db.iterator()) got.set(k.toString(), v.toString());
          // The state is the model after batch j, for some j >= lastAck (the child may have gone on
          // for a few batches before the kill landed; those were unacknowledged to us).
          const m = new Map(model);
          for (let b = 0; b <= lastAck; b++) for (const o of batchOf(seed, round, b)) o.type === 'del' ? m.delete(o.key) : m.set(o.key, o.value);
          let matched = false;
          for (let extra = 0; extra <= 200 && !matched; extra++) {
            if (extra > 0) for (const o of batchOf(seed, round, lastAck + extra)) o.type === 'del' ? m.delete(o.key) : m.set(o.key, o.value);
            if (got.size === m.size && [...m].every(([k, v]) => got.get(k) === v)) {
              matched = true;
              model.clear();
              for (const [k, v] of m) model.set(k, v);
            }
          }
          assert.ok(matched, `round ${round}: reopened contents are not the model after any batch >= ${lastAck}`);
          assertLevelsDisjoint(db, `round ${round}`);
          await db.compactRange();
          assertLevelsDisjoint(db, `round ${round} recompacted`);
          await db.close();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
