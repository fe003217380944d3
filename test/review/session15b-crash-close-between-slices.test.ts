/**
 * Reviewer tests (session 15b): with byte-bounded slices, a main-thread flush of large values now
 * yields every ~256 KiB (before: a memtable of fewer than 1,024 entries was built in one go, with
 * no event-loop turn at all on MemFs). New yield points are new places where a crash or a close()
 * can land. This test crashes (MemFs.crashClone) at random event-loop turns while a flush or a
 * merge is between slices, and closes the database at a random turn while one is; every
 * acknowledged durable write must be there after reopening, and nothing that was never written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type Database } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const key = (i: number): string => `key${String(i).padStart(5, '0')}${'x'.repeat(i % 3 === 0 ? 40 : 0)}`;

function valueFor(rng: Random, tag: number): Buffer {
  const len = rng.nextInt(4) === 0 ? rng.nextInt(50) : 30_000 + rng.nextInt(270_000);
  const v = Buffer.alloc(len, tag & 0xff);
  if (len >= 8) v.writeDoubleLE(tag, 0);
  return v;
}

/** Key -> value (undefined: deleted); `maybe` the write in flight (may or may not have survived). */
type Acked = Map<string, Buffer | undefined>;
type InFlight = { key: string; value: Buffer | undefined } | null;

async function verify(db: Database, acked: Acked, maybe: { key: string; value: Buffer | undefined } | null, what: string): Promise<void> {
  for (const [k, v] of acked) {
    const got = await db.get(k);
    if (maybe !== null && maybe.key === k) {
      const ok = (got === undefined ? v === undefined : v !== undefined && got.equals(v)) || (got === undefined ? maybe.value === undefined : maybe.value !== undefined && got.equals(maybe.value));
      assert.ok(ok, `${what}: ${k} (in flight) is neither its old nor its new value`);
      continue;
    }
    if (v === undefined) assert.equal(got, undefined, `${what}: ${k} was deleted`);
    else assert.ok(got !== undefined && got.equals(v), `${what}: ${k} lost or wrong (${got?.length} bytes, want ${v.length})`);
  }
  // Nothing but acknowledged keys (and the one in flight).
  let n = 0;
  for (const [k] of db.iterator()) {
    const ks = k.toString();
    assert.ok(acked.has(ks) || maybe?.key === ks, `${what}: unexpected key ${ks}`);
    n++;
  }
  assert.ok(n <= acked.size + 1, `${what}: ${n} keys`);
}

test('crashes at random turns while main-thread flushes and merges of large values are between slices lose no acknowledged write', { timeout: 120_000 }, async () => {
  await withSeed('crash between slices', async (seed) => {
    const rng = new Random(seed);
    const fs = new MemFs({ capacityBytes: 8 * 1024 * 1024 * 1024 });
    const options = { memtableSize: 1024 * 1024, l0CompactionTrigger: 2, levelBaseSize: 2 * 1024 * 1024, targetFileSize: 512 * 1024, compression: (rng.nextInt(2) === 0 ? 'lz' : 'none') as 'lz' | 'none' };
    const db = await open('/db', { fs, ...options });
    const acked: Acked = new Map();
    let inFlight = null as InFlight;
    const clones: { fs: MemFs; acked: Acked; maybe: InFlight; during: string }[] = [];
    let stop = false;
    const crashRng = new Random(seed ^ 0x5a5a5a5a);
    const ticker = (): void => {
      if (stop) return;
      const s = db.stats();
      const during = s.immutableMemtables > 0 ? 'flush' : s.compactions.running ? 'merge' : null;
      const room = clones.filter((c) => c.during === during).length < 6;
      if (during !== null && room && crashRng.nextInt(during === 'flush' ? 3 : 40) === 0) {
        clones.push({ fs: fs.crashClone({ rng: crashRng, tearLastWrite: true, keepUnsyncedProbability: 0.3 }), acked: new Map(acked), maybe: inFlight, during });
      }
      setImmediate(ticker);
    };
    setImmediate(ticker);
    try {
      for (let op = 0; op < 400; op++) {
        const k = key(rng.nextInt(120));
        if (rng.nextInt(6) === 0) {
          inFlight = { key: k, value: undefined };
          await db.delete(k);
        } else {
          const v = valueFor(rng, op);
          inFlight = { key: k, value: v };
          await db.put(k, v);
        }
        acked.set(k, inFlight.value);
        inFlight = null;
        if (rng.nextInt(2) === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await db.idle();
      stop = true;
      await verify(db, acked, null, 'live database');
    } finally {
      stop = true;
      await db.close();
    }
    console.log(`${clones.length} crashes during: ${clones.map((c) => c.during).join(', ')}`);
    assert.ok(clones.some((c) => c.during === 'flush') && clones.some((c) => c.during === 'merge'), `crashes landed only during: ${clones.map((c) => c.during).join(', ')}`);
    for (const [i, c] of clones.entries()) {
      const re = await open('/db', { fs: c.fs, ...options });
      try {
        await verify(re, c.acked, c.maybe, `crash ${i} (during a ${c.during})`);
      } finally {
        await re.close();
      }
    }
    const re = await open('/db', { fs, ...options });
    try {
      await verify(re, acked, null, 'after close');
    } finally {
      await re.close();
    }
  });
});

test('close() at a random turn while a main-thread flush or merge of large values is between slices keeps every write', { timeout: 120_000 }, async () => {
  await withSeed('close between slices', async (seed) => {
    const rng = new Random(seed);
    const closedWhile: string[] = [];
    for (let round = 0; round < 10; round++) {
      const fs = new MemFs({ capacityBytes: 8 * 1024 * 1024 * 1024 });
      const options = { memtableSize: 1024 * 1024, l0CompactionTrigger: 2, levelBaseSize: 2 * 1024 * 1024, targetFileSize: 512 * 1024, sync: false, compression: (rng.nextInt(2) === 0 ? 'lz' : 'none') as 'lz' | 'none' };
      const db = await open('/db', { fs, ...options });
      const acked: Acked = new Map();
      // Writes not awaited one by one: close() arrives with some queued.
      const pending: Promise<void>[] = [];
      const n = 40 + rng.nextInt(80);
      for (let op = 0; op < n; op++) {
        const k = key(rng.nextInt(60));
        const v = valueFor(rng, op);
        acked.set(k, v);
        pending.push(db.put(k, v));
        if (rng.nextInt(3) === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      // A compactRange in flight too, then close at a random later turn while something is busy.
      const cr = db.compactRange().catch((e: unknown) => e);
      const turns = rng.nextInt(60);
      for (let t = 0; t < turns; t++) await new Promise<void>((resolve) => setImmediate(resolve));
      const s = db.stats();
      const busy = s.immutableMemtables > 0 ? 'flush' : s.compactions.running ? 'merge' : 'idle';
      await db.close();
      await Promise.all(pending);
      const crResult = await cr;
      if (crResult !== undefined) assert.equal((crResult as { code?: string }).code, 'CLOSED', `compactRange failed with ${String(crResult)}`);
      closedWhile.push(busy);
      const re = await open('/db', { fs, ...options });
      try {
        await verify(re, acked, null, `round ${round} (closed while ${busy})`);
      } finally {
        await re.close();
      }
    }
    console.log(`closed while: ${closedWhile.join(', ')}`);
  });
});
