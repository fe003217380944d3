/**
 * Review (session 14) of WAL format 2 (commit e55b52d) together with open.ts's cross-log rule.
 *
 * open.ts: "A log torn before its first record lost no write (e.g. a crash while creating it)", so a
 * torn tail only counts (tornIn) when the log returned records (recordsHere > 0). Under the version
 * 1 rule that was sound: a bad record followed by valid ones was CORRUPTION, so "torn before the
 * first record" meant nothing valid followed. Under version 2 a bad record followed by valid
 * records is a torn tail unless a LATER mark proves it durable. In a WAL that took only non-durable
 * writes before it was rotated away from (its last fsync is the rotation's, which no mark follows),
 * damage to its first record makes the reader drop EVERY record of that WAL as "torn before the
 * first record": recordsHere = 0, tornIn stays null, the later WAL replays, and a STRICT open
 * succeeds with the older writes gone and the newer ones present (the prefix property broken,
 * silently). Version 1 reported CORRUPTION here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FILE_HEADER_RECORD_BYTES, SYNC_MARK_RECORD_BYTES } from '../../src/wal/format.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';

function logs(mem: MemFs): string[] {
  return mem.listAll().filter((p) => p.endsWith('.log'));
}

/** A MemFs whose table syncs can be held, so a flush stays unfinished and its WAL stays live. */
function holdingFs(): { mem: MemFs; fs: MemFs; hold(): void; release(): void } {
  const mem = new MemFs();
  let holding = false;
  const held: (() => void)[] = [];
  const fs = wrapOpen(mem, (path, h): FileHandle => ({
    path: h.path,
    read: (b, o, l, p) => h.read(b, o, l, p),
    write: (b, o, l, p) => h.write(b, o, l, p),
    sync: async (inline) => {
      if (path.endsWith('.sst') && holding) await new Promise<void>((r) => held.push(r));
      await h.sync(inline);
    },
    size: () => h.size(),
    truncate: (n) => h.truncate(n),
    close: () => h.close(),
  }));
  return {
    mem,
    fs,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const r of held.splice(0)) r();
    },
  };
}

for (const where of ['the first sync mark', 'the first data record'] as const) {
  test(`one flipped byte in ${where} of an older, fully synced WAL: a strict open must not drop that WAL and replay the next (FAILS)`, async () => {
    const h = holdingFs();
    const db = await open(DIR, { fs: h.fs, memtableSize: 1024 });
    const value = 'v'.repeat(300);
    const first = logs(h.mem);
    assert.equal(first.length, 1);
    const oldWal = first[0] as string;
    h.hold();
    let n = 0;
    while (logs(h.mem).length === 1 && n < 50) await db.put(`a${n++}`, value, { sync: false }); // non-durable writes, then a rotation
    assert.equal(logs(h.mem).length, 2, 'rotated to a second WAL; the first is still live (its flush is held)');
    await db.put('b', 'newer', { sync: true }); // durable, in the second WAL
    const crashed = h.mem.crashClone();
    h.release();
    await db.close().catch(() => undefined);

    // Media damage (one byte) inside bytes the rotation's fsync made durable.
    const at = where === 'the first sync mark' ? FILE_HEADER_RECORD_BYTES + 12 : FILE_HEADER_RECORD_BYTES + SYNC_MARK_RECORD_BYTES + 12;
    const raw = crashed.readFileRaw(oldWal);
    assert.equal(raw[FILE_HEADER_RECORD_BYTES + 8], 3, 'the first write of the old WAL begins with a sync mark');
    crashed.flipByte(oldWal, at, 0x01);

    let reopened;
    try {
      reopened = await open(DIR, { fs: crashed, walRecovery: 'strict' });
    } catch (e) {
      console.log(`open: ${String(e)}`);
      assert.ok(isLightningError(e, 'CORRUPTION'), `expected CORRUPTION, got ${String(e)}`);
      return; // detected: good
    }
    const a0 = await reopened.get('a0');
    const b = await reopened.get('b');
    await reopened.close();
    assert.fail(
      `strict open succeeded after damage to a synced older WAL: a0..a${n - 1} ${a0 === undefined ? 'LOST' : 'present'}, ` +
        `later durable write b ${b === undefined ? 'lost' : 'present'} (the prefix property is broken without an error)`,
    );
  });
}
