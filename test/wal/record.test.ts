import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { isLightningError, LightningError } from '../../src/base/errors.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import {
  encodedRecordBytes,
  encodeFileHeaderPayload,
  encodeRecord,
  encodeRecordInto,
  FILE_HEADER_RECORD_BYTES,
  LOG_FORMAT_VERSION,
  RECORD_HEADER_BYTES,
  RECORD_TYPE_FILE_HEADER,
  WAL_FORMAT_VERSION,
} from '../../src/wal/format.js';
import {
  READ_WINDOW_BYTES_DEFAULT,
  RecordReader,
  type RecordReaderOptions,
} from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';

const DIR = '/db';
const PATH = `${DIR}/000007.log`;
const NUMBER = 7;

function newFs(): MemFs {
  const fs = new MemFs();
  fs.mkdir(DIR);
  return fs;
}

/**
 * Writes a log of `payloads` (never synced, so a version 2 WAL has no sync marks). The tests of the
 * version 1 rule (any valid record after a bad one makes it CORRUPTION) write version 1 WALs, as
 * releases before sync marks did; test/wal/sync-marks.test.ts covers version 2.
 */
function writeLog(fs: MemFs, payloads: readonly Buffer[], path = PATH, number = NUMBER, version = WAL_FORMAT_VERSION): number[] {
  const file = fs.open(path, 'truncate');
  const w = RecordWriter.create(file, number, 'wal', version);
  const offsets: number[] = [];
  for (const p of payloads) {
    offsets.push(w.sizeBytes());
    w.add(p);
  }
  assert.equal(w.sizeBytes(), file.size());
  file.close();
  return offsets;
}

interface ReadResult {
  records: Buffer[];
  reader: RecordReader;
}

function readLog(fs: MemFs, options: RecordReaderOptions = {}, path = PATH): ReadResult {
  const file = fs.open(path, 'r');
  try {
    const reader = new RecordReader(file, path, options);
    const records: Buffer[] = [];
    for (let r = reader.next(); r !== undefined; r = reader.next()) records.push(r);
    assert.equal(reader.next(), undefined, 'stays at the end');
    return { records, reader };
  } finally {
    file.close();
  }
}

function isCorruption(e: unknown): boolean {
  return isLightningError(e, 'CORRUPTION');
}

function payload(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

test('round trip of random payloads, including empty ones and ones larger than the window', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 3000 }), { maxLength: 20 }),
      fc.integer({ min: RECORD_HEADER_BYTES, max: 2048 }),
      (arrays, windowBytes) => {
        const fs = newFs();
        const payloads = arrays.map((a) => Buffer.from(a));
        writeLog(fs, payloads);
        const { records, reader } = readLog(fs, { windowBytes });
        assert.deepEqual(records, payloads);
        assert.equal(reader.tornTailOffset, undefined);
        assert.equal(reader.validLengthBytes, fs.stat(PATH).size);
        assert.equal(reader.fileNumber, NUMBER);
      },
    ),
    { numRuns: 200 },
  );
});

test('records bigger than the default window round-trip, and reads stay bounded', () => {
  const fs = newFs();
  const big = payload(READ_WINDOW_BYTES_DEFAULT * 2 + 17, 1);
  const payloads = [payload(10, 2), big, payload(0, 3), payload(5000, 4)];
  writeLog(fs, payloads);
  const file = fs.open(PATH, 'r');
  let maxRead = 0;
  const counting: FileHandle = {
    path: file.path,
    read: (buf, off, len, pos) => {
      maxRead = Math.max(maxRead, len);
      return file.read(buf, off, len, pos);
    },
    write: () => assert.fail('reader must not write'),
    sync: () => Promise.reject(new Error('reader must not sync')),
    size: () => file.size(),
    truncate: () => assert.fail('reader must not truncate'),
    close: () => file.close(),
  };
  const reader = new RecordReader(counting, PATH, { windowBytes: 1024 });
  const got: Buffer[] = [];
  for (let r = reader.next(); r !== undefined; r = reader.next()) got.push(r);
  assert.deepEqual(got, payloads);
  // The big record is read whole (it is larger than the window); nothing else exceeds the window.
  assert.equal(maxRead, big.length + 5);
  assert.ok(fs.stat(PATH).size > maxRead);
});

test('addMany and addEncoded frame several records into one write', () => {
  const fs = newFs();
  const file = fs.open(PATH, 'truncate');
  let writes = 0;
  const counting: FileHandle = {
    path: file.path,
    read: (buf, off, len, pos) => file.read(buf, off, len, pos),
    write: (buf, off, len, pos) => {
      writes++;
      file.write(buf, off, len, pos);
    },
    sync: () => file.sync(),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
  const w = RecordWriter.create(counting, NUMBER);
  assert.equal(writes, 1);
  const a = [payload(3, 1), payload(0, 2), payload(70, 3)];
  w.addMany(a);
  assert.equal(writes, 2);
  const b = [payload(9, 4), payload(1, 5)];
  const framed = Buffer.alloc(encodedRecordBytes(9) + encodedRecordBytes(1));
  const end = encodeRecordInto(
    framed,
    encodeRecordInto(framed, 0, b[0] ?? Buffer.alloc(0)),
    b[1] ?? Buffer.alloc(0),
  );
  assert.equal(end, framed.length);
  w.addEncoded(framed);
  assert.equal(writes, 3);
  assert.equal(w.sizeBytes(), FILE_HEADER_RECORD_BYTES + 5 * RECORD_HEADER_BYTES + 3 + 70 + 9 + 1);
  file.close();
  assert.deepEqual(readLog(fs).records, [...a, ...b]);
});

test('an empty file has no records and no torn tail', () => {
  const fs = newFs();
  fs.open(PATH, 'truncate').close();
  const { records, reader } = readLog(fs);
  assert.deepEqual(records, []);
  assert.equal(reader.tornTailOffset, undefined);
  assert.equal(reader.fileNumber, undefined);
});

/** A small version 1 WAL: header, then records of assorted sizes. */
function smallLog(): { fs: MemFs; payloads: Buffer[]; offsets: number[]; bytes: Buffer } {
  const fs = newFs();
  const payloads = [payload(5, 1), payload(0, 2), payload(40, 3), payload(12, 4)];
  const offsets = writeLog(fs, payloads, PATH, NUMBER, LOG_FORMAT_VERSION);
  return { fs, payloads, offsets, bytes: fs.readFileRaw(PATH) };
}

test('truncation at every offset yields a prefix of the records and the right torn tail', () => {
  const { payloads, offsets, bytes } = smallLog();
  const ends = [FILE_HEADER_RECORD_BYTES, ...offsets.slice(1), bytes.length];
  for (let cut = 0; cut <= bytes.length; cut++) {
    const fs = newFs();
    fs.writeFileRaw(PATH, bytes.subarray(0, cut));
    const { records, reader } = readLog(fs, { windowBytes: 16 });
    const complete = offsets.filter((_, i) => (ends[i + 1] ?? Infinity) <= cut).length;
    assert.deepEqual(records, payloads.slice(0, complete), `cut=${cut}`);
    const cleanEnd = cut === 0 || ends.includes(cut);
    if (cleanEnd) {
      assert.equal(reader.tornTailOffset, undefined, `cut=${cut}`);
    } else {
      const validLength = cut < FILE_HEADER_RECORD_BYTES ? 0 : (offsets[complete] ?? -1);
      assert.equal(reader.tornTailOffset, validLength, `cut=${cut}`);
      assert.equal(reader.validLengthBytes, validLength, `cut=${cut}`);
    }
  }
});

test('a flipped byte gives CORRUPTION or a right prefix with a torn tail, never bad data', () => {
  const { payloads, offsets, bytes } = smallLog();
  const lastOffset = offsets[offsets.length - 1] ?? -1;
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0xff, 0x01, 0x80]) {
      const fs = newFs();
      fs.writeFileRaw(PATH, bytes);
      fs.flipByte(PATH, i, mask);
      let result: ReadResult | undefined;
      try {
        result = readLog(fs);
      } catch (e) {
        assert.ok(isCorruption(e), `byte ${i}: ${String(e)}`);
        // Damage before the last record is in the middle of the log: it must be reported.
        assert.ok(
          i < lastOffset,
          `byte ${i} mask ${mask}: corruption in the last record is a torn tail`,
        );
        assert.match((e as Error).message, /000007\.log at offset \d+/);
        continue;
      }
      assert.ok(i >= lastOffset, `byte ${i} mask ${mask}: mid-log damage must not pass silently`);
      assert.deepEqual(result.records, payloads.slice(0, -1));
      assert.equal(result.reader.tornTailOffset, lastOffset);
    }
  }
});

test('skipCorrupt resumes at the next valid record and counts what it skipped', () => {
  const { payloads, offsets, bytes } = smallLog();
  const fs = newFs();
  fs.writeFileRaw(PATH, bytes);
  const damaged = offsets[2] ?? -1;
  fs.flipByte(PATH, damaged + RECORD_HEADER_BYTES + 3);
  assert.throws(
    () => readLog(fs),
    (e) => isCorruption(e) && /offset \d+/.test((e as Error).message),
  );
  const { records, reader } = readLog(fs, { skipCorrupt: true });
  assert.deepEqual(records, [payloads[0], payloads[1], payloads[3]]);
  assert.equal(reader.skippedRecords, 1);
  assert.equal(reader.skippedBytes, encodedRecordBytes(payloads[2]?.length ?? -1));
  assert.equal(reader.tornTailOffset, undefined);
});

test('after mid-log corruption the intact prefix length is known (point-in-time recovery)', () => {
  const { offsets, bytes } = smallLog();
  const fs = newFs();
  fs.writeFileRaw(PATH, bytes);
  fs.flipByte(PATH, (offsets[1] ?? -1) + 1);
  const file = fs.open(PATH, 'r');
  const reader = new RecordReader(file, PATH);
  assert.ok(reader.next() !== undefined);
  assert.throws(() => reader.next(), isCorruption);
  assert.throws(() => reader.next(), isCorruption, 'keeps failing');
  assert.equal(reader.validLengthBytes, offsets[1]);
  file.close();
});

test('garbage or zeros after the last record are a torn tail', () => {
  const { payloads, bytes } = smallLog();
  for (const tail of [Buffer.alloc(100), Buffer.from('not a record at all, just noise')]) {
    const fs = newFs();
    fs.writeFileRaw(PATH, Buffer.concat([bytes, tail]));
    const { records, reader } = readLog(fs);
    assert.deepEqual(records, payloads);
    assert.equal(reader.tornTailOffset, bytes.length);
  }
});

test('a damaged header is CORRUPTION when records follow, a torn tail when nothing does', () => {
  const { bytes } = smallLog();
  const fs = newFs();
  fs.writeFileRaw(PATH, bytes);
  fs.flipByte(PATH, 12);
  assert.throws(() => readLog(fs), isCorruption);
  const skipped = readLog(fs, { skipCorrupt: true });
  assert.equal(skipped.records.length, 4);
  assert.equal(skipped.reader.skippedBytes, FILE_HEADER_RECORD_BYTES);

  const headerOnly = newFs();
  headerOnly.writeFileRaw(PATH, bytes.subarray(0, FILE_HEADER_RECORD_BYTES));
  headerOnly.flipByte(PATH, 12);
  const r = readLog(headerOnly);
  assert.deepEqual(r.records, []);
  assert.equal(r.reader.tornTailOffset, 0);
});

test('wrong magic, version, file number or no header are CORRUPTION even with skipCorrupt', () => {
  const { bytes } = smallLog();
  const body = bytes.subarray(FILE_HEADER_RECORD_BYTES);
  const cases: [string, Buffer][] = [
    [
      'manifest magic',
      encodeRecord(encodeFileHeaderPayload('manifest', NUMBER), RECORD_TYPE_FILE_HEADER),
    ],
    [
      'other file number',
      encodeRecord(encodeFileHeaderPayload('wal', NUMBER + 1), RECORD_TYPE_FILE_HEADER),
    ],
    ['no header', Buffer.alloc(0)],
  ];
  const v3 = encodeFileHeaderPayload('wal', NUMBER);
  v3.writeUInt32LE(3, 8);
  cases.push(['version 3', encodeRecord(v3, RECORD_TYPE_FILE_HEADER)]);
  for (const [name, header] of cases) {
    const fs = newFs();
    fs.writeFileRaw(PATH, Buffer.concat([header, body]));
    assert.throws(() => readLog(fs, { skipCorrupt: true }), isCorruption, name);
  }
  // The expected number comes from the options when the path does not carry one.
  const manifestV2 = newFs();
  manifestV2.writeFileRaw(PATH, encodeRecord(encodeFileHeaderPayload('manifest', NUMBER, WAL_FORMAT_VERSION), RECORD_TYPE_FILE_HEADER));
  assert.throws(() => readLog(manifestV2, { kind: 'manifest' }), isCorruption, 'a MANIFEST is version 1 only');
  const fs = newFs();
  writeLog(fs, [payload(3, 3)], `${DIR}/wal-copy`, NUMBER);
  assert.equal(readLog(fs, {}, `${DIR}/wal-copy`).records.length, 1);
  assert.throws(() => readLog(fs, { fileNumber: 8 }, `${DIR}/wal-copy`), isCorruption);
  assert.throws(() => readLog(fs, { kind: 'manifest' }, `${DIR}/wal-copy`), isCorruption);
});

test('a checksummed file header in the middle of the log is CORRUPTION, skippable', () => {
  const { bytes, payloads } = smallLog();
  const header = encodeRecord(encodeFileHeaderPayload('wal', NUMBER), RECORD_TYPE_FILE_HEADER);
  const fs = newFs();
  fs.writeFileRaw(PATH, Buffer.concat([bytes, header, encodeRecord(payload(4, 9))]));
  assert.throws(() => readLog(fs), isCorruption);
  assert.deepEqual(readLog(fs, { skipCorrupt: true }).records, [...payloads, payload(4, 9)]);
});

interface Faults {
  writes: boolean;
  syncs: boolean;
}

/** Forwards to `file`, failing writes with ENOSPC / syncs with EIO while the flags say so. */
function flakyHandle(file: FileHandle, faults: Faults): FileHandle {
  return {
    path: file.path,
    read: (buf, off, len, pos) => file.read(buf, off, len, pos),
    write: (buf, off, len, pos) => {
      if (faults.writes) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      file.write(buf, off, len, pos);
    },
    sync: () =>
      faults.syncs ? Promise.reject(Object.assign(new Error('eio'), { code: 'EIO' })) : file.sync(),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
}

test('a failed write disables the writer', async () => {
  const fs = newFs();
  const faults = { writes: false, syncs: false };
  const w = RecordWriter.create(flakyHandle(fs.open(PATH, 'truncate'), faults), NUMBER);
  w.add(payload(3, 1));
  await w.sync();
  faults.writes = true;
  assert.throws(
    () => w.add(payload(3, 2)),
    (e) => isLightningError(e, 'DISK_FULL'),
  );
  faults.writes = false;
  assert.throws(
    () => w.add(payload(3, 3)),
    (e) => isLightningError(e, 'DISK_FULL'),
  );
  await assert.rejects(w.sync(), (e) => isLightningError(e, 'DISK_FULL'));
  assert.ok(w.failed() instanceof LightningError);
  w.close();
});

test('a failed sync disables the writer', async () => {
  const fs = newFs();
  const faults = { writes: false, syncs: false };
  const w = RecordWriter.create(flakyHandle(fs.open(PATH, 'truncate'), faults), NUMBER);
  w.add(payload(3, 1));
  faults.syncs = true;
  await assert.rejects(w.sync(), (e) => isLightningError(e, 'IO_ERROR'));
  faults.syncs = false;
  assert.throws(
    () => w.add(payload(1, 1)),
    (e) => isLightningError(e, 'IO_ERROR'),
  );
  await assert.rejects(w.sync(), (e) => isLightningError(e, 'IO_ERROR'));
  w.close();
});

test('after a crash, a synced prefix is always read back and the rest is a torn tail', async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rng = new Random(seed);
    const fs = newFs();
    const file = fs.open(PATH, 'create-excl');
    const w = RecordWriter.create(file, NUMBER);
    await w.sync();
    await fs.syncDir(DIR);
    const payloads: Buffer[] = [];
    let synced = 0;
    const n = 1 + rng.nextInt(12);
    for (let i = 0; i < n; i++) {
      payloads.push(payload(rng.nextInt(300), seed * 100 + i));
      w.add(payloads[i] ?? Buffer.alloc(0));
      if (rng.nextInt(3) === 0) {
        await w.sync();
        synced = i + 1;
      }
    }
    const after = fs.crashClone({ rng, tearLastWrite: true, keepUnsyncedProbability: 0.2 });
    const { records } = readLog(after);
    assert.ok(records.length >= synced, `seed ${seed}: synced records survive`);
    assert.deepEqual(records, payloads.slice(0, records.length), `seed ${seed}`);
  }
});

test('the worked example of docs/formats/wal.md (version 1)', () => {
  const fs = newFs();
  writeLog(fs, [Buffer.from('hi'), Buffer.alloc(0)], PATH, NUMBER, LOG_FORMAT_VERSION);
  const bytes = fs.readFileRaw(PATH);
  assert.equal(bytes.length, 49);
  assert.equal(
    bytes.toString('hex', 4, 29),
    '1400000001' + '4c544e4757414c00' + '01000000' + '0700000000000000',
  );
  assert.equal(bytes.toString('hex', 33, 40), '02000000' + '02' + '6869');
  assert.equal(bytes.toString('hex', 44, 49), '00000000' + '02');

  const variant = (edit: (f: MemFs) => void): MemFs => {
    const f = newFs();
    f.writeFileRaw(PATH, bytes);
    edit(f);
    return f;
  };
  const cut45 = readLog(variant((f) => f.writeFileRaw(PATH, bytes.subarray(0, 45))));
  assert.deepEqual(cut45.records, [Buffer.from('hi')]);
  assert.equal(cut45.reader.tornTailOffset, 40);
  for (const [cut, n] of [
    [29, 0],
    [40, 1],
  ] as const) {
    const r = readLog(variant((f) => f.writeFileRaw(PATH, bytes.subarray(0, cut))));
    assert.equal(r.records.length, n);
    assert.equal(r.reader.tornTailOffset, undefined);
  }
  const flipped = variant((f) => f.flipByte(PATH, 38, 0x01));
  assert.throws(
    () => readLog(flipped),
    (e) => isCorruption(e) && /in \/db\/000007\.log at offset 29$/.test((e as Error).message),
  );
  const skipped = readLog(flipped, { skipCorrupt: true });
  assert.deepEqual(skipped.records, [Buffer.alloc(0)]);
  assert.equal(skipped.reader.skippedBytes, 11);
  assert.equal(skipped.reader.skippedRecords, 1);
  const last = readLog(variant((f) => f.flipByte(PATH, 45, 0x01)));
  assert.deepEqual(last.records, [Buffer.from('hi')]);
  assert.equal(last.reader.tornTailOffset, 40);
});
