/**
 * A large database written with random keys on the real filesystem: L0 stays bounded, levels are
 * near their targets, reads are right, and memory stays within budget however much is written.
 * Size: LARGE_DB_MB (default 48 in `npm test`; `npm run soak` writes 400).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { open } from '../../src/index.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const MiB = 1024 * 1024;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test('large random-key database: bounded L0, level shape, correct reads, bounded memory', { timeout: 600_000 }, async () => {
  await withSeed('large db', async (seed) => {
    const totalMb = Number(process.env['LARGE_DB_MB'] ?? (process.env['SOAK'] === '1' ? 400 : 48));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-large-'));
    const rng = new Random(seed);
    const memtable = 1 * MiB;
    const cache = 4 * MiB;
    const db = await open(dir, {
      memtableSize: memtable,
      blockCacheSize: cache,
      maxOpenFiles: 64,
      levelBaseSize: 4 * MiB,
      targetFileSize: 1 * MiB,
      sync: false,
    });
    try {
      const value = Buffer.alloc(100);
      const sample = new Map<string, number>();
      const entries = Math.floor((totalMb * MiB) / 116);
      let heapBaseline = 0;
      let maxL0 = 0;
      for (let i = 0; i < entries; i += 1000) {
        const ops = [];
        for (let j = i; j < Math.min(entries, i + 1000); j++) {
          const k = String(rng.nextInt(1e9)).padStart(16, '0');
          const v = Buffer.from(value);
          v.writeUInt32LE(j, 0);
          ops.push({ type: 'put' as const, key: k, value: v });
          if (j % 97 === 0) sample.set(k, j);
          else sample.delete(k);
        }
        await db.batch(ops);
        maxL0 = Math.max(maxL0, db.stats().levels[0]!.files);
        if (i === Math.floor(entries / 10 / 1000) * 1000) heapBaseline = heapAfterGc();
      }
      await db.idle();
      const s = db.stats();
      assert.ok(maxL0 <= 12 + 1, `L0 stayed bounded by the stop trigger (max ${maxL0})`);
      assert.ok(s.compactions.count > 0);
      for (let level = 1; level < 6; level++) {
        const l = s.levels[level]!;
        const target = 4 * MiB * 10 ** (level - 1);
        // Once background work is idle every level's score is below 1 (size <= target).
        assert.ok(l.bytes <= target, `L${level} ${l.bytes} bytes within its target ${target}`);
      }
      for (const [k, j] of sample) assert.equal(db.getSync(k)?.readUInt32LE(0), j, `sampled key ${k}`);
      const heapGrowth = heapAfterGc() - heapBaseline;
      const budget = 2 * memtable + cache + 16 * MiB; // memtables + cache + table metadata
      assert.ok(heapGrowth < budget, `heap grew ${(heapGrowth / MiB).toFixed(1)} MiB after the first 10% (budget ${budget / MiB} MiB)`);
      assert.ok(s.blockCache !== null && s.blockCache.usedBytes <= cache);
      assert.ok(s.tableCache.open <= 64);
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
