import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { FileHandle } from '../../src/env/file-system.js';
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

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function append(h: FileHandle, s: string): void {
  h.write(bytes(s), 0, s.length, null);
}

function content(mfs: MemFs, path: string): string {
  return mfs.readFileRaw(path).toString('latin1');
}

/** A synced, named, empty file: what the engine has after create + syncDir. */
async function createDurable(mfs: MemFs, path: string): Promise<FileHandle> {
  const h = mfs.open(path, 'create-excl');
  const slash = path.lastIndexOf('/');
  await mfs.syncDir(slash <= 0 ? '/' : path.slice(0, slash));
  return h;
}

test('round trip, positioned reads and writes, holes read as zeros', () => {
  const mfs = new MemFs();
  mfs.mkdir('/db');
  const h = mfs.open('/db/f', 'create-excl');
  append(h, 'hello');
  h.write(bytes('HE'), 0, 2, 0);
  h.write(bytes('!'), 0, 1, 7); // Leaves a hole at 5..7.
  assert.equal(h.size(), 8);
  const buf = Buffer.alloc(10, 0x2e);
  assert.equal(h.read(buf, 1, 10 - 1, 0), 8);
  assert.equal(Buffer.compare(buf, bytes('.HEllo\0\0!.')), 0);
  assert.equal(h.read(buf, 0, 4, 6), 2);
  assert.equal(h.read(buf, 0, 4, 8), 0);
  assert.equal(h.read(buf, 0, 4, 100), 0);
  h.close();
  h.close();
  assert.equal(codeOf(() => h.size()), 'EBADF');
});

test('truncate shrinks and extends with zeros, not stale bytes', () => {
  const mfs = new MemFs();
  const h = mfs.open('f', 'create');
  append(h, 'abcdef');
  h.truncate(2);
  h.truncate(5);
  assert.equal(Buffer.compare(mfs.readFileRaw('f'), bytes('ab\0\0\0')), 0);
  append(h, 'z');
  h.truncate(0);
  h.write(bytes('q'), 0, 1, 3);
  assert.equal(Buffer.compare(mfs.readFileRaw('f'), bytes('\0\0\0q')), 0);
});

test('open modes and error codes', () => {
  const mfs = new MemFs();
  mfs.mkdir('d');
  assert.equal(codeOf(() => mfs.open('d/f', 'r')), 'ENOENT');
  assert.equal(codeOf(() => mfs.open('d/f', 'rw')), 'ENOENT');
  assert.equal(codeOf(() => mfs.open('nodir/f', 'create')), 'ENOENT');
  assert.equal(codeOf(() => mfs.open('d', 'r')), 'EISDIR');
  assert.equal(codeOf(() => mfs.open('/', 'r')), 'EISDIR');
  const c = mfs.open('d/f', 'create');
  append(c, 'keep');
  mfs.open('d/f', 'create').close();
  assert.equal(content(mfs, 'd/f'), 'keep');
  assert.equal(codeOf(() => mfs.open('d/f', 'create-excl')), 'EEXIST');
  assert.equal(codeOf(() => mfs.open('d/f/x', 'create')), 'ENOTDIR');
  const r = mfs.open('d/f', 'r');
  assert.equal(codeOf(() => append(r, 'x')), 'EBADF');
  assert.equal(codeOf(() => r.truncate(0)), 'EBADF');
  mfs.open('d/f', 'truncate').close();
  assert.equal(c.size(), 0); // Same inode: the open handle sees the truncation.
  assert.equal(codeOf(() => mfs.unlink('d')), 'EISDIR');
  assert.equal(codeOf(() => mfs.unlink('d/nope')), 'ENOENT');
  assert.equal(codeOf(() => mfs.stat('d/nope')), 'ENOENT');
  assert.equal(codeOf(() => mfs.readdir('d/f')), 'ENOTDIR');
  assert.equal(codeOf(() => mfs.mkdir('d/f')), 'EEXIST');
  assert.equal(codeOf(() => mfs.mkdir('d/f/g')), 'ENOTDIR');
  assert.equal(codeOf(() => mfs.rename('d/nope', 'd/x')), 'ENOENT');
  assert.equal(codeOf(() => mfs.rename('d/f', 'd')), 'EISDIR');
  assert.equal(codeOf(() => mfs.rename('d', 'e')), 'ENOTSUP');
});

test('paths are normalised', () => {
  const mfs = new MemFs();
  mfs.mkdir('a/b/');
  const h = mfs.open('/a//b/./f', 'create');
  append(h, 'x');
  assert.equal(mfs.exists('a/b/f'), true);
  assert.equal(mfs.exists('/a/b/../b/f/'), true);
  assert.deepEqual(mfs.stat('a/b'), { size: 0, isDirectory: true });
  assert.deepEqual(mfs.stat('//a/b/f'), { size: 1, isDirectory: false });
  assert.deepEqual(mfs.listAll(), ['/a/b/f']);
  assert.equal(mfs.exists('a/b/f/g'), false);
});

test('readdir is sorted; rename replaces and unlink removes', () => {
  const mfs = new MemFs();
  mfs.mkdir('d');
  for (const name of ['b', 'c', 'a', 'B']) mfs.open(`d/${name}`, 'create').close();
  assert.deepEqual(mfs.readdir('d'), ['B', 'a', 'b', 'c']);
  mfs.writeFileRaw('d/a', bytes('from a'));
  mfs.rename('d/a', 'd/c');
  mfs.rename('d/c', 'd/c'); // Same file: no-op.
  assert.deepEqual(mfs.readdir('d'), ['B', 'b', 'c']);
  assert.equal(content(mfs, 'd/c'), 'from a');
  mfs.unlink('d/B');
  assert.deepEqual(mfs.readdir('d'), ['b', 'c']);
  assert.deepEqual(mfs.readdir('/'), ['d']);
});

test('crash drops unsynced data and keeps synced data', async () => {
  const mfs = new MemFs();
  mfs.mkdir('db');
  const h = await createDurable(mfs, 'db/wal');
  append(h, 'synced;');
  await h.sync();
  append(h, 'unsynced');
  const u = await createDurable(mfs, 'db/never-synced');
  append(u, 'gone');
  mfs.crash();
  assert.equal(content(mfs, 'db/wal'), 'synced;');
  assert.equal(content(mfs, 'db/never-synced'), '');
});

test('a synced file whose directory was not synced is gone after a crash', async () => {
  const mfs = new MemFs();
  mfs.mkdir('db');
  const h = mfs.open('db/000001.sst', 'create-excl');
  append(h, 'table');
  await h.sync();
  assert.equal(mfs.crashClone().exists('db/000001.sst'), false);
  await mfs.syncDir('db');
  assert.equal(content(mfs.crashClone(), 'db/000001.sst'), 'table');
});

test('rename without syncDir is reverted by a crash; with syncDir it is kept', async () => {
  const mfs = new MemFs();
  mfs.mkdir('db');
  const tmp = await createDurable(mfs, 'db/CURRENT.tmp');
  append(tmp, 'MANIFEST-000002\n');
  await tmp.sync();
  tmp.close();
  mfs.rename('db/CURRENT.tmp', 'db/CURRENT');
  const lost = mfs.crashClone();
  assert.deepEqual(lost.readdir('db'), ['CURRENT.tmp']);
  assert.equal(content(lost, 'db/CURRENT.tmp'), 'MANIFEST-000002\n');
  await mfs.syncDir('db');
  const kept = mfs.crashClone();
  assert.deepEqual(kept.readdir('db'), ['CURRENT']);
  assert.equal(content(kept, 'db/CURRENT'), 'MANIFEST-000002\n');
});

test('unlink without syncDir is reverted by a crash', async () => {
  const mfs = new MemFs();
  mfs.writeFileRaw('old.log', bytes('data'));
  mfs.unlink('old.log');
  assert.equal(mfs.exists('old.log'), false);
  assert.equal(content(mfs.crashClone(), 'old.log'), 'data');
  await mfs.syncDir('/');
  assert.equal(mfs.crashClone().exists('old.log'), false);
});

test('mkdir is durable at once', () => {
  const mfs = new MemFs();
  mfs.mkdir('a/b/c');
  mfs.crash();
  assert.equal(mfs.stat('a/b/c').isDirectory, true);
});

test('crashClone leaves the original untouched; crash kills handles and frees locks', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, '/wal');
  append(h, 'abc');
  const release = mfs.lock('/LOCK');
  const clone = mfs.crashClone();
  assert.equal(content(clone, 'wal'), '');
  assert.equal(content(mfs, 'wal'), 'abc');
  append(h, 'd'); // Still usable.
  assert.equal(codeOf(() => mfs.lock('/LOCK')), 'ELOCKED');
  clone.lock('/LOCK')(); // The clone's locks are its own.

  mfs.crash();
  const buf = Buffer.alloc(4);
  assert.equal(codeOf(() => h.read(buf, 0, 4, 0)), 'EBADF');
  assert.equal(codeOf(() => append(h, 'x')), 'EBADF');
  assert.equal(codeOf(() => h.size()), 'EBADF');
  assert.equal(codeOf(() => h.truncate(0)), 'EBADF');
  await assert.rejects(h.sync(), { code: 'EBADF' });
  h.close(); // Never throws.
  const again = mfs.lock('/LOCK'); // crash() freed it.
  release(); // The old release must not free the new holder's lock.
  assert.equal(codeOf(() => mfs.lock('LOCK')), 'ELOCKED');
  again();
  mfs.lock('LOCK')();
});

test('lock: second lock is ELOCKED until released; release is idempotent', () => {
  const mfs = new MemFs();
  mfs.mkdir('db');
  const release = mfs.lock('db/LOCK');
  assert.equal(mfs.exists('db/LOCK'), true);
  assert.equal(codeOf(() => mfs.lock('/db//LOCK')), 'ELOCKED');
  release();
  release();
  const again = mfs.lock('db/LOCK');
  again();
});

test('tearing keeps a prefix of the unsynced tail, and every length occurs', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, 'wal');
  append(h, 'durable|');
  await h.sync();
  append(h, 'abcdef');
  const lengths = new Set<number>();
  const rng = new Random(7);
  for (let i = 0; i < 200; i++) {
    const after = content(mfs.crashClone({ rng, tearLastWrite: true }), 'wal');
    assert.ok('durable|abcdef'.startsWith(after), after);
    assert.ok(after.length >= 'durable|'.length);
    lengths.add(after.length);
  }
  assert.equal(lengths.size, 'abcdef'.length + 1);
});

test('keepUnsyncedProbability 1 keeps everything, 0 nothing', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, 'f');
  append(h, 'abc');
  await h.sync();
  h.write(bytes('X'), 0, 1, 0);
  append(h, 'def');
  const rng = new Random(1);
  assert.equal(content(mfs.crashClone({ rng, keepUnsyncedProbability: 1 }), 'f'), 'Xbcdef');
  assert.equal(content(mfs.crashClone({ rng, keepUnsyncedProbability: 0 }), 'f'), 'abc');
});

test('an overwrite or truncate below the synced length is undone by a crash', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, 'f');
  append(h, 'abcdef');
  await h.sync();
  h.write(bytes('XY'), 0, 2, 1);
  append(h, 'tail');
  assert.equal(content(mfs, 'f'), 'aXYdeftail');
  // The torn tail is what lies past the durable length, on top of the old bytes.
  const torn = content(mfs.crashClone({ rng: new Random(3), tearLastWrite: true }), 'f');
  assert.ok(torn.startsWith('abcdef'), torn);
  assert.ok('abcdeftail'.startsWith(torn), torn);
  h.truncate(2);
  assert.equal(content(mfs.crashClone(), 'f'), 'abcdef');
  await h.sync();
  assert.equal(content(mfs.crashClone(), 'f'), 'aX');
  append(h, 'more'); // Appends after a sync past a snapshot start a clean tail again.
  await h.sync();
  mfs.crash();
  assert.equal(content(mfs, 'f'), 'aXmore');
});

test('a sync makes durable the bytes as of its call, once it settles', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, 'f');
  append(h, 'abc');
  const first = h.sync();
  append(h, 'def'); // After the call: not covered by it.
  h.write(bytes('X'), 0, 1, 0); // An overwrite after the call: not covered either.
  assert.equal(content(mfs.crashClone(), 'f'), ''); // Not durable before it settles.
  await first;
  assert.equal(content(mfs.crashClone(), 'f'), 'abc');
  const second = h.sync();
  append(h, 'ghi');
  await second;
  assert.equal(content(mfs.crashClone(), 'f'), 'Xbcdef');
});

test('a crash while a sync is in flight loses the data and rejects the sync', async () => {
  const mfs = new MemFs();
  mfs.mkdir('db');
  const h = await createDurable(mfs, 'db/f');
  append(h, 'abc');
  const pendingSync = h.sync();
  const pendingDirSync = mfs.syncDir('db');
  mfs.open('db/new', 'create').close();
  mfs.crash();
  await assert.rejects(pendingSync, { code: 'EBADF' });
  await assert.rejects(pendingDirSync, { code: 'EBADF' });
  assert.equal(content(mfs, 'db/f'), '');
  assert.equal(mfs.exists('db/new'), false);
});

test('syncDir covers the entries as of its call; mkdir during it stays durable', async () => {
  const mfs = new MemFs();
  mfs.open('a', 'create').close();
  const pending = mfs.syncDir('/');
  mfs.open('b', 'create').close();
  mfs.mkdir('sub');
  await pending;
  assert.deepEqual(mfs.crashClone().readdir('/'), ['a', 'sub']);
});

test('ENOSPC at capacity; unlink and truncate free space', async () => {
  const mfs = new MemFs({ capacityBytes: 100 });
  const h = mfs.open('f', 'create');
  h.write(Buffer.alloc(60), 0, 60, null);
  assert.deepEqual(await mfs.statfs('/'), { availableBytes: 40, totalBytes: 100 });
  assert.equal(codeOf(() => h.write(Buffer.alloc(41), 0, 41, null)), 'ENOSPC');
  assert.equal(h.size(), 60); // Nothing written.
  assert.equal(codeOf(() => h.truncate(101)), 'ENOSPC');
  h.write(Buffer.alloc(10), 0, 10, 0); // Overwrites need no space.
  const g = mfs.open('g', 'create');
  g.write(Buffer.alloc(40), 0, 40, null);
  assert.equal(mfs.usedBytes(), 100);
  assert.equal(codeOf(() => g.write(Buffer.alloc(1), 0, 1, null)), 'ENOSPC');
  h.truncate(50);
  g.write(Buffer.alloc(10), 0, 10, null);
  mfs.unlink('g');
  assert.equal(mfs.usedBytes(), 50);
  mfs.rename('f', 'f2');
  assert.equal(mfs.usedBytes(), 50);
  await assert.rejects(mfs.statfs('/missing'), { code: 'ENOENT' });
});

test('crash recounts the used space from what survives', async () => {
  const mfs = new MemFs({ capacityBytes: 100 });
  const h = await createDurable(mfs, 'f');
  h.write(Buffer.alloc(30), 0, 30, null);
  await h.sync();
  h.write(Buffer.alloc(50), 0, 50, null);
  mfs.crash();
  assert.equal(mfs.usedBytes(), 30);
  assert.deepEqual(await mfs.statfs('/'), { availableBytes: 70, totalBytes: 100 });
});

test('crashes are deterministic for a seed', async () => {
  async function scenario(): Promise<MemFs> {
    const mfs = new MemFs();
    mfs.mkdir('db');
    const rng = new Random(99);
    for (let i = 0; i < 20; i++) {
      const h = mfs.open(`db/f${i}`, 'create');
      const len = rng.nextInt(50);
      h.write(Buffer.alloc(len, i), 0, len, null);
      if (rng.nextInt(2) === 0) await h.sync();
      h.write(Buffer.alloc(len + 10, 255 - i), 0, len + 10, null);
      if (rng.nextInt(3) === 0) await mfs.syncDir('db');
    }
    return mfs;
  }
  const describeAfter = async (seed: number): Promise<string> => {
    const mfs = await scenario();
    mfs.crash({ rng: new Random(seed), tearLastWrite: true, keepUnsyncedProbability: 0.3 });
    return mfs
      .listAll()
      .map((p) => `${p}=${mfs.readFileRaw(p).toString('hex')}`)
      .join('\n');
  };
  const a = await describeAfter(5);
  assert.equal(await describeAfter(5), a);
  assert.notEqual(await describeAfter(6), a);
});

test('writeFileRaw and flipByte model files left on disk and corruption', () => {
  const mfs = new MemFs();
  mfs.writeFileRaw('synced', bytes('abcd'));
  mfs.writeFileRaw('unsynced', bytes('efgh'), { synced: false });
  mfs.flipByte('synced', 1);
  mfs.flipByte('synced', 2, 0x01);
  const expected = Buffer.from([0x61, 0x62 ^ 0xff, 0x63 ^ 0x01, 0x64]);
  assert.equal(Buffer.compare(mfs.readFileRaw('synced'), expected), 0);
  assert.deepEqual(mfs.listAll(), ['/synced', '/unsynced']);
  assert.match(mfs.describe(), /\/synced 4 bytes \(durable 4\)/);
  mfs.crash();
  assert.equal(Buffer.compare(mfs.readFileRaw('synced'), expected), 0);
  assert.deepEqual(mfs.listAll(), ['/synced']);
});

test('flipByte corrupts the durable copy after an overwrite too', async () => {
  const mfs = new MemFs();
  const h = await createDurable(mfs, 'f');
  append(h, 'abc');
  await h.sync();
  h.write(bytes('X'), 0, 1, 0);
  mfs.flipByte('f', 0, 0x20);
  assert.equal(content(mfs, 'f'), 'xbc');
  assert.equal(content(mfs.crashClone(), 'f'), 'Abc');
});
