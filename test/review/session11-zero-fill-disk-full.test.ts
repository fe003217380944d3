/**
 * Review of WAL zero-fill (commit 1a5f4c2) on a nearly full disk: the zeros take space (1 MiB) that
 * the WAL then writes into without allocating; a refill that does not fit is swallowed; the WAL
 * append past the zeros then hits ENOSPC and the failed WAL is replaced. Every acknowledged write
 * must survive, including a power cut at the moment of the DISK_FULL, and the database must resume.
 * Zero-fill was removed (docs/decisions/2026-11-26-wal-syncs.md); the disk-full contract these
 * tests check for durable WAL writes still holds, so they stay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { FaultFs, type FaultInjector } from '../../src/env/fault-fs.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

const BALLAST = '/ballast';

function fullishFs(capacity: number, ballast: number): MemFs {
  const mem = new MemFs({ capacityBytes: capacity });
  mem.writeFileRaw(BALLAST, Buffer.alloc(ballast)); // durable: a power cut keeps it too
  return mem;
}

function logSizes(mem: MemFs): string {
  return mem.describe();
}

async function fillUntilFull(db: Database, durableEvery: number): Promise<{ acked: Map<string, string>; durable: Map<string, string> }> {
  const acked = new Map<string, string>();
  const durable = new Map<string, string>();
  for (let i = 0; i < 100_000; i++) {
    const k = `key${String(i).padStart(7, '0')}`;
    const v = `value-${i}-${'z'.repeat(200)}`;
    const sync = i % durableEvery === 0;
    try {
      await db.put(k, v, { sync });
      acked.set(k, v);
      if (sync) {
        // A durable write makes every earlier write durable too (the prefix property).
        for (const [a, b] of acked) durable.set(a, b);
      }
    } catch (e) {
      assert.ok(isLightningError(e, 'DISK_FULL'), `expected DISK_FULL, got ${String(e)}`);
      return { acked, durable };
    }
  }
  assert.fail('the disk never filled');
}

test('DISK_FULL on a WAL write after zero-fill: power cut at the failure keeps every durable write; resume() recovers', async () => {
  for (const durableEvery of [1, 7]) {
    // 1.5 MiB free: the first zero-fill fits, the refill does not, and the WAL hits ENOSPC.
    const mem = fullishFs(4 * 1024 * 1024, 2.5 * 1024 * 1024);
    const db = await open('/db', { fs: mem, memtableSize: 8 * 1024 * 1024 });
    const { acked, durable } = await fillUntilFull(db, durableEvery);
    assert.ok(acked.size > 1000, `wrote ${acked.size} before the disk filled`);
    assert.equal(db.stats().backgroundError?.code, 'DISK_FULL');
    assert.equal(db.stats().flushes.count, 0, 'the WAL (not a flush) hit the full disk');
    for (const [k, v] of acked) assert.equal(db.getSync(k)?.toString(), v, k);
    const image = mem.crashClone();
    mem.unlink(BALLAST);
    await db.resume();
    await db.put('after', 'x', { sync: true });
    for (const [k, v] of acked) assert.equal(db.getSync(k)?.toString(), v, k);
    await db.close();
    const logs = mem.listAll().filter((p) => p.endsWith('.log'));
    assert.equal(logs.length, 1, logSizes(mem));
    assert.equal(mem.readFileRaw(logs[0] as string).length > 0, true);

    image.unlink(BALLAST);
    let again;
    try {
      again = await open('/db', { fs: image });
    } catch (e) {
      assert.fail(`durableEvery ${durableEvery}: strict reopen of the power-cut image failed: ${String(e)}\n${logSizes(image)}`);
    }
    try {
      for (const [k, v] of durable) assert.equal(again.getSync(k)?.toString(), v, `durableEvery ${durableEvery}: ${k}`);
    } finally {
      await again.close();
    }
    const reopened = await open('/db', { fs: mem });
    try {
      for (const [k, v] of acked) assert.equal(reopened.getSync(k)?.toString(), v, k);
      assert.equal(reopened.getSync('after')?.toString(), 'x');
    } finally {
      await reopened.close();
    }
  }
});

test('ENOSPC (short writes) injected at random WAL writes and truncates: acknowledged durable writes survive a power cut', async () => {
  const seed = testSeed();
  console.log(`session11-zero-fill-disk-full seed ${seed}`);
  const rng = new Random(seed);
  for (let round = 0; round < 12; round++) {
    const mem = new MemFs();
    let armed = false;
    const injector: FaultInjector = {
      maybeFail: (op, path) => {
        if (!armed || !path.endsWith('.log')) return null;
        if (op === 'write' && rng.nextInt(40) === 0) return 'ENOSPC';
        if (op === 'truncate' && rng.nextInt(3) === 0) return rng.nextInt(2) === 0 ? 'ENOSPC' : 'EIO';
        return null;
      },
    };
    const fs = new FaultFs(mem, injector, { shortWrite: true, rng: new Random(seed + round) });
    const db = await open('/db', { fs, memtableSize: 4096 + rng.nextInt(20_000) });
    armed = true;
    const durable = new Map<string, string>();
    let failedMode: string | undefined;
    for (let i = 0; i < 400; i++) {
      const k = `r${round}-${i}`;
      const v = 'q'.repeat(rng.nextInt(400));
      try {
        if (rng.nextInt(15) === 0) await db.compactRange();
        await db.put(k, v, { sync: true });
        durable.set(k, v);
      } catch (e) {
        assert.ok(isLightningError(e), String(e));
        const mode = db.stats().backgroundError?.mode;
        if (mode === 'failed') {
          failedMode = mode;
          break;
        }
        armed = rng.nextInt(2) === 0;
        await db.resume().catch(() => undefined);
        armed = true;
      }
    }
    armed = false;
    const image = mem.crashClone();
    await db.close().catch(() => undefined);
    let again;
    try {
      again = await open('/db', { fs: image });
    } catch (e) {
      assert.fail(`seed ${seed}, round ${round} (${failedMode ?? 'retrying'}): strict reopen failed: ${String(e)}\n${image.describe()}`);
    }
    try {
      for (const [k, v] of durable) assert.equal(again.getSync(k)?.toString(), v, `seed ${seed}, round ${round}: ${k}`);
    } finally {
      await again.close();
    }
  }
});
