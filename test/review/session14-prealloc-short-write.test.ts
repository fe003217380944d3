/**
 * Review (session 14) of WAL preallocation (commit e55b52d): a preallocation write that fails
 * after part of its zeros landed (ENOSPC after a short write: NodeFs's write loop writes what
 * fits, then the next pwrite throws; FaultFs models it with shortWrite).
 *
 * RecordWriter.preallocate() swallows the failure and leaves `preallocatedEnd` where it was, so
 * trimTail() (which only looks at preallocatedEnd) does not cut the zeros that did land. The old
 * WAL is rotated away from still ending in zeros; its final sync makes them durable. After a power
 * cut, recovery reads those zeros as a torn tail in a log that is not the newest, and the
 * "ends in a torn record but a later log holds writes" rule makes a strict open fail. Nothing
 * acknowledged was damaged: this is an ordinary power cut.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import type { FileHandle } from '../../src/env/file-system.js';
import { FsError } from '../../src/env/fs-error.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter, PREALLOCATE_BYTES } from '../../src/wal/record-writer.js';
import { wrapOpen } from '../harness/wrap-open.js';

const DIR = '/db';

function allZero(buf: Uint8Array, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) if (buf[i] !== 0) return false;
  return true;
}

/** The harness: one short zero write on a WAL, and table syncs that can be held (flush stalls). */
class Harness {
  readonly mem = new MemFs();
  shortZeroWrites = 0;
  armed = true;
  holdTables = false;
  private readonly held: (() => void)[] = [];
  readonly fs = wrapOpen(this.mem, (path, h) => this.wrap(path, h));

  private wrap(path: string, h: FileHandle): FileHandle {
    const isLog = path.endsWith('.log');
    const isTable = path.endsWith('.sst');
    return {
      path: h.path,
      read: (b, o, l, p) => h.read(b, o, l, p),
      write: (b, o, l, p) => {
        if (isLog && this.armed && l >= PREALLOCATE_BYTES / 4 && allZero(b, o, l)) {
          this.armed = false;
          this.shortZeroWrites++;
          h.write(b, o, l >>> 1, p); // a short write: what fitted landed ...
          throw new FsError('ENOSPC', 'write', path, 'injected after a short write'); // ... then ENOSPC
        }
        h.write(b, o, l, p);
      },
      sync: async (inline) => {
        if (isTable && this.holdTables) await new Promise<void>((resolve) => this.held.push(resolve));
        await h.sync(inline);
      },
      size: () => h.size(),
      truncate: (n) => h.truncate(n),
      close: () => h.close(),
    };
  }

  release(): void {
    this.holdTables = false;
    for (const r of this.held.splice(0)) r();
  }
}

function logs(mem: MemFs): string[] {
  return mem.listAll().filter((p) => p.endsWith('.log'));
}

test('RecordWriter: zeros left by a failed (short) preallocation write are not cut by trimTail (FAILS)', async () => {
  const h = new Harness();
  h.mem.mkdir(DIR);
  const path = `${DIR}/000005.log`;
  const file = h.fs.open(path, 'create-excl');
  const w = RecordWriter.create(file, 5);
  await w.sync();
  w.add(Buffer.from('durable record'));
  await w.sync(false, true); // durable sync: preallocates; the zero write fails after a short write
  assert.equal(h.shortZeroWrites, 1, 'the preallocation write was the one that failed');
  assert.equal(w.failed(), undefined, 'a failed preallocation only stops preallocating');
  w.add(Buffer.from('second record'));
  w.trimTail(); // what a rotation does before the old log's last sync
  await w.sync();
  const size = file.size();
  file.close();
  assert.equal(
    size,
    w.sizeBytes(),
    `after trimTail the log must end at its last record (${w.sizeBytes()} bytes), but it is ${size} bytes: ` +
      `${size - w.sizeBytes()} bytes of zeros from the short preallocation write remain`,
  );
});

test('a short preallocation write leaves an older WAL ending in zeros: strict open fails after a power cut (FAILS)', async () => {
  const h = new Harness();
  // A small memtable so the third put rotates to a new WAL well within the 32 KiB of leftover zeros.
  let db: Database | null = await open(DIR, { fs: h.fs, memtableSize: 1024 });
  const value = 'v'.repeat(300);
  await db.put('a0', value, { sync: true }); // preallocation write: short write + ENOSPC (swallowed)
  assert.equal(h.shortZeroWrites, 1);
  const before = logs(h.mem);
  h.holdTables = true; // the flush of the old memtable cannot finish: the old WAL stays live
  let i = 1;
  while (logs(h.mem).join() === before.join() && i < 50) {
    await db.put(`a${i}`, value, { sync: true });
    i++;
  }
  assert.notDeepEqual(logs(h.mem), before, 'the memtable rotated to a new WAL');
  await db.put('after-rotation', 'x', { sync: true }); // a durable write in the new WAL
  const acked = i;
  const crashed = h.mem.crashClone(); // power cut: durable bytes only
  const describe = crashed.describe();
  h.release();
  await db.close().catch(() => undefined);
  db = null;

  let reopened: Database;
  try {
    reopened = await open(DIR, { fs: crashed, memtableSize: 1024 });
  } catch (e) {
    // Show where the older WAL's torn tail is.
    const detail: string[] = [];
    for (const p of logs(crashed)) {
      const f = crashed.open(p, 'r');
      const r = new RecordReader(f, p);
      let n = 0;
      try {
        while (r.next() !== undefined) n++;
      } catch {
        /* reported below */
      }
      detail.push(`${p}: ${n} records, size ${r.fileSize}, torn at ${String(r.tornTailOffset)}`);
      f.close();
    }
    assert.fail(`strict open failed after an ordinary power cut: ${String(e)}\n${describe}\n${detail.join('\n')}`);
  }
  for (let k = 0; k < acked; k++) assert.equal((await reopened.get(`a${k}`))?.toString(), value, `a${k}`);
  assert.equal((await reopened.get('after-rotation'))?.toString(), 'x');
  await reopened.close();
});
