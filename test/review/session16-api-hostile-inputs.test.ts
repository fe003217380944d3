/**
 * Session 16 (API review): hostile arguments at every public entry point.
 *
 * Contract under test (README, docs/errors.md): bad input is a `LightningError` INVALID_ARGUMENT
 * ("a key that is not a Uint8Array/string"), sync methods throw it, promise-returning methods
 * reject with it and never throw synchronously; IO_ERROR means "the filesystem failed a call".
 *
 * Findings demonstrated here (these tests fail until fixed):
 *  1. Typed-array impostors — `Object.create(Uint8Array.prototype)`, or a Proxy (even one without
 *     traps) around a Uint8Array — pass `v instanceof Uint8Array` in keys.ts toBuffer(), whose
 *     `v.buffer` then throws a raw TypeError; a real Uint8Array whose buffer was transferred
 *     (detached) makes `Buffer.from(v.buffer, ...)` throw "Cannot perform Construct on a detached
 *     ArrayBuffer". Sync methods (getSync, iterator, snapshot.getSync, tx.put, tx.getSync...) throw
 *     the TypeError unwrapped; async methods reject with IO_ERROR ("operation /db: Method get
 *     %TypedArray%.prototype.buffer called on incompatible receiver").
 *  2. A batch array shrunk while batch() reads it (a getter of an operation) leaves a hole in the
 *     validated op array; encodedBatchBytes() dereferences it: IO_ERROR wrapping "Cannot read
 *     properties of undefined (reading 'key')".
 *  3. Exceptions thrown by the caller's own getters (options, batch operations) are relabelled
 *     IO_ERROR by async methods (db.toError -> fromIoError), but propagate unchanged from sync
 *     methods and from open()/transaction() options: the same mistake gets different treatment, and
 *     IO_ERROR tells an application to check its disk.
 *  4. open() accepts any `fs` object with an `open` member; one without the rest of FileSystem
 *     rejects with a raw TypeError ("fs.exists is not a function") instead of INVALID_ARGUMENT.
 * Guards (hold today): the rest of this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, LightningError, type FileSystem } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

function bad<T>(v: unknown): T {
  return v as T;
}

async function withDb(fn: (db: Database) => Promise<void>): Promise<void> {
  const db = await open('/db', { fs: new MemFs(), compactionThread: 'main' });
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

type Outcome =
  | { kind: 'sync-throw'; error: unknown }
  | { kind: 'returned'; value: unknown }
  | { kind: 'resolved'; value: unknown }
  | { kind: 'rejected'; error: unknown };

/** Calls `fn` and classifies what happened: a sync throw, a plain return, or a settled promise. */
async function outcomeOf(fn: () => unknown): Promise<Outcome> {
  let r: unknown;
  try {
    r = fn();
  } catch (e) {
    return { kind: 'sync-throw', error: e };
  }
  if (!(r instanceof Promise)) return { kind: 'returned', value: r };
  try {
    return { kind: 'resolved', value: await r };
  } catch (e) {
    return { kind: 'rejected', error: e };
  }
}

function describeOutcome(o: Outcome): string {
  switch (o.kind) {
    case 'sync-throw':
      return `threw ${describeError(o.error)}`;
    case 'rejected':
      return `rejected ${describeError(o.error)}`;
    default:
      return o.kind;
  }
}

/** Expected shape: sync methods throw INVALID_ARGUMENT; async ones reject with it. */
async function expectInvalid(what: string, fn: () => unknown, isAsync: boolean, problems: string[]): Promise<void> {
  const o = await outcomeOf(fn);
  const want = isAsync ? 'rejected' : 'sync-throw';
  const err = o.kind === 'sync-throw' || o.kind === 'rejected' ? o.error : undefined;
  if (o.kind !== want || !(err instanceof LightningError) || err.code !== 'INVALID_ARGUMENT') {
    problems.push(`${what}: expected ${isAsync ? 'a rejection' : 'a sync throw'} with INVALID_ARGUMENT, ${describeOutcome(o)}`);
  }
}

/** Every entry point that takes a key, value or range bound, called with `v` there. */
function keyTakers(db: Database): [name: string, isAsync: boolean, call: (v: unknown) => unknown][] {
  return [
    ['db.getSync(key)', false, (v) => db.getSync(bad(v))],
    ['db.get(key)', true, (v) => db.get(bad(v))],
    ['db.put(key)', true, (v) => db.put(bad(v), 'v')],
    ['db.put(_, value)', true, (v) => db.put('k', bad(v))],
    ['db.delete(key)', true, (v) => db.delete(bad(v))],
    ['db.batch put key', true, (v) => db.batch([{ type: 'put', key: bad(v), value: 'v' }])],
    ['db.batch put (_, value)', true, (v) => db.batch([{ type: 'put', key: 'k', value: bad(v) }])],
    ['db.batch del key', true, (v) => db.batch([{ type: 'del', key: bad(v) }])],
    ['db.iterator({gte})', false, (v) => db.iterator({ gte: bad(v) })],
    ['db.iterator({prefix})', false, (v) => db.iterator({ prefix: bad(v) })],
    ['db.compactRange(start)', true, (v) => db.compactRange(bad(v))],
    [
      'snapshot.getSync(key)',
      false,
      (v) => {
        const s = db.snapshot();
        try {
          return s.getSync(bad(v));
        } finally {
          s.release();
        }
      },
    ],
    [
      'snapshot.iterator({lt})',
      false,
      (v) => {
        const s = db.snapshot();
        try {
          return s.iterator({ lt: bad(v) });
        } finally {
          s.release();
        }
      },
    ],
    ['tx.put(key)', false, (v) => db.beginTransaction().put(bad(v), 'v')],
    ['tx.put(_, value)', false, (v) => db.beginTransaction().put('k', bad(v))],
    ['tx.delete(key)', false, (v) => db.beginTransaction().delete(bad(v))],
    ['tx.getSync(key)', false, (v) => db.beginTransaction().getSync(bad(v))],
    ['tx.get(key)', true, (v) => db.beginTransaction().get(bad(v))],
    ['tx.getForUpdate(key)', true, (v) => db.beginTransaction().getForUpdate(bad(v))],
    ['tx.iterator({gt})', false, (v) => db.beginTransaction().iterator({ gt: bad(v) })],
  ];
}

test('session16: typed-array impostors and odd views (prototype-only object, trap-less Proxy, detached or out-of-bounds view) are INVALID_ARGUMENT everywhere, never a raw TypeError or IO_ERROR', async () => {
  await withDb(async (db) => {
    const problems: string[] = [];
    const impostors: [string, () => unknown][] = [
      ['Object.create(Uint8Array.prototype)', () => Object.create(Uint8Array.prototype)],
      ['Object.create(Buffer.prototype)', () => Object.create(Buffer.prototype)],
    ];
    for (const [iname, make] of impostors) {
      for (const [name, isAsync, call] of keyTakers(db)) {
        await expectInvalid(`${name} with ${iname}`, () => call(make()), isAsync, problems);
      }
    }
    // Real Uint8Arrays in odd states: a Proxy without traps, a view of a transferred (detached)
    // buffer, a view left out of bounds by shrinking a resizable buffer. Using their bytes (as the
    // engine sees them) or INVALID_ARGUMENT are both fine; a raw TypeError or IO_ERROR is not.
    const odd: [string, () => unknown][] = [
      ['new Proxy(Uint8Array, {})', () => new Proxy(new Uint8Array([0x61, 0x62]), {})],
      [
        'a detached Uint8Array (buffer transferred)',
        () => {
          const ab = new ArrayBuffer(4);
          const view = new Uint8Array(ab);
          structuredClone(ab, { transfer: [ab] });
          return view;
        },
      ],
      [
        'an out-of-bounds view of a shrunk resizable ArrayBuffer',
        () => {
          const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
          const rab = new Resizable(8, { maxByteLength: 8 });
          const view = new Uint8Array(rab, 4, 2);
          rab.resize(2);
          return view;
        },
      ],
    ];
    for (const [oname, make] of odd) {
      for (const [name, isAsync, call] of keyTakers(db)) {
        const o = await outcomeOf(() => call(make()));
        const err = o.kind === 'sync-throw' || o.kind === 'rejected' ? o.error : undefined;
        const syncAsyncOk = isAsync ? o.kind !== 'sync-throw' : o.kind !== 'rejected';
        if (!syncAsyncOk || (err !== undefined && !(err instanceof LightningError && err.code === 'INVALID_ARGUMENT'))) {
          problems.push(`${name} with ${oname}: ${describeOutcome(o)}`);
        }
      }
    }
    assert.ok(problems.length === 0, `typed-array impostors:\n${problems.join('\n')}`);
  });
});

test('session16: a batch array shrunk by a getter during batch() is applied consistently or rejected INVALID_ARGUMENT (not IO_ERROR)', async () => {
  await withDb(async (db) => {
    const ops: unknown[] = [];
    ops.push(
      {
        type: 'put',
        get key(): string {
          ops.length = 1; // drops the second operation while batch() walks the array
          return 'a';
        },
        value: '1',
      },
      { type: 'put', key: 'b', value: '2' },
    );
    const o = await outcomeOf(() => db.batch(bad(ops)));
    assert.notEqual(o.kind, 'sync-throw', 'batch() threw synchronously');
    if (o.kind === 'rejected') {
      assertLightning(o.error, 'INVALID_ARGUMENT', `shrunk batch ${describeOutcome(o)}`);
      assert.equal(db.getSync('a'), undefined, 'a rejected batch applied an operation');
    } else {
      assert.equal(db.getSync('a')?.toString(), '1');
    }
    // The database is still fully usable.
    await db.put('c', '3');
    assert.equal(db.getSync('c')?.toString(), '3');
  });
});

test("session16: exceptions from the caller's own getters are never relabelled IO_ERROR (async or sync, the same way)", async () => {
  await withDb(async (db) => {
    const mine = new Error('user getter');
    const throwing = { get sync(): boolean { throw mine; } };
    const problems: string[] = [];
    /** Acceptable: the caller's own error unchanged, or INVALID_ARGUMENT; async ones never throw sync. */
    const check = async (what: string, isAsync: boolean, fn: () => unknown): Promise<void> => {
      const o = await outcomeOf(fn);
      if (o.kind === 'returned' || o.kind === 'resolved') return void problems.push(`${what}: succeeded`);
      if (isAsync && o.kind === 'sync-throw') return void problems.push(`${what}: threw synchronously`);
      if (o.error === mine) return;
      if (o.error instanceof LightningError && o.error.code === 'INVALID_ARGUMENT') return;
      problems.push(`${what}: ${describeOutcome(o)}`);
    };
    await check('db.put(k, v, {get sync(){throw}})', true, () => db.put('k', 'v', bad(throwing)));
    await check('db.delete(k, {get sync(){throw}})', true, () => db.delete('k', bad(throwing)));
    await check('db.batch(ops, {get sync(){throw}})', true, () => db.batch([{ type: 'del', key: 'k' }], bad(throwing)));
    await check('db.batch([{get type(){throw}}])', true, () => db.batch(bad([{ get type(): string { throw mine; } }])));
    await check('db.iterator({get gte(){throw}})', false, () => db.iterator(bad({ get gte(): string { throw mine; } })));
    await check('db.beginTransaction({get mode(){throw}})', false, () => db.beginTransaction(bad({ get mode(): string { throw mine; } })));
    await check('db.transaction(fn, {get mode(){throw}})', true, () => db.transaction(() => 1, bad({ get mode(): string { throw mine; } })));
    assert.ok(problems.length === 0, `getter exceptions:\n${problems.join('\n')}`);
    assert.equal(db.getSync('k'), undefined, 'nothing was written');
  });
});

test('session16: open() with an fs option that is not a FileSystem rejects with INVALID_ARGUMENT (not a raw TypeError)', async () => {
  const problems: string[] = [];
  const fakes: [string, unknown][] = [
    ['{ open() {} }', { open() {} }],
    ['{ open: 1 }', { open: 1 }],
    ['null-prototype { open() {} }', Object.assign(Object.create(null) as object, { open() {} })],
  ];
  for (const [name, fs] of fakes) {
    const o = await outcomeOf(() => open('/db', { fs: bad<FileSystem>(fs), compactionThread: 'main' }));
    if (o.kind === 'resolved') {
      await (o.value as Database).close().catch(() => undefined);
      problems.push(`${name}: opened`);
      continue;
    }
    if (o.kind !== 'rejected' || !(o.error instanceof LightningError && o.error.code === 'INVALID_ARGUMENT')) {
      problems.push(`fs ${name}: ${describeOutcome(o)}`);
    }
  }
  assert.ok(problems.length === 0, `bogus fs option:\n${problems.join('\n')}`);
});

// ------------------------------------------------------------------------------------- guards

test('session16 guard: wrong-typed keys, values, options and ranges are INVALID_ARGUMENT with the right sync/async shape at every entry point', async () => {
  await withDb(async (db) => {
    const problems: string[] = [];
    const badKeys: [string, unknown][] = [
      ['undefined', undefined],
      ['null', null],
      ['0', 0],
      ['NaN', Number.NaN],
      ['true', true],
      ['{}', {}],
      ['[]', []],
      ['[1,2]', [1, 2]],
      ['symbol', Symbol('k')],
      ['bigint', 1n],
      ['function', () => 'k'],
      ['String object', new String('k')],
      ['ArrayBuffer', new ArrayBuffer(2)],
      ['DataView', new DataView(new ArrayBuffer(2))],
      ['Uint16Array', new Uint16Array(2)],
      ['Int8Array', new Int8Array(2)],
    ];
    for (const [kname, v] of badKeys) {
      for (const [name, isAsync, call] of keyTakers(db)) {
        // undefined is an absent range bound / compactRange end: legal there.
        if (v === undefined && (name.includes('{') || name.includes('compactRange'))) continue;
        await expectInvalid(`${name} with ${kname}`, () => call(v), isAsync, problems);
      }
    }
    // Empty and oversized keys (empty range bounds and empty values are legal).
    const huge = 'x'.repeat(64 * 1024 + 1);
    for (const [name, isAsync, call] of keyTakers(db)) {
      if (!name.includes('_, value')) {
        await expectInvalid(`${name} with a 64 KiB + 1 string`, () => call(huge), isAsync, problems);
      }
      if (!name.includes('_, value') && !name.includes('{')) {
        await expectInvalid(`${name} with ''`, () => call(''), isAsync, problems);
        await expectInvalid(`${name} with empty Uint8Array`, () => call(new Uint8Array(0)), isAsync, problems);
      }
    }
    const badOptions: unknown[] = [5, 'sync', true, Symbol('o'), { sync: 1 }, { sync: 'true' }, { fsync: true }, { sync: true, extra: 1 }];
    for (const o of badOptions) {
      await expectInvalid(`put options ${String(describe(o))}`, () => db.put('k', 'v', bad(o)), true, problems);
      await expectInvalid(`delete options ${String(describe(o))}`, () => db.delete('k', bad(o)), true, problems);
      await expectInvalid(`batch options ${String(describe(o))}`, () => db.batch([], bad(o)), true, problems);
    }
    const badBatches: unknown[] = [
      null,
      undefined,
      'ops',
      5,
      {},
      { length: 1, 0: { type: 'put', key: 'a', value: 'b' } },
      new Set([{ type: 'put', key: 'a', value: 'b' }]),
      [null],
      [undefined],
      [5],
      ['put'],
      [{}],
      [{ type: 'PUT', key: 'a', value: 'b' }],
      [{ type: 'delete', key: 'a' }],
      [{ type: 'put', key: 'a' }],
      [{ type: 'del' }],
      [{ type: 'put', key: 'a', value: 'b' }, { type: 'merge', key: 'a', value: 'b' }],
      // eslint-disable-next-line no-sparse-arrays
      [{ type: 'put', key: 'a', value: 'b' }, , { type: 'put', key: 'c', value: 'd' }],
    ];
    for (const b of badBatches) {
      await expectInvalid(`batch ${describe(b)}`, () => db.batch(bad(b)), true, problems);
    }
    const badRanges: unknown[] = [
      5,
      'a',
      true,
      Symbol('r'),
      { from: 'a' },
      { gt: 'a', gte: 'a' },
      { lt: 'a', lte: 'a' },
      { limit: -1 },
      { limit: Number.NaN },
      { limit: 1.5 },
      { limit: '3' },
      { limit: -Infinity },
      { reverse: 1 },
      { reverse: 'true' },
      { reverse: null },
      { gte: null },
      { prefix: 7 },
      { lt: 'x'.repeat(64 * 1024 + 1) },
    ];
    for (const r of badRanges) {
      await expectInvalid(`db.iterator(${describe(r)})`, () => db.iterator(bad(r)), false, problems);
      const s = db.snapshot();
      await expectInvalid(`snapshot.iterator(${describe(r)})`, () => s.iterator(bad(r)), false, problems);
      s.release();
      const tx = db.beginTransaction();
      await expectInvalid(`tx.iterator(${describe(r)})`, () => tx.iterator(bad(r)), false, problems);
      await tx.rollback();
    }
    const badTxOptions: unknown[] = [5, 'x', [], { mode: 'x' }, { isolation: 'read-committed' }, { timeoutMs: -1 }, { timeoutMs: 1.5 }, { timeoutMs: Infinity }, { sync: 1 }, { foo: 1 }];
    for (const o of badTxOptions) {
      await expectInvalid(`beginTransaction(${describe(o)})`, () => db.beginTransaction(bad(o)), false, problems);
      await expectInvalid(`transaction(fn, ${describe(o)})`, () => db.transaction(() => 1, bad(o)), true, problems);
    }
    await expectInvalid('beginTransaction({retries: 1})', () => db.beginTransaction(bad({ retries: 1 })), false, problems);
    for (const r of [-1, 1.5, Number.NaN, 1e9, '3']) {
      await expectInvalid(`transaction retries ${String(r)}`, () => db.transaction(() => 1, bad({ retries: r })), true, problems);
    }
    for (const f of [undefined, null, 5, 'fn', {}]) {
      await expectInvalid(`transaction(${describe(f)})`, () => db.transaction(bad<() => unknown>(f)), true, problems);
    }
    assert.ok(problems.length === 0, problems.join('\n'));
    // Nothing was written and no transaction, iterator or snapshot was left behind by a rejected call.
    const st = db.stats();
    assert.equal(st.sequence, 0, 'a rejected call wrote something');
    assert.equal(st.openIterators, 0);
    // keyTakers' tx.* entries begin optimistic transactions that stay active (abandoned by the
    // caller, allowed): each holds its snapshot, and nothing else is left open.
    assert.equal(st.openSnapshots, st.activeTransactions);
  });
});

function describe(v: unknown): string {
  if (typeof v === 'symbol') return v.toString();
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'function';
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

test('session16 guard: Uint8Array views (offset, subclass, SharedArrayBuffer, resizable) are keys and values', async () => {
  await withDb(async (db) => {
    const backing = Buffer.from('xxKEYyy');
    await db.put(new Uint8Array(backing.buffer, backing.byteOffset + 2, 3), new Uint8Array(backing.buffer, backing.byteOffset, 2));
    assert.equal(db.getSync('KEY')?.toString(), 'xx');
    class MyBytes extends Uint8Array {}
    await db.put(MyBytes.from([0x6d]), MyBytes.from([0x31]));
    assert.equal(db.getSync('m')?.toString(), '1');
    const sab = new SharedArrayBuffer(2);
    new Uint8Array(sab).set([0x73, 0x62]);
    await db.put(new Uint8Array(sab), new Uint8Array(sab));
    assert.equal(db.getSync('sb')?.toString(), 'sb');
    const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
    const rab = new Resizable(2, { maxByteLength: 8 });
    const tracking = new Uint8Array(rab);
    tracking.set([0x72, 0x62]);
    const p = db.put(tracking, tracking);
    rab.resize(8); // after the call: the write is the bytes at the call
    await p;
    assert.equal(db.getSync('rb')?.toString(), 'rb');
  });
});

test('session16 (hostile inputs): no unhandled rejections or uncaught exceptions', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
