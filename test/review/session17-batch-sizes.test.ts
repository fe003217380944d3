/**
 * Session 17 (review of the one-pass batch encoder): sizes at and around the limits, and batches
 * that make PayloadBuilder grow many times.
 *
 * Fixed in session 17 (PayloadBuilder: engine lengths read once, key copied before the value is
 * read, buffer doubling; toBatchPayload reads the array length once); the tests now pass.
 * Findings (these tests FAIL on the reviewed code):
 *  5. PayloadBuilder.grow sizes the new buffer as `need + perOp * remainingOps * 1.125`, where
 *     perOp is the average encoded size SO FAR (or, on the first op, that op's own size). A batch
 *     that starts with one large value and continues with many small operations is extrapolated as
 *     if every operation were large:
 *       - one 1 MiB value + 4,000 one-byte puts (~1.1 MB of data) asks Buffer.allocUnsafe for
 *         4.7 GB > buffer.constants.MAX_LENGTH: the valid batch is rejected with INVALID_ARGUMENT
 *         "reading the arguments threw: The value of "size" is out of range";
 *       - one VALUE_BYTES_MAX (64 MiB) value + 70 deletes: the same (5.3 GB);
 *       - one 1 MiB value + 3,000 puts is accepted, but batch() allocates ~3.5 GB of ArrayBuffer
 *         (virtual memory; a RangeError / allocation failure under strict overcommit), and the
 *         queued payload is a view that keeps all of it alive until the commit.
 *     The previous code computed the exact size first (encodedBatchBytes) and accepted all three.
 * Guards (hold today): the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { open, type BatchOperation } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from '../../src/db/options.js';
import { assertLightning, describeError } from '../harness/api-helpers.js';
import { numRuns } from '../harness/seed.js';

async function openDb(fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 })): Promise<Database> {
  return open('/db', { fs, compactionThread: 'main' });
}

async function settle(p: Promise<void>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e ?? new Error('rejected with nothing');
  }
}

// ------------------------------------------------------------------------- findings (fail today)

test('finding 5a: one 1 MiB value followed by 4000 small puts is a valid batch and is accepted', async () => {
  const db = await openDb();
  try {
    const ops: BatchOperation[] = [{ type: 'put', key: 'big', value: Buffer.alloc(1 << 20, 7) }];
    for (let i = 0; i < 4000; i++) ops.push({ type: 'put', key: `k${i}`, value: 'v' });
    const err = await settle(db.batch(ops));
    assert.equal(err, undefined, `rejected: ${describeError(err)}`);
    assert.equal(db.getSync('big')?.length, 1 << 20);
    assert.equal(db.getSync('k3999')?.toString(), 'v');
  } finally {
    await db.close();
  }
});

test('finding 5b: a VALUE_BYTES_MAX value followed by 70 deletes is a valid batch and is accepted', async () => {
  const db = await openDb();
  try {
    const ops: BatchOperation[] = [{ type: 'put', key: 'max', value: Buffer.alloc(VALUE_BYTES_MAX, 1) }];
    for (let i = 0; i < 70; i++) ops.push({ type: 'del', key: `d${i}` });
    const err = await settle(db.batch(ops));
    assert.equal(err, undefined, `rejected: ${describeError(err)}`);
    assert.equal(db.getSync('max')?.length, VALUE_BYTES_MAX);
  } finally {
    await db.close();
  }
});

test('finding 5c: batch() allocates in proportion to the batch, not to its first operation times the count', async () => {
  const db = await openDb();
  try {
    const ops: BatchOperation[] = [{ type: 'put', key: 'big', value: Buffer.alloc(1 << 20, 7) }];
    for (let i = 0; i < 3000; i++) ops.push({ type: 'put', key: `k${i}`, value: 'v' });
    const before = process.memoryUsage().arrayBuffers;
    const p = db.batch(ops); // the encoded payload is queued (alive) when batch() returns
    const grownBy = process.memoryUsage().arrayBuffers - before;
    const err = await settle(p);
    assert.equal(err, undefined, `rejected: ${describeError(err)}`);
    // ~1.04 MB of keys and values; allow generous slack (and the group buffer etc.).
    assert.ok(grownBy < 64 * 1024 * 1024, `batch() of ~1 MiB allocated ${Math.round(grownBy / 2 ** 20)} MiB of ArrayBuffer`);
  } finally {
    await db.close();
  }
});

// ------------------------------------------------------------------------- guards (hold today)

test('guard: keys and values at the limits are accepted; one byte more rejects the whole batch', async () => {
  const db = await openDb();
  try {
    const maxKey = Buffer.alloc(KEY_BYTES_MAX, 0x61);
    await db.batch([
      { type: 'put', key: 'tiny', value: '' },
      { type: 'put', key: maxKey, value: 'k-max' },
      { type: 'del', key: Buffer.alloc(KEY_BYTES_MAX, 0x62) },
    ]);
    assert.equal(db.getSync(maxKey)?.toString(), 'k-max');
    assert.equal(db.getSync('tiny')?.length, 0);
    for (const badOp of [
      { type: 'put', key: Buffer.alloc(KEY_BYTES_MAX + 1, 0x63), value: 'x' },
      { type: 'del', key: Buffer.alloc(KEY_BYTES_MAX + 1, 0x63) },
      { type: 'put', key: 'v-over', value: Buffer.alloc(VALUE_BYTES_MAX + 1) },
    ] as BatchOperation[]) {
      const err = await settle(db.batch([{ type: 'put', key: 'first', value: 'x' }, badOp, { type: 'put', key: 'last', value: 'y' }]));
      assertLightning(err, 'INVALID_ARGUMENT', JSON.stringify(badOp.type));
      assert.equal(db.getSync('first'), undefined, 'nothing written');
      assert.equal(db.getSync('last'), undefined, 'nothing written');
    }
    // A value of exactly VALUE_BYTES_MAX, alone, as a view at an odd offset of a larger buffer.
    const backing = Buffer.alloc(VALUE_BYTES_MAX + 3, 5);
    backing[1] = 9;
    backing[VALUE_BYTES_MAX] = 8;
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 1, VALUE_BYTES_MAX);
    await db.batch([{ type: 'put', key: 'vmax', value: view }]);
    backing.fill(0);
    const got = db.getSync('vmax');
    assert.equal(got?.length, VALUE_BYTES_MAX);
    assert.equal(got?.[0], 9);
    assert.equal(got?.[VALUE_BYTES_MAX - 1], 8);
    assert.equal(got?.[1], 5);
  } finally {
    await db.close();
  }
});

/** One op's shape: sizes chosen to cross the builder's 64-byte guess, the 32-byte loop copy and its growth. */
const sizeArb = fc.oneof(
  fc.constantFrom(0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257),
  fc.integer({ min: 0, max: 4096 }),
  fc.integer({ min: 60_000, max: 200_000 }),
);
const opSpecArb = fc.record({
  del: fc.boolean(),
  keyLen: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(KEY_BYTES_MAX - 1, KEY_BYTES_MAX, 127, 128, 129)),
  keyIdx: fc.integer({ min: 0, max: 11 }),
  valueLen: sizeArb,
  offset: fc.integer({ min: 0, max: 7 }),
  asString: fc.boolean(),
});

test('guard: batches of any mix of sizes (tiny then huge, huge then tiny), views into one shared ArrayBuffer at odd offsets, match a model; the shared buffer is scribbled on after each call', async () => {
  const fs = new MemFs({ capacityBytes: 4 * 1024 * 1024 * 1024 });
  const db = await open('/db', { fs, compactionThread: 'main', memtableSize: 1 << 20 });
  const model = new Map<string, string>(); // key hex -> value hex
  let stamp = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(opSpecArb, { minLength: 0, maxLength: 40 }), fc.boolean(), async (specs, sortBySize) => {
        if (sortBySize) specs.sort((a, b) => a.valueLen - b.valueLen);
        let total = 0;
        for (const s of specs) total += s.keyLen + s.valueLen + 16;
        const shared = new ArrayBuffer(total + 8);
        const u = new Uint8Array(shared);
        let pos = 0;
        const ops: BatchOperation[] = [];
        const want: [string, string | null][] = [];
        for (const s of specs) {
          stamp++;
          pos += s.offset;
          const key = new Uint8Array(shared, pos, s.keyLen);
          key.fill(0x30 + s.keyIdx);
          key[0] = 0x41 + s.keyIdx; // keyIdx picks one of 12 keys per length: overwrites happen
          pos += s.keyLen;
          const keyHex = Buffer.from(key).toString('hex');
          let keyArg: Uint8Array | string = key;
          if (s.asString) {
            keyArg = Buffer.from(key).toString('latin1'); // ASCII only, so utf8 encodes the same bytes
          }
          if (s.del) {
            ops.push({ type: 'del', key: keyArg });
            want.push([keyHex, null]);
          } else {
            const value = new Uint8Array(shared, pos, s.valueLen);
            for (let i = 0; i < value.length; i++) value[i] = (stamp * 31 + i * 7) & 0xff;
            pos += s.valueLen;
            ops.push({ type: 'put', key: keyArg, value });
            want.push([keyHex, Buffer.from(value).toString('hex')]);
          }
        }
        const p = db.batch(ops);
        u.fill(0xee); // the caller reuses its buffer at once
        await p;
        for (const [k, v] of want) {
          if (v === null) model.delete(k);
          else model.set(k, v);
        }
        for (const [k, v] of want) {
          const got = db.getSync(Buffer.from(k, 'hex'));
          const expected = model.get(k);
          assert.equal(got === undefined ? undefined : got.toString('hex'), expected, `key ${k.slice(0, 16)} (len ${k.length / 2}), last op ${v === null ? 'del' : 'put'}`);
        }
      }),
      { numRuns: numRuns(40, 1000) },
    );
    const scan = [...db.iterator()].map(([k, v]) => [k.toString('hex'), v.toString('hex')]);
    const expected = [...model.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')));
    assert.deepEqual(scan, expected, 'full scan equals the model');
  } finally {
    await db.close();
  }
  const again = await open('/db', { fs, compactionThread: 'main' });
  try {
    const scan = [...again.iterator()].map(([k, v]) => [k.toString('hex'), v.toString('hex')]);
    const expected = [...model.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')));
    assert.deepEqual(scan, expected, 'after reopen');
  } finally {
    await again.close();
  }
});
