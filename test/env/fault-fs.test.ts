import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  FaultFs,
  type FaultInjector,
  type FaultOp,
  countOps,
  failAll,
  failNth,
  failWhile,
  opIn,
  pathEndsWith,
  switchable,
} from '../../src/env/fault-fs.js';
import type { FileSystem } from '../../src/env/file-system.js';
import { errorCode } from '../../src/env/fs-error.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return errorCode(e);
  }
  return undefined;
}

/** Touches every kind of operation once or more, like a tiny DB open + write + flush. */
async function workload(fs: FileSystem): Promise<string> {
  fs.mkdir('db');
  const release = fs.lock('db/LOCK');
  const wal = fs.open('db/000001.log', 'create-excl');
  wal.write(Buffer.from('record'), 0, 6, null);
  await wal.sync();
  const buf = Buffer.alloc(6);
  wal.read(buf, 0, 6, 0);
  wal.truncate(6);
  wal.close();
  const tmp = fs.open('db/CURRENT.tmp', 'truncate');
  tmp.write(Buffer.from('MANIFEST-000001\n'), 0, 16, null);
  await tmp.sync();
  tmp.close();
  fs.rename('db/CURRENT.tmp', 'db/CURRENT');
  await fs.syncDir('db');
  fs.stat('db/CURRENT');
  await fs.statfs('db');
  fs.unlink('db/000001.log');
  const names = fs.readdir('db');
  release();
  return names.join(',');
}

test('FaultFs without faults passes results through', async () => {
  const counter = countOps();
  const ffs = new FaultFs(new MemFs(), counter);
  assert.equal(await workload(ffs), 'CURRENT,LOCK');
  assert.equal(counter.count, 16);
  assert.equal(ffs.injected, 0);
});

test('failNth(i) fails exactly the ith op, for every i', async () => {
  const counter = countOps();
  await workload(new FaultFs(new MemFs(), counter));
  const failedOps = new Set<string>();
  for (let i = 0; i < counter.count; i++) {
    const injector = failNth(i);
    const ffs = new FaultFs(new MemFs(), injector);
    await assert.rejects(workload(ffs), (e: unknown) => {
      assert.equal(errorCode(e), 'EIO');
      assert.match(String(e), /injected/);
      failedOps.add(String((e as { syscall?: unknown }).syscall));
      return true;
    });
    assert.equal(ffs.injected, 1);
    assert.equal(injector.fired, true);
    assert.equal(injector.seen, i + 1); // The workload stopped at the failure.
  }
  const expected: FaultOp[] = ['open', 'read', 'write', 'sync', 'truncate', 'rename', 'unlink'];
  for (const op of [...expected, 'mkdir', 'readdir', 'stat', 'syncDir', 'statfs', 'lock']) {
    assert.ok(failedOps.has(op), `op ${op} was failed at some i`);
  }
  const past = failNth(counter.count);
  const ffs = new FaultFs(new MemFs(), past);
  await workload(ffs);
  assert.equal(past.fired, false);
  assert.equal(ffs.injected, 0);
});

test('failNth with a filter counts only matching ops', async () => {
  const injector = failNth(1, 'ENOSPC', opIn('sync'));
  const ffs = new FaultFs(new MemFs(), injector);
  await assert.rejects(workload(ffs), { code: 'ENOSPC', syscall: 'sync', path: 'db/CURRENT.tmp' });
  assert.equal(injector.seen, 2);
  assert.equal(ffs.injected, 1);
});

test('async ops reject and never throw synchronously', async () => {
  const ffs = new FaultFs(new MemFs(), failAll(opIn('sync', 'syncDir', 'statfs')));
  const h = ffs.open('f', 'create');
  const pending = [h.sync(), ffs.syncDir('/'), ffs.statfs('/')];
  for (const p of pending) await assert.rejects(p, { code: 'EIO' });
  assert.equal(ffs.injected, 3);
});

test('sync faults: the data stays unsynced in the inner MemFs', async () => {
  const mfs = new MemFs();
  const sw = failWhile(opIn('sync'));
  const ffs = new FaultFs(mfs, sw);
  const h = ffs.open('f', 'create');
  await mfs.syncDir('/');
  h.write(Buffer.from('abc'), 0, 3, null);
  await assert.rejects(h.sync(), { code: 'EIO' });
  assert.equal(mfs.crashClone().readFileRaw('f').length, 0);
  sw.enabled = false;
  await h.sync();
  assert.equal(mfs.crashClone().readFileRaw('f').toString(), 'abc');
});

test('short write on ENOSPC writes a prefix then throws', () => {
  const mfs = new MemFs();
  const ffs = new FaultFs(mfs, failNth(1, 'ENOSPC', opIn('write')), { shortWrite: true });
  const h = ffs.open('f', 'create');
  h.write(Buffer.from('0123'), 0, 4, null);
  assert.equal(codeOf(() => h.write(Buffer.from('xabcdefghij'), 1, 10, null)), 'ENOSPC');
  assert.equal(mfs.readFileRaw('f').toString(), '0123abcde');
  h.write(Buffer.from('!'), 0, 1, null);
  assert.equal(mfs.readFileRaw('f').toString(), '0123abcde!');
  assert.equal(ffs.injected, 1);
});

test('short write with an rng writes less than asked, positioned writes too', () => {
  const rng = new Random(11);
  const lengths = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const mfs = new MemFs();
    const ffs = new FaultFs(mfs, failAll(opIn('write'), 'ENOSPC'), { shortWrite: true, rng });
    const h = ffs.open('f', 'create');
    assert.equal(codeOf(() => h.write(Buffer.from('abcd'), 0, 4, 2)), 'ENOSPC');
    const got = mfs.readFileRaw('f');
    if (got.length > 0) {
      assert.equal(Buffer.compare(got.subarray(0, 2), Buffer.alloc(2)), 0);
      assert.ok('abcd'.startsWith(got.subarray(2).toString()));
      assert.ok(got.length < 6);
    }
    lengths.add(got.length);
  }
  assert.deepEqual([...lengths].sort(), [0, 3, 4, 5]);
});

test('EIO on write writes nothing even with shortWrite', () => {
  const mfs = new MemFs();
  const ffs = new FaultFs(mfs, failAll(opIn('write')), { shortWrite: true });
  const h = ffs.open('f', 'create');
  assert.equal(codeOf(() => h.write(Buffer.from('abcd'), 0, 4, null)), 'EIO');
  assert.equal(mfs.readFileRaw('f').length, 0);
});

test('failWhile, switchable, pathEndsWith; exists, size and close never fail', () => {
  const sw = failWhile(pathEndsWith('.sst'), 'ENOSPC');
  const ffs = new FaultFs(new MemFs(), sw);
  assert.equal(codeOf(() => ffs.open('000001.sst', 'create')), 'ENOSPC');
  const log = ffs.open('000001.log', 'create'); // Other paths run.
  sw.enabled = false;
  const sst = ffs.open('000001.sst', 'create');
  sw.enabled = true;
  assert.equal(codeOf(() => sst.read(Buffer.alloc(1), 0, 1, 0)), 'ENOSPC');
  assert.equal(sst.size(), 0);
  sst.close();
  log.close();
  ffs.injector = failAll(() => true);
  assert.equal(ffs.exists('000001.sst'), true);
  assert.equal(ffs.exists('missing'), false);
  assert.equal(codeOf(() => ffs.stat('000001.log')), 'EIO');
  assert.equal(codeOf(() => ffs.readdir('/')), 'EIO');
  assert.equal(codeOf(() => ffs.lock('LOCK')), 'EIO');

  let asked = 0;
  const counting: FaultInjector = {
    maybeFail: () => {
      asked += 1;
      return 'EIO';
    },
  };
  const off = switchable(counting, false);
  const ffs2 = new FaultFs(new MemFs(), off);
  ffs2.mkdir('d');
  assert.equal(asked, 0); // A disabled switch does not even ask the inner injector.
  off.enabled = true;
  assert.equal(codeOf(() => ffs2.mkdir('e')), 'EIO');
  assert.equal(asked, 1);
});

test('errors from the inner FileSystem pass through unchanged', () => {
  const ffs = new FaultFs(new MemFs(), countOps());
  assert.equal(codeOf(() => ffs.open('missing', 'r')), 'ENOENT');
  assert.equal(ffs.injected, 0);
});
