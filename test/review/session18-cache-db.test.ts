/**
 * Review (session 18): whole-database model test for the typed-array block cache, through the
 * public API on MemFs, with invariants on (the cache's whole-structure checks run on every insert
 * and evictFile). Small blockSize and tiny to moderate blockCacheSize (a few slots, values larger
 * than a slot, blocks larger than the whole budget), random puts / deletes / batches / getSync /
 * get / iterators (ranged, reverse, held open across writes) / compactRange (tables deleted:
 * evictFile) / idle, and reopen cycles. Two databases are open at once in the same thread, with
 * operations interleaved, and are closed and reopened independently (a closed database's cache
 * slabs may be reused by the next one opened). Every read is checked against a Map model.
 * Replay one seed with SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, MemFs, type Database } from '../../src/index.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { hex, modelScan, type ModelRange, type ModelState } from '../harness/model.js';
import { seeds } from './session18-cache-helper.js';

interface Held {
  it: Iterator<[Buffer, Buffer]>;
  close(): void;
  expected: [string, string][];
  at: number;
  what: string;
}

interface Inst {
  name: string;
  fs: MemFs;
  db: Database;
  model: ModelState;
  iters: Held[];
  opts: Parameters<typeof open>[1];
}

function keyOf(rng: Random, hot = false): Buffer {
  const i = hot ? rng.nextInt(40) * 15 : rng.nextInt(600);
  const k = `k${String(i).padStart(5, '0')}`;
  return Buffer.from(rng.nextInt(8) === 0 ? `${k}:${'x'.repeat(rng.nextInt(40))}` : k);
}

function valueOf(rng: Random, op: number): Buffer {
  const r = rng.nextInt(30);
  const len = r === 0 ? 0 : r === 1 ? 2000 + rng.nextInt(6000) : r < 4 ? 200 + rng.nextInt(400) : rng.nextInt(40);
  const b = Buffer.allocUnsafe(len);
  const tag = rng.nextUint32();
  for (let i = 0; i < len; i++) b[i] = (tag + i * 13 + op) & 0xff;
  if (len >= 4) b.writeUInt32BE(op, 0);
  return b;
}

function optsFor(rng: Random, fs: MemFs): Parameters<typeof open>[1] {
  return {
    fs,
    sync: false,
    blockSize: [64, 64, 128, 256, 1024][rng.nextInt(5)] as number,
    blockCacheSize: [1, 300, 3000, 10_000, 20_000, 64 * 1024, 256 * 1024][rng.nextInt(7)] as number,
    compression: rng.nextInt(2) === 0 ? 'lz' : 'none',
    memtableSize: 2048 + rng.nextInt(16_000),
    targetFileSize: 2048 + rng.nextInt(16_000),
    levelBaseSize: 4096 + rng.nextInt(32_000),
    levelMultiplier: 2 + rng.nextInt(3),
    l0CompactionTrigger: 1 + rng.nextInt(3),
    maxOpenFiles: 16,
    bloomBitsPerKey: [0, 10][rng.nextInt(2)] as number,
  };
}

function randomRange(rng: Random): ModelRange {
  const r: ModelRange = {};
  if (rng.nextInt(2) === 0) r.gte = keyOf(rng);
  if (rng.nextInt(2) === 0) r.lt = keyOf(rng);
  if (rng.nextInt(2) === 0) r.reverse = true;
  if (rng.nextInt(4) === 0) r.limit = rng.nextInt(50);
  return r;
}

async function oneRun(seed: number, ops: number): Promise<void> {
  const rng = new Random(seed);
  const insts: Inst[] = [];
  for (const name of ['A', 'B']) {
    const fs = new MemFs();
    const opts = optsFor(rng, fs);
    insts.push({ name, fs, db: await open('/db', opts), model: new Map(), iters: [], opts });
  }
  const log: string[] = [];
  let op = 0;
  try {
    for (op = 0; op < ops; op++) {
      const inst = insts[rng.nextInt(insts.length)] as Inst;
      const { db, model } = inst;
      const r = rng.nextInt(100);
      if (r < 30) {
        const k = keyOf(rng);
        const v = valueOf(rng, op);
        await db.put(k, v);
        model.set(hex(k), hex(v));
      } else if (r < 36) {
        const k = keyOf(rng);
        await db.delete(k);
        model.delete(hex(k));
      } else if (r < 38) {
        const batch = [];
        for (let j = 0; j < 1 + rng.nextInt(20); j++) {
          const k = keyOf(rng);
          batch.push(rng.nextInt(4) === 0 ? { type: 'del' as const, key: k } : { type: 'put' as const, key: k, value: valueOf(rng, op) });
        }
        await db.batch(batch);
        for (const b of batch) {
          if (b.type === 'del') model.delete(hex(b.key));
          else model.set(hex(b.key), hex(b.value));
        }
      } else if (r < 70) {
        // Bursts of point reads: a hit's bytes must be the block cached at the key, not a block
        // that reused its slot or index entry.
        const n = 1 + rng.nextInt(10);
        for (let j = 0; j < n; j++) {
          const k = keyOf(rng, rng.nextInt(2) === 0);
          const got = rng.nextInt(3) === 0 ? await db.get(k) : db.getSync(k);
          assert.equal(got === undefined ? undefined : hex(got), model.get(hex(k)), `${inst.name} get ${k.toString()} at op ${op}`);
        }
      } else if (r < 75) {
        if (inst.iters.length < 4) {
          const range = randomRange(rng);
          const li = db.iterator(range as never);
          inst.iters.push({ it: li[Symbol.iterator](), close: () => li.close(), expected: modelScan(model, range), at: 0, what: `${inst.name} iterator ${JSON.stringify({ ...range, gte: range.gte?.toString(), lt: range.lt?.toString() })} from op ${op}` });
        }
      } else if (r < 88) {
        if (inst.iters.length > 0) {
          const idx = rng.nextInt(inst.iters.length);
          const c = inst.iters[idx] as Held;
          for (let s = 0; s < 1 + rng.nextInt(20); s++) {
            const n = c.it.next();
            if (n.done === true) {
              assert.equal(c.at, c.expected.length, `${c.what} ended early at ${c.at}/${c.expected.length}`);
              inst.iters.splice(idx, 1);
              break;
            }
            assert.deepEqual([hex(n.value[0]), hex(n.value[1])], c.expected[c.at], `${c.what} entry ${c.at}`);
            c.at++;
          }
        }
      } else if (r < 93) {
        log.push(`op ${op}: ${inst.name} compactRange`);
        await db.compactRange();
      } else if (r < 97) {
        await db.idle();
      } else {
        log.push(`op ${op}: ${inst.name} reopen`);
        for (const h of inst.iters) h.close();
        inst.iters = [];
        await db.close();
        inst.opts = optsFor(rng, inst.fs);
        inst.db = await open('/db', inst.opts);
      }
    }
    for (const inst of insts) {
      for (const h of inst.iters) h.close();
      inst.iters = [];
      await inst.db.idle();
      const all = modelScan(inst.model, {});
      const fwd: [string, string][] = [];
      for (const [k, v] of inst.db.iterator()) fwd.push([hex(k), hex(v)]);
      assert.deepEqual(fwd, all, `${inst.name} final forward scan`);
      for (const [k, v] of inst.model) assert.equal(inst.db.getSync(Buffer.from(k, 'hex'))?.toString('hex'), v, `${inst.name} final get`);
      // Read everything twice more: the second pass hits the cache.
      for (const [k, v] of inst.model) assert.equal(inst.db.getSync(Buffer.from(k, 'hex'))?.toString('hex'), v, `${inst.name} final get (cached)`);
      assert.equal(inst.db.stats().backgroundError, null, 'no background error');
      if (process.env['REVIEW_VERBOSE'] === '1') console.log(seed, inst.name, JSON.stringify(inst.db.stats().blockCache), JSON.stringify(inst.db.stats().levels.map((l) => l.files)));
    }
  } catch (e) {
    const msg = e instanceof Error ? e.stack ?? e.message : String(e);
    const opts = insts.map((i) => `${i.name}: ${JSON.stringify({ ...i.opts, fs: undefined })}`).join('\n');
    throw new Error(`db model failed: SEED=${seed} at op ${op}\n${opts}\n${log.slice(-8).join('\n')}\n${msg}`, { cause: e });
  } finally {
    for (const inst of insts) {
      for (const h of inst.iters) h.close();
      await inst.db.close().catch(() => {});
    }
  }
}

test('db model: two databases, small blocks and caches, reads vs a Map model, invariants on', async () => {
  const saved = invariants.enabled;
  invariants.enabled = true;
  try {
    for (const seed of seeds([0x18c2_0001, 0x18c2_0002, 0x18c2_0003, 0x18c2_0004, 0x18c2_0005, 0x18c2_0006, 0x18c2_0007, 0x18c2_0008])) await oneRun(seed, 2500);
  } finally {
    invariants.enabled = saved;
  }
});
