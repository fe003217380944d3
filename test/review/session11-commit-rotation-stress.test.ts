/**
 * Review of commit 1a5f4c2 (commitGroup waits for `rotating`, rotations wait for `committing`):
 * random interleavings of durable and non-durable puts, transactions, compactRange(), idle() and a
 * close() racing all of it. Every promise must settle (bounded by a timer, no hang), and a power cut
 * right after must keep every acknowledged durable write (and the WAL state must reopen strictly).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { open, isLightningError } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

const DIR = '/db';
const SETTLE_MS = 5000;

function settleWithin<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${SETTLE_MS} ms`)), SETTLE_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const benign = (e: unknown): boolean =>
  isLightningError(e, 'CLOSED') || isLightningError(e, 'CONFLICT') || isLightningError(e, 'BUSY');

test('random puts/transactions/compactRange/idle racing close(): all settle, durable writes survive a power cut', async () => {
  const seed = testSeed();
  console.log(`session11-commit-rotation-stress seed ${seed}`);
  const rng = new Random(seed);
  const deadline = Date.now() + 12_000;
  for (let round = 0; round < 30 && Date.now() < deadline; round++) {
    const mem = new MemFs();
    const db = await open(DIR, { fs: mem, memtableSize: 2048 + rng.nextInt(16 * 1024) });
    const durable = new Map<string, string>();
    const ops: Promise<unknown>[] = [];
    const unexpected: string[] = [];
    const track = (p: Promise<unknown>, what: string): void => {
      ops.push(
        settleWithin(p, what).catch((e: unknown) => {
          if (e instanceof Error && e.message.includes('did not settle')) throw e;
          if (!benign(e)) unexpected.push(`${what}: ${String(e)}`);
        }),
      );
    };
    const steps = 40 + rng.nextInt(80);
    const closeAt = rng.nextInt(steps + 20);
    let closed: Promise<void> | null = null;
    for (let s = 0; s < steps; s++) {
      if (s === closeAt) closed = db.close();
      const k = `r${round}-k${s}`;
      const v = `v${s}-${'x'.repeat(rng.nextInt(300))}`;
      const r = rng.nextInt(10);
      if (r < 4) {
        const sync = rng.nextInt(2) === 0;
        track(
          db.put(k, v, { sync }).then(() => {
            if (sync) durable.set(k, v);
          }),
          `put ${k}`,
        );
      } else if (r < 6) {
        track(
          db.transaction(
            async (tx) => {
              await tx.get(`r${round}-k${rng.nextInt(s + 1)}`);
              tx.put(k, v);
            },
            { retries: 3 },
          ),
          `transaction ${k}`,
        );
      } else if (r < 8) {
        track(db.compactRange(), `compactRange at ${s}`);
      } else if (r < 9) {
        track(db.idle(), `idle at ${s}`);
      } else {
        track(db.batch([{ type: 'put', key: k, value: v }], { sync: true }).then(() => void durable.set(k, v)), `batch ${k}`);
      }
      for (let i = rng.nextInt(6); i > 0; i--) await null;
      if (rng.nextInt(8) === 0) await new Promise((res) => setImmediate(res));
    }
    await Promise.all(ops);
    assert.deepEqual(unexpected, [], `seed ${seed}, round ${round}`);
    const image = mem.crashClone();
    await settleWithin(closed ?? db.close(), 'close');
    await settleWithin(db.close(), 'second close');
    let again;
    try {
      again = await open(DIR, { fs: image });
    } catch (e) {
      assert.fail(`seed ${seed}, round ${round}: strict reopen failed: ${String(e)}`);
    }
    try {
      for (const [k, v] of durable) assert.equal(again.getSync(k)?.toString(), v, `seed ${seed}, round ${round}: ${k}`);
    } finally {
      await again.close();
    }
  }
});
