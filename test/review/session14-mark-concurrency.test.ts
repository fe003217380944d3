/**
 * Review (session 14) of sync marks under concurrent syncs (commit e55b52d), at the RecordWriter
 * level: background syncs (syncInBackground) and foreground durable syncs (sync(inline, true),
 * which preallocates) overlap and complete in any order, while writes continue and the writer is
 * trimmed. Invariant checked at every write that carries a SYNC_MARK: the mark's durable length D
 * never exceeds what is durable on "disk" at that moment (MemFs durable state: bytes [0, D) of the
 * crash image equal the written bytes), and marks never decrease. Passes (a pin).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { RECORD_HEADER_BYTES, RECORD_TYPE_SYNC_MARK } from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { testSeed } from '../harness/seed.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';
const PATH = `${DIR}/000009.log`;

test('marks never claim more than is durable, with background and foreground syncs completing in any order', async () => {
  const seed = testSeed();
  console.log(`seed ${seed} (replay: SEED=${seed})`);
  const rng = new Random(seed);
  for (let round = 0; round < 60; round++) {
    const mem = new MemFs();
    mem.mkdir(DIR);
    /** Syncs whose completion the test releases (the inner MemFs sync has already captured its state). */
    const held: { release: () => void }[] = [];
    let lastMark = -1;
    let marks = 0;
    const fs = wrapOpen(mem, (_path, h): FileHandle => ({
      path: h.path,
      read: (b, o, l, p) => h.read(b, o, l, p),
      write: (b, o, l, p) => {
        const bb = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        if (l >= RECORD_HEADER_BYTES + 8 && bb[o + 8] === RECORD_TYPE_SYNC_MARK && bb.readUInt32LE(o + 4) === 8) {
          const d = bb.readUInt32LE(o + 9) + bb.readUInt32LE(o + 13) * 2 ** 32;
          const durable = mem.crashClone().readFileRaw(PATH);
          const current = mem.readFileRaw(PATH);
          assert.ok(d <= durable.length, `round ${round}: mark claims ${d} but only ${durable.length} bytes are durable`);
          assert.ok(durable.subarray(0, d).equals(current.subarray(0, d)), `round ${round}: mark claims ${d} bytes not all durable`);
          assert.ok(d >= lastMark, `round ${round}: marks decrease ${lastMark} -> ${d}`);
          lastMark = d;
          marks++;
        }
        h.write(b, o, l, p);
      },
      sync: async (inline) => {
        const inner = h.sync(inline); // captures the state now, as fdatasync covers what was written before it
        await new Promise<void>((release) => held.push({ release }));
        await inner;
      },
      size: () => h.size(),
      truncate: (n) => h.truncate(n),
      close: () => h.close(),
    }));
    const file = fs.open(PATH, 'create-excl');
    await mem.syncDir(DIR);
    const w = RecordWriter.create(file, 9);
    const first = w.sync();
    held.shift()?.release();
    await first;
    const pending: Promise<unknown>[] = [];
    let written = 0;
    for (let step = 0; step < 120; step++) {
      const r = rng.nextInt(10);
      if (r < 4) {
        const n = rng.nextInt(3) === 0 ? 40_000 + rng.nextInt(60_000) : 1 + rng.nextInt(300);
        w.addMany([Buffer.alloc(n, 1 + (written++ % 200))]);
      } else if (r < 5) {
        w.syncInBackground(() => assert.fail('no sync fails here'));
      } else if (r < 7) {
        pending.push(w.sync(rng.nextInt(2) === 0, rng.nextInt(3) !== 0));
      } else if (held.length > 0) {
        // Complete a random in-flight sync (any order), then let its continuation run.
        const i = rng.nextInt(held.length);
        const [s] = held.splice(i, 1);
        s?.release();
        for (let k = 0; k < 5; k++) await Promise.resolve();
      }
    }
    while (held.length > 0) {
      held.splice(0).forEach((s) => s.release());
      for (let k = 0; k < 5; k++) await Promise.resolve();
    }
    await Promise.all(pending);
    await w.settled();
    w.trimTail();
    const last = w.sync();
    while (held.length > 0) held.splice(0).forEach((s) => s.release());
    await last;
    file.close();
    // The log reads back whole, in order, with no torn tail.
    const f = mem.open(PATH, 'r');
    const reader = new RecordReader(f, PATH);
    let records = 0;
    while (reader.next() !== undefined) records++;
    f.close();
    assert.equal(records, written, `round ${round}: records read back`);
    assert.equal(reader.tornTailOffset, undefined);
    assert.ok(marks > 0 || written === 0);
  }
});
