/**
 * Real process kill: a child writes durable puts and reports each acknowledgement; the parent
 * SIGKILLs it at a random moment, reopens the directory (the dead child's LOCK must not block
 * it) and checks that every acknowledged key is there with its value and that the keys present
 * are a prefix of the write order. Three rounds on the same directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'kill-child.js');

/** Runs the child until it has acknowledged `acks` writes, then SIGKILLs it. Returns acked keys. */
function runAndKill(dir: string, acks: number, syncMode: 'pool' | 'inline'): Promise<Set<number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, syncMode], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Set<number>();
    let buf = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('ack ')) acked.add(Number(line.slice(4)));
      }
      if (!killed && acked.size >= acks) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}

for (const syncMode of ['pool', 'inline'] as const) test(`SIGKILL during durable writes loses no acknowledged write (fdatasync: ${syncMode})`, { timeout: 120_000 }, async () => {
  await withSeed(`kill test, ${syncMode}`, async (seed) => {
    const rng = new Random(seed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-kill-'));
    try {
      const allAcked = new Set<number>();
      for (let round = 0; round < 3; round++) {
        const acked = await runAndKill(dir, 200 + rng.nextInt(1500), syncMode);
        for (const n of acked) allAcked.add(n);
        const db = await open(dir);
        const present: number[] = [];
        for await (const [k, v] of db.iterator()) {
          const n = Number(k.toString().slice(4));
          assert.equal(v.toString(), `value-${n}-${'p'.repeat(n % 200)}`, `value of ${k.toString()}`);
          present.push(n);
        }
        const presentSet = new Set(present);
        for (const n of allAcked) assert.ok(presentSet.has(n), `acknowledged key ${n} lost after kill in round ${round}`);
        // Prefix: writes are committed in key order (each group of 4 is enqueued in order), so the
        // keys present must be exactly 0..max with no gap.
        const max = Math.max(...present);
        for (let n = 0; n <= max; n++) assert.ok(presentSet.has(n), `gap at ${n} (max ${max}) in round ${round}`);
        // The next round's child rewrites the same keys with the same values over this data.
        await db.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
