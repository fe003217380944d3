/**
 * The write path's copies: copyWithViews (four bytes per step through DataViews) against
 * Buffer#copy, and a batch's values — from Node's pool, from slabs at odd offsets, from buffers of
 * their own — through encodeBatchPayload, decodeBatch and applyBatch into a memtable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyWithViews, viewCopyPays } from '../../src/util/copy-bytes.js';
import { KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import { applyBatch, decodeBatch, encodeBatchPayload, encodedBatchBytes, setBatchSequence, type BatchOp } from '../../src/db/write-batch.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { Random } from '../../src/util/random.js';
import { numRuns, withSeed } from '../harness/seed.js';

test('copyWithViews copies exactly the range, at any alignment and length, like Buffer#copy', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 300 }),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 5 }),
      (n, srcPad, dstPad, viewStartSrc, viewStartDst) => {
        const src = Buffer.alloc(viewStartSrc + srcPad + n + 3);
        for (let i = 0; i < src.length; i++) src[i] = (i * 131 + 7) & 0xff;
        const dst = Buffer.alloc(viewStartDst + dstPad + n + 3, 0xee);
        const expected = Buffer.from(dst);
        src.copy(expected, viewStartDst + dstPad, viewStartSrc + srcPad, viewStartSrc + srcPad + n);
        // Views that start inside their buffers: positions are relative to the views.
        const sv = new DataView(src.buffer, src.byteOffset + viewStartSrc, src.length - viewStartSrc);
        const dv = new DataView(dst.buffer, dst.byteOffset + viewStartDst, dst.length - viewStartDst);
        copyWithViews(sv, srcPad, dv, dstPad, n);
        assert.ok(dst.equals(expected), `n=${n} srcPad=${srcPad} dstPad=${dstPad}`);
      },
    ),
    { numRuns: numRuns(500, 20_000) },
  );
  for (const n of [0, 32, 33, 256, 257]) assert.equal(viewCopyPays(n), n > 32 && n <= 256, `viewCopyPays(${n})`);
});

/** `bytes` placed in one of the kinds of buffer writers hand us. */
function placed(rnd: Random, bytes: Buffer, slab: Buffer, slabAt: { off: number }): Buffer {
  const n = bytes.length;
  switch (rnd.nextInt(4)) {
    case 0:
      return Buffer.from(bytes); // Node's shared pool (small) or a buffer of its own
    case 1:
      return Buffer.concat([bytes], n); // a buffer of its own (or pooled)
    case 2: {
      // A slice of one slab at an odd offset, as a batch built in one buffer gives.
      if (slabAt.off + n + 1 > slab.length) slabAt.off = 0;
      const v = slab.subarray(slabAt.off + 1, slabAt.off + 1 + n);
      bytes.copy(v);
      slabAt.off += n + 3;
      return v;
    }
    default: {
      const own = Buffer.allocUnsafeSlow(n);
      bytes.copy(own);
      return Buffer.from(own.buffer, 0, n); // a view of a whole ArrayBuffer
    }
  }
}

/** A random value of `n` bytes from one of those sources. */
function valueFrom(rnd: Random, n: number, slab: Buffer, slabAt: { off: number }): Buffer {
  const bytes = Buffer.allocUnsafeSlow(n);
  for (let i = 0; i < n; i++) bytes[i] = rnd.nextInt(256);
  return placed(rnd, bytes, slab, slabAt);
}

test('batches whose values come from pools, slabs and buffers of their own encode, decode and apply intact', async () => {
  await withSeed('batch value sources', async (seed) => {
    const rnd = new Random(seed);
    // One memtable for all rounds: its inserts switch between many payloads.
    const mem = new MemTable(seed, 64 * 1024);
    const all: { key: Buffer; value: Buffer | null; what: string }[] = [];
    let seq = 1;
    for (let round = 0; round < 30; round++) {
      const slab = Buffer.allocUnsafeSlow(64 * 1024); // never wraps within a round (< 30 KiB used)
      const slabAt = { off: 0 };
      const ops: BatchOp[] = [];
      const count = 1 + rnd.nextInt(60);
      for (let i = 0; i < count; i++) {
        // Unique keys of 4 to ~40 bytes, from the same kinds of buffer as values.
        const name = Buffer.concat([Buffer.from(`${round}.${i}.`), valueFrom(rnd, rnd.nextInt(34), slab, slabAt)]);
        const key = placed(rnd, name, slab, slabAt);
        if (rnd.nextInt(8) === 0) {
          ops.push({ kind: KIND_DELETE, key, value: Buffer.alloc(0) });
        } else {
          const n = [0, 1, 31, 32, 33, 100, 255, 256, 257, 400][rnd.nextInt(10)] as number;
          ops.push({ kind: KIND_VALUE, key, value: valueFrom(rnd, n, slab, slabAt) });
        }
      }
      const payload = encodeBatchPayload(ops, encodedBatchBytes(ops));
      setBatchSequence(payload, seq);
      const decoded = decodeBatch(payload, 'test', 0);
      assert.equal(decoded.ops.length, ops.length);
      assert.equal(decoded.firstSeq, seq);
      applyBatch(payload, seq, mem);
      seq += count;
      ops.forEach((op, i) => {
        const d = decoded.ops[i] as BatchOp;
        assert.equal(d.kind, op.kind, `SEED=${seed} round ${round} op ${i}`);
        assert.ok(d.key.equals(op.key));
        if (op.kind === KIND_VALUE) assert.ok(d.value.equals(op.value), `SEED=${seed} round ${round} op ${i}: decoded value`);
        // Copies, not the caller's buffers: later changes to them must not show.
        all.push({ key: Buffer.from(op.key), value: op.kind === KIND_DELETE ? null : Buffer.from(op.value), what: `round ${round} op ${i} (${op.value.length} bytes)` });
        op.value.fill(0x5a);
      });
      payload.fill(0); // the memtable holds copies of the payload's bytes too
    }
    for (const e of all) {
      const got = mem.get(e.key, seq);
      if (e.value === null) assert.ok(got.found && got.deleted, `SEED=${seed} ${e.what}: deletion`);
      else assert.ok(got.found && !got.deleted && got.value.equals(e.value), `SEED=${seed} ${e.what}: memtable value`);
    }
  });
});
