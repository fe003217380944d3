/**
 * db.batch() validates and encodes a user's batch in one pass (keys.ts toBatchPayload, through
 * write-batch.ts PayloadBuilder), with no object per operation. The payload must be byte-identical
 * to encodeBatchPayload's over the same operations — whatever the sizes, however wrong the
 * builder's first size guess — and the builder must copy each key and value when it is added.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import { EMPTY_VALUE, PayloadBuilder, batchCount, encodeBatchPayload, encodedBatchBytes, type BatchOp } from '../../src/db/write-batch.js';
import { type BatchOperation, toBatchPayload } from '../../src/db/keys.js';
import { LightningError } from '../../src/base/errors.js';
import { numRuns } from '../harness/seed.js';

const opArb = fc.record({
  del: fc.boolean(),
  key: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  // Up to 20 KiB: values that cross the builder's guesses and its view-copy threshold.
  value: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 100, maxLength: 300 }), fc.integer({ min: 0, max: 20_000 }).map((n) => new Uint8Array(n).map((_, i) => i * 7))),
  asString: fc.boolean(),
});

test('toBatchPayload encodes exactly what encodeBatchPayload does, for any batch', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (spec) => {
      const user: BatchOperation[] = spec.map((s) => {
        const key = s.asString ? Buffer.from(s.key).toString('latin1') : s.key;
        return s.del ? { type: 'del', key } : { type: 'put', key, value: s.value };
      });
      const ops: BatchOp[] = spec.map((s) => {
        const key = s.asString ? Buffer.from(Buffer.from(s.key).toString('latin1'), 'utf8') : Buffer.from(s.key);
        return s.del ? { kind: KIND_DELETE, key, value: EMPTY_VALUE } : { kind: KIND_VALUE, key, value: Buffer.from(s.value) };
      });
      const got = toBatchPayload(user);
      const want = encodeBatchPayload(ops, encodedBatchBytes(ops));
      assert.equal(batchCount(got), spec.length);
      assert.ok(got.equals(want), 'payloads differ');
    }),
    { numRuns: numRuns(200, 5000) },
  );
});

test('PayloadBuilder grows from any first size, and copies each key and value when added', () => {
  fc.assert(
    fc.property(
      fc.array(opArb, { maxLength: 40 }),
      fc.integer({ min: 0, max: 4096 }),
      (spec, capacity) => {
        const ops: BatchOp[] = spec.map((s) => (s.del ? { kind: KIND_DELETE, key: Buffer.from(s.key), value: EMPTY_VALUE } : { kind: KIND_VALUE, key: Buffer.from(s.key), value: Buffer.from(s.value) }));
        const want = encodeBatchPayload(ops, encodedBatchBytes(ops));
        const builder = new PayloadBuilder(capacity);
        for (const op of ops) {
          builder.addKey(op.kind, op.key);
          if (op.kind === KIND_VALUE) builder.addValue(op.value);
          // The caller may reuse its buffers at once: scribbling on them must not reach the payload.
          op.key.fill(0xab);
          op.value.fill(0xcd);
        }
        assert.ok(builder.finish().equals(want), 'payloads differ');
      },
    ),
    { numRuns: numRuns(200, 5000) },
  );
});

test('toBatchPayload reads each operation once, in order, and rejects a bad one with INVALID_ARGUMENT', () => {
  const reads: string[] = [];
  const op = (i: number): object => ({
    get type() {
      reads.push(`type${i}`);
      return 'put';
    },
    get key() {
      reads.push(`key${i}`);
      return `k${i}`;
    },
    get value() {
      reads.push(`value${i}`);
      return `v${i}`;
    },
  });
  const payload = toBatchPayload([op(0), op(1)]);
  assert.deepEqual(reads, ['type0', 'key0', 'value0', 'type1', 'key1', 'value1']);
  assert.equal(batchCount(payload), 2);
  for (const bad of [[{ type: 'put', key: '' , value: 'x' }], [{ type: 'nope', key: 'a' }], [null], 'not an array', [{ type: 'put', key: 'a', value: 7 }]]) {
    assert.throws(() => toBatchPayload(bad), (e: unknown) => e instanceof LightningError && e.code === 'INVALID_ARGUMENT', JSON.stringify(bad));
  }
});
