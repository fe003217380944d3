/**
 * Contract tests of the public API: lifecycle (close, open modes, locking across handles and
 * processes) and semantics (values, key encodings, bytewise order, range options, iterators,
 * snapshots, stats, group commit). MemFs unless the real filesystem is the point.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, LightningError, KEY_BYTES_MAX, type RangeOptions } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { hex, modelScan, type ModelRange, type ModelState } from '../harness/model.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, collect, collectSync, k, rejectsCode, throwsCode } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

const INDEX_JS = fileURLToPath(new URL('../../src/index.js', import.meta.url));

function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ldb-api-${tag}-`));
}

/** Every file's bytes, except LOCK (its content is the holder's identity). */
function snapshotFiles(mem: MemFs): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of mem.listAll()) if (!p.endsWith('/LOCK')) out.set(p, mem.readFileRaw(p).toString('hex'));
  return out;
}

// ========================================================================================= lifecycle

test('close() is idempotent: twice in a row and concurrently', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  await db.put('a', '1');
  await db.close();
  await db.close();
  const db2 = await open('/db', { fs: mem });
  const closes = [db2.close(), db2.close(), db2.close()];
  await Promise.all(closes);
  await db2.close();
  const db3 = await open('/db', { fs: mem });
  assert.equal((await db3.get('a'))?.toString(), '1');
  await db3.close();
});

test('close() waits for writes already queued; writes issued after close() starts get CLOSED', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  const pending: Promise<void>[] = [];
  for (let i = 0; i < 50; i++) pending.push(db.put(k(i), `v${i}`, { sync: i % 2 === 0 }));
  const closing = db.close();
  await rejectsCode(() => db.put('late', 'x'), 'CLOSED', 'put during close');
  await rejectsCode(() => db.delete('late'), 'CLOSED', 'delete during close');
  await rejectsCode(() => db.batch([{ type: 'put', key: 'late', value: 'x' }]), 'CLOSED', 'batch during close');
  await Promise.all(pending);
  await closing;
  const db2 = await open('/db', { fs: mem });
  for (let i = 0; i < 50; i++) assert.equal(db2.getSync(k(i))?.toString(), `v${i}`);
  assert.equal(db2.getSync('late'), undefined);
  await db2.close();
});

test('every operation after close() fails with CLOSED (a LightningError)', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  await db.put('a', '1');
  const snap = db.snapshot();
  await db.close();
  await rejectsCode(() => db.get('a'), 'CLOSED', 'get');
  throwsCode(() => db.getSync('a'), 'CLOSED', 'getSync');
  await rejectsCode(() => db.put('a', '2'), 'CLOSED', 'put');
  await rejectsCode(() => db.delete('a'), 'CLOSED', 'delete');
  await rejectsCode(() => db.batch([{ type: 'put', key: 'b', value: '2' }]), 'CLOSED', 'batch');
  await rejectsCode(() => db.batch([]), 'CLOSED', 'empty batch');
  throwsCode(() => db.iterator(), 'CLOSED', 'iterator');
  throwsCode(() => db.iterator({ gte: 'a' }), 'CLOSED', 'iterator with range');
  throwsCode(() => db.snapshot(), 'CLOSED', 'snapshot');
  await rejectsCode(() => db.compactRange(), 'CLOSED', 'compactRange');
  await rejectsCode(() => db.idle(), 'CLOSED', 'idle');
  await rejectsCode(() => db.resume(), 'CLOSED', 'resume');
  await rejectsCode(() => snap.get('a'), 'CLOSED', 'snapshot get after close');
  throwsCode(() => snap.getSync('a'), 'CLOSED', 'snapshot getSync after close');
  throwsCode(() => snap.iterator(), 'CLOSED', 'snapshot iterator after close');
  snap.release(); // must not throw
  const s = db.stats();
  assert.equal(s.state, 'closed');
  assert.equal(s.openIterators, 0);
  assert.equal(s.openSnapshots, 0);
});

/** Steps `it` after the DB closed: done, or a CLOSED LightningError; never another error type. */
async function stepAfterClose(step: () => Promise<IteratorResult<unknown>> | IteratorResult<unknown>): Promise<'done' | 'closed'> {
  try {
    const r = await step();
    assert.equal(r.done, true, 'an iterator stepped after close must not yield entries');
    return 'done';
  } catch (e) {
    assertLightning(e, 'CLOSED', 'iterator step after close');
    return 'closed';
  }
}

test('an iterator created before close and stepped after is done or fails with CLOSED (never a TypeError)', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  for (let i = 0; i < 200; i++) await db.put(k(i), 'x'.repeat(20), { sync: false });
  const unstarted = db.iterator();
  const started = db.iterator();
  assert.equal((await started.next()).done, false);
  const syncForm = db.iterator()[Symbol.iterator]();
  assert.equal(syncForm.next().done, false);
  assert.equal(db.stats().openIterators, 3);
  await db.close();
  assert.equal(db.stats().openIterators, 0, 'close releases open iterators');
  await stepAfterClose(() => unstarted.next());
  await stepAfterClose(() => started.next());
  await stepAfterClose(() => syncForm.next());
  // Stepping again still gives done or CLOSED, never entries or another error type.
  await stepAfterClose(() => started.next());
  await stepAfterClose(() => syncForm.next());
  assert.equal(started.closed, true);
  assert.equal(unstarted.closed, true);
});

// Regression: an iterator stepped after db.close() used to report done, so a scan cut short by a
// close looked complete.
test(
  'docs/errors.md: an iterator step after close() fails with CLOSED (async, sync and for-await forms)',
  async () => {
    const db = await open('/db', { fs: new MemFs() });
    for (let i = 0; i < 10; i++) await db.put(k(i), 'v');
    const it = db.iterator();
    assert.equal((await it.next()).done, false);
    const syncIt = db.iterator()[Symbol.iterator]();
    assert.equal(syncIt.next().done, false);
    const loop = db.iterator();
    const seen: string[] = [];
    await db.close();
    await rejectsCode(() => it.next(), 'CLOSED', 'next after close');
    throwsCode(() => syncIt.next(), 'CLOSED', 'sync next after close');
    let loopErr: unknown;
    try {
      for await (const [kk] of loop) seen.push(kk.toString());
    } catch (e) {
      loopErr = e;
    }
    assertLightning(loopErr, 'CLOSED', 'for await over an iterator of a closed db');
    assert.deepEqual(seen, []);
  },
);

test('createIfMissing:false on a missing dir or an empty dir fails with NOT_FOUND and creates nothing', async () => {
  const mem = new MemFs();
  await rejectsCode(() => open('/nope', { fs: mem, createIfMissing: false }), 'NOT_FOUND', 'missing dir');
  assert.equal(mem.exists('/nope'), false);
  mem.mkdir('/empty');
  await rejectsCode(() => open('/empty', { fs: mem, createIfMissing: false }), 'NOT_FOUND', 'empty dir');
  assert.equal(mem.exists('/empty/CURRENT'), false);
  // The failed open released its lock.
  const db = await open('/empty', { fs: mem });
  await db.close();
  const again = await open('/empty', { fs: mem, createIfMissing: false });
  await again.close();
});

test('errorIfExists on an existing DB fails with ALREADY_EXISTS and leaves it intact and unlocked', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, errorIfExists: true }); // fresh: fine
  await db.put('a', '1');
  await db.close();
  await rejectsCode(() => open('/db', { fs: mem, errorIfExists: true }), 'ALREADY_EXISTS');
  const db2 = await open('/db', { fs: mem });
  assert.equal((await db2.get('a'))?.toString(), '1');
  await db2.close();
});

test('readOnly: reads work, writes fail with READ_ONLY, nothing on disk changes', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  for (let i = 0; i < 100; i++) await db.put(k(i), `v${i}`);
  await db.delete(k(5));
  await db.close();
  const before = snapshotFiles(mem);
  const ro = await open('/db', { fs: mem, readOnly: true });
  assert.equal(ro.stats().readOnly, true);
  assert.equal((await ro.get(k(1)))?.toString(), 'v1');
  assert.equal(ro.getSync(k(5)), undefined);
  assert.equal((await collect(ro.iterator())).length, 99);
  const snap = ro.snapshot();
  assert.equal((await snap.get(k(2)))?.toString(), 'v2');
  snap.release();
  await rejectsCode(() => ro.put('x', 'y'), 'READ_ONLY', 'put');
  await rejectsCode(() => ro.delete(k(1)), 'READ_ONLY', 'delete');
  await rejectsCode(() => ro.batch([{ type: 'del', key: k(1) }]), 'READ_ONLY', 'batch');
  await rejectsCode(() => ro.batch([]), 'READ_ONLY', 'empty batch');
  await ro.close();
  assert.deepEqual(snapshotFiles(mem), before, 'a readOnly open/close wrote nothing');
});

test('readOnly sees writes that are only in the WAL and does not write', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  for (let i = 0; i < 20; i++) await db.put(k(i), `v${i}`, { sync: true });
  const crashed = mem.crashClone();
  await db.close();
  assert.ok(crashed.listAll().some((p) => p.endsWith('.log')));
  const before = snapshotFiles(crashed);
  const ro = await open('/db', { fs: crashed, readOnly: true });
  for (let i = 0; i < 20; i++) assert.equal(ro.getSync(k(i))?.toString(), `v${i}`);
  await ro.close();
  assert.deepEqual(snapshotFiles(crashed), before);
});

test('readOnly on a missing dir or a dir without a DB fails with NOT_FOUND', async () => {
  const mem = new MemFs();
  await rejectsCode(() => open('/none', { fs: mem, readOnly: true }), 'NOT_FOUND');
  assert.equal(mem.exists('/none'), false, 'readOnly never creates the directory');
  mem.mkdir('/empty');
  await rejectsCode(() => open('/empty', { fs: mem, readOnly: true }), 'NOT_FOUND');
});

test('a second open of the same dir in one process fails with LOCKED (MemFs), until close', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  await db.put('a', '1');
  for (const spelling of ['/db', '/db/', '//db', 'db', '/x/../db']) {
    await rejectsCode(() => open(spelling, { fs: mem }), 'LOCKED', `open ${spelling}`);
    await rejectsCode(() => open(spelling, { fs: mem, readOnly: true }), 'LOCKED', `readOnly open ${spelling}`);
  }
  // The failed opens did not steal or release the holder's lock.
  await db.put('b', '2');
  await rejectsCode(() => open('/db', { fs: mem }), 'LOCKED');
  await db.close();
  const db2 = await open('/db/', { fs: mem });
  assert.equal((await db2.get('b'))?.toString(), '2');
  await db2.close();
});

test('a second open of the same dir in one process fails with LOCKED (real filesystem), until close', async () => {
  const dir = tmpDir('lock');
  try {
    const db = await open(dir);
    await db.put('a', '1');
    const rel = path.relative(process.cwd(), dir);
    for (const spelling of [dir, `${dir}/`, `${dir}/./`, rel, path.join(dir, '..', path.basename(dir))]) {
      await rejectsCode(() => open(spelling), 'LOCKED', `open ${spelling}`);
    }
    await db.put('b', '2');
    await db.close();
    const db2 = await open(`${dir}/`);
    assert.equal((await db2.get('a'))?.toString(), '1');
    assert.equal((await db2.get('b'))?.toString(), '2');
    await db2.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface Child {
  proc: ChildProcess;
  /** First line the child printed: 'ready' or 'error <code>'. */
  firstLine: Promise<string>;
  exited: Promise<void>;
}

/** A child node process that opens `dir` via the compiled build and stays alive until killed. */
function spawnHolder(dir: string): Child {
  const code = [
    'const { open } = await import(process.env.LDB_INDEX);',
    'try {',
    '  globalThis.db = await open(process.env.LDB_DIR);',
    "  process.stdout.write('ready\\n');",
    '} catch (e) {',
    "  process.stdout.write('error ' + e.code + '\\n');",
    '}',
    'setInterval(() => {}, 1 << 30);',
  ].join('\n');
  const proc = spawn(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, LDB_INDEX: INDEX_JS, LDB_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const firstLine = new Promise<string>((resolve, reject) => {
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    proc.on('error', reject);
    proc.on('exit', (c, sig) => reject(new Error(`child exited early (${c ?? sig}): ${stderr}`)));
  });
  return { proc, firstLine, exited };
}

async function killChild(c: Child): Promise<void> {
  if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  await c.exited;
}

test('a LOCK held by another live process fails with LOCKED; after that process is killed, open works', { timeout: 30_000 }, async () => {
  const dir = tmpDir('xproc');
  let child: Child | undefined;
  try {
    const db0 = await open(dir);
    await db0.put('before', 'child');
    await db0.close();
    child = spawnHolder(dir);
    assert.equal(await child.firstLine, 'ready');
    await rejectsCode(() => open(dir), 'LOCKED', 'open while a live child holds the lock');
    await rejectsCode(() => open(dir, { readOnly: true }), 'LOCKED', 'readOnly open while held');
    await killChild(child);
    const db = await open(dir); // the dead child's lock does not count
    assert.equal((await db.get('before'))?.toString(), 'child');
    await db.put('after', 'kill');
    // And the other way around: while we hold it, a child gets LOCKED.
    const other = spawnHolder(dir);
    try {
      assert.equal(await other.firstLine, 'error LOCKED');
    } finally {
      await killChild(other);
    }
    await db.close();
  } finally {
    if (child !== undefined) await killChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ========================================================================================= semantics

test('empty values are allowed and round-trip as an empty Buffer (memtable, table, iterator, batch)', async () => {
  const mem = new MemFs();
  let db = await open('/db', { fs: mem });
  await db.put('s', '');
  await db.put('u', new Uint8Array(0));
  await db.batch([{ type: 'put', key: 'b', value: Buffer.alloc(0) }]);
  const check = async (where: string): Promise<void> => {
    for (const key of ['s', 'u', 'b']) {
      const v = await db.get(key);
      assert.ok(Buffer.isBuffer(v), `${where}: get(${key}) is a Buffer, got ${String(v)}`);
      assert.equal(v.length, 0);
      const s = db.getSync(key);
      assert.ok(Buffer.isBuffer(s) && s.length === 0, `${where}: getSync(${key})`);
    }
    assert.deepEqual(await collect(db.iterator()), [['b', ''], ['s', ''], ['u', '']], where);
  };
  await check('memtable');
  await db.close();
  db = await open('/db', { fs: mem });
  await check('after reopen (table)');
  await db.close();
});

test('string and Uint8Array keys are the same bytes (including views with an offset)', async () => {
  const db = await open('/db', { fs: new MemFs() });
  await db.put('héllo', 'from string');
  assert.equal((await db.get(Buffer.from('héllo', 'utf8')))?.toString(), 'from string');
  assert.equal(db.getSync(new Uint8Array(Buffer.from('héllo')))?.toString(), 'from string');
  const backing = new Uint8Array([0xaa, 0xbb, ...Buffer.from('view'), 0xcc]);
  await db.put(backing.subarray(2, 6), backing.subarray(0, 2));
  assert.deepEqual([...((await db.get('view')) ?? [])], [0xaa, 0xbb]);
  assert.equal(await db.get(backing), undefined, 'the whole backing array is a different key');
  await db.put(new Uint8Array(Buffer.from('héllo')), 'from bytes');
  assert.equal((await db.get('héllo'))?.toString(), 'from bytes');
  await db.delete(Buffer.from('héllo'));
  assert.equal(await db.get('héllo'), undefined);
  const snap = db.snapshot();
  assert.deepEqual([...((await snap.get(new Uint8Array(Buffer.from('view')))) ?? [])], [0xaa, 0xbb]);
  snap.release();
  await db.close();
});

test('buffers are copied: mutating a buffer after its write resolves, or a returned buffer, changes nothing', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  const key = Buffer.from('mutable');
  const value = Buffer.from('original');
  await db.put(key, value);
  key[0] = 0x4d;
  value.fill(0x7a);
  assert.equal((await db.get('mutable'))?.toString(), 'original');
  const got = db.getSync('mutable');
  got?.fill(0);
  assert.equal((await db.get('mutable'))?.toString(), 'original');
  for await (const [kk, vv] of db.iterator()) {
    kk.fill(0x30);
    vv.fill(0x30);
  }
  assert.deepEqual(await collect(db.iterator()), [['mutable', 'original']]);
  // Same once the data is in a table (block cache entries must not be exposed).
  for (let i = 0; i < 100; i++) await db.put(k(i), 'x'.repeat(30), { sync: false });
  await db.close();
  const db2 = await open('/db', { fs: mem });
  for await (const [kk, vv] of db2.iterator()) {
    kk.fill(0x30);
    vv.fill(0x30);
  }
  const v2 = db2.getSync('mutable');
  v2?.fill(0x31);
  assert.equal((await db2.get('mutable'))?.toString(), 'original');
  assert.equal((await db2.get(k(7)))?.toString(), 'x'.repeat(30));
  assert.equal((await collect(db2.iterator())).length, 101);
  await db2.close();
});

// Regression: writes used to keep references to the caller's Buffers and encode them later (in
// the group commit), so a mutation in the same tick changed what was stored.
test('a key/value buffer mutated after put/delete/batch is called but before it resolves is written as it was at the call', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem });
  await db.put('ddd', 'to-delete');
  const key = Buffer.from('aaa');
  const value = Buffer.from('111');
  const delKey = Buffer.from('ddd');
  const bKey = Buffer.from('bbb');
  const bValue = new Uint8Array(Buffer.from('222'));
  const writes = [db.put(key, value), db.delete(delKey), db.batch([{ type: 'put', key: bKey, value: bValue }])];
  key.write('zzz');
  value.write('999');
  delKey.write('eee');
  bKey.write('yyy');
  bValue.set(Buffer.from('888'));
  await Promise.all(writes);
  assert.deepEqual(await collect(db.iterator()), [['aaa', '111'], ['bbb', '222']]);
  await db.close();
  const db2 = await open('/db', { fs: mem });
  assert.deepEqual(await collect(db2.iterator()), [['aaa', '111'], ['bbb', '222']], 'the WAL/table holds the call-time bytes');
  await db2.close();
});

test('keys sort bytewise: 0x00 and 0xff bytes, prefixes, and UTF-8 (not UTF-16) order', async () => {
  const mem = new MemFs();
  const keys = [
    Buffer.from([0x00]),
    Buffer.from([0x00, 0x00]),
    Buffer.from([0x00, 0xff]),
    Buffer.from([0x01]),
    Buffer.from('a'),
    Buffer.from('a\x00'),
    Buffer.from('ab'),
    Buffer.from('abc'),
    Buffer.from('b'),
    Buffer.from('\u{ffff}'), // EF BF BF
    Buffer.from('😀'), // F0 9F 98 80: after U+FFFF in UTF-8, before it in UTF-16
    Buffer.from([0xff]),
    Buffer.from([0xff, 0x00]),
    Buffer.from([0xff, 0xff]),
    Buffer.from([0xff, 0xff, 0xff]),
  ];
  const sorted = [...keys].sort(Buffer.compare);
  assert.deepEqual(sorted, keys, 'the test list is in bytewise order');
  const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 64 });
  // Insert in a scrambled order; half of them pushed into tables by filler writes.
  const order = [7, 0, 14, 3, 10, 1, 12, 5, 9, 2, 13, 4, 11, 6, 8];
  for (const [n, i] of order.entries()) {
    await db.put(keys[i] as Buffer, `v${i}`);
    if (n === 7) for (let f = 0; f < 60; f++) await db.put(Buffer.from([0x80, f]), 'filler-filler-filler', { sync: false });
  }
  for (let f = 0; f < 60; f++) await db.delete(Buffer.from([0x80, f]), { sync: false });
  const expected = keys.map((kk, i) => [kk.toString('latin1'), `v${i}`]);
  assert.deepEqual(await collect(db.iterator()), expected);
  assert.deepEqual(await collect(db.iterator({ reverse: true })), [...expected].reverse());
  await db.close();
  const db2 = await open('/db', { fs: mem });
  assert.deepEqual(await collect(db2.iterator()), expected, 'same order from tables');
  assert.deepEqual(await collect(db2.iterator({ prefix: Buffer.from('a') })), expected.slice(4, 8));
  assert.deepEqual(await collect(db2.iterator({ prefix: Buffer.from([0x00]) })), expected.slice(0, 3));
  await db2.close();
});

test('keys of KEY_BYTES_MAX that differ only in their last byte round-trip through tables with tiny blocks', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, blockSize: 64 });
  const keys: Buffer[] = [];
  for (let i = 0; i < 6; i++) {
    const key = Buffer.alloc(KEY_BYTES_MAX, 0x61);
    key[KEY_BYTES_MAX - 1] = 0x30 + i;
    if (i % 2 === 1) key[0] = 0x62;
    keys.push(key);
  }
  keys.push(Buffer.alloc(KEY_BYTES_MAX, 0xff), Buffer.from([0xff]), Buffer.alloc(KEY_BYTES_MAX - 1, 0xff));
  for (const [i, key] of keys.entries()) await db.put(key, `v${i}`, { sync: false });
  await db.close();
  const db2 = await open('/db', { fs: mem });
  for (const [i, key] of keys.entries()) assert.equal(db2.getSync(key)?.toString(), `v${i}`, `key #${i}`);
  const near = Buffer.alloc(KEY_BYTES_MAX, 0x61);
  near[KEY_BYTES_MAX - 1] = 0x29;
  assert.equal(db2.getSync(near), undefined, 'a neighbour that was never written');
  const sorted = [...keys].sort(Buffer.compare);
  const got: Buffer[] = [];
  for (const [key] of db2.iterator()) got.push(key);
  assert.equal(got.length, sorted.length);
  got.forEach((key, i) => assert.ok(key.equals(sorted[i] as Buffer), `order at ${i}`));
  const rev: Buffer[] = [];
  for (const [key] of db2.iterator({ reverse: true, gt: sorted[0] as Buffer, lt: sorted[sorted.length - 1] as Buffer })) rev.push(key);
  assert.equal(rev.length, sorted.length - 2);
  await db2.close();
});

test('delete of an absent key is fine; overwrites keep the last value; delete then put resurrects', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  await db.delete('never-there');
  await db.delete('never-there', { sync: false });
  await db.batch([{ type: 'del', key: 'never-there' }]);
  assert.equal(await db.get('never-there'), undefined);
  for (let i = 0; i < 300; i++) await db.put('hot', `v${i}`, { sync: false }); // spans several tables
  assert.equal((await db.get('hot'))?.toString(), 'v299');
  await db.delete('hot');
  assert.equal(await db.get('hot'), undefined);
  assert.deepEqual(await collect(db.iterator()), []);
  await db.put('hot', 'again');
  assert.equal((await db.get('hot'))?.toString(), 'again');
  await db.batch([
    { type: 'put', key: 'x', value: '1' },
    { type: 'del', key: 'x' },
    { type: 'put', key: 'y', value: '1' },
    { type: 'put', key: 'y', value: '2' },
  ]);
  assert.equal(await db.get('x'), undefined, 'within a batch, later ops win');
  assert.equal((await db.get('y'))?.toString(), '2');
  await db.close();
  const db2 = await open('/db', { fs: mem });
  assert.equal((await db2.get('hot'))?.toString(), 'again');
  assert.equal(await db2.get('x'), undefined);
  assert.equal((await db2.get('y'))?.toString(), '2');
  await db2.close();
});

/** Range options as a Database takes them, from a model range. */
function toDbRange(r: ModelRange): RangeOptions {
  return { ...r };
}

async function scanHex(db: Database, r: ModelRange): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [kk, vv] of db.iterator(toDbRange(r))) out.push([hex(kk), hex(vv)]);
  return out;
}

test('iterator bounds: every combination of gt/gte/lt/lte/prefix/reverse/limit agrees with a model', async () => {
  await withSeed('range combinations', async (seed) => {
    const rng = new Random(seed);
    const mem = new MemFs();
    const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 64 });
    const alphabet = [0x00, 0x61, 0x62, 0xff];
    const all: Buffer[] = [];
    for (const a of alphabet) {
      all.push(Buffer.from([a]));
      for (const b of alphabet) {
        all.push(Buffer.from([a, b]));
        for (const c of alphabet) all.push(Buffer.from([a, b, c]));
      }
    }
    const model: ModelState = new Map();
    // Three rounds of random puts/deletes so data sits in tables and in the memtable.
    for (let round = 0; round < 3; round++) {
      for (const key of all) {
        const r = rng.nextInt(3);
        if (r === 0) {
          await db.delete(key, { sync: false });
          model.delete(hex(key));
        } else if (r === 1) {
          const v = Buffer.from(`r${round}-${rng.nextInt(1000)}`);
          await db.put(key, v, { sync: false });
          model.set(hex(key), hex(v));
        }
      }
    }
    assert.ok(db.stats().flushes.count > 0, 'some data is in tables');
    const bounds = [
      Buffer.alloc(0),
      Buffer.from([0x00]),
      Buffer.from([0x00, 0x00, 0x00, 0x00]),
      Buffer.from([0x60]),
      Buffer.from([0x61]),
      Buffer.from([0x61, 0x62]),
      Buffer.from([0x62, 0xff, 0xff]),
      Buffer.from([0xff]),
      Buffer.from([0xff, 0xff, 0xff, 0xff]),
    ];
    const lowers: ModelRange[] = [{}, ...bounds.map((b) => ({ gt: b })), ...bounds.map((b) => ({ gte: b }))];
    const uppers: ModelRange[] = [{}, ...bounds.map((b) => ({ lt: b })), ...bounds.map((b) => ({ lte: b }))];
    const prefixes: ModelRange[] = [
      {},
      { prefix: Buffer.from([0x61]) },
      { prefix: Buffer.from([0xff]) },
      { prefix: Buffer.from([0xff, 0xff]) },
      { prefix: Buffer.from([0x00]) },
      { prefix: Buffer.from([0x62, 0x00]) },
    ];
    let scans = 0;
    for (const lo of lowers) {
      for (const hi of uppers) {
        for (const pre of prefixes) {
          for (const reverse of [false, true]) {
            const limits: (number | undefined)[] = pre.prefix === undefined || scans % 3 === 0 ? [undefined, 0, 1, 3] : [undefined, 2];
            for (const limit of limits) {
              const r: ModelRange = { ...lo, ...hi, ...pre, reverse };
              if (limit !== undefined) r.limit = limit;
              assert.deepEqual(await scanHex(db, r), modelScan(model, r), `range ${JSON.stringify(r)}`);
              scans++;
            }
          }
        }
      }
    }
    assert.equal(db.stats().openIterators, 0);
    await db.close();
  });
});

test('prefix of 0xff bytes and limit 0', async () => {
  const db = await open('/db', { fs: new MemFs() });
  const keys = [[0xfe, 0xff], [0xff], [0xff, 0x00], [0xff, 0xfe], [0xff, 0xff], [0xff, 0xff, 0x00], [0xff, 0xff, 0xff]].map((a) => Buffer.from(a));
  for (const kk of keys) await db.put(kk, hex(kk));
  const scan = async (r: RangeOptions): Promise<string[]> => (await collect(db.iterator(r))).map(([kk]) => hex(Buffer.from(kk, 'latin1')));
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff]) }), ['ff', 'ff00', 'fffe', 'ffff', 'ffff00', 'ffffff']);
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff, 0xff]) }), ['ffff', 'ffff00', 'ffffff']);
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff, 0xff]), reverse: true }), ['ffffff', 'ffff00', 'ffff']);
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff, 0xff, 0xff, 0xff]) }), []);
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff]), gt: Buffer.from([0xff, 0xfe]), limit: 2 }), ['ffff', 'ffff00']);
  assert.deepEqual(await scan({ prefix: Buffer.from([0xff]), lt: Buffer.from([0xff, 0xff]), reverse: true }), ['fffe', 'ff00', 'ff']);
  assert.deepEqual(await scan({ limit: 0 }), []);
  assert.deepEqual(await scan({ limit: 0, reverse: true }), []);
  assert.deepEqual(await scan({ gte: Buffer.from([0xff]), lte: Buffer.from([0xfe]) }), [], 'an empty (inverted) range');
  assert.equal(db.stats().openIterators, 0);
  await db.close();
});

test('iterators are released: break in for-await and for-of, exhaustion, throw; unfinished ones show in stats', async () => {
  const db = await open('/db', { fs: new MemFs() });
  for (let i = 0; i < 10; i++) await db.put(k(i), 'v');
  assert.equal(db.stats().openIterators, 0);
  assert.equal(db.stats().oldestIteratorAgeMs, 0);
  for await (const [kk] of db.iterator()) {
    assert.equal(db.stats().openIterators, 1);
    if (kk.toString() === k(3)) break;
  }
  assert.equal(db.stats().openIterators, 0, 'break in for await releases');
  for (const [kk] of db.iterator()) {
    if (kk.toString() === k(3)) break;
  }
  assert.equal(db.stats().openIterators, 0, 'break in for...of releases');
  await assert.rejects(async () => {
    for await (const _ of db.iterator()) throw new Error('boom');
  }, /boom/);
  assert.equal(db.stats().openIterators, 0, 'throw in the loop body releases');
  assert.equal((await collect(db.iterator())).length, 10);
  assert.equal(db.stats().openIterators, 0, 'exhaustion releases');
  const unfinished = db.iterator({ gte: k(2) });
  const idle = db.iterator();
  assert.deepEqual((await unfinished.next()).value?.[0].toString(), k(2));
  let s = db.stats();
  assert.equal(s.openIterators, 2);
  assert.ok(s.oldestIteratorAgeMs >= 0 && Number.isFinite(s.oldestIteratorAgeMs));
  unfinished.close();
  unfinished.close(); // idempotent
  assert.equal(db.stats().openIterators, 1);
  assert.equal((await idle.return()).done, true);
  assert.equal(idle.closed, true);
  s = db.stats();
  assert.equal(s.openIterators, 0);
  assert.equal(s.oldestIteratorAgeMs, 0);
  assert.equal((await idle.next()).done, true, 'a released iterator stays done');
  await db.close();
});

test('the synchronous for...of form yields the same entries as for await, and nextSync works', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  for (let i = 0; i < 120; i++) await db.put(k(i), `v${i}`, { sync: false });
  for (let i = 0; i < 120; i += 7) await db.delete(k(i), { sync: false });
  const asyncForm = await collect(db.iterator({ gte: k(10), lt: k(100), reverse: true }));
  const syncForm = collectSync(db.iterator({ gte: k(10), lt: k(100), reverse: true }));
  assert.deepEqual(syncForm, asyncForm);
  assert.equal(syncForm.length, 90 - 13);
  const it = db.iterator({ limit: 2 });
  assert.equal(it.nextSync()?.[0].toString(), k(1));
  assert.equal(it.nextSync()?.[0].toString(), k(2));
  assert.equal(it.nextSync(), undefined);
  assert.equal(db.stats().openIterators, 0);
  await db.close();
});

test('snapshots: unreleased ones show in stats; later writes are invisible, also after flushes and compactions', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 128 });
  const state = new Map<string, string>();
  for (let i = 0; i < 200; i++) {
    await db.put(k(i), `old-${i}`, { sync: false });
    state.set(k(i), `old-${i}`);
  }
  const snap = db.snapshot();
  const s1 = db.stats();
  assert.equal(s1.openSnapshots, 1);
  assert.ok(s1.oldestSnapshotAgeMs >= 0);
  const flushesBefore = s1.flushes.count;
  // Overwrite, delete and add, enough for many flushes (and compactions, if any).
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 200; i++) {
      if (i % 3 === 0) await db.delete(k(i), { sync: false });
      else await db.put(k(i), `new-${round}-${i}`, { sync: false });
    }
    for (let i = 200; i < 240; i++) await db.put(k(i), `added-${round}`, { sync: false });
  }
  assert.ok(db.stats().flushes.count > flushesBefore + 3, 'the workload flushed several memtables');
  for (let i = 0; i < 240; i++) {
    assert.equal((await snap.get(k(i)))?.toString(), state.get(k(i)), `snap.get ${k(i)}`);
    assert.equal(snap.getSync(k(i))?.toString(), state.get(k(i)), `snap.getSync ${k(i)}`);
  }
  const expected = [...state.entries()];
  assert.deepEqual(await collect(snap.iterator()), expected);
  assert.deepEqual(await collect(snap.iterator({ reverse: true, limit: 5 })), expected.slice(-5).reverse());
  assert.deepEqual(await collect(snap.iterator({ gte: k(50), lt: k(60) })), expected.slice(50, 60));
  // The live view sees the new state.
  assert.equal(await db.get(k(0)), undefined);
  assert.equal((await db.get(k(1)))?.toString(), 'new-4-1');
  const snap2 = db.snapshot();
  assert.equal(db.stats().openSnapshots, 2);
  snap.release();
  assert.equal(db.stats().openSnapshots, 1);
  snap2.release();
  const s2 = db.stats();
  assert.equal(s2.openSnapshots, 0);
  assert.equal(s2.oldestSnapshotAgeMs, 0);
  await db.close();
});

test('an iterator sees exactly the state at its creation, across 1000 later writes with flushes', async () => {
  await withSeed('iterator consistency', async (seed) => {
    const rng = new Random(seed);
    const mem = new MemFs();
    const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 128, seed: rng.nextUint32() });
    const state = new Map<string, string>();
    for (let i = 0; i < 150; i++) {
      const key = k(rng.nextInt(300));
      const v = `init-${i}-${'p'.repeat(rng.nextInt(40))}`;
      await db.put(key, v, { sync: false });
      state.set(key, v);
    }
    const expected = [...state.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const fresh = db.iterator();
    const partial = db.iterator();
    const reverse = db.iterator({ reverse: true });
    const head: [string, string][] = [];
    for (let i = 0; i < 10; i++) {
      const r = await partial.next();
      assert.ok(r.done !== true);
      head.push([r.value[0].toString('latin1'), r.value[1].toString('latin1')]);
    }
    const flushesBefore = db.stats().flushes.count;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) {
      const key = k(rng.nextInt(400));
      const r = rng.nextInt(4);
      writes.push(r === 0 ? db.delete(key, { sync: false }) : db.put(key, `later-${i}-${'q'.repeat(rng.nextInt(60))}`, { sync: false }));
      if (i % 16 === 15) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    assert.ok(db.stats().flushes.count > flushesBefore, 'flushes happened while the iterators were open');
    assert.equal(db.stats().openIterators, 3);
    assert.deepEqual(await collect(fresh), expected, 'unstarted iterator');
    const rest = await collect(partial);
    assert.deepEqual([...head, ...rest], expected, 'partly consumed iterator');
    assert.deepEqual(await collect(reverse), [...expected].reverse(), 'reverse iterator');
    assert.equal(db.stats().openIterators, 0);
    await db.close();
  });
});

test('compactRange() pushes everything out of L0 and keeps the data; idle() waits for background work', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024, blockSize: 128 });
  const expected = new Map<string, string>();
  for (let i = 0; i < 300; i++) {
    const key = k(i % 120);
    if (i % 11 === 0) {
      await db.delete(key, { sync: false });
      expected.delete(key);
    } else {
      await db.put(key, `v${i}`, { sync: false });
      expected.set(key, `v${i}`);
    }
  }
  const snap = db.snapshot();
  await db.put(k(0), 'after-snapshot');
  await db.compactRange();
  let s = db.stats();
  assert.equal(s.levels[0]?.files, 0, 'L0 is empty after a full compactRange');
  assert.ok(s.levels.slice(1).some((l) => l.files > 0));
  assert.deepEqual(await collect(snap.iterator()), [...expected.entries()].sort(), 'the snapshot survives compaction');
  snap.release();
  expected.set(k(0), 'after-snapshot');
  assert.deepEqual(await collect(db.iterator()), [...expected.entries()].sort());
  for (let i = 0; i < 100; i++) void db.put(k(500 + i), 'burst', { sync: false });
  await db.idle();
  s = db.stats();
  assert.equal(s.writes.queued, 0);
  assert.equal(s.immutableMemtables, 0);
  assert.equal(s.compactions.running, false);
  assert.equal(db.getSync(k(599))?.toString(), 'burst');
  await db.close();
  const db2 = await open('/db', { fs: mem });
  assert.equal((await collect(db2.iterator())).length, expected.size + 100);
  await db2.close();
});

test('maxOpenFiles and tiny block caches: with 100+ tables, reads and pinned iterators stay correct and the table cache stays bounded', async () => {
  for (const blockCacheSize of [0, 1, 4096]) {
    const mem = new MemFs();
    const db = await open('/db', {
      fs: mem,
      memtableSize: 1024,
      blockSize: 64,
      maxOpenFiles: 16,
      blockCacheSize,
      l0CompactionTrigger: 1000,
      l0SlowdownTrigger: 1000,
      l0StopTrigger: 1000,
    });
    const expected = new Map<string, string>();
    for (let i = 0; i < 3000; i++) {
      const key = k((i * 7919) % 500);
      await db.put(key, `v${i}`, { sync: false });
      expected.set(key, `v${i}`);
    }
    await db.idle();
    assert.ok((db.stats().levels[0]?.files ?? 0) > 100, 'many overlapping tables');
    const sorted = [...expected.entries()].sort();
    const its = [db.iterator(), db.iterator({ reverse: true }), db.iterator({ gte: k(300) })];
    for (const [key, v] of expected) assert.equal(db.getSync(key)?.toString(), v, `cache ${blockCacheSize}: ${key}`);
    assert.deepEqual(await collect(its[0] as AsyncIterable<[Buffer, Buffer]>), sorted);
    assert.deepEqual(await collect(its[1] as AsyncIterable<[Buffer, Buffer]>), [...sorted].reverse());
    assert.deepEqual(await collect(its[2] as AsyncIterable<[Buffer, Buffer]>), sorted.filter(([key]) => key >= k(300)));
    const s = db.stats();
    assert.ok(s.tableCache.open <= 16, `table cache holds ${s.tableCache.open} readers`);
    if (s.blockCache !== null) assert.ok(s.blockCache.usedBytes <= blockCacheSize, `block cache uses ${s.blockCache.usedBytes}`);
    await db.close();
  }
});

test('stats(): fields present and plausible', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  let s = db.stats();
  assert.equal(s.state, 'open');
  assert.equal(s.readOnly, false);
  assert.equal(s.backgroundError, null);
  assert.equal(s.backgroundErrors, 0);
  assert.equal(s.levels.length, 7);
  s.levels.forEach((l, i) => {
    assert.equal(l.level, i);
    assert.equal(l.files, 0);
    assert.equal(l.bytes, 0);
  });
  assert.equal(s.sequence, 0);
  assert.deepEqual([s.memtable.entries, s.immutableMemtables, s.openIterators, s.openSnapshots], [0, 0, 0, 0]);
  assert.ok(s.blockCache !== null && s.blockCache.capacityBytes === 32 * 1024 * 1024);
  let userBytes = 0;
  for (let i = 0; i < 400; i++) {
    const key = k(i);
    const value = `value-${i}-${'z'.repeat(i % 50)}`;
    await db.put(key, value, { sync: i % 10 === 0 });
    userBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  await db.delete(k(0));
  userBytes += Buffer.byteLength(k(0));
  s = db.stats();
  assert.equal(s.sequence, 401);
  assert.ok(s.flushes.count > 0, 'flushes with a 1 KiB memtable');
  assert.ok(s.flushes.bytesWritten > 0);
  assert.ok(s.levels.reduce((n, l) => n + l.files, 0) > 0, 'tables exist');
  assert.ok(s.levels.every((l) => (l.files === 0) === (l.bytes === 0)));
  assert.equal(s.writes.batches, 401);
  assert.ok(s.writes.groups >= 1 && s.writes.groups <= s.writes.batches);
  assert.ok(s.writes.walSyncs >= 40 && s.writes.walSyncs <= s.writes.groups, `walSyncs ${s.writes.walSyncs}`);
  assert.equal(s.writes.userBytesWritten, userBytes);
  assert.ok(s.writes.walBytesWritten > s.writes.userBytesWritten);
  assert.equal(s.writes.queued, 0);
  assert.ok(s.writes.stalls >= 0);
  assert.ok(s.memtable.bytes >= 0 && s.memtable.bytes < 1024 + 4096);
  assert.ok(s.immutableMemtables === 0 || s.immutableMemtables === 1);
  assert.ok(s.tableCache.open >= 0 && s.tableCache.opens >= 0);
  assert.deepEqual(s.recovery, { walRecordsReplayed: 0, walBytesSkipped: 0, orphansRemoved: 0 });
  assert.equal(s.state, 'open');
  await db.close();
  // Reopen: recovery counters, cache disabled.
  const db2 = await open('/db', { fs: mem, blockCacheSize: 0 });
  const s2 = db2.stats();
  assert.equal(s2.blockCache, null);
  assert.equal(s2.sequence, 401, 'the sequence survives a reopen');
  assert.equal(s2.writes.batches, 0);
  await db2.close();
  assert.equal(db2.stats().state, 'closed');
});

test('group commit: 16 concurrent durable puts in one tick share (almost) one fsync', async () => {
  const db = await open('/db', { fs: new MemFs() });
  await db.put('warm', 'up');
  const before = db.stats().writes;
  const puts: Promise<void>[] = [];
  for (let i = 0; i < 16; i++) puts.push(db.put(k(i), `v${i}`, { sync: true }));
  await Promise.all(puts);
  const after = db.stats().writes;
  assert.equal(after.batches - before.batches, 16);
  assert.ok(after.walSyncs - before.walSyncs <= 2, `walSyncs grew by ${after.walSyncs - before.walSyncs}`);
  assert.ok(after.groups - before.groups <= 2, `groups grew by ${after.groups - before.groups}`);
  for (let i = 0; i < 16; i++) assert.equal(db.getSync(k(i))?.toString(), `v${i}`);
  // Non-durable writes need no fsync at all.
  const b2 = db.stats().writes.walSyncs;
  await Promise.all(Array.from({ length: 16 }, (_, i) => db.put(k(i), 'nosync', { sync: false })));
  assert.equal(db.stats().writes.walSyncs, b2);
  // sync: false as the DB default.
  await db.close();
});

test('the sync open option sets the default durability of writes', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, sync: false });
  const s0 = db.stats().writes.walSyncs;
  await db.put('a', '1');
  assert.equal(db.stats().writes.walSyncs, s0, 'sync:false default: no fsync');
  await db.put('b', '2', { sync: true });
  assert.equal(db.stats().writes.walSyncs, s0 + 1, 'per-write sync:true overrides');
  const crashed = mem.crashClone();
  await db.close();
  const db2 = await open('/db', { fs: crashed });
  assert.equal((await db2.get('b'))?.toString(), '2', 'the durable write survived power loss');
  assert.equal((await db2.get('a'))?.toString(), '1', 'the earlier write is in the prefix synced with it');
  await db2.close();
});

test('real filesystem: data survives close/reopen and reads back readOnly', async () => {
  const dir = tmpDir('rt');
  try {
    const db = await open(dir, { memtableSize: 4096 });
    for (let i = 0; i < 300; i++) await db.put(k(i), `v${i}`, { sync: i % 50 === 0 });
    await db.delete(k(3));
    await db.close();
    const names = fs.readdirSync(dir);
    assert.ok(names.includes('CURRENT') && names.some((n) => n.endsWith('.sst')), names.join(','));
    const db2 = await open(dir, { readOnly: true });
    assert.equal(db2.getSync(k(3)), undefined);
    assert.equal(db2.getSync(k(299))?.toString(), 'v299');
    assert.equal((await collect(db2.iterator())).length, 299);
    await db2.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the LightningError class is exported and errors carry code and name', async () => {
  const e = await rejectsCode(() => open('/x', { fs: new MemFs(), createIfMissing: false }), 'NOT_FOUND');
  assert.ok(e instanceof Error);
  assert.ok(e instanceof LightningError);
  assert.equal(e.name, 'LightningError');
  assert.match(e.message, /NOT_FOUND/);
});

test('no unhandled rejections or uncaught exceptions were recorded in this file', async () => {
  await recorder.settle();
  recorder.assertNone();
  recorder.dispose();
});
