/**
 * WAL format version 2: sync marks and preallocation (docs/formats/wal.md, "Sync marks").
 *
 * The writer begins the first write after each completed sync with a SYNC_MARK holding the length
 * that sync made durable. The reader calls a bad record followed by valid ones CORRUPTION only when
 * a later mark proves the bad bytes had been synced; otherwise it is what a power cut leaves when
 * pages are written back out of order (a torn tail), and the records after it are dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { isLightningError } from '../../src/base/errors.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import {
  encodeRecord,
  encodeRecordInto,
  encodeSyncMarkInto,
  FILE_HEADER_RECORD_BYTES,
  LOG_FORMAT_VERSION,
  RECORD_HEADER_BYTES,
  RECORD_TYPE_DATA,
  RECORD_TYPE_SYNC_MARK,
  SYNC_MARK_RECORD_BYTES,
} from '../../src/wal/format.js';
import { RecordReader, type RecordReaderOptions } from '../../src/wal/record-reader.js';
import { PREALLOCATE_BYTES, RecordWriter } from '../../src/wal/record-writer.js';
import { testSeed } from '../harness/seed.js';
import { actualRead, logRecords, referenceRead } from '../harness/log-reader-reference.js';

const DIR = '/db';
const PATH = `${DIR}/000007.log`;
const NUMBER = 7;

function newFs(): MemFs {
  const fs = new MemFs();
  fs.mkdir(DIR);
  return fs;
}

function payload(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return b;
}

function readLog(fs: MemFs, options: RecordReaderOptions = {}): { records: Buffer[]; reader: RecordReader } {
  const file = fs.open(PATH, 'r');
  try {
    const reader = new RecordReader(file, PATH, options);
    const records: Buffer[] = [];
    for (let r = reader.next(); r !== undefined; r = reader.next()) records.push(r);
    return { records, reader };
  } finally {
    file.close();
  }
}

const isCorruption = (e: unknown): boolean => isLightningError(e, 'CORRUPTION');

/**
 * A WAL written the way the database writes one: header synced at creation, then records, with a
 * sync (and so a mark in the next write) after the ones `syncAfter` picks.
 */
async function syncedLog(payloads: Buffer[], syncAfter: (i: number) => boolean): Promise<MemFs> {
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const w = RecordWriter.create(file, NUMBER);
  await w.sync();
  for (let i = 0; i < payloads.length; i++) {
    w.add(payloads[i] as Buffer);
    if (syncAfter(i)) await w.sync();
  }
  file.close();
  return fs;
}

test('the writer begins the first write after each completed sync with a mark of the synced length', async () => {
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const w = RecordWriter.create(file, NUMBER);
  assert.equal(w.markBytesDue(), 0, 'nothing synced yet');
  w.add(payload(10, 1));
  assert.equal(w.markBytesDue(), 0);
  const synced = w.sizeBytes();
  const pending = w.sync();
  w.add(payload(20, 2)); // written while the sync runs: no mark yet
  await pending;
  assert.equal(w.markBytesDue(), SYNC_MARK_RECORD_BYTES);
  w.addMany([payload(3, 3), payload(4, 4)]); // the mark goes first in the same write
  assert.equal(w.markBytesDue(), 0, 'one mark per completed sync');
  w.add(payload(5, 5));
  await w.sync();
  // A caller framing its own records (group commit) reserves the mark and writes it first.
  const out = Buffer.alloc(SYNC_MARK_RECORD_BYTES + RECORD_HEADER_BYTES + 6);
  assert.equal(encodeRecordInto(out, w.encodeMarkInto(out, 0), payload(6, 6)), out.length);
  w.addEncoded(out);
  // A caller that frames no mark gets one written ahead of its bytes.
  await w.sync();
  w.addEncoded(encodeRecord(payload(7, 7)));
  file.close();

  const spans = logRecords(fs.readFileRaw(PATH));
  const types = spans.map((s) => s.type);
  assert.deepEqual(types, [1, 2, 2, 3, 2, 2, 2, 3, 2, 3, 2]);
  const marks = spans.filter((s) => s.type === RECORD_TYPE_SYNC_MARK);
  assert.equal(marks[0]?.durable, synced);
  for (const m of marks) assert.ok(m.durable <= m.start, 'a mark never claims bytes after itself');
  assert.deepEqual(readLog(fs).records, [1, 2, 3, 4, 5, 6, 7].map((i) => payload(i === 1 ? 10 : i === 2 ? 20 : i, i)));
});

test('a failed sync advances nothing; a MANIFEST and a version 1 WAL never get marks', async () => {
  const fs = newFs();
  let failSync = false;
  const file = fs.open(PATH, 'create-excl');
  const flaky: FileHandle = {
    path: file.path,
    read: (b, o, l, p) => file.read(b, o, l, p),
    write: (b, o, l, p) => file.write(b, o, l, p),
    sync: () => (failSync ? Promise.reject(Object.assign(new Error('eio'), { code: 'EIO' })) : file.sync()),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
  const w = RecordWriter.create(flaky, NUMBER);
  w.add(payload(3, 1));
  failSync = true;
  await assert.rejects(w.sync(), (e) => isLightningError(e, 'IO_ERROR'));
  assert.equal(w.markBytesDue(), 0);
  w.close();

  for (const [kind, version] of [['manifest', LOG_FORMAT_VERSION], ['wal', LOG_FORMAT_VERSION]] as const) {
    const f = newFs();
    const h = f.open(PATH, 'create-excl');
    const lw = RecordWriter.create(h, NUMBER, kind, version);
    lw.add(payload(3, 1));
    await lw.sync(false, true);
    lw.add(payload(3, 2));
    assert.equal(lw.markBytesDue(), 0, kind);
    h.close();
    assert.equal(f.stat(PATH).size, FILE_HEADER_RECORD_BYTES + 2 * (RECORD_HEADER_BYTES + 3), `${kind} v${version}: no mark, no zeros`);
  }
});

test('damage before a later mark\'s durable length is CORRUPTION; after it, a torn tail that drops what follows', async () => {
  const payloads = [5, 0, 40, 12, 300, 7, 90, 1].map((n, i) => payload(n, i));
  const fs = await syncedLog(payloads, (i) => i === 2 || i === 5);
  const bytes = fs.readFileRaw(PATH);
  const spans = logRecords(bytes);
  const dataStarts = spans.filter((s) => s.type === RECORD_TYPE_DATA).map((s) => s.start);
  assert.equal(dataStarts.length, payloads.length);
  let corruptions = 0;
  let torn = 0;
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0xff, 0x01, 0x80]) {
      const image = newFs();
      image.writeFileRaw(PATH, bytes);
      image.flipByte(PATH, i, mask);
      const hit = spans.find((s) => s.start <= i && i < s.end);
      assert.ok(hit !== undefined);
      const proven = spans.some((s) => s.start > hit.start && s.type === RECORD_TYPE_SYNC_MARK && s.durable > hit.start);
      const before = dataStarts.filter((d) => d < hit.start).length;
      const where = `byte ${i} mask ${mask}`;
      if (proven) {
        assert.throws(() => readLog(image), (e) => isCorruption(e) && new RegExp(`at offset ${hit.start}$`).test((e as Error).message), where);
        corruptions++;
      } else {
        const { records, reader } = readLog(image);
        assert.deepEqual(records, payloads.slice(0, before), where);
        assert.equal(reader.tornTailOffset, hit.start, where);
        torn++;
      }
      // The harness reference reader agrees, with and without skipCorrupt.
      const damaged = image.readFileRaw(PATH);
      for (const skip of [false, true]) assert.deepEqual(actualRead(damaged, skip, 64), referenceRead(damaged, skip), `${where} skip ${skip}`);
    }
  }
  assert.ok(corruptions > 0 && torn > 0, `both verdicts occur (${corruptions} / ${torn})`);
});

test('a damaged header followed by records or a mark is CORRUPTION (the header is synced first)', async () => {
  const markOnly = await syncedLog([], () => false);
  const h = markOnly.open(PATH, 'rw');
  const mark = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
  encodeSyncMarkInto(mark, 0, FILE_HEADER_RECORD_BYTES);
  h.write(mark, 0, mark.length, FILE_HEADER_RECORD_BYTES);
  h.close();
  markOnly.flipByte(PATH, 12);
  assert.throws(() => readLog(markOnly), isCorruption, 'a valid mark after a bad header is a valid record');
  const headerOnly = await syncedLog([], () => false);
  headerOnly.flipByte(PATH, 12);
  assert.equal(readLog(headerOnly).reader.tornTailOffset, 0, 'nothing after it: a torn tail');

  const synced = await syncedLog([payload(30, 1), payload(30, 2)], () => false); // header synced: a mark follows
  synced.flipByte(PATH, 12);
  assert.throws(() => readLog(synced), isCorruption);
  const skipped = readLog(synced, { skipCorrupt: true });
  assert.equal(skipped.records.length, 2);
});

test('a mark that claims bytes past its own offset is CORRUPTION (skippable)', async () => {
  const fs = await syncedLog([payload(10, 1)], () => true);
  const bytes = fs.readFileRaw(PATH);
  const bogus = Buffer.alloc(SYNC_MARK_RECORD_BYTES);
  encodeSyncMarkInto(bogus, 0, bytes.length + 1);
  fs.writeFileRaw(PATH, Buffer.concat([bytes, bogus, encodeRecord(payload(4, 2))]));
  assert.throws(() => readLog(fs), (e) => isCorruption(e) && /sync mark claims/.test((e as Error).message));
  assert.deepEqual(readLog(fs, { skipCorrupt: true }).records, [payload(10, 1), payload(4, 2)]);
});

/** Random records, random syncs (some preallocating), then a power cut under `crash`. */
async function crashRun(seed: number, version: number, scramble: boolean): Promise<{ records: Buffer[] | 'corruption'; payloads: Buffer[]; synced: number }> {
  const rng = new Random(seed);
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const w = RecordWriter.create(file, NUMBER, 'wal', version);
  await w.sync();
  await fs.syncDir(DIR);
  const payloads: Buffer[] = [];
  let synced = 0;
  const n = 1 + rng.nextInt(30);
  for (let i = 0; i < n; i++) {
    const p = payload(rng.nextInt(rng.nextInt(4) === 0 ? 9000 : 400), seed * 100 + i);
    payloads.push(p);
    w.add(p);
    if (rng.nextInt(4) === 0) {
      await w.sync(false, rng.nextInt(2) === 0);
      synced = i + 1;
    }
  }
  const after = fs.crashClone({ rng, scrambleUnsyncedPages: scramble, tearLastWrite: !scramble, keepUnsyncedProbability: 0.1 });
  try {
    return { records: readLog(after).records, payloads, synced };
  } catch (e) {
    if (!isCorruption(e)) throw e;
    return { records: 'corruption', payloads, synced };
  }
}

test('power cut with pages written back in any order: the synced records and a prefix, never CORRUPTION', async () => {
  const base = testSeed();
  for (let s = 0; s < 400; s++) {
    const seed = base + s;
    for (const scramble of [true, false]) {
      const { records, payloads, synced } = await crashRun(seed, 2, scramble);
      assert.notEqual(records, 'corruption', `seed ${seed} scramble ${scramble}: an ordinary power cut is not corruption`);
      if (records === 'corruption') continue;
      assert.ok(records.length >= synced, `seed ${seed}: ${records.length} records, ${synced} were synced`);
      assert.deepEqual(records, payloads.slice(0, records.length), `seed ${seed}: a prefix`);
    }
  }
});

test('why version 2 exists: the version 1 rule calls some of those power cuts CORRUPTION', async () => {
  const base = testSeed();
  let corrupt = 0;
  for (let s = 0; s < 400 && corrupt === 0; s++) {
    if ((await crashRun(base + s, LOG_FORMAT_VERSION, true)).records === 'corruption') corrupt++;
  }
  assert.ok(corrupt > 0, `seed ${base}: some scrambled power cut reads as mid-file damage under version 1`);
});

test('a durable sync preallocates zeros ahead; they read as the end of the log, and trimTail cuts them', async () => {
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const w = RecordWriter.create(file, NUMBER);
  w.add(payload(100, 1));
  await w.sync(false, true);
  const logical = w.sizeBytes();
  assert.equal(fs.stat(PATH).size, logical + PREALLOCATE_BYTES, 'zeros written past the end');
  for (let i = 0; i < 50; i++) {
    w.add(payload(200, i)); // overwrites the zeros
    await w.sync(false, true);
  }
  assert.ok(fs.stat(PATH).size - w.sizeBytes() >= PREALLOCATE_BYTES / 2, 'topped up below half');
  const before = readLog(fs);
  assert.equal(before.records.length, 51);
  assert.equal(before.reader.tornTailOffset, w.sizeBytes(), 'the zeros are a torn tail at the end of the records');
  w.trimTail();
  assert.equal(fs.stat(PATH).size, w.sizeBytes());
  const after = readLog(fs);
  assert.equal(after.records.length, 51);
  assert.equal(after.reader.tornTailOffset, undefined);
  w.trimTail(); // nothing left to cut
  file.close();
});

test('skipCorrupt over many gaps, each followed by a mark that proves it: bytes read stay linear', async () => {
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const w = RecordWriter.create(file, NUMBER);
  await w.sync();
  const starts: number[] = [];
  for (let i = 0; i < 400; i++) {
    starts.push(w.sizeBytes());
    w.add(payload(200, i));
    await w.sync();
  }
  w.add(payload(1, 1)); // carries the last mark
  file.close();
  // Damage every other record: each one is proven synced by the mark after the next record.
  // Every add here begins with the mark of the sync before it.
  for (let i = 0; i < starts.length; i += 2) fs.flipByte(PATH, (starts[i] as number) + SYNC_MARK_RECORD_BYTES + RECORD_HEADER_BYTES + 20);
  const size = fs.stat(PATH).size;
  const h = fs.open(PATH, 'r');
  let bytesRead = 0;
  const counting: FileHandle = {
    path: h.path,
    read: (b, o, l, p) => {
      const n = h.read(b, o, l, p);
      bytesRead += n;
      return n;
    },
    write: () => assert.fail('no writes'),
    sync: () => Promise.reject(new Error('no syncs')),
    size: () => h.size(),
    truncate: () => assert.fail('no truncate'),
    close: () => h.close(),
  };
  const reader = new RecordReader(counting, PATH, { skipCorrupt: true, windowBytes: 4096 });
  let n = 0;
  while (reader.next() !== undefined) n++;
  h.close();
  assert.equal(n, 201);
  assert.equal(reader.skippedRecords, 200);
  assert.ok(bytesRead < 8 * size, `read ${bytesRead} bytes of a ${size}-byte log`);
});

test('a sync that completes after a concurrent one failed does not count as durable', async () => {
  const fs = newFs();
  const file = fs.open(PATH, 'create-excl');
  const settle: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const controlled: FileHandle = {
    path: file.path,
    read: (b, o, l, p) => file.read(b, o, l, p),
    write: (b, o, l, p) => file.write(b, o, l, p),
    sync: () => new Promise<void>((resolve, reject) => settle.push({ resolve, reject })),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
  const w = RecordWriter.create(controlled, NUMBER);
  w.add(payload(10, 1));
  let backgroundError: unknown;
  assert.ok(w.syncInBackground((e) => (backgroundError = e)));
  w.add(payload(10, 2));
  const foreground = w.sync();
  assert.equal(settle.length, 2);
  settle[0]?.reject(Object.assign(new Error('eio'), { code: 'EIO' })); // the background sync fails
  await w.settled();
  assert.ok(isLightningError(backgroundError, 'IO_ERROR'));
  settle[1]?.resolve(); // the kernel may report the later fsync clean after dropping dirty pages
  await assert.rejects(foreground, (e) => isLightningError(e, 'IO_ERROR'), 'the durable write must not be acknowledged');
  assert.equal(w.markBytesDue(), 0);
  w.close();
});
