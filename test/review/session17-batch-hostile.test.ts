/**
 * Session 17 (review of "batch() validates and encodes in one pass": keys.ts toBatchPayload +
 * write-batch.ts PayloadBuilder). Hostile operations: getters, detached / resized ArrayBuffers,
 * lying lengths, re-entrant calls.
 *
 * Contract: bad input is INVALID_ARGUMENT and writes nothing; a batch is all or nothing; a key is
 * 1..KEY_BYTES_MAX bytes; the caller may reuse its buffers once batch() returns; an acknowledged
 * durable write survives a power cut.
 *
 * Fixed in session 17 (PayloadBuilder: engine lengths read once, key copied before the value is
 * read, buffer doubling; toBatchPayload reads the array length once); the tests now pass.
 * Findings (these tests FAIL on the reviewed code). Checked against the code before the change
 * (HEAD~2): 1, 2 and 4 fail there too (pre-existing, but the one-pass encoder is the place to fix
 * them: copy the key into the builder before reading `value`); 3b passes there (the old
 * encodeBatchPayload's size assertion rejected the batch before anything was queued), so 3 is a
 * regression of this change.
 *  1. toBatchPayload validates an operation's key (toKey) and only then reads its `value` (a
 *     getter, i.e. user code) before the key is copied by builder.add. The value getter can detach
 *     or shrink the key's ArrayBuffer, so the validated non-empty key reaches the payload with
 *     length 0: the database then holds an entry with an EMPTY key, which iterators return and
 *     which no API call can read or delete (toKey rejects ''). Persists across reopen/compaction.
 *  2. Same window, other direction: a length-tracking Buffer over a resizable ArrayBuffer passes
 *     toKey at 4 bytes and is grown by the value getter; a key of 200,000 bytes
 *     (> KEY_BYTES_MAX = 65,536) is written.
 *  3. PayloadBuilder.add reads key.length five times (varintLength, need, putVarint, copyBytes,
 *     copyBytes' whole-source check) and nothing checks the result: the old path had
 *     `assert(out.length === payloadBytes)` in encodeBatchPayload, batch() no longer goes through
 *     it. A Buffer whose `length` answers differently on one read yields a malformed payload that is
 *     framed into the WAL with a valid CRC; applyBatch then asserts half way through the memtable
 *     insert: the batch is rejected with IO_ERROR ("assertion failed") but its first operation IS
 *     applied (atomicity broken), and after a power cut the database cannot be opened at all, not
 *     even with walRecovery 'skip-corrupt' — every later acknowledged durable write is lost with it.
 *  4. (pre-existing, comment claims otherwise) toBatchPayload reads `ops.length` twice: once for the
 *     BATCH_OPS_MAX check and once for `n`. An array Proxy answering 0 then 1,000,001 gets a batch
 *     past the limit accepted.
 * Guards (hold today): the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type BatchOperation } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { BATCH_OPS_MAX, KEY_BYTES_MAX } from '../../src/db/options.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

function bad<T>(v: unknown): T {
  return v as T;
}

async function openDb(fs = new MemFs()): Promise<Database> {
  return open('/db', { fs, compactionThread: 'main' });
}

/** Every entry as [key hex, value latin1]. */
function entries(db: Database): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of db.iterator()) out.push([k.toString('hex'), v.toString('latin1')]);
  return out;
}

async function settle(p: Promise<void>): Promise<{ ok: true } | { ok: false; error: unknown }> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    return { ok: false, error: e };
  }
}

/** Transfers (detaches) `ab`: every view of it now has length 0. */
function detach(ab: ArrayBuffer): void {
  (structuredClone as (v: unknown, o: { transfer: ArrayBuffer[] }) => unknown)(ab, { transfer: [ab] });
}

/** A resizable ArrayBuffer (ES2024; Node 20 has it, the compile target's lib does not). */
type ResizableArrayBuffer = ArrayBuffer & { resize(byteLength: number): void };
function resizable(byteLength: number, maxByteLength: number): ResizableArrayBuffer {
  const Ctor = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ResizableArrayBuffer;
  return new Ctor(byteLength, { maxByteLength });
}

function hexOf(s: string): string {
  return Buffer.from(s).toString('hex');
}

// ------------------------------------------------------------------------- findings (fail today)

test('finding 1a: a value getter that detaches the key\'s ArrayBuffer must not write an empty key', async () => {
  const db = await openDb();
  try {
    const ab = new ArrayBuffer(4);
    new Uint8Array(ab).set([1, 2, 3, 4]);
    const key = Buffer.from(ab); // a Buffer: toKey keeps it as it is
    const ops = bad<BatchOperation[]>([
      { type: 'put', key: 'a', value: '1' },
      {
        type: 'put',
        key,
        get value() {
          detach(ab);
          return 'v';
        },
      },
    ]);
    const r = await settle(db.batch(ops));
    const got = entries(db);
    assert.ok(!got.some(([k]) => k === ''), `an entry with an empty key was written: ${JSON.stringify(got)}`);
    if (r.ok) assert.deepEqual(got, [['01020304', 'v'], [hexOf('a'), '1']], 'resolved: the key as validated');
    else {
      assertLightning(r.error, 'INVALID_ARGUMENT', 'rejected');
      assert.deepEqual(got, [], 'rejected: nothing written');
    }
  } finally {
    await db.close();
  }
});

test('finding 1b: a value getter that shrinks the resizable ArrayBuffer under a Uint8Array key must not write an empty key', async () => {
  const db = await openDb();
  try {
    const rab = resizable(4, 1024);
    new Uint8Array(rab).set([5, 6, 7, 8]);
    const key = new Uint8Array(rab, 0, 4); // a plain Uint8Array: toBuffer makes a Buffer view of it
    const ops = bad<BatchOperation[]>([
      {
        type: 'put',
        key,
        get value() {
          rab.resize(0);
          return 'v';
        },
      },
    ]);
    const r = await settle(db.batch(ops));
    const got = entries(db);
    assert.ok(!got.some(([k]) => k === ''), `an entry with an empty key was written: ${JSON.stringify(got)}`);
    if (!r.ok) assertLightning(r.error, 'INVALID_ARGUMENT', 'rejected');
  } finally {
    await db.close();
  }
});

test('finding 1c: the empty key written through a detached key buffer survives reopen and cannot be deleted', async () => {
  const fs = new MemFs();
  let db = await openDb(fs);
  const ab = new ArrayBuffer(3);
  const key = Buffer.from(ab);
  await settle(
    db.batch(
      bad<BatchOperation[]>([
        {
          type: 'put',
          key,
          get value() {
            detach(ab);
            return 'ghost';
          },
        },
      ]),
      { sync: true },
    ),
  );
  await db.close();
  db = await openDb(fs);
  try {
    await db.compactRange();
    // If it got in, the application has no way to remove it: delete('') is INVALID_ARGUMENT.
    const got = entries(db);
    assert.ok(!got.some(([k]) => k === ''), `after reopen + compaction, an undeletable empty-key entry remains: ${JSON.stringify(got)}`);
  } finally {
    await db.close();
  }
});

test('finding 2: a value getter that grows a length-tracking key past KEY_BYTES_MAX must not write an oversized key', async () => {
  const db = await openDb();
  try {
    const rab = resizable(4, 4 * KEY_BYTES_MAX);
    new Uint8Array(rab).fill(9);
    // A real typed array, length-tracking, with Buffer's prototype: Buffer.isBuffer() is true, so
    // toKey returns it as it is.
    const key = Object.setPrototypeOf(new Uint8Array(rab), Buffer.prototype) as Buffer;
    assert.ok(Buffer.isBuffer(key) && key.length === 4);
    const ops = bad<BatchOperation[]>([
      {
        type: 'put',
        key,
        get value() {
          rab.resize(3 * KEY_BYTES_MAX);
          return 'v';
        },
      },
    ]);
    const r = await settle(db.batch(ops));
    const lengths = [...db.iterator()].map(([k]) => k.length);
    assert.ok(lengths.every((n) => n >= 1 && n <= KEY_BYTES_MAX), `key lengths written: ${JSON.stringify(lengths)} (limit ${KEY_BYTES_MAX})`);
    if (!r.ok) assertLightning(r.error, 'INVALID_ARGUMENT', 'rejected');
  } finally {
    await db.close();
  }
});

/** A 40-byte Buffer whose `length` says 200 on its `lieAt`-th read (40 otherwise). */
function lyingKey(lieAt: number): Buffer {
  const key = Buffer.alloc(40, 0x6b);
  let reads = 0;
  Object.defineProperty(key, 'length', {
    get() {
      reads++;
      return reads === lieAt ? 200 : 40;
    },
  });
  return key;
}

test('finding 3a: a key whose length changes between reads: the batch is all or nothing, and never an IO_ERROR', async () => {
  // Read 5 is PayloadBuilder.add's putVarint(key.length); see the file comment.
  for (const lieAt of [3, 4, 5, 6, 7]) {
    const db = await openDb();
    try {
      const ops = bad<BatchOperation[]>([
        { type: 'put', key: 'a', value: '1' },
        { type: 'put', key: lyingKey(lieAt), value: 'v' },
        { type: 'put', key: 'b', value: '2' },
      ]);
      const r = await settle(db.batch(ops));
      // A later write (any) publishes whatever the failed commit left in the memtable.
      await db.put('later', 'w');
      const keys = entries(db)
        .map(([k]) => Buffer.from(k, 'hex').toString('latin1'))
        .filter((k) => k !== 'later');
      if (r.ok) {
        assert.ok(keys.includes('a') && keys.includes('b'), `lie at read ${lieAt}: resolved but holds ${JSON.stringify(keys)}`);
      } else {
        assert.deepEqual(keys, [], `lie at read ${lieAt}: rejected (${describeError(r.error)}) but wrote ${JSON.stringify(keys)}`);
        assertLightning(r.error, 'INVALID_ARGUMENT', `lie at read ${lieAt}`);
      }
    } finally {
      await db.close();
    }
  }
});

test('finding 3b: after such a batch, a power cut must not make the database unopenable (acknowledged durable writes survive)', async () => {
  const fs = new MemFs();
  const db = await openDb(fs);
  await settle(
    db.batch(
      bad<BatchOperation[]>([
        { type: 'put', key: 'a', value: '1' },
        { type: 'put', key: lyingKey(5), value: 'v' },
      ]),
      { sync: true },
    ),
  );
  await db.put('acked', 'durable', { sync: true });
  for (const walRecovery of ['strict', 'skip-corrupt'] as const) {
    let reopened: Database | undefined;
    try {
      reopened = await open('/db', { fs: fs.crashClone(), compactionThread: 'main', walRecovery });
    } catch (e) {
      assert.fail(`walRecovery ${walRecovery}: reopen after power cut failed: ${describeError(e)}`);
    }
    try {
      assert.equal(reopened.getSync('acked')?.toString(), 'durable', `walRecovery ${walRecovery}: acknowledged durable put lost`);
    } finally {
      await reopened.close();
    }
  }
  await db.close();
});

test('finding 4 (pre-existing): an array Proxy whose length reads 0 then BATCH_OPS_MAX + 1 must not bypass the operation limit', async () => {
  const db = await openDb();
  try {
    const target: unknown[] = [];
    let lengthReads = 0;
    const op = { type: 'del', key: 'k' };
    const ops = new Proxy(target, {
      get(t, p, r) {
        if (p === 'length') return lengthReads++ === 0 ? 0 : BATCH_OPS_MAX + 1;
        if (typeof p === 'string' && /^\d+$/.test(p)) return op;
        return Reflect.get(t, p, r) as unknown;
      },
    });
    assert.ok(Array.isArray(ops));
    const seqBefore = (db as unknown as { visibleSequence: number }).visibleSequence;
    const r = await settle(db.batch(bad<BatchOperation[]>(ops)));
    // Fixed (session 17) by reading the length once: the batch is what that one read says (here
    // empty, so nothing is written), or a rejection; never more operations than the limit.
    assert.equal(lengthReads, 1, 'the array length was read more than once');
    if (r.ok) assert.equal((db as unknown as { visibleSequence: number }).visibleSequence, seqBefore, 'an operation was written');
    else assertLightning(r.error, 'INVALID_ARGUMENT');
  } finally {
    await db.close();
  }
});

// ------------------------------------------------------------------------- guards (hold today)

test('guard: a getter that throws midway writes nothing; the error is INVALID_ARGUMENT with the cause', async () => {
  const recorder = new ProcessErrorRecorder();
  const db = await openDb();
  try {
    await db.put('pre', 'x');
    const boom = new Error('boom');
    for (const where of ['type', 'key', 'value', 'index'] as const) {
      const arr: unknown[] = [];
      for (let i = 0; i < 50; i++) arr.push({ type: 'put', key: `k${i}`, value: Buffer.alloc(i * 100, i) });
      const thrower: Record<string, unknown> = { type: 'put', key: 'bad', value: 'v' };
      Object.defineProperty(thrower, where === 'index' ? 'type' : where, {
        get() {
          throw boom;
        },
      });
      if (where === 'index') {
        Object.defineProperty(arr, 30, {
          get() {
            throw boom;
          },
        });
      } else arr[30] = thrower;
      const r = await settle(db.batch(bad<BatchOperation[]>(arr)));
      assert.ok(!r.ok, where);
      assertLightning(r.error, 'INVALID_ARGUMENT', where);
      assert.equal((r.error as Error).cause, boom, `${where}: cause kept`);
      assert.deepEqual(entries(db), [[hexOf('pre'), 'x']], `${where}: nothing written`);
    }
    await db.put('post', 'y');
    assert.equal(db.getSync('post')?.toString(), 'y');
  } finally {
    await db.close();
    await recorder.settle();
    recorder.dispose();
  }
  recorder.assertNone();
});

test('guard: later getters that scribble on, detach or shrink EARLIER operations\' buffers do not change what is written', async () => {
  const db = await openDb();
  try {
    const shared = resizable(4096, 8192);
    const u = new Uint8Array(shared);
    for (let i = 0; i < u.length; i++) u[i] = (i * 13 + 1) & 0xff;
    const k0 = new Uint8Array(shared, 1, 7); // odd offsets into one ArrayBuffer
    const v0 = new Uint8Array(shared, 9, 300);
    const k1 = Buffer.from(shared, 311, 33);
    const v1 = Buffer.from(shared, 345, 1000);
    const want: [string, string][] = [
      [Buffer.from(k0).toString('hex'), Buffer.from(v0).toString('latin1')],
      [Buffer.from(k1).toString('hex'), Buffer.from(v1).toString('latin1')],
    ];
    const detachable = new ArrayBuffer(64);
    new Uint8Array(detachable).fill(0x42);
    const k2 = Buffer.from(detachable, 0, 5);
    const v2 = Buffer.from(detachable, 5, 50);
    want.push([k2.toString('hex'), v2.toString('latin1')]);
    const ops = bad<BatchOperation[]>([
      { type: 'put', key: k0, value: v0 },
      { type: 'put', key: k1, value: v1 },
      { type: 'put', key: k2, value: v2 },
      {
        get type() {
          u.fill(0);
          shared.resize(0);
          detach(detachable);
          return 'put';
        },
        key: 'zz',
        value: 'last',
      },
    ]);
    await db.batch(ops);
    want.push([hexOf('zz'), 'last']);
    want.sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')));
    assert.deepEqual(entries(db), want);
  } finally {
    await db.close();
  }
});

test('guard: re-entrant batch/put/delete from getters; the outer batch commits after them, atomically', async () => {
  const db = await openDb();
  try {
    const inner: Promise<void>[] = [];
    const ops = bad<BatchOperation[]>([
      {
        get type() {
          inner.push(db.put('x', 'inner-put'));
          return 'put';
        },
        key: 'x',
        value: 'outer',
      },
      {
        type: 'put',
        key: 'y',
        get value() {
          inner.push(db.batch([{ type: 'put', key: 'y', value: 'inner-batch' }, { type: 'put', key: 'z', value: 'inner' }]));
          inner.push(db.delete('z'));
          return 'outer';
        },
      },
    ]);
    const snapBefore = db.snapshot();
    await db.batch(ops);
    await Promise.all(inner);
    // The inner writes were enqueued first: the outer batch's values win.
    assert.deepEqual(entries(db), [
      [hexOf('x'), 'outer'],
      [hexOf('y'), 'outer'],
    ]);
    assert.deepEqual([...snapBefore.iterator()], []);
    snapBefore.release();
  } finally {
    await db.close();
  }
});

test('guard: db.close() from a getter: the batch rejects CLOSED, close resolves, nothing hangs or leaks', async () => {
  const recorder = new ProcessErrorRecorder();
  const db = await openDb();
  let closing: Promise<void> | undefined;
  const ops = bad<BatchOperation[]>([
    { type: 'put', key: 'a', value: 'a' },
    {
      type: 'put',
      key: 'b',
      get value() {
        closing = db.close();
        return 'b';
      },
    },
  ]);
  const r = await settle(db.batch(ops));
  assert.ok(!r.ok);
  assertLightning(r.error, 'CLOSED');
  await closing;
  await recorder.settle();
  recorder.dispose();
  recorder.assertNone();
});

test('guard: operations whose getters shrink or grow the array are read up to the first length', async () => {
  const db = await openDb();
  try {
    const arr: unknown[] = [
      { type: 'put', key: 'a', value: '1' },
      {
        type: 'put',
        key: 'b',
        get value() {
          arr.push({ type: 'put', key: 'c', value: '3' });
          return '2';
        },
      },
    ];
    await db.batch(bad<BatchOperation[]>(arr));
    assert.deepEqual(entries(db), [
      [hexOf('a'), '1'],
      [hexOf('b'), '2'],
    ]);
    const arr2: unknown[] = [
      {
        type: 'put',
        key: 'd',
        get value() {
          arr2.length = 1;
          return '4';
        },
      },
      { type: 'put', key: 'e', value: '5' },
    ];
    const r = await settle(db.batch(bad<BatchOperation[]>(arr2)));
    assert.ok(!r.ok);
    assertLightning(r.error, 'INVALID_ARGUMENT');
    assert.equal(db.getSync('d'), undefined, 'atomic');
  } finally {
    await db.close();
  }
});
