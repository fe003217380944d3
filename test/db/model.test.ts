/**
 * Model-based test: random histories of put / delete / batch / get / scan / snapshot / reopen run
 * against the database and against a Map, on MemFs and on the real filesystem, with a tiny memtable
 * and tiny blocks so that flushes and multi-block tables happen constantly. Every read must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { open, type OpenOptions, type Snapshot } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { hex, modelScan, type ModelRange, type ModelState } from '../harness/model.js';
import { numRuns, testSeed } from '../harness/seed.js';

type Op =
  | { t: 'put'; key: Buffer; value: Buffer; sync: boolean }
  | { t: 'del'; key: Buffer }
  | { t: 'batch'; ops: { put: boolean; key: Buffer; value: Buffer }[] }
  | { t: 'get'; key: Buffer }
  | { t: 'scan'; range: ModelRange }
  | { t: 'snap' }
  | { t: 'snapCheck'; which: number; key: Buffer }
  | { t: 'snapScan'; which: number; range: ModelRange }
  | { t: 'reopen' }
  | { t: 'compact'; start: Buffer | undefined; end: Buffer | undefined };

const keyArb = fc
  .array(fc.constantFrom(0x00, 0x61, 0x62, 0x63, 0xff), { minLength: 1, maxLength: 4 })
  .map((a) => Buffer.from(a));
const valueArb = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.integer({ min: 100, max: 600 }).map((n) => Buffer.alloc(n, n & 0xff)),
);
const rangeArb: fc.Arbitrary<ModelRange> = fc.record(
  {
    gte: keyArb,
    gt: keyArb,
    lte: keyArb,
    lt: keyArb,
    prefix: keyArb.map((k) => k.subarray(0, 1)),
    reverse: fc.boolean(),
    limit: fc.integer({ min: 0, max: 20 }),
  },
  { requiredKeys: [] },
).map((r) => {
  const out: ModelRange = { ...r };
  if (out.gt !== undefined && out.gte !== undefined) delete out.gt;
  if (out.lt !== undefined && out.lte !== undefined) delete out.lt;
  return out;
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('put' as const), key: keyArb, value: valueArb, sync: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('del' as const), key: keyArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      ops: fc.array(fc.record({ put: fc.boolean(), key: keyArb, value: valueArb }), { maxLength: 12 }),
    }),
  },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('get' as const), key: keyArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('scan' as const), range: rangeArb }) },
  { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('snapCheck' as const), which: fc.nat(), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('snapScan' as const), which: fc.nat(), range: rangeArb }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('compact' as const), start: fc.option(keyArb, { nil: undefined }), end: fc.option(keyArb, { nil: undefined }) }),
  },
);

async function collect(it: AsyncIterable<[Buffer, Buffer]>): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [k, v] of it) out.push([hex(k), hex(v)]);
  return out;
}

function dbRange(r: ModelRange): Record<string, unknown> {
  return { ...r };
}

async function runHistory(ops: Op[], openDb: () => Promise<Database>): Promise<void> {
  const model: ModelState = new Map();
  const snaps: { snap: Snapshot; state: ModelState }[] = [];
  let db = await openDb();
  try {
    for (const op of ops) {
      switch (op.t) {
        case 'put':
          await db.put(op.key, op.value, { sync: op.sync });
          model.set(hex(op.key), hex(op.value));
          break;
        case 'del':
          await db.delete(op.key);
          model.delete(hex(op.key));
          break;
        case 'batch':
          await db.batch(op.ops.map((o) => (o.put ? { type: 'put', key: o.key, value: o.value } : { type: 'del', key: o.key })));
          for (const o of op.ops) {
            if (o.put) model.set(hex(o.key), hex(o.value));
            else model.delete(hex(o.key));
          }
          break;
        case 'get': {
          const v = await db.get(op.key);
          assert.equal(v === undefined ? undefined : hex(v), model.get(hex(op.key)), `get ${hex(op.key)}`);
          assert.equal((db.getSync(op.key) ?? Buffer.from('x')).toString('hex'), model.get(hex(op.key)) ?? '78');
          break;
        }
        case 'scan':
          assert.deepEqual(await collect(db.iterator(dbRange(op.range))), modelScan(model, op.range), `scan ${JSON.stringify(op.range)}`);
          break;
        case 'snap':
          snaps.push({ snap: db.snapshot(), state: new Map(model) });
          break;
        case 'snapCheck':
        case 'snapScan': {
          if (snaps.length === 0) break;
          const s = snaps[op.which % snaps.length];
          assert.ok(s !== undefined);
          if (op.t === 'snapCheck') {
            const v = await s.snap.get(op.key);
            assert.equal(v === undefined ? undefined : hex(v), s.state.get(hex(op.key)), 'snapshot get');
          } else {
            assert.deepEqual(await collect(s.snap.iterator(dbRange(op.range))), modelScan(s.state, op.range), 'snapshot scan');
          }
          break;
        }
        case 'compact':
          await db.compactRange(op.start, op.end);
          break;
        case 'reopen':
          for (const s of snaps) s.snap.release();
          snaps.length = 0;
          await db.close();
          db = await openDb();
          break;
      }
    }
    assert.deepEqual(await collect(db.iterator()), modelScan(model, {}), 'final full scan');
    assert.deepEqual(await collect(db.iterator({ reverse: true })), modelScan(model, { reverse: true }), 'final reverse scan');
    for (const s of snaps) s.snap.release();
    assert.equal(db.stats().openSnapshots, 0);
    assert.equal(db.stats().openIterators, 0);
  } finally {
    await db.close();
  }
}

const small: OpenOptions = { memtableSize: 2048, blockSize: 128, bloomBitsPerKey: 10 };

test('model: random histories agree with a Map (MemFs)', async () => {
  const seed = testSeed();
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 3 }), async (ops, cfg) => {
      const mem = new MemFs();
      const configs: OpenOptions[] = [
        small,
        { ...small, bloomBitsPerKey: 0, blockCacheSize: 0, l0CompactionTrigger: 2, l0SlowdownTrigger: 3, l0StopTrigger: 4 },
        { memtableSize: 64 * 1024 },
        { ...small, levelBaseSize: 1024, levelMultiplier: 2, targetFileSize: 1024, l0CompactionTrigger: 1, l0SlowdownTrigger: 2, l0StopTrigger: 3 },
      ];
      await runHistory(ops, () => open('/db', { ...configs[cfg], fs: mem }));
    }),
    { seed, numRuns: numRuns(150, 5000) },
  );
});

test('model: random histories agree with a Map (real files)', async () => {
  const seed = testSeed();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-model-'));
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 80 }), async (ops) => {
        const dir = path.join(root, String(n++));
        await runHistory(ops, () => open(dir, { ...small, sync: false }));
      }),
      { seed, numRuns: numRuns(25, 500) },
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
