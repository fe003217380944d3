import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { userKeyOf } from '../../src/base/internal-key.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { VersionBuilder } from '../../src/version/version-builder.js';
import { VersionEdit } from '../../src/version/version-edit.js';
import { checkLevels, emptyLevels, Version } from '../../src/version/version.js';
import { fileMeta } from './meta.js';

function build(edit: VersionEdit, base = Version.empty()): Version {
  const builder = new VersionBuilder(base);
  assert.equal(builder.apply(edit), undefined);
  const levels = builder.build();
  assert.ok(typeof levels !== 'string', String(levels));
  const v = new Version(levels);
  v.checkInvariants();
  return v;
}

test('L0 is ordered newest first, L1+ by key, and describe() prints it', () => {
  const edit = new VersionEdit();
  edit.addFile(0, fileMeta(10, 'c', 'm', 1, 4));
  edit.addFile(0, fileMeta(12, 'a', 'k', 5, 9));
  edit.addFile(0, fileMeta(11, 'b', 'z', 5, 9));
  edit.addFile(2, fileMeta(21, 'n', 'p', 1));
  edit.addFile(2, fileMeta(20, 'a', 'c', 1));
  const v = build(edit);
  assert.deepEqual(
    v.files(0).map((f) => f.number),
    [12, 11, 10],
  );
  assert.deepEqual(
    v.files(2).map((f) => f.number),
    [20, 21],
  );
  assert.equal(
    v.describe(),
    [
      '0: 000012[a#9,SET-k#5,SET] 000011[b#9,SET-z#5,SET] 000010[c#4,SET-m#1,SET]',
      '2: 000020[a#1,SET-c#1,SET] 000021[n#1,SET-p#1,SET]',
    ].join('\n'),
  );
  assert.equal(Version.empty().describe(), '(empty)');
  assert.equal(v.totalFiles(), 5);
  assert.equal(v.levelBytes(2), 1020 + 1021);
});

test('deletes apply before adds, so a file can move between levels', () => {
  const add = new VersionEdit();
  add.addFile(1, fileMeta(5, 'a', 'c'));
  const v1 = build(add);
  const move = new VersionEdit();
  move.deleteFile(1, 5);
  move.addFile(2, fileMeta(5, 'a', 'c'));
  const v2 = build(move, v1);
  assert.equal(v2.describe(), '2: 000005[a#5,SET-c#5,SET]');
  assert.equal(v1.describe(), '1: 000005[a#5,SET-c#5,SET]', 'versions are immutable');
});

test('the builder reports bad edits instead of applying them', () => {
  const base = build(
    Object.assign(new VersionEdit(), { newFiles: [{ level: 1, meta: fileMeta(5, 'd', 'f') }] }),
  );
  const cases: [string, (e: VersionEdit) => void, RegExp][] = [
    ['missing delete', (e) => e.deleteFile(1, 6), /not in the version/],
    ['wrong level', (e) => e.deleteFile(2, 5), /is in L1/],
    ['duplicate add', (e) => e.addFile(3, fileMeta(5, 'x', 'y')), /already in L1/],
  ];
  for (const [name, mutate, message] of cases) {
    const edit = new VersionEdit();
    mutate(edit);
    assert.match(new VersionBuilder(base).apply(edit) ?? '', message, name);
  }
  const overlap = new VersionEdit();
  overlap.addFile(1, fileMeta(7, 'f', 'g'));
  const builder = new VersionBuilder(base);
  assert.equal(builder.apply(overlap), undefined);
  assert.match(String(builder.build()), /overlap/);
});

test('checkLevels rejects overlapping L1 files and L0 out of order', () => {
  const l1 = emptyLevels();
  l1[1] = [fileMeta(1, 'a', 'c'), fileMeta(2, 'c', 'd')];
  assert.match(checkLevels(l1, false) ?? '', /overlap/);
  const l0 = emptyLevels();
  l0[0] = [fileMeta(1, 'a', 'c', 1, 2), fileMeta(2, 'a', 'c', 3, 4)];
  assert.match(checkLevels(l0, false) ?? '', /newest first/);
  const dup = emptyLevels();
  dup[0] = [fileMeta(1, 'a', 'c', 3, 4)];
  dup[1] = [fileMeta(1, 'a', 'c', 1, 2)];
  assert.equal(checkLevels(dup, false), undefined);
  assert.match(checkLevels(dup, true) ?? '', /twice/);
});

/** Sorted, disjoint single-letter ranges for L1, derived from sorted distinct boundary letters. */
const disjointFiles = fc
  .uniqueArray(fc.integer({ min: 0, max: 25 }), { maxLength: 16 })
  .map((letters) => {
    const sorted = letters.sort((a, b) => a - b);
    const files: FileMetadata[] = [];
    for (let i = 0; i + 1 < sorted.length; i += 2) {
      const lo = String.fromCharCode(97 + (sorted[i] ?? 0));
      const hi = String.fromCharCode(97 + (sorted[i + 1] ?? 0));
      files.push(fileMeta(files.length + 1, lo, hi));
    }
    return files;
  });
const letter = fc.integer({ min: 0, max: 26 }).map((i) => Buffer.from(String.fromCharCode(96 + i)));

test('findFile and overlappingFiles agree with a linear scan', () => {
  fc.assert(
    fc.property(
      disjointFiles,
      letter,
      letter,
      fc.integer({ min: 0, max: 1 }),
      (files, a, b, lvl) => {
        const levels = emptyLevels();
        levels[lvl] = lvl === 0 ? files.slice().reverse() : files;
        const v = new Version(levels);
        const [lo, hi] = a.compare(b) <= 0 ? [a, b] : [b, a];
        const expected = v
          .files(lvl)
          .filter(
            (f) => userKeyOf(f.largest).compare(lo) >= 0 && userKeyOf(f.smallest).compare(hi) <= 0,
          );
        assert.deepEqual(v.overlappingFiles(lvl, lo, hi), expected);
        assert.deepEqual(v.overlappingFiles(lvl, undefined, undefined), v.files(lvl));
        assert.deepEqual(
          v.overlappingFiles(lvl, undefined, hi),
          v.files(lvl).filter((f) => userKeyOf(f.smallest).compare(hi) <= 0),
        );
        if (lvl === 1) {
          const containing = files.find(
            (f) => userKeyOf(f.smallest).compare(a) <= 0 && userKeyOf(f.largest).compare(a) >= 0,
          );
          assert.equal(v.findFile(1, a), containing);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('ref/unref calls the owner back when the last reference goes', () => {
  const released: Version[] = [];
  const v = new Version(emptyLevels(), (x) => released.push(x));
  v.ref();
  v.ref();
  v.unref();
  assert.equal(released.length, 0);
  assert.equal(v.refCount(), 1);
  v.unref();
  assert.deepEqual(released, [v]);
});

test('findFile agrees with a linear scan for multi-byte keys of mixed lengths (word-wise compare)', () => {
  const key = fc.array(fc.constantFrom(0x00, 0x30, 0x31, 0x7f, 0x80, 0xff), { minLength: 1, maxLength: 11 }).map((a) => Buffer.from(a));
  fc.assert(
    fc.property(fc.uniqueArray(key, { minLength: 2, maxLength: 40, comparator: (x, y) => x.equals(y) }), fc.array(key, { maxLength: 30 }), (keys, probes) => {
      const sorted = keys.slice().sort(Buffer.compare);
      const files: FileMetadata[] = [];
      for (let i = 0; i + 1 < sorted.length; i += 2) files.push(fileMeta(files.length + 1, sorted[i] as Buffer, sorted[i + 1] as Buffer));
      const levels = emptyLevels();
      levels[2] = files;
      const v = new Version(levels);
      for (const p of [...probes, ...sorted]) {
        const containing: FileMetadata | undefined = files.find((f) => userKeyOf(f.smallest).compare(p) <= 0 && userKeyOf(f.largest).compare(p) >= 0);
        assert.equal(v.findFile(2, p), containing, `probe ${p.toString('hex')}`);
      }
    }),
    { numRuns: 300 },
  );
});
