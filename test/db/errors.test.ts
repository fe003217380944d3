/**
 * Contract: every public entry point rejects bad input with a LightningError and the documented
 * code (docs/errors.md), promise-returning methods never throw synchronously, and a rejected call
 * changes nothing (an invalid batch applies none of its operations).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, LightningError, isLightningError, BATCH_OPS_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX, type OpenOptions } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { ProcessErrorRecorder, collect, rejectsCode, throwsCode } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

/** Casts a deliberately ill-typed argument through the type checker. */
function bad<T>(v: unknown): T {
  return v as T;
}

async function withDb(fn: (db: Database, mem: MemFs) => Promise<void>, opts: OpenOptions = {}): Promise<void> {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, ...opts });
  try {
    await fn(db, mem);
  } finally {
    await db.close();
  }
}

// ------------------------------------------------------------------------------------------ open

test('open: unknown option names reject with INVALID_ARGUMENT', async () => {
  const mem = new MemFs();
  for (const name of ['foo', 'memTableSize', 'cacheSize', 'create_if_missing', 'walrecovery', '']) {
    await rejectsCode(() => open('/db', bad<OpenOptions>({ fs: mem, [name]: 1 })), 'INVALID_ARGUMENT', `option ${name}`);
  }
  assert.equal(mem.exists('/db'), false, 'a rejected open must not create the directory');
});

test('open: out-of-range and non-integer numeric options reject with INVALID_ARGUMENT', async () => {
  const mem = new MemFs();
  const cases: [string, unknown][] = [
    ['memtableSize', 0],
    ['memtableSize', 1023],
    ['memtableSize', 1024 * 1024 * 1024 + 1],
    ['memtableSize', -4096],
    ['memtableSize', 4096.5],
    ['memtableSize', Number.NaN],
    ['memtableSize', Number.POSITIVE_INFINITY],
    ['memtableSize', '4096'],
    ['memtableSize', 4096n],
    ['memtableSize', null],
    ['blockSize', 63],
    ['blockSize', 0],
    ['blockSize', 4 * 1024 * 1024 + 1],
    ['blockSize', 100.1],
    ['blockSize', '4096'],
    ['bloomBitsPerKey', -1],
    ['bloomBitsPerKey', 31],
    ['bloomBitsPerKey', 2.5],
    ['bloomBitsPerKey', true],
    ['maxOpenFiles', 0],
    ['maxOpenFiles', 15],
    ['maxOpenFiles', 1_000_001],
    ['maxOpenFiles', 100.5],
    ['maxOpenFiles', '500'],
    ['blockCacheSize', -1],
    ['blockCacheSize', 1.5],
    ['seed', -1],
    ['seed', 2 ** 32],
    ['seed', 1.5],
  ];
  for (const [name, value] of cases) {
    await rejectsCode(() => open('/db', bad<OpenOptions>({ fs: mem, [name]: value })), 'INVALID_ARGUMENT', `${name}=${String(value)}`);
  }
  assert.equal(mem.exists('/db'), false);
});

test('open: boundary values of numeric options are accepted', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 64, bloomBitsPerKey: 0, maxOpenFiles: 16, blockCacheSize: 0, seed: 0 });
  await db.put('a', '1');
  await db.close();
  const db2 = await open('/db', { fs: mem, blockSize: 4 * 1024 * 1024, bloomBitsPerKey: 30, maxOpenFiles: 1_000_000, seed: 0xffffffff });
  assert.equal((await db2.get('a'))?.toString(), '1');
  await db2.close();
});

test('open: wrongly typed boolean / enum / fs options reject with INVALID_ARGUMENT', async () => {
  const mem = new MemFs();
  const cases: [string, unknown][] = [
    ['createIfMissing', 'yes'],
    ['createIfMissing', 1],
    ['createIfMissing', null],
    ['errorIfExists', 0],
    ['readOnly', 'false'],
    ['sync', 1],
    ['sync', {}],
    ['walRecovery', 'lenient'],
    ['walRecovery', true],
    ['walRecovery', 'STRICT'],
  ];
  for (const [name, value] of cases) {
    await rejectsCode(() => open('/db', bad<OpenOptions>({ fs: mem, [name]: value })), 'INVALID_ARGUMENT', `${name}=${String(value)}`);
  }
  for (const fsValue of [{}, 'memfs', 42, null]) {
    await rejectsCode(() => open('/db', bad<OpenOptions>({ fs: fsValue })), 'INVALID_ARGUMENT', `fs=${String(fsValue)}`);
  }
  assert.equal(mem.exists('/db'), false);
});

test('open: options that are not an object reject with INVALID_ARGUMENT', async () => {
  for (const options of ['fast', 42, true, () => undefined]) {
    await rejectsCode(() => open('/db', bad<OpenOptions>(options)), 'INVALID_ARGUMENT', `options=${typeof options}`);
  }
});

test('open: readOnly together with errorIfExists rejects with INVALID_ARGUMENT', async () => {
  await rejectsCode(() => open('/db', { fs: new MemFs(), readOnly: true, errorIfExists: true }), 'INVALID_ARGUMENT');
});

test('open: a bad dir rejects with INVALID_ARGUMENT (never throws synchronously)', async () => {
  const mem = new MemFs();
  for (const dir of ['', 42, null, undefined, {}, ['a']]) {
    await rejectsCode(() => open(bad<string>(dir), { fs: mem }), 'INVALID_ARGUMENT', `dir=${JSON.stringify(dir)}`);
  }
});

test('open: a dir that is a file rejects with a LightningError', async () => {
  const mem = new MemFs();
  mem.writeFileRaw('/plain', Buffer.from('not a directory'));
  await rejectsCode(() => open('/plain', { fs: mem }), ['IO_ERROR', 'INVALID_ARGUMENT', 'NOT_FOUND'], 'dir is a file');
  assert.equal(mem.readFileRaw('/plain').toString(), 'not a directory', 'the file is left untouched');
});

test('open (real filesystem): a dir that is a file, or under a file, rejects with a LightningError and touches nothing', async () => {
  const root = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-errors-'));
  try {
    const file = path.join(root, 'plain');
    nodeFs.writeFileSync(file, 'not a directory');
    await rejectsCode(() => open(file), ['IO_ERROR', 'INVALID_ARGUMENT', 'NOT_FOUND'], 'dir is a file');
    await rejectsCode(() => open(path.join(file, 'sub')), ['IO_ERROR', 'INVALID_ARGUMENT', 'NOT_FOUND'], 'dir under a file');
    assert.equal(nodeFs.readFileSync(file, 'utf8'), 'not a directory');
    assert.deepEqual(nodeFs.readdirSync(root), ['plain']);
  } finally {
    nodeFs.rmSync(root, { recursive: true, force: true });
  }
});

// -------------------------------------------------------------------------- keys, values, writes

const badKeys: [string, unknown][] = [
  ['number', 42],
  ['null', null],
  ['undefined', undefined],
  ['object', { key: 'a' }],
  ['array', [1, 2, 3]],
  ['boolean', true],
  ['Uint16Array', new Uint16Array([1, 2])],
  ['DataView', new DataView(new ArrayBuffer(2))],
  ['ArrayBuffer', new ArrayBuffer(2)],
  ['empty string', ''],
  ['empty Uint8Array', new Uint8Array(0)],
  ['empty Buffer', Buffer.alloc(0)],
  ['key one byte over the limit', Buffer.alloc(KEY_BYTES_MAX + 1, 0x61)],
  // 40 000 characters but 80 000 UTF-8 bytes: the limit is in bytes.
  ['multi-byte string over the limit', 'é'.repeat(40_000)],
];

test('put/get/getSync/delete reject bad keys with INVALID_ARGUMENT', async () => {
  await withDb(async (db) => {
    await db.put('sentinel', 'v');
    const seqBefore = db.stats().sequence;
    for (const [name, key] of badKeys) {
      await rejectsCode(() => db.put(bad<string>(key), 'v'), 'INVALID_ARGUMENT', `put key ${name}`);
      await rejectsCode(() => db.delete(bad<string>(key)), 'INVALID_ARGUMENT', `delete key ${name}`);
      await rejectsCode(() => db.get(bad<string>(key)), 'INVALID_ARGUMENT', `get key ${name}`);
      throwsCode(() => db.getSync(bad<string>(key)), 'INVALID_ARGUMENT', `getSync key ${name}`);
    }
    assert.equal(db.stats().sequence, seqBefore, 'no rejected write consumed a sequence number');
    assert.deepEqual(await collect(db.iterator()), [['sentinel', 'v']]);
  });
});

test('keys of exactly KEY_BYTES_MAX bytes and 1 byte are accepted', async () => {
  await withDb(async (db) => {
    const big = Buffer.alloc(KEY_BYTES_MAX, 0x62);
    await db.put(big, 'big');
    await db.put(Buffer.from([0x00]), 'zero');
    assert.equal((await db.get(big))?.toString(), 'big');
    assert.equal(db.getSync(Buffer.from([0])) ?.toString(), 'zero');
    await db.delete(big);
    assert.equal(await db.get(big), undefined);
  });
});

test('put rejects bad values with INVALID_ARGUMENT', async () => {
  await withDb(async (db) => {
    for (const [name, value] of [
      ['number', 1],
      ['null', null],
      ['undefined', undefined],
      ['object', { v: 1 }],
      ['array', ['a']],
      ['Float32Array', new Float32Array(2)],
    ] as [string, unknown][]) {
      await rejectsCode(() => db.put('k', bad<string>(value)), 'INVALID_ARGUMENT', `value ${name}`);
    }
    assert.equal(await db.get('k'), undefined);
  });
});

test('put rejects a value one byte over VALUE_BYTES_MAX; exactly VALUE_BYTES_MAX round-trips', async () => {
  await withDb(async (db) => {
    let over: Buffer | undefined = Buffer.alloc(VALUE_BYTES_MAX + 1, 0x78);
    await rejectsCode(() => db.put('big', over as Buffer), 'INVALID_ARGUMENT', 'value over limit');
    await rejectsCode(() => db.batch([{ type: 'put', key: 'big', value: over as Buffer }]), 'INVALID_ARGUMENT', 'batch value over limit');
    over = undefined;
    assert.equal(await db.get('big'), undefined);
    const max = Buffer.alloc(VALUE_BYTES_MAX, 0x79);
    max[0] = 1;
    max[VALUE_BYTES_MAX - 1] = 2;
    await db.put('max', max, { sync: false });
    const got = await db.get('max');
    assert.ok(got !== undefined && got.length === VALUE_BYTES_MAX);
    assert.ok(got.equals(max));
  });
});

test('write options: unknown names and non-boolean sync reject with INVALID_ARGUMENT', async () => {
  await withDb(async (db) => {
    const badOpts: unknown[] = [{ sync: 'yes' }, { sync: 1 }, { sync: null }, { fsync: true }, { sync: true, extra: 1 }, 'sync', 5, true];
    for (const o of badOpts) {
      const what = JSON.stringify(o);
      await rejectsCode(() => db.put('k', 'v', bad<{ sync?: boolean }>(o)), 'INVALID_ARGUMENT', `put opts ${what}`);
      await rejectsCode(() => db.delete('k', bad<{ sync?: boolean }>(o)), 'INVALID_ARGUMENT', `delete opts ${what}`);
      await rejectsCode(() => db.batch([{ type: 'put', key: 'k', value: 'v' }], bad<{ sync?: boolean }>(o)), 'INVALID_ARGUMENT', `batch opts ${what}`);
    }
    assert.equal(await db.get('k'), undefined, 'no write with bad options was applied');
    // Accepted forms.
    await db.put('k', 'v', {});
    await db.put('k', 'v', { sync: false });
    await db.put('k', 'v', bad<{ sync?: boolean }>(undefined));
    assert.equal((await db.get('k'))?.toString(), 'v');
  });
});

// ------------------------------------------------------------------------------------------ batch

test('batch: a non-array argument rejects with INVALID_ARGUMENT', async () => {
  await withDb(async (db) => {
    for (const ops of [null, undefined, 'put', 42, { type: 'put', key: 'a', value: 'b' }, new Set()]) {
      await rejectsCode(() => db.batch(bad<[]>(ops)), 'INVALID_ARGUMENT', `batch(${String(ops)})`);
    }
  });
});

test('batch: one invalid op among valid ones rejects the whole batch and applies nothing', async () => {
  await withDb(async (db) => {
    await db.put('existing', 'old');
    const valid = [
      { type: 'put', key: 'a', value: '1' },
      { type: 'del', key: 'existing' },
      { type: 'put', key: 'b', value: '2' },
    ];
    const invalids: [string, unknown][] = [
      ['null op', null],
      ['number op', 7],
      ['unknown type', { type: 'delete', key: 'x' }],
      ['missing type', { key: 'x', value: 'y' }],
      ['put without value', { type: 'put', key: 'x' }],
      ['put with numeric value', { type: 'put', key: 'x', value: 3 }],
      ['empty key', { type: 'put', key: '', value: 'y' }],
      ['numeric key', { type: 'del', key: 5 }],
      ['key over limit', { type: 'put', key: Buffer.alloc(KEY_BYTES_MAX + 1), value: 'y' }],
    ];
    const seqBefore = db.stats().sequence;
    for (const [name, invalid] of invalids) {
      for (let pos = 0; pos <= valid.length; pos++) {
        const ops: unknown[] = [...valid];
        ops.splice(pos, 0, invalid);
        await rejectsCode(() => db.batch(bad<[]>(ops)), 'INVALID_ARGUMENT', `${name} at ${pos}`);
      }
    }
    assert.equal(db.stats().sequence, seqBefore);
    assert.equal(await db.get('a'), undefined);
    assert.equal(await db.get('b'), undefined);
    assert.equal((await db.get('existing'))?.toString(), 'old');
    assert.deepEqual(await collect(db.iterator()), [['existing', 'old']]);
    // The same ops without the invalid one apply atomically.
    await db.batch(bad<[]>(valid));
    assert.deepEqual(await collect(db.iterator()), [['a', '1'], ['b', '2']]);
  });
});

test('batch: more than BATCH_OPS_MAX operations rejects with INVALID_ARGUMENT', async () => {
  await withDb(async (db) => {
    const ops = new Array<{ type: 'put'; key: string; value: string }>(BATCH_OPS_MAX + 1).fill({ type: 'put', key: 'same', value: 'v' });
    await rejectsCode(() => db.batch(ops), 'INVALID_ARGUMENT', 'oversized batch');
    assert.equal(await db.get('same'), undefined);
  });
});

test('batch: an empty batch resolves and changes nothing', async () => {
  await withDb(async (db) => {
    const before = db.stats().sequence;
    await db.batch([]);
    assert.equal(db.stats().sequence, before);
  });
});

// --------------------------------------------------------------------------------------- iterator

test('iterator: bad range options throw INVALID_ARGUMENT and leave no open iterator', async () => {
  await withDb(async (db) => {
    await db.put('a', '1');
    const bads: unknown[] = [
      { gt: 'a', gte: 'a' },
      { lt: 'z', lte: 'z' },
      { gt: 'a', gte: 'b', lt: 'c' },
      { limit: 1.5 },
      { limit: -1 },
      { limit: Number.NaN },
      { limit: '5' },
      { limit: Number.NEGATIVE_INFINITY },
      { start: 'a' },
      { from: 'a' },
      { gt: 'a', keys: true },
      { reverse: 'yes' },
      { reverse: 1 },
      { gte: 5 },
      { lt: null },
      { prefix: {} },
      { prefix: 42 },
      { lte: Buffer.alloc(KEY_BYTES_MAX + 1) },
      'all',
      7,
    ];
    for (const r of bads) {
      throwsCode(() => db.iterator(bad<undefined>(r)), 'INVALID_ARGUMENT', `iterator(${JSON.stringify(r)})`);
    }
    const snap = db.snapshot();
    for (const r of bads) {
      throwsCode(() => snap.iterator(bad<undefined>(r)), 'INVALID_ARGUMENT', `snap.iterator(${JSON.stringify(r)})`);
    }
    snap.release();
    assert.equal(db.stats().openIterators, 0, 'a rejected iterator must not be registered');
    // Accepted edge forms.
    assert.deepEqual(await collect(db.iterator({ limit: Number.POSITIVE_INFINITY })), [['a', '1']]);
    assert.deepEqual(await collect(db.iterator({ limit: 0 })), []);
    assert.deepEqual(await collect(db.iterator(bad<undefined>(null))), [['a', '1']]);
  });
});

// --------------------------------------------------------------------------------------- snapshot

test('snapshot: bad keys and use after release are INVALID_ARGUMENT; get never throws synchronously', async () => {
  await withDb(async (db) => {
    await db.put('a', '1');
    const snap = db.snapshot();
    for (const [name, key] of badKeys) {
      await rejectsCode(() => snap.get(bad<string>(key)), 'INVALID_ARGUMENT', `snap.get key ${name}`);
      throwsCode(() => snap.getSync(bad<string>(key)), 'INVALID_ARGUMENT', `snap.getSync key ${name}`);
    }
    snap.release();
    snap.release(); // idempotent
    await rejectsCode(() => snap.get('a'), 'INVALID_ARGUMENT', 'get after release');
    throwsCode(() => snap.getSync('a'), 'INVALID_ARGUMENT', 'getSync after release');
    throwsCode(() => snap.iterator(), 'INVALID_ARGUMENT', 'iterator after release');
    assert.equal(db.stats().openSnapshots, 0);
  });
});

// ------------------------------------------------------------------- compactRange / idle / resume

test('compactRange rejects bad keys with INVALID_ARGUMENT and READ_ONLY on a readOnly DB; idle/resume on a healthy DB resolve', async () => {
  const mem = new MemFs();
  await withDb(async (db) => {
    await db.put('a', '1');
    for (const [name, key] of badKeys) {
      if (key === undefined) continue; // undefined means "unbounded"
      await rejectsCode(() => db.compactRange(bad<string>(key)), 'INVALID_ARGUMENT', `compactRange start ${name}`);
      await rejectsCode(() => db.compactRange('a', bad<string>(key)), 'INVALID_ARGUMENT', `compactRange end ${name}`);
    }
    await db.compactRange();
    await db.idle();
    await db.resume(); // nothing to resume: resolves
    assert.equal((await db.get('a'))?.toString(), '1');
  }, {});
  const db = await open('/db', { fs: mem });
  await db.put('x', 'y');
  await db.close();
  const ro = await open('/db', { fs: mem, readOnly: true });
  await rejectsCode(() => ro.compactRange(), 'READ_ONLY', 'compactRange on a readOnly DB');
  await ro.close();
});

// --------------------------------------------------------------------------- never a sync throw

test('promise-returning methods never throw synchronously, whatever the arguments', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  const weird: unknown[] = [undefined, null, 0, '', {}, [], Symbol('s'), () => 1, Object.create(null)];
  const calls: [string, (a: unknown) => unknown][] = [
    ['put key', (a) => db.put(bad<string>(a), 'v')],
    ['put value', (a) => db.put('k', bad<string>(a))],
    ['put opts', (a) => db.put('k', 'v', bad<{ sync?: boolean }>(a === undefined ? 'x' : a))],
    ['delete', (a) => db.delete(bad<string>(a))],
    ['get', (a) => db.get(bad<string>(a))],
    ['batch', (a) => db.batch(bad<[]>(a))],
    ['batch op', (a) => db.batch(bad<[]>([a]))],
    ['compactRange', (a) => db.compactRange(bad<string>(a))],
    ['snapshot get', (a) => db.snapshot().get(bad<string>(a))],
    ['open dir', (a) => open(bad<string>(a), { fs: mem })],
    ['open opts', (a) => open('/other', bad<OpenOptions>(a === undefined || a === null ? 'x' : { fs: mem, bogus: a }))],
  ];
  for (const [name, call] of calls) {
    for (const a of weird) {
      // Symbols and functions are invalid everywhere; objects are invalid keys/values; {} and
      // [] are valid write options and [] is a valid (empty) batch, so only check "no sync throw".
      let p: unknown;
      try {
        p = call(a);
      } catch (e) {
        assert.fail(`${name}(${String(typeof a)}) threw synchronously: ${String(e)}`);
      }
      assert.ok(p instanceof Promise, `${name} returned a promise`);
      try {
        const r = await p;
        if (isLightningError(r)) assert.fail('resolved with an error');
        if (r !== null && typeof r === 'object' && 'close' in r && typeof (r as Database).close === 'function') {
          await (r as Database).close();
        }
      } catch (e) {
        assert.ok(e instanceof LightningError, `${name}(${typeof a}) rejected with a non-LightningError: ${String(e)}`);
        assert.equal(e.code, 'INVALID_ARGUMENT', `${name}(${typeof a}): ${e.message}`);
      }
    }
  }
  await db.close();
  // After close: still no synchronous throw, just CLOSED.
  await rejectsCode(() => db.put(bad<string>(Symbol('x')), 'v'), ['CLOSED', 'INVALID_ARGUMENT'], 'put after close');
  await rejectsCode(() => db.get('a'), 'CLOSED', 'get after close');
});

test('no unhandled rejections or uncaught exceptions were recorded in this file', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
