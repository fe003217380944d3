/**
 * Review of WAL zero-fill (commit 1a5f4c2, since removed): the cost of reading a WAL that ends in
 * zeros. Zero tails still happen without zero-fill (a crash can leave zeros where an append's
 * pages never reached the disk), so both tests stay.
 *
 * A zero tail is a torn tail: the reader scans every later byte offset for a valid record before it
 * decides so (findValidRecord). Over 1 MiB of zeros that is ~1M cheap header checks. But the scan
 * checksums every candidate whose header is plausible, and "plausible" includes "its length fits
 * in the file": with 1 MiB of zeros behind a partly written record, candidates inside that record
 * now fit and each is checksummed over up to ~1 MiB. Without the zeros the same torn record is at
 * the end of the file and such candidates are rejected for running past it.
 *
 * The partly written record followed by zeros is what FaultFs's short write (ENOSPC) leaves inside
 * the zeros; the failed WAL is then closed without truncation (RecordWriter.close skips it after a
 * failure) and the next open replays it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import { FaultFs, type FaultInjector } from '../../src/env/fault-fs.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';

const ZERO_TAIL_BYTES = 1024 * 1024;

const DIR = '/db';

/** Counts the bytes read from .log files opened read-only (what WAL replay reads). */
function countingReads(inner: FileSystem): { fs: FileSystem; bytes(): number } {
  let total = 0;
  const fs = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'open') return Reflect.get(target, prop, receiver) as unknown;
      return (path: string, mode: OpenMode): FileHandle => {
        const handle = target.open(path, mode);
        if (!path.endsWith('.log') || mode !== 'r') return handle;
        const read = handle.read.bind(handle);
        handle.read = (buf, off, len, pos) => {
          const n = read(buf, off, len, pos);
          total += n;
          return n;
        };
        return handle;
      };
    },
  });
  return { fs, bytes: () => total };
}

/** Binary data with a 4-byte stride (e.g. an Int16Array [1, 14, 1, 14, ...]). */
function strided(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i + 3 < bytes; i += 4) {
    b[i] = 1;
    b[i + 2] = 14;
  }
  return b;
}

test('a plain 1 MiB zero tail reads as a torn tail with one pass over the file', async () => {
  const mem = new MemFs();
  mem.mkdir(DIR);
  const path = `${DIR}/000007.log`;
  const handle = mem.open(path, 'truncate');
  const w = RecordWriter.create(handle, 7, 'wal');
  await w.sync();
  w.add(Buffer.alloc(100, 1));
  handle.write(Buffer.alloc(ZERO_TAIL_BYTES), 0, ZERO_TAIL_BYTES, w.sizeBytes());
  await w.sync();
  assert.ok(mem.readFileRaw(path).length >= ZERO_TAIL_BYTES);
  const counted = countingReads(mem);
  const file = counted.fs.open(path, 'r');
  try {
    const reader = new RecordReader(file, path);
    let n = 0;
    for (let p = reader.next(); p !== undefined; p = reader.next()) n++;
    assert.equal(n, 1);
    assert.equal(reader.tornTailOffset, w.sizeBytes());
    assert.ok(counted.bytes() <= 2 * reader.fileSize, `read ${counted.bytes()} bytes of a ${reader.fileSize}-byte log`);
  } finally {
    file.close();
  }
  w.close();
});

test('reopen after a short WAL write inside the zeros (DISK_FULL) reads the log a bounded number of times', async () => {
  const mem = new MemFs();
  let failNext = false;
  const injector: FaultInjector = {
    maybeFail: (op, path) => {
      if (failNext && op === 'write' && path.endsWith('.log')) {
        failNext = false;
        return 'ENOSPC';
      }
      return null;
    },
  };
  const db = await open(DIR, { fs: new FaultFs(mem, injector, { shortWrite: true }) }); // short write: half
  await db.put('a', '1', { sync: true });
  failNext = true;
  await assert.rejects(db.put('b', strided(40 * 1024), { sync: true }), (e) => isLightningError(e, 'DISK_FULL'));
  await db.close();
  const counted = countingReads(mem);
  const t0 = Date.now();
  const again = await open(DIR, { fs: counted.fs });
  const ms = Date.now() - t0;
  try {
    assert.equal(again.getSync('a')?.toString(), '1');
    assert.equal(again.getSync('b'), undefined);
  } finally {
    await again.close();
  }
  const logBytes = ZERO_TAIL_BYTES + 64 * 1024;
  assert.ok(
    counted.bytes() <= 16 * logBytes,
    `WAL replay read ${(counted.bytes() / 2 ** 20).toFixed(0)} MiB (${ms} ms) to find the torn tail of a ~1 MiB log`,
  );
});
