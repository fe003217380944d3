/**
 * Zero-fill ahead (src/wal/record-writer.ts): small durable writes overwrite zeros the log wrote
 * ahead of itself, so their fdatasync commits no size change. What must hold: the zeros read as the
 * end of the log, never as data or corruption; only logs with small durable writes get them;
 * seal() and close() cut them off; a failed zero-fill (full disk) costs nothing but the speed-up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open } from '../../src/index.js';
import { FaultFs, type FaultInjector } from '../../src/env/fault-fs.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { FILE_HEADER_RECORD_BYTES } from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import {
  RecordWriter,
  ZERO_FILL_AHEAD_BYTES,
  ZERO_FILL_SYNC_BYTES_MAX,
} from '../../src/wal/record-writer.js';
import { testSeed } from '../harness/seed.js';

const DIR = '/db';
const PATH = `${DIR}/000007.log`;

function newFs(): MemFs {
  const fs = new MemFs();
  fs.mkdir(DIR);
  return fs;
}

function readAll(fs: MemFs, path = PATH): { payloads: Buffer[]; torn: number | undefined } {
  const file = fs.open(path, 'r');
  try {
    const reader = new RecordReader(file, path);
    const payloads: Buffer[] = [];
    for (let p = reader.next(); p !== undefined; p = reader.next()) payloads.push(p);
    return { payloads, torn: reader.tornTailOffset };
  } finally {
    file.close();
  }
}

function payload(i: number, bytes = 100): Buffer {
  return Buffer.alloc(bytes, i % 251);
}

test('small durable writes zero-fill ahead; the zeros read as the end of the log', async () => {
  const fs = newFs();
  const file = fs.open(PATH, 'truncate');
  const w = RecordWriter.create(file, 7, 'wal', { zeroFillAhead: true });
  await w.sync(); // the header's sync at creation does not zero-fill
  assert.equal(file.size(), FILE_HEADER_RECORD_BYTES);
  const n = 20_000; // ~2.2 MiB of records: refills more than once
  for (let i = 0; i < n; i++) {
    w.add(payload(i));
    await w.sync();
    const size = file.size();
    assert.ok(size > w.sizeBytes(), `zeros ahead after write ${i}`);
    assert.ok(size <= w.sizeBytes() + ZERO_FILL_AHEAD_BYTES, `at most one fill ahead (write ${i})`);
  }
  const bytes = fs.readFileRaw(PATH);
  assert.ok(bytes.subarray(w.sizeBytes()).every((b) => b === 0), 'only zeros past the records');
  const { payloads, torn } = readAll(fs);
  assert.equal(payloads.length, n);
  assert.ok(payloads.every((p, i) => p.equals(payload(i))), 'every record back, in order');
  assert.equal(torn, w.sizeBytes(), 'the zero tail ends the log where the records end');
  w.close();
  assert.equal(fs.readFileRaw(PATH).length, w.sizeBytes(), 'close() cuts the zeros off');
});

test('no zero-fill without the option, for non-durable logs, or for big syncs', async () => {
  const fs = newFs();
  const plain = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal');
  plain.add(payload(1));
  await plain.sync();
  assert.equal(fs.readFileRaw(PATH).length, plain.sizeBytes(), 'no option: no zeros');
  plain.close();

  const path2 = `${DIR}/000008.log`;
  const nonDurable = RecordWriter.create(fs.open(path2, 'truncate'), 8, 'wal', { zeroFillAhead: true });
  for (let i = 0; i < 100; i++) nonDurable.add(payload(i));
  assert.equal(fs.readFileRaw(path2).length, nonDurable.sizeBytes(), 'writes alone never zero-fill');
  nonDurable.close();

  const path3 = `${DIR}/000009.log`;
  const big = RecordWriter.create(fs.open(path3, 'truncate'), 9, 'wal', { zeroFillAhead: true });
  big.add(payload(0, ZERO_FILL_SYNC_BYTES_MAX + 1));
  await big.sync();
  assert.equal(fs.readFileRaw(path3).length, big.sizeBytes(), 'a sync of more than 64 KiB does not');
  big.add(payload(1));
  await big.sync();
  assert.ok(fs.readFileRaw(path3).length > big.sizeBytes(), 'the next small one does');
  big.close();
});

test('seal() cuts the zeros off, syncs, and nothing zero-fills after it', async () => {
  const fs = newFs();
  const w = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal', { zeroFillAhead: true });
  await fs.syncDir(DIR); // the file's name survives a power cut
  for (let i = 0; i < 10; i++) {
    w.add(payload(i));
    await w.sync();
  }
  assert.ok(fs.readFileRaw(PATH).length > w.sizeBytes());
  await w.seal();
  assert.equal(fs.readFileRaw(PATH).length, w.sizeBytes(), 'sealed: the file ends at the records');
  // A write racing the rotation (after seal) must not zero-fill the sealed log again.
  w.add(payload(10));
  await w.sync();
  assert.equal(fs.readFileRaw(PATH).length, w.sizeBytes(), 'no zero-fill after seal');
  const crashed = fs.crashClone();
  const { payloads, torn } = readAll(crashed);
  assert.equal(payloads.length, 11, 'sealed and synced: every record survives a power cut');
  assert.equal(torn, undefined, 'a sealed log ends cleanly');
  w.close();
});

test('a zero-fill that fails (ENOSPC, short write) only turns zero-filling off', async () => {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const mem = newFs();
    let writes = 0;
    let failAt = -1;
    const injector: FaultInjector = {
      maybeFail: (op) => (op === 'write' && ++writes === failAt ? 'ENOSPC' : null),
    };
    const fs = new FaultFs(mem, injector, { shortWrite: true, rng: new Random(attempt) });
    const w = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal', { zeroFillAhead: true });
    await mem.syncDir(DIR); // the file's name survives a power cut
    // Writes so far: the header. Then record 0 (write 2), and its sync's zero-fill (write 3).
    failAt = 3;
    w.add(payload(0));
    await w.sync();
    assert.equal(fs.injected, 1, 'the zero-fill write failed');
    assert.equal(w.failed(), undefined, 'the writer is still healthy');
    for (let i = 1; i < 5; i++) {
      w.add(payload(i));
      await w.sync();
    }
    const crashed = mem.crashClone();
    assert.equal(readAll(crashed).payloads.length, 5, `every durable record survives (attempt ${attempt})`);
    await w.seal();
    assert.equal(mem.readFileRaw(PATH).length, w.sizeBytes(), 'seal cuts off what the failed fill left');
    w.close();
  }
});

/**
 * A FileSystem whose table-file syncs wait while `held` is set: a flush then stays unfinished, so
 * the rotated WAL stays live next to the new one.
 */
function holdTableSyncs(inner: MemFs): { fs: FileSystem; hold(on: boolean): void } {
  let held = false;
  const waiting: (() => void)[] = [];
  const fs = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'open') return Reflect.get(target, prop, receiver) as unknown;
      return (path: string, mode: OpenMode): FileHandle => {
        const handle = target.open(path, mode);
        if (!path.endsWith('.sst')) return handle;
        const sync = handle.sync.bind(handle);
        handle.sync = async () => {
          if (held) await new Promise<void>((resolve) => waiting.push(resolve));
          return sync();
        };
        return handle;
      };
    },
  });
  return {
    fs,
    hold(on: boolean) {
      held = on;
      if (!on) for (const release of waiting.splice(0)) release();
    },
  };
}

test('a rotated WAL is sealed: durable writes in the next one survive a crash before the flush ends', async () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (let trial = 0; trial < 5; trial++) {
    const mem = new MemFs();
    const gate = holdTableSyncs(mem);
    const db = await open(DIR, { fs: gate.fs, memtableSize: 4096 });
    const acknowledged: string[] = [];
    const put = async (i: number): Promise<void> => {
      const key = `k${trial}-${String(i).padStart(4, '0')}`;
      await db.put(key, `v${i}-${'x'.repeat(20 + rng.nextInt(100))}`, { sync: true });
      acknowledged.push(key);
    };
    const logs = (fs: MemFs): number => fs.readdir(DIR).filter((n) => n.endsWith('.log')).length;
    let image: MemFs;
    try {
      gate.hold(true);
      let i = 0;
      while (logs(mem) < 2) await put(i++); // the last of these rotated; its flush is held
      await put(i++); // a durable write in the new WAL
      image = mem.crashClone();
      assert.equal(logs(image), 2, 'the crash image holds the rotated WAL and the new one');
    } finally {
      gate.hold(false);
      await db.close();
    }
    const again = await open(DIR, { fs: image }).catch((e: unknown) => {
      assert.fail(`seed ${seed}, trial ${trial}: strict reopen failed: ${String(e)}`);
    });
    try {
      for (const k of acknowledged) assert.ok(again.getSync(k) !== undefined, `seed ${seed}: ${k} survives`);
    } finally {
      await again.close();
    }
  }
});
