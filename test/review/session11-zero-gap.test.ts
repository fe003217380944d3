/**
 * Review of WAL zero-fill (commit 1a5f4c2): what a power cut leaves when writes not yet synced run
 * past the end of the zeros written ahead: non-durable writes, or a durable group commit bigger
 * than 64 KiB (which does not refill) cut during its fdatasync.
 *
 * Before zero-fill, every write after the last sync was an append past the durable length, so a
 * crash could only keep a prefix of them (MemFs `tearLastWrite`): the log ends in a torn tail, and
 * open() replays the durable prefix. With zero-fill the writes after a small durable write first
 * OVERWRITE durable zeros (a crash reverts them to zeros) and, once past the zeros, APPEND (a crash
 * may keep a prefix of those). The crash image is then: records, a run of zeros, and intact records
 * after it. The reader calls that mid-file corruption (a valid record follows the bad one), so a
 * strict open() refuses the database after an ordinary power cut, although nothing durable is
 * damaged. The same holds on real filesystems: overwritten pages and appended pages are written
 * back independently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';

const ZERO_FILL_AHEAD_BYTES = 1024 * 1024; // what zero-fill wrote ahead
import { testSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';

/** `mem` whose WAL fsyncs first take three torn power-cut images (into `images`) while `want()`. */
function imagingWalSyncs(mem: MemFs, rng: Random, images: MemFs[], want: () => boolean): MemFs {
  return wrapOpen(mem, (path, handle) => {
    if (!path.endsWith('.log')) return handle;
    const sync = handle.sync.bind(handle);
    handle.sync = () => {
      if (want()) for (let i = 0; i < 3; i++) images.push(mem.crashClone({ rng, tearLastWrite: true }));
      return sync();
    };
    return handle;
  });
}

/**
 * Durable put (zero-fills 1 MiB ahead), then ~1.6 MiB of non-durable puts in groups of 100 (one
 * group commit each, ~53 KiB). Power-cut images: at the end, and at the start of every WAL fsync
 * issued meanwhile (none at commit 1a5f4c2; a background sync, if the engine adds one, starts
 * right after the group that crossed the end of the zeros).
 */
async function nonDurableImages(seed: number): Promise<{ images: MemFs[]; keys: string[] }> {
  const rng = new Random(seed);
  const mem = new MemFs();
  const images: MemFs[] = [];
  let armed = false;
  const fs = imagingWalSyncs(mem, rng, images, () => armed && images.length < 6);

  const db = await open(DIR, { fs }); // memtable 16 MiB: no rotation below
  await db.put('durable', 'yes', { sync: true }); // small durable group: zero-fills ahead
  armed = true;
  const value = 'v'.repeat(500);
  const keys: string[] = [];
  for (let g = 0; g < 30; g++) {
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const k = `k${String(g * 100 + i).padStart(5, '0')}`;
      keys.push(k);
      puts.push(db.put(k, value, { sync: false }));
    }
    await Promise.all(puts);
  }
  armed = false;
  for (let i = 0; i < 3; i++) images.push(mem.crashClone({ rng, tearLastWrite: true }));
  await db.close();
  return { images, keys };
}

test('db level: durable put, >1 MiB of non-durable puts, power cut: strict open() must succeed', async () => {
  const seed = testSeed();
  console.log(`session11-zero-gap db seed ${seed}`);
  const { images } = await nonDurableImages(seed);
  const failures: string[] = [];
  for (const [i, image] of images.entries()) {
    try {
      const again = await open(DIR, { fs: image });
      try {
        assert.equal(again.getSync('durable')?.toString(), 'yes', 'the durable put survives');
      } finally {
        await again.close();
      }
    } catch (e) {
      failures.push(`image ${i} of ${images.length}: ${String(e)}`);
    }
  }
  assert.deepEqual(failures, [], `seed ${seed}: strict reopen after a power cut failed`);
});

test('control: the same non-durable writes without zero-fill read as a torn tail after any crash', async () => {
  const seed = testSeed();
  console.log(`session11-zero-gap control seed ${seed}`);
  const rng = new Random(seed);
  const fs = new MemFs();
  fs.mkdir(DIR);
  const path = `${DIR}/000007.log`;
  const w = RecordWriter.create(fs.open(path, 'truncate'), 7, 'wal'); // no zeroFillAhead
  await w.sync();
  await fs.syncDir(DIR);
  w.add(Buffer.alloc(100, 1));
  await w.sync();
  const payload = Buffer.alloc(1000, 7);
  while (w.sizeBytes() < ZERO_FILL_AHEAD_BYTES * 1.5) w.add(payload);
  for (let trial = 0; trial < 5; trial++) {
    const crashed = fs.crashClone({ rng, tearLastWrite: true });
    const file = crashed.open(path, 'r');
    try {
      const reader = new RecordReader(file, path);
      let records = 0;
      for (let p = reader.next(); p !== undefined; p = reader.next()) records++;
      assert.ok(records >= 1, `seed ${seed}: the durable record survives`);
    } finally {
      file.close();
    }
  }
  w.close();
});

test("db level, walRecovery 'skip-corrupt': the recovered state must be a prefix of the write order", async () => {
  const seed = testSeed();
  console.log(`session11-zero-gap skip-corrupt seed ${seed}`);
  const { images, keys } = await nonDurableImages(seed);
  const failures: string[] = [];
  for (const [i, image] of images.entries()) {
    const again = await open(DIR, { fs: image, walRecovery: 'skip-corrupt' });
    try {
      assert.equal(again.getSync('durable')?.toString(), 'yes');
      const present = keys.map((k) => again.getSync(k) !== undefined);
      const firstMissing = present.indexOf(false);
      const laterPresent = firstMissing < 0 ? -1 : present.indexOf(true, firstMissing);
      if (laterPresent >= 0) {
        failures.push(
          `image ${i}: ${keys[firstMissing]} was lost but the later ${keys[laterPresent]} survived ` +
            `(${present.filter((x) => x).length} of ${keys.length} non-durable puts recovered)`,
        );
      }
    } finally {
      await again.close();
    }
  }
  assert.deepEqual(failures, [], `seed ${seed}: recovered state is not a prefix`);
});

/**
 * Durable writes only: a big group commit (many concurrent durable puts, > 64 KiB, so no refill)
 * runs past the zeros; a power cut during its fdatasync (nothing of it acknowledged yet) leaves
 * zeros where its first records were and intact records after the old end of the zeros.
 */
test('db level, durable writes only: a power cut during the fsync of a big group commit must not make the database unopenable', async () => {
  const seed = testSeed();
  console.log(`session11-zero-gap big-group seed ${seed}`);
  const rng = new Random(seed);
  const mem = new MemFs();
  const images: MemFs[] = [];
  let armed = false;
  // Takes the crash image at the start of a WAL fsync: the group's write is done, its sync not.
  const fs = imagingWalSyncs(mem, rng, images, () => armed && images.length === 0);

  const db = await open(DIR, { fs });
  await db.put('durable', 'yes', { sync: true }); // small durable group: 1 MiB of zeros ahead
  armed = true;
  const value = 'w'.repeat(4000);
  const puts: Promise<void>[] = [];
  for (let i = 0; i < 400; i++) puts.push(db.put(`g${String(i).padStart(4, '0')}`, value, { sync: true }));
  await Promise.all(puts); // one group of ~1.6 MiB: 400 records, one write, one fsync
  await db.close();
  assert.equal(images.length, 3, 'the crash images were taken');
  const failures: string[] = [];
  for (const image of images) {
    try {
      const again = await open(DIR, { fs: image });
      try {
        assert.equal(again.getSync('durable')?.toString(), 'yes');
      } finally {
        await again.close();
      }
    } catch (e) {
      failures.push(String(e));
    }
  }
  assert.deepEqual(failures, [], `seed ${seed}: strict open after a power cut during a durable group's fsync failed`);
});
