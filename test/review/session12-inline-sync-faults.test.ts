/**
 * Review (session 12) of option inlineSync: a failing inline fdatasync must surface as a typed
 * LightningError to the durable writer, degrade the database exactly like a failed thread-pool
 * fsync, never throw into the void, never resolve the failed write, and leave every acknowledged
 * write readable after reopen. Covers the real NodeFs inline branch (fs.fdatasyncSync replaced via
 * syncBuiltinESMExports), a wrapper whose sync(true) throws synchronously, interleaving with
 * background WAL syncs, memtable rotations, and close().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { open, LightningError } from '../../src/index.js';
import type { Database } from '../../src/db/db.js';
import { NodeFs } from '../../src/env/node-fs.js';
import { MemFs } from '../../src/env/mem-fs.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/env/file-system.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';
import { ProcessErrorRecorder, assertLightning, describeError } from '../harness/api-helpers.js';

const recorder = new ProcessErrorRecorder();

function tmpDir(): string {
  return nodeFs.mkdtempSync(path.join(os.tmpdir(), 'ldb-review12-inline-'));
}

/** Replaces node:fs fdatasyncSync (seen by node-fs.ts's namespace import) while `fn` runs. */
async function withFdatasyncSync(fake: (fd: number) => void, fn: () => Promise<void>): Promise<void> {
  const original = nodeFs.fdatasyncSync;
  nodeFs.fdatasyncSync = fake;
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    nodeFs.fdatasyncSync = original;
    syncBuiltinESMExports();
  }
}

async function closeQuietly(db: Database, what: string): Promise<void> {
  try {
    await db.close();
  } catch (e) {
    assert.ok(e instanceof LightningError, `${what}: close() rejected with ${describeError(e)}`);
  }
}

function eio(): Error {
  const e = new Error('EIO: injected i/o error, fdatasync') as NodeJS.ErrnoException;
  e.code = 'EIO';
  e.errno = -5;
  e.syscall = 'fdatasync';
  return e;
}

test('NodeFs inline fdatasync failure: typed IO_ERROR, degraded (failed), acknowledged writes survive', async () => {
  await withSeed('inline-nodefs-fail', async (seed) => {
    const rng = new Random(seed);
    const dir = tmpDir();
    try {
      const acked = new Map<string, string>();
      // The write whose fsync failed reached the WAL first: after reopen it may be there (as in
      // test/db/faults.test.ts), and it is never visible before.
      let failedWrite: [string, string] | null = null;
      let inlineCalls = 0;
      let failAfter = 3 + rng.nextInt(20);
      const real = nodeFs.fdatasyncSync;
      await withFdatasyncSync(
        (fd) => {
          inlineCalls++;
          if (failAfter-- <= 0) throw eio();
          real(fd);
        },
        async () => {
          const db = await open(dir, { inlineSync: true, memtableSize: 64 * 1024 });
          let failed: unknown = null;
          for (let i = 0; i < 200 && failed === null; i++) {
            const key = `k${rng.nextInt(50)}`;
            const value = `v${i}-${'x'.repeat(rng.nextInt(2000))}`;
            try {
              await db.put(key, value);
              acked.set(key, value);
            } catch (e) {
              failed = e;
              failedWrite = [key, value];
            }
          }
          assert.ok(inlineCalls > 0, `SEED=${seed}: inlineSync never used fdatasyncSync`);
          assert.ok(failed !== null, `SEED=${seed}: no write failed`);
          assertLightning(failed, 'IO_ERROR', `SEED=${seed}: failed inline sync`);
          const s = db.stats();
          assert.equal(s.state, 'degraded', `SEED=${seed}`);
          assert.equal(s.backgroundError?.code, 'IO_ERROR', `SEED=${seed}`);
          assert.equal(s.backgroundError?.mode, 'failed', `SEED=${seed}`);
          // Further durable and non-durable writes fail fast with the typed error.
          await assert.rejects(db.put('after', 'x'), (e: unknown) => (assertLightning(e, 'IO_ERROR', 'put after'), true));
          await assert.rejects(db.put('after', 'x', { sync: false }), (e: unknown) => (assertLightning(e, 'IO_ERROR', 'lazy put after'), true));
          // Reads keep working and see every acknowledged write.
          for (const [k, v] of acked) assert.equal(db.getSync(k)?.toString(), v, `SEED=${seed}: ${k} while degraded`);
          await closeQuietly(db, `SEED=${seed}`);
        },
      );
      await recorder.settle();
      recorder.assertNone();
      const again = await open(dir);
      const fw = failedWrite as [string, string] | null;
      for (const [k, v] of acked) {
        const got = again.getSync(k)?.toString();
        if (fw !== null && k === fw[0] && got === fw[1]) continue;
        assert.equal(got, v, `SEED=${seed}: ${k} after reopen`);
      }
      assert.equal(again.getSync('after'), undefined, `SEED=${seed}: a rejected write is visible`);
      await again.close();
    } finally {
      nodeFs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A FileSystem passing everything through, whose WAL handles' sync(true) can throw synchronously. */
class SyncThrowFs {
  inlineSyncs = 0;
  plainSyncs = 0;
  throwInline = false;
  rejectPlain = false;
  constructor(private readonly inner: FileSystem) {}
  open(p: string, mode: OpenMode): FileHandle {
    const h = this.inner.open(p, mode);
    if (!p.endsWith('.log')) return h;
    const self = this;
    return new Proxy(h, {
      get(target, prop, receiver) {
        if (prop === 'sync') {
          return (inline?: boolean): Promise<void> => {
            if (inline === true) {
              self.inlineSyncs++;
              if (self.throwInline) throw eio(); // synchronous throw, not a rejection
            } else {
              self.plainSyncs++;
              if (self.rejectPlain) return Promise.reject(eio());
            }
            return target.sync(inline);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

function passThrough(inner: FileSystem): SyncThrowFs & FileSystem {
  const fs = new SyncThrowFs(inner);
  // Every other FileSystem method goes to `inner`.
  return new Proxy(fs as SyncThrowFs & FileSystem, {
    get(target, prop, receiver) {
      if (prop in target) return Reflect.get(target, prop, receiver) as unknown;
      const v = Reflect.get(inner, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(inner) : v;
    },
    has(target, prop) {
      return prop in target || prop in inner;
    },
  });
}

for (const base of ['mem', 'node'] as const) {
  test(`inline sync that throws synchronously (${base}), mixed with background WAL syncs and rotations`, async () => {
    await withSeed(`inline-sync-throw-${base}`, async (seed) => {
      const rng = new Random(seed);
      const dir = base === 'node' ? tmpDir() : '/db';
      const inner: FileSystem = base === 'node' ? new NodeFs() : new MemFs();
      try {
        const fs = passThrough(inner);
        const db = await open(dir, { fs, inlineSync: true, memtableSize: 32 * 1024 });
        const acked = new Map<string, string>();
        const failAt = 20 + rng.nextInt(150);
        let firstFailure: unknown = null;
        const pending: Promise<void>[] = [];
        const outcomes: string[] = [];
        for (let i = 0; i < 250; i++) {
          if (i === failAt) fs.throwInline = true;
          const key = `k${rng.nextInt(80)}`;
          // Large lazy writes trigger background syncs (thread-pool path), durable ones inline.
          const durable = rng.nextInt(3) !== 0;
          const value = `v${i}-${'y'.repeat(durable ? rng.nextInt(300) : 4000 + rng.nextInt(9000))}`;
          const p = db.put(key, value, { sync: durable }).then(
            () => {
              if (durable) acked.set(key, value);
              outcomes.push(`ok ${i}`);
            },
            (e: unknown) => {
              if (!(e instanceof LightningError)) outcomes.push(`UNTYPED ${i}: ${describeError(e)}`);
              if (firstFailure === null) firstFailure = e;
            },
          );
          // Sometimes a few concurrent writers (one group), sometimes one at a time.
          pending.push(p);
          if (rng.nextInt(4) === 0 || pending.length > 6) await Promise.all(pending.splice(0));
        }
        await Promise.all(pending);
        assert.deepEqual(outcomes.filter((o) => o.startsWith('UNTYPED')), [], `SEED=${seed}`);
        assert.ok(fs.inlineSyncs > 0, `SEED=${seed}: no inline sync`);
        assert.ok(firstFailure !== null, `SEED=${seed}: no write failed after inline syncs started throwing`);
        assertLightning(firstFailure, 'IO_ERROR', `SEED=${seed}`);
        assert.equal(db.stats().state, 'degraded', `SEED=${seed}`);
        assert.equal(db.stats().backgroundError?.mode, 'failed', `SEED=${seed}`);
        await closeQuietly(db, `SEED=${seed}`);
        await recorder.settle();
        recorder.assertNone();
        const again = await open(dir, { fs: inner });
        for (const [k, v] of acked) {
          // A later acknowledged lazy write of the same key may not survive; durable ones must, unless overwritten.
          const got = again.getSync(k)?.toString();
          assert.ok(got !== undefined, `SEED=${seed}: acknowledged durable ${k} lost`);
          if (got !== v) assert.ok(got.startsWith('v'), `SEED=${seed}: ${k} = ${got.slice(0, 20)}`);
        }
        await again.close();
      } finally {
        if (base === 'node') nodeFs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

test('inlineSync: a failing background (thread-pool) WAL sync still degrades; inline durable writes then fail typed', async () => {
  await withSeed('inline-bg-fail', async (seed) => {
    const rng = new Random(seed);
    const mem = new MemFs();
    const fs = passThrough(mem);
    const db = await open('/db', { fs, inlineSync: true });
    await db.put('a', '1');
    fs.rejectPlain = true;
    let lazyOk = 0;
    let failure: unknown = null;
    for (let i = 0; i < 400 && failure === null; i++) {
      try {
        await db.put(`lazy${i}`, 'z'.repeat(2000 + rng.nextInt(8000)), { sync: false });
        lazyOk++;
      } catch (e) {
        failure = e;
      }
    }
    // The background sync failure arrives asynchronously; a durable write then must fail typed.
    await recorder.settle();
    let durable: unknown = null;
    try {
      await db.put('b', '2');
    } catch (e) {
      durable = e;
    }
    assert.ok(fs.plainSyncs > 0, `SEED=${seed}: no background sync started (${lazyOk} lazy writes)`);
    assert.ok(durable !== null || failure !== null, `SEED=${seed}: failed background sync went unnoticed`);
    if (durable !== null) assertLightning(durable, 'IO_ERROR', `SEED=${seed}: durable after bg failure`);
    if (failure !== null) assertLightning(failure, 'IO_ERROR', `SEED=${seed}: lazy after bg failure`);
    assert.equal(db.stats().state, 'degraded');
    await closeQuietly(db, `SEED=${seed}`);
    await recorder.settle();
    recorder.assertNone();
  });
});

test('inlineSync: close() right after inline-failed and concurrent writes settles, no stray errors', async () => {
  await withSeed('inline-close', async (seed) => {
    const rng = new Random(seed);
    const fs = passThrough(new MemFs());
    const db = await open('/db', { fs, inlineSync: true, memtableSize: 16 * 1024 });
    for (let i = 0; i < 30; i++) await db.put(`p${i}`, 'x'.repeat(rng.nextInt(1000)));
    fs.throwInline = true;
    const writes = Array.from({ length: 8 }, (_, i) => db.put(`q${i}`, 'w'));
    const closing = db.close();
    const results = await Promise.allSettled([...writes, closing]);
    for (const r of results.slice(0, 8)) {
      assert.equal(r.status, 'rejected', `SEED=${seed}: a write resolved although every inline sync failed`);
      assert.ok(r.reason instanceof LightningError, `SEED=${seed}: ${describeError(r.reason)}`);
    }
    const c = results[8];
    if (c?.status === 'rejected') assert.ok(c.reason instanceof LightningError, `SEED=${seed}: close ${describeError(c.reason)}`);
    await recorder.settle();
    recorder.assertNone();
  });
});
