/**
 * Review: a randomized model test mixing everything the performance changes touched, on MemFs
 * (main-thread merges, which yield to the event loop mid-merge):
 *   - keys of odd lengths, keys differing only in their last 1-3 bytes, prefixes of each other,
 *     bytes >= 0x80, keys longer than 256 bytes sharing long prefixes, occasional 64 KiB keys;
 *   - values larger than a block-cache slot, empty values;
 *   - iterators (forward/reverse, gt/gte/lt/lte/prefix/limit, on the DB or on a snapshot) held
 *     open and stepped in a random interleaving with writes, point reads, other iterators and
 *     compactRange;
 *   - snapshots with deletes (tombstones that must not be dropped while a snapshot sees older data);
 *   - reopen cycles with different blockSize, tiny blockCacheSize, compression, maxOpenFiles 16.
 * Every read is checked against a Map model (and per-snapshot copies of it).
 */
import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { open, type Database, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { hex, modelScan, type ModelRange, type ModelState } from '../harness/model.js';

const RUNS = Number(process.env['REVIEW_RUNS'] ?? '3');
const OPS = Number(process.env['REVIEW_OPS'] ?? '1500');
const DISK_RUNS = Number(process.env['REVIEW_DISK_RUNS'] ?? '1');

class KeyGen {
  private readonly pool: Buffer[] = [];
  constructor(private readonly rng: Random, private readonly allowHuge: boolean) {}

  private byte(): number {
    const r = this.rng.nextInt(8);
    if (r === 0) return 0x00;
    if (r === 1) return 0xff;
    if (r === 2) return 0x80 + this.rng.nextInt(4);
    if (r === 3) return 0x7f;
    return 0x61 + this.rng.nextInt(4);
  }

  private fresh(): Buffer {
    const r = this.rng.nextInt(100);
    let len: number;
    if (r < 70) len = 1 + this.rng.nextInt(12);
    else if (r < 97) len = 250 + this.rng.nextInt(400); // beyond the 256-byte probe and the 64-byte key buffers
    else if (this.allowHuge && r < 98) len = 64 * 1024 - this.rng.nextInt(3); // the key limit
    else len = 13 + this.rng.nextInt(60);
    const b = Buffer.alloc(len);
    // long keys share a long common prefix, so comparisons reach the tail
    const shared = len > 64 ? len - 1 - this.rng.nextInt(6) : 0;
    for (let i = 0; i < len; i++) b[i] = i < shared ? 0x6b : this.byte();
    return b;
  }

  next(): Buffer {
    if (this.pool.length > 0 && this.rng.nextInt(3) !== 0) {
      const base = this.pool[this.rng.nextInt(this.pool.length)] as Buffer;
      const r = this.rng.nextInt(6);
      if (r === 0) return base;
      if (r === 1 && base.length > 1) return base.subarray(0, base.length - 1 - this.rng.nextInt(Math.min(3, base.length - 1)));
      if (r === 2 && base.length < 64 * 1024) {
        const extra = Buffer.alloc(1 + this.rng.nextInt(Math.min(3, 64 * 1024 - base.length)));
        for (let i = 0; i < extra.length; i++) extra[i] = this.byte();
        return this.remember(Buffer.concat([base, extra]));
      }
      const c = Buffer.from(base);
      const at = c.length - 1 - this.rng.nextInt(Math.min(3, c.length));
      c[at] = this.byte();
      return this.remember(c);
    }
    return this.remember(this.fresh());
  }

  private remember(k: Buffer): Buffer {
    if (this.pool.length < 400) this.pool.push(k);
    else this.pool[this.rng.nextInt(this.pool.length)] = k;
    return k;
  }
}

function value(rng: Random, i: number): Buffer {
  const r = rng.nextInt(40);
  let len: number;
  if (r === 0) len = 0;
  else if (r === 1) len = 5000 + rng.nextInt(20000); // bigger than a slot of any block size used
  else len = rng.nextInt(60);
  const b = Buffer.alloc(len);
  const tag = Buffer.from(`v${i}:`);
  tag.copy(b, 0, 0, Math.min(tag.length, len));
  for (let j = tag.length; j < len; j++) b[j] = (i * 31 + j) & 0xff;
  return b;
}

interface OpenIter {
  it: Iterator<[Buffer, Buffer]>;
  close(): void;
  expected: [string, string][];
  at: number;
  what: string;
}

interface Snap {
  snap: Snapshot;
  state: ModelState;
}

function randomRange(rng: Random, keys: KeyGen): ModelRange {
  const r: ModelRange = {};
  const lo = rng.nextInt(3);
  if (lo === 1) r.gte = keys.next();
  else if (lo === 2) r.gt = keys.next();
  const hi = rng.nextInt(3);
  if (hi === 1) r.lte = keys.next();
  else if (hi === 2) r.lt = keys.next();
  if (rng.nextInt(4) === 0) {
    const k = keys.next();
    r.prefix = k.subarray(0, 1 + rng.nextInt(Math.min(k.length, 3)));
  }
  if (rng.nextInt(2) === 0) r.reverse = true;
  if (rng.nextInt(5) === 0) r.limit = rng.nextInt(20);
  return r;
}

function describeRange(r: ModelRange): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(r)) parts.push(`${k}=${Buffer.isBuffer(v) ? `${v.length}B:${v.subarray(0, 8).toString('hex')}` : String(v)}`);
  return parts.join(',');
}

async function oneRun(seed: number, varyShape: boolean, onDisk: boolean): Promise<void> {
  const rng = new Random(seed);
  // MemFs: main-thread merges that yield mid-merge. On disk: merges in the worker thread.
  const dir = onDisk ? fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review-model-')) : '/db';
  const fsOpt = onDisk ? { compactionThread: 'worker' as const } : { fs: new MemFs() };
  const keys = new KeyGen(rng, true);
  const model: ModelState = new Map();
  // Table-shaping options: fixed for the run, or (varyShape) drawn again at every reopen —
  // compaction outputs then differ in size from their inputs (see output-numbers-reopen.test.ts).
  const newShape = (): { blockSize: number; compression: 'lz' | 'none'; targetFileSize: number; bloomBitsPerKey: number } => ({
    blockSize: [64, 128, 256, 1024, 4096][rng.nextInt(5)] as number,
    compression: rng.nextInt(2) === 0 ? 'lz' : 'none',
    targetFileSize: 1024 + rng.nextInt(32 * 1024),
    bloomBitsPerKey: [0, 10, 30][rng.nextInt(3)] as number,
  });
  const shape = newShape();
  const optsFor = (): Parameters<typeof open>[1] => ({
    ...fsOpt,
    sync: false,
    ...(varyShape ? newShape() : shape),
    memtableSize: 4096 + rng.nextInt(60_000),
    blockCacheSize: [0, 1, 100, 1000, 5000, 10_000, 64 * 1024][rng.nextInt(7)] as number,
    maxOpenFiles: 16,
    levelBaseSize: 4096 + rng.nextInt(64 * 1024),
    levelMultiplier: 2 + rng.nextInt(3),
    l0CompactionTrigger: 1 + rng.nextInt(2),
  });
  let db: Database = await open(dir, optsFor());
  let iters: OpenIter[] = [];
  let snaps: Snap[] = [];
  const log: string[] = [];
  const closeAll = (): void => {
    for (const i of iters) i.close();
    iters = [];
    for (const s of snaps) s.snap.release();
    snaps = [];
  };
  try {
    for (let i = 0; i < OPS; i++) {
      const r = rng.nextInt(100);
      if (r < 40) {
        const k = keys.next();
        const v = value(rng, i);
        await db.put(k, v);
        model.set(hex(k), hex(v));
      } else if (r < 52) {
        const k = keys.next();
        await db.delete(k);
        model.delete(hex(k));
      } else if (r < 56) {
        const ops = [];
        for (let j = 0; j < 1 + rng.nextInt(30); j++) {
          const k = keys.next();
          if (rng.nextInt(4) === 0) {
            ops.push({ type: 'del' as const, key: k });
          } else {
            ops.push({ type: 'put' as const, key: k, value: value(rng, i) });
          }
        }
        await db.batch(ops);
        for (const o of ops) {
          if (o.type === 'del') model.delete(hex(o.key));
          else model.set(hex(o.key), hex(o.value));
        }
      } else if (r < 68) {
        // point read, on the DB or a snapshot
        const k = keys.next();
        if (snaps.length > 0 && rng.nextInt(2) === 0) {
          const s = snaps[rng.nextInt(snaps.length)] as Snap;
          const got = s.snap.getSync(k);
          assert.equal(got === undefined ? undefined : hex(got), s.state.get(hex(k)), `snapshot getSync ${k.length}B ${k.subarray(0, 16).toString('hex')} op ${i}`);
        } else {
          const got = rng.nextInt(2) === 0 ? db.getSync(k) : await db.get(k);
          assert.equal(got === undefined ? undefined : hex(got), model.get(hex(k)), `getSync ${k.length}B ${k.subarray(0, 16).toString('hex')} op ${i}`);
        }
      } else if (r < 73) {
        if (iters.length < 6) {
          const range = randomRange(rng, keys);
          const onSnap = snaps.length > 0 && rng.nextInt(2) === 0 ? (snaps[rng.nextInt(snaps.length)] as Snap) : null;
          const state = onSnap === null ? model : onSnap.state;
          const li = (onSnap === null ? db : onSnap.snap).iterator(range as never);
          const it = li[Symbol.iterator]();
          iters.push({ it, close: () => li.close(), expected: modelScan(state, range), at: 0, what: `${onSnap === null ? 'db' : 'snap'} ${describeRange(range)} op ${i}` });
        }
      } else if (r < 88) {
        if (iters.length > 0) {
          const idx = rng.nextInt(iters.length);
          const c = iters[idx] as OpenIter;
          const steps = 1 + rng.nextInt(8);
          for (let s = 0; s < steps; s++) {
            const n = c.it.next();
            if (n.done === true) {
              assert.equal(c.at, c.expected.length, `iterator ${c.what} ended early at ${c.at}/${c.expected.length}`);
              iters.splice(idx, 1);
              break;
            }
            const exp = c.expected[c.at];
            assert.ok(exp !== undefined, `iterator ${c.what} returned more than ${c.expected.length}`);
            assert.deepEqual([hex(n.value[0]), hex(n.value[1])], exp, `iterator ${c.what} entry ${c.at}`);
            c.at++;
          }
          if (rng.nextInt(10) === 0 && iters.includes(c)) {
            c.close();
            iters.splice(iters.indexOf(c), 1);
          }
        }
      } else if (r < 92) {
        if (rng.nextInt(2) === 0 && snaps.length < 4) {
          snaps.push({ snap: db.snapshot(), state: new Map(model) });
        } else if (snaps.length > 0) {
          const s = snaps.splice(rng.nextInt(snaps.length), 1)[0] as Snap;
          s.snap.release();
        }
      } else if (r < 96) {
        const lo = rng.nextInt(3) === 0 ? undefined : keys.next();
        const hi = rng.nextInt(3) === 0 ? undefined : keys.next();
        log.push(`op ${i}: compactRange`);
        if (rng.nextInt(2) === 0) await db.compactRange(lo, hi);
        else void db.compactRange(lo, hi).catch((e: unknown) => log.push(`compactRange failed: ${String(e)}`));
      } else if (r < 98) {
        await db.idle();
      } else {
        log.push(`op ${i}: reopen`);
        closeAll();
        await db.close();
        db = await open(dir, optsFor());
      }
    }
    // Final full check, both directions, after everything settles.
    await db.idle();
    const all = modelScan(model, {});
    const fwd: [string, string][] = [];
    for (const [k, v] of db.iterator()) fwd.push([hex(k), hex(v)]);
    assert.deepEqual(fwd, all, 'final forward scan');
    const rev: [string, string][] = [];
    for (const [k, v] of db.iterator({ reverse: true })) rev.push([hex(k), hex(v)]);
    assert.deepEqual(rev, [...all].reverse(), 'final reverse scan');
    for (const [k, v] of model) assert.equal(db.getSync(Buffer.from(k, 'hex'))?.toString('hex'), v, `final get ${k.slice(0, 32)}`);
    assert.equal(db.stats().backgroundError, null, 'no background error');
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstats: ${JSON.stringify(db.stats().levels)}\n${log.slice(-10).join('\n')}`, { cause: e });
  } finally {
    closeAll();
    await db.close().catch(() => {});
    if (onDisk) fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('mixed model: odd keys, big values, interleaved iterators, snapshots, reopen with other options', async () => {
  await withSeed('mixed model', async (seed) => {
    for (let run = 0; run < RUNS; run++) await oneRun(seed + run, run % 2 === 1, false);
  });
});

test('mixed model on disk with worker merges', async () => {
  await withSeed('mixed model on disk', async (seed) => {
    for (let run = 0; run < DISK_RUNS; run++) await oneRun(seed + 7919 * (run + 1), run % 2 === 0, true);
  });
});
