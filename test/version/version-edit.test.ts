import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { isLightningError } from '../../src/base/errors.js';
import { compareInternalKeys, MAX_SEQ, makeInternalKey } from '../../src/base/internal-key.js';
import { putVarint } from '../../src/util/coding.js';
import { NUM_LEVELS, type FileMetadata } from '../../src/version/file-metadata.js';
import {
  TAG_COMPARATOR,
  TAG_DELETED_FILE,
  TAG_LOG_NUMBER,
  TAG_NEW_FILE,
  VersionEdit,
} from '../../src/version/version-edit.js';
import { fileMeta } from './meta.js';

const isCorruption = (e: unknown): boolean => isLightningError(e, 'CORRUPTION');

const fileNumber = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const level = fc.integer({ min: 0, max: NUM_LEVELS - 1 });
const internalKey = fc
  .tuple(
    fc.uint8Array({ maxLength: 12 }),
    fc.integer({ min: 0, max: MAX_SEQ }),
    fc.constantFrom(0, 1),
  )
  .map(([k, seq, kind]) => makeInternalKey(k, seq, kind));

const fileMetadata: fc.Arbitrary<FileMetadata> = fc
  .record({
    number: fileNumber,
    sizeBytes: fc.nat(),
    a: internalKey,
    b: internalKey,
    s1: fc.integer({ min: 0, max: MAX_SEQ }),
    s2: fc.integer({ min: 0, max: MAX_SEQ }),
    entryCount: fc.nat(),
  })
  .map((r) => {
    const [smallest, largest] = compareInternalKeys(r.a, r.b) <= 0 ? [r.a, r.b] : [r.b, r.a];
    return {
      number: r.number,
      sizeBytes: r.sizeBytes,
      smallest,
      largest,
      smallestSeq: Math.min(r.s1, r.s2),
      largestSeq: Math.max(r.s1, r.s2),
      entryCount: r.entryCount,
    };
  });

const versionEdit: fc.Arbitrary<VersionEdit> = fc
  .record(
    {
      comparatorName: fc.string({ maxLength: 40 }),
      logNumber: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      nextFileNumber: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      lastSequence: fc.nat({ max: MAX_SEQ }),
      deletedFiles: fc.array(fc.record({ level, number: fileNumber }), { maxLength: 5 }),
      newFiles: fc.array(fc.record({ level, meta: fileMetadata }), { maxLength: 5 }),
    },
    { requiredKeys: ['deletedFiles', 'newFiles'] },
  )
  .map((r) => {
    const e = new VersionEdit();
    if (r.comparatorName !== undefined) e.comparatorName = r.comparatorName;
    if (r.logNumber !== undefined) e.logNumber = r.logNumber;
    if (r.nextFileNumber !== undefined) e.nextFileNumber = r.nextFileNumber;
    if (r.lastSequence !== undefined) e.lastSequence = r.lastSequence;
    for (const d of r.deletedFiles) e.deleteFile(d.level, d.number);
    for (const f of r.newFiles) e.addFile(f.level, f.meta);
    return e;
  });

test('encode/decode round trip', () => {
  fc.assert(
    fc.property(versionEdit, (edit) => {
      const decoded = VersionEdit.decode(edit.encode());
      assert.deepEqual(decoded, edit);
      assert.equal(decoded.describe(), edit.describe());
    }),
    { numRuns: 500 },
  );
});

test('every truncation and every byte flip decodes or throws CORRUPTION, nothing else', () => {
  fc.assert(
    fc.property(versionEdit, fc.nat(), fc.integer({ min: 1, max: 255 }), (edit, at, mask) => {
      const bytes = edit.encode();
      for (let cut = 0; cut < bytes.length; cut++) {
        try {
          VersionEdit.decode(bytes.subarray(0, cut));
        } catch (e) {
          assert.ok(isCorruption(e), String(e));
        }
      }
      if (bytes.length === 0) return;
      const flipped = Buffer.from(bytes);
      const i = at % bytes.length;
      flipped.writeUInt8((flipped.readUInt8(i) ^ mask) & 0xff, i);
      try {
        VersionEdit.decode(flipped);
      } catch (e) {
        assert.ok(isCorruption(e), String(e));
      }
    }),
    { numRuns: 200 },
  );
});

test('random bytes decode or throw CORRUPTION', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        VersionEdit.decode(Buffer.from(bytes));
      } catch (e) {
        assert.ok(isCorruption(e), String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

function encodeFields(...fields: number[][]): Buffer {
  const out = Buffer.alloc(256);
  let off = 0;
  for (const field of fields) for (const v of field) off = putVarint(out, off, v);
  return out.subarray(0, off);
}

test('unknown tags, repeated scalars and bad levels are CORRUPTION naming file and offset', () => {
  const cases: [string, Buffer][] = [
    ['unknown tag', encodeFields([TAG_LOG_NUMBER, 3], [99, 1])],
    ['tag 0', encodeFields([0])],
    ['repeated log number', encodeFields([TAG_LOG_NUMBER, 3], [TAG_LOG_NUMBER, 4])],
    ['level 7', encodeFields([TAG_DELETED_FILE, NUM_LEVELS, 5])],
    ['truncated comparator', encodeFields([TAG_COMPARATOR, 10, 65])],
  ];
  for (const [name, bytes] of cases) {
    assert.throws(
      () => VersionEdit.decode(bytes, 'MANIFEST-000009', 100),
      (e) => isCorruption(e) && /MANIFEST-000009 at offset 1\d\d/.test((e as Error).message),
      name,
    );
  }
});

test('a new file whose smallest key is after its largest is CORRUPTION', () => {
  const good = new VersionEdit();
  good.addFile(1, fileMeta(5, 'a', 'z'));
  const bytes = good.encode();
  const edit = VersionEdit.decode(bytes);
  const f = edit.newFiles[0];
  assert.ok(f !== undefined);
  const swapped = new VersionEdit();
  swapped.newFiles.push({
    level: 1,
    meta: { ...f.meta, smallest: f.meta.largest, largest: f.meta.smallest },
  });
  assert.throws(() => VersionEdit.decode(swapped.encode()), isCorruption);
  assert.equal(bytes.readUInt8(0), TAG_NEW_FILE);
});

test('describe lists every field', () => {
  const e = new VersionEdit();
  e.comparatorName = 'lightning.bytewise';
  e.logNumber = 4;
  e.nextFileNumber = 9;
  e.lastSequence = 120;
  e.deleteFile(1, 3);
  e.addFile(0, fileMeta(8, 'a', 'k', 5, 9));
  assert.equal(
    e.describe(),
    [
      'comparator: lightning.bytewise',
      'log-number: 4',
      'next-file-number: 9',
      'last-sequence: 120',
      'deleted: L1 3',
      'added: L0 000008[a#9,SET-k#5,SET] size=1008 seqs=[5-9] entries=10',
    ].join('\n'),
  );
});
