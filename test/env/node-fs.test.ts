import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { NodeFs } from '../../src/env/node-fs.js';
import { errorCode } from '../../src/env/fs-error.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lightning-node-fs-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let dirCounter = 0;
function freshDir(): string {
  const dir = path.join(root, `t${dirCounter++}`);
  fs.mkdirSync(dir);
  return dir;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return errorCode(e);
  }
  return undefined;
}

function readAll(nfs: NodeFs, file: string): Buffer {
  const h = nfs.open(file, 'r');
  try {
    const buf = Buffer.alloc(h.size());
    assert.equal(h.read(buf, 0, buf.length, 0), buf.length);
    return buf;
  } finally {
    h.close();
  }
}

test('round trip: write, sync, reopen, read', async () => {
  const nfs = new NodeFs();
  const file = path.join(freshDir(), 'a');
  const h = nfs.open(file, 'create-excl');
  h.write(Buffer.from('hello world'), 0, 11, 0);
  await h.sync();
  assert.equal(h.size(), 11);
  h.close();
  h.close(); // Idempotent.
  assert.equal(Buffer.compare(readAll(nfs, file), Buffer.from('hello world')), 0);
  assert.equal(fs.readFileSync(file, 'utf8'), 'hello world');
});

test('appends go to the end, also after a positioned write and from a second handle', () => {
  const nfs = new NodeFs();
  const file = path.join(freshDir(), 'log');
  const a = nfs.open(file, 'truncate');
  a.write(Buffer.from('xxabc'), 2, 3, null);
  a.write(Buffer.from('def'), 0, 3, null);
  a.write(Buffer.from('D'), 0, 1, 3); // Overwrite in the middle.
  const b = nfs.open(file, 'rw');
  b.write(Buffer.from('gh'), 0, 2, null);
  a.write(Buffer.from('i'), 0, 1, null);
  a.close();
  b.close();
  assert.equal(fs.readFileSync(file, 'utf8'), 'abcDefghi');
});

test('positioned reads, short at end of file, zero past it', () => {
  const nfs = new NodeFs();
  const file = path.join(freshDir(), 'f');
  fs.writeFileSync(file, '0123456789');
  const h = nfs.open(file, 'r');
  const buf = Buffer.alloc(8, 0x2e);
  assert.equal(h.read(buf, 2, 3, 4), 3);
  assert.equal(buf.toString(), '..456...');
  assert.equal(h.read(buf, 0, 8, 7), 3);
  assert.equal(buf.subarray(0, 3).toString(), '789');
  assert.equal(h.read(buf, 0, 8, 10), 0);
  assert.equal(h.read(buf, 0, 8, 1000), 0);
  h.close();
  assert.equal(codeOf(() => h.read(buf, 0, 1, 0)), 'EBADF');
});

test('open modes', () => {
  const nfs = new NodeFs();
  const dir = freshDir();
  const file = path.join(dir, 'f');
  assert.equal(codeOf(() => nfs.open(file, 'r')), 'ENOENT');
  assert.equal(codeOf(() => nfs.open(file, 'rw')), 'ENOENT');
  const c = nfs.open(file, 'create');
  c.write(Buffer.from('keep'), 0, 4, null);
  c.close();
  nfs.open(file, 'create').close(); // Keeps content.
  assert.equal(fs.readFileSync(file, 'utf8'), 'keep');
  assert.equal(codeOf(() => nfs.open(file, 'create-excl')), 'EEXIST');
  const r = nfs.open(file, 'r');
  assert.equal(codeOf(() => r.write(Buffer.from('x'), 0, 1, 0)), 'EBADF');
  r.close();
  nfs.open(file, 'truncate').close();
  assert.equal(nfs.stat(file).size, 0);
});

test('truncate shrinks and extends with zeros', () => {
  const nfs = new NodeFs();
  const file = path.join(freshDir(), 'f');
  const h = nfs.open(file, 'truncate');
  h.write(Buffer.from('abcdef'), 0, 6, 0);
  h.truncate(2);
  assert.equal(h.size(), 2);
  h.truncate(4);
  h.close();
  assert.equal(Buffer.compare(fs.readFileSync(file), Buffer.from([0x61, 0x62, 0, 0])), 0);
});

test('rename, unlink, mkdir, readdir sorted, stat, exists', async () => {
  const nfs = new NodeFs();
  const dir = freshDir();
  const sub = path.join(dir, 'x', 'y');
  nfs.mkdir(sub);
  nfs.mkdir(sub); // No error if it exists.
  assert.equal(nfs.stat(sub).isDirectory, true);
  for (const name of ['b', 'c', 'a', 'B']) fs.writeFileSync(path.join(sub, name), name);
  assert.deepEqual(nfs.readdir(sub), ['B', 'a', 'b', 'c']);
  nfs.rename(path.join(sub, 'a'), path.join(sub, 'c')); // Replaces c.
  assert.deepEqual(nfs.readdir(sub), ['B', 'b', 'c']);
  assert.equal(fs.readFileSync(path.join(sub, 'c'), 'utf8'), 'a');
  nfs.unlink(path.join(sub, 'B'));
  assert.equal(nfs.exists(path.join(sub, 'B')), false);
  assert.equal(nfs.exists(path.join(sub, 'b')), true);
  assert.deepEqual(nfs.stat(path.join(sub, 'b')), { size: 1, isDirectory: false });
  assert.equal(codeOf(() => nfs.stat(path.join(sub, 'nope'))), 'ENOENT');
  assert.equal(codeOf(() => nfs.unlink(path.join(sub, 'nope'))), 'ENOENT');
  await nfs.syncDir(sub);
  await assert.rejects(nfs.syncDir(path.join(dir, 'missing')), { code: 'ENOENT' });
  const st = await nfs.statfs(dir);
  assert.ok(st.totalBytes > 0);
  assert.ok(st.availableBytes >= 0 && st.availableBytes <= st.totalBytes);
});

test('sync of a closed handle rejects instead of throwing', async () => {
  const nfs = new NodeFs();
  const h = nfs.open(path.join(freshDir(), 'f'), 'truncate');
  h.close();
  await assert.rejects(h.sync(), { code: 'EBADF' });
});

test('lock: second lock in this process is ELOCKED; release then relock works', () => {
  const nfs = new NodeFs();
  const lockPath = path.join(freshDir(), 'LOCK');
  const release = nfs.lock(lockPath);
  assert.equal(codeOf(() => nfs.lock(lockPath)), 'ELOCKED');
  // Another instance, and the same file through a symlinked directory, share one table.
  const link = path.join(freshDir(), 'link');
  fs.symlinkSync(path.dirname(lockPath), link);
  assert.equal(codeOf(() => new NodeFs().lock(path.join(link, 'LOCK'))), 'ELOCKED');
  const holder: unknown = JSON.parse(fs.readFileSync(lockPath, 'utf8'));
  assert.equal((holder as { pid: number }).pid, process.pid);
  release();
  release(); // Idempotent.
  assert.equal(fs.existsSync(lockPath), false);
  const again = nfs.lock(lockPath);
  assert.equal(fs.existsSync(lockPath), true);
  again();
});

test('lock: release leaves a LOCK file that another holder has taken over', () => {
  const nfs = new NodeFs();
  const lockPath = path.join(freshDir(), 'LOCK');
  const release = nfs.lock(lockPath);
  fs.writeFileSync(lockPath, JSON.stringify({ pid: 1, token: 'someone-else' }));
  release();
  assert.equal(fs.existsSync(lockPath), true);
});

test('lock: a LOCK file of a dead process is stale and taken over', () => {
  const dead = spawnSync(process.execPath, ['-e', '0']);
  assert.equal(dead.status, 0);
  const deadPid = dead.pid;
  assert.ok(typeof deadPid === 'number' && deadPid > 0);
  const nfs = new NodeFs();
  const lockPath = path.join(freshDir(), 'LOCK');
  fs.writeFileSync(lockPath, JSON.stringify({ pid: deadPid, token: 'old' }));
  const release = nfs.lock(lockPath);
  const holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as { pid: number; token: string };
  assert.equal(holder.pid, process.pid);
  assert.notEqual(holder.token, 'old');
  release();
});

test('lock: garbage, our own stale pid and an old empty file are stale', () => {
  const nfs = new NodeFs();
  const lockPath = path.join(freshDir(), 'LOCK');
  const stale = [
    'not json {',
    '{"pid": -1, "token": "x"}',
    '{"pid": 0, "token": "x"}',
    JSON.stringify({ pid: process.pid, token: 'a previous process with our pid' }),
  ];
  for (const content of stale) {
    fs.writeFileSync(lockPath, content);
    nfs.lock(lockPath)();
  }
  fs.writeFileSync(lockPath, '');
  const pastS = Date.now() / 1000 - 3600;
  fs.utimesSync(lockPath, pastS, pastS);
  nfs.lock(lockPath)();
});

test('lock: a fresh empty LOCK file is a taker mid-create, so held', () => {
  const nfs = new NodeFs();
  const lockPath = path.join(freshDir(), 'LOCK');
  fs.writeFileSync(lockPath, '');
  assert.equal(codeOf(() => nfs.lock(lockPath)), 'ELOCKED');
  assert.equal(fs.existsSync(lockPath), true);
});

test('lock: a LOCK file held by a live other process is ELOCKED', () => {
  // The child only idles; it is killed below, so the test never waits for it.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], {
    stdio: 'ignore',
  });
  try {
    const pid = child.pid;
    assert.ok(typeof pid === 'number' && pid > 0);
    const nfs = new NodeFs();
    const lockPath = path.join(freshDir(), 'LOCK');
    fs.writeFileSync(lockPath, JSON.stringify({ pid, token: 'child' }));
    assert.equal(codeOf(() => nfs.lock(lockPath)), 'ELOCKED');
    const holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as { token: string };
    assert.equal(holder.token, 'child');
  } finally {
    child.kill('SIGKILL');
  }
});

test('mkdir of a path that can never be created fails instead of looping (Node 20 mkdirSync recursive hangs on /proc)', () => {
  if (!fs.existsSync('/proc/self')) return; // not Linux
  const nfs = new NodeFs();
  assert.throws(() => nfs.mkdir('/proc/lightning-db-cannot-exist/sub'), (e: unknown) => typeof (e as { code?: unknown }).code === 'string');
});

test('sync(inline) runs fdatasync on the calling thread: resolves, and rejects with EBADF once closed', async () => {
  const nfs = new NodeFs();
  const file = path.join(freshDir(), 'inline');
  const h = nfs.open(file, 'create-excl');
  h.write(Buffer.from('abc'), 0, 3, 0);
  await h.sync(true);
  h.close();
  await assert.rejects(h.sync(true), { code: 'EBADF' });
  await assert.rejects(h.sync(false), { code: 'EBADF' });
  assert.equal(readAll(nfs, file).toString(), 'abc');
});
