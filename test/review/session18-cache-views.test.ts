/**
 * Review (session 18): views handed out by the typed-array BlockCache (a fresh view per get() and
 * insert() call). Checks, on seeded random sequences near the budget (slot-sized blocks, one byte
 * more or less, blocks in buffers of their own, replacements at the same key with another size):
 *   - after every operation, every block the cache holds reads back (get) with exactly the bytes
 *     last cached at its key: no insert, eviction, replacement or evictFile clobbers a block that
 *     stays cached;
 *   - the views of all cached blocks are pairwise disjoint in memory, and a slot-sized block's
 *     view lies inside one slot (a view never reaches into a neighbouring slot);
 *   - a view from get() or insert() keeps its bytes across further get() and admits() calls;
 *   - re-inserting a view the cache handed out (at its own key or another, whole or a part of it)
 *     caches exactly those bytes (the copy may land in the same slot it reads from).
 * Replay one seed with SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { MAX, TWO32, seeds } from './session18-cache-helper.js';

function pattern(rng: Random, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  const t = rng.nextUint32();
  for (let i = 0; i < n; i++) b[i] = (t + i * 37 + (t >>> (i & 15))) & 0xff;
  return b;
}

function runViews(seed: number, capacity: number, slotBytes: number, admission: boolean, ops: number): void {
  const rng = new Random(seed);
  const c = new BlockCache(capacity, slotBytes, admission);
  const files = [1, 2, TWO32 + 1, MAX];
  const offsets = [0, 4096, 8192, TWO32, MAX - 4096, 12288, 16384, 20480];
  const model = new Map<string, { f: number; o: number; bytes: Buffer }>();
  const k = (f: number, o: number): string => `${f}/${o}`;
  let op = 0;
  let what = '';
  const sizeOf = (): number => {
    const r = rng.nextInt(10);
    if (slotBytes > 0 && r < 4) return slotBytes - 1 + rng.nextInt(3); // slot-1, slot, slot+1
    if (r < 6) return rng.nextInt(Math.max(1, slotBytes) + 1);
    if (r < 8) return slotBytes + 1 + rng.nextInt(Math.max(1, Math.floor(capacity / 4)));
    return 1 + rng.nextInt(40);
  };
  /** Reads back every modelled key; checks bytes and that the views are disjoint. */
  const checkAll = (): void => {
    const views: { v: Buffer; key: string }[] = [];
    for (const [key, m] of model) {
      const got = c.get(m.f, m.o);
      if (got === undefined) {
        model.delete(key); // evicted (the model keeps no recency order)
        continue;
      }
      assert.equal(got.length, m.bytes.length, `length of ${key}`);
      assert.ok(got.equals(m.bytes), `bytes of ${key} clobbered`);
      if (slotBytes > 0 && got.length <= slotBytes && got.byteOffset % slotBytes !== 0 && got.length > 0) {
        // (slabs start at byteOffset 0 of their own ArrayBuffer, slots at multiples of slotBytes)
        assert.fail(`view of ${key} does not start at a slot boundary (byteOffset ${got.byteOffset})`);
      }
      views.push({ v: got, key });
    }
    for (let i = 0; i < views.length; i++) {
      const a = views[i] as { v: Buffer; key: string };
      for (let j = i + 1; j < views.length; j++) {
        const b = views[j] as { v: Buffer; key: string };
        if (a.v.buffer !== b.v.buffer || a.v.length === 0 || b.v.length === 0) continue;
        const overlap = a.v.byteOffset < b.v.byteOffset + b.v.length && b.v.byteOffset < a.v.byteOffset + a.v.length;
        assert.ok(!overlap, `views of ${a.key} and ${b.key} overlap`);
      }
    }
    // The views just taken must still hold their bytes after all those gets.
    for (const { v, key } of views) assert.ok(v.equals((model.get(key) as { bytes: Buffer }).bytes), `view of ${key} changed by get()`);
  };
  try {
    for (op = 0; op < ops; op++) {
      const f = files[rng.nextInt(files.length)] as number;
      const o = offsets[rng.nextInt(offsets.length)] as number;
      const r = rng.nextInt(10);
      if (r < 5) {
        const size = sizeOf();
        what = `insert(${f}, ${o}, ${size}B)`;
        const block = pattern(rng, size);
        const exp = Buffer.from(block);
        const ret = c.insert(f, o, block);
        assert.ok(ret.equals(exp), 'insert result bytes');
        if (ret !== block) {
          model.set(k(f, o), { f, o, bytes: exp });
          c.admits(f, o, size);
          c.admits(f + 1, o, size);
          assert.ok(ret.equals(exp), 'insert result changed by admits()');
        }
      } else if (r < 7) {
        // Re-insert (part of) a cached view, at its own key or another.
        const keys = [...model.values()];
        if (keys.length === 0) continue;
        const m = keys[rng.nextInt(keys.length)] as { f: number; o: number; bytes: Buffer };
        const view = c.get(m.f, m.o);
        if (view === undefined) {
          model.delete(k(m.f, m.o));
          continue;
        }
        const a = rng.nextInt(2) === 0 ? 0 : rng.nextInt(view.length + 1);
        const b = a + rng.nextInt(view.length - a + 1);
        const [f2, o2] = rng.nextInt(2) === 0 ? [m.f, m.o] : [f, o];
        what = `re-insert ${k(m.f, m.o)}[${a}, ${b}) at ${k(f2, o2)}`;
        const part = view.subarray(a, b);
        const exp = Buffer.from(part);
        const ret = c.insert(f2, o2, part);
        assert.ok(ret.equals(exp), 're-insert result bytes');
        if (ret !== part) model.set(k(f2, o2), { f: f2, o: o2, bytes: exp });
      } else if (r < 8) {
        what = `evictFile(${f})`;
        c.evictFile(f);
        for (const [key, m] of [...model]) if (m.f === f) model.delete(key);
      } else {
        what = `get(${f}, ${o})`;
        const got = c.get(f, o);
        const m = model.get(k(f, o));
        if (got !== undefined) {
          assert.ok(m !== undefined && got.equals(m.bytes), 'get bytes');
          c.get(f, o);
          c.admits(f, o, got.length);
          assert.ok(got.equals(m.bytes), 'get view changed by get()/admits()');
        }
      }
      what += ' (read-back)';
      checkAll();
    }
  } catch (e) {
    const msg = e instanceof Error ? e.stack ?? e.message : String(e);
    throw new Error(`views failed: SEED=${seed} capacity=${capacity} slotBytes=${slotBytes} admission=${admission} at op ${op}: ${what}\n${msg}`, { cause: e });
  }
}

test('views: cached blocks are never clobbered, views are disjoint and stay put across gets', () => {
  const saved = invariants.enabled;
  invariants.enabled = true;
  try {
    for (const seed of seeds([0x18c3_0001, 0x18c3_0002, 0x18c3_0003])) {
      let i = 0;
      for (const [capacity, slotBytes] of [[64, 64], [640, 64], [1000, 100], [100 * 33, 33], [4096, 128], [500, 0], [3000, 4000], [64 * 65 * 16, 16]] as const) {
        for (const admission of [false, true]) runViews((seed + 101 * i++) >>> 0, capacity, slotBytes, admission, 1500);
      }
    }
  } finally {
    invariants.enabled = saved;
  }
});
