/**
 * Review (session 18) helpers for the block-cache tests: a seeded differential driver that runs
 * the same operation sequence against the rewritten BlockCache (src/) and the reference
 * implementation of 525c204^ (session18-cache-reference.ts), comparing every result (hit or miss,
 * bytes, lengths, whether insert handed its argument back, admits decisions) and stats() after
 * every operation, and checking every hit against a model of the bytes last cached at the key.
 */
import assert from 'node:assert/strict';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { ReferenceBlockCache } from './session18-cache-reference.js';

export const TWO32 = 4294967296;
export const MAX = Number.MAX_SAFE_INTEGER;

/** Numbers near the edges the hash and the Float64Array keys have to get right. */
export const EDGE_NUMBERS: readonly number[] = [
  0, 1, 2, 3, 7, 4096, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, TWO32 - 1, TWO32, TWO32 + 1, TWO32 + 4096,
  2 * TWO32, 3 * TWO32 + 1, 2 ** 40, 2 ** 40 + 1, 2 ** 52, 2 ** 52 + 1, MAX - TWO32, MAX - 1, MAX,
];

/** Seeds: SEED=<n> replays one; otherwise a fixed list (deterministic). */
export function seeds(fixed: readonly number[]): number[] {
  const env = process.env['SEED'];
  if (env !== undefined && env !== '') return [Number(env) >>> 0];
  return [...fixed];
}

export interface DiffConfig {
  capacity: number;
  slotBytes: number;
  admission: boolean;
  files: number[];
  offsets: number[];
  ops: number;
  /** Check invariants on one op in this many (1: always). */
  invariantsEvery: number;
  /** Sizes to draw blocks from (besides a few derived from slot and capacity). */
  maxRandomSize: number;
  /** Draw the sizes derived from slot and capacity (large ones flush the cache) only once in this many. */
  edgeSizeEvery?: number;
}

export function describe(c: DiffConfig): string {
  return `capacity=${c.capacity} slotBytes=${c.slotBytes} admission=${c.admission} files=${c.files.length} offsets=${c.offsets.length} ops=${c.ops}`;
}

function fillBlock(rng: Random, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  const tag = rng.nextUint32();
  const step = 1 + 2 * rng.nextInt(64);
  for (let i = 0; i < size; i++) b[i] = (tag + i * step + (i >>> 8)) & 0xff;
  if (size > 0) b[0] = tag & 0xff;
  if (size > 4) b.writeUInt32LE(tag, size - 4);
  return b;
}

const key = (f: number, o: number): string => `${f}/${o}`;

/**
 * Runs one seeded sequence; throws an Error naming the seed, configuration and operation on the
 * first disagreement.
 */
export function runDifferential(seed: number, cfg: DiffConfig, log: string[] = []): void {
  const rng = new Random(seed);
  const saved = invariants.enabled;
  const cache = new BlockCache(cfg.capacity, cfg.slotBytes, cfg.admission);
  const ref = new ReferenceBlockCache(cfg.capacity, cfg.slotBytes, cfg.admission);
  /** Bytes last cached at each key (a hit must return exactly these). */
  const model = new Map<string, Buffer>();
  const sizes = (): number => {
    const s = cfg.slotBytes;
    const c = cfg.capacity;
    const r = cfg.edgeSizeEvery !== undefined && rng.nextInt(cfg.edgeSizeEvery) !== 0 ? 20 : rng.nextInt(20);
    switch (r) {
      case 0: return 0;
      case 1: return 1;
      case 2: return Math.max(0, s - 1);
      case 3: return s;
      case 4: return s + 1;
      case 5: return 2 * s + 3;
      case 6: return c;
      case 7: return c + 1;
      case 8: return Math.max(0, c - 1);
      case 9: return Math.floor(c / 3);
      case 10: return 33;
      default: return rng.nextInt(cfg.maxRandomSize + 1);
    }
  };
  const pickFile = (): number => cfg.files[rng.nextInt(cfg.files.length)] as number;
  const pickOffset = (): number => cfg.offsets[rng.nextInt(cfg.offsets.length)] as number;
  let op = 0;
  let what = '';
  // Views handed out by get() since the last insert/evictFile: valid until then, so they must
  // still hold their bytes (gets and admits must not move or overwrite cached blocks).
  let liveViews: { view: Buffer; bytes: Buffer; what: string }[] = [];
  const checkLiveViews = (): void => {
    for (const v of liveViews) assert.ok(v.view.equals(v.bytes), `a view from ${v.what} changed before the next insert/evictFile`);
  };
  const compareGet = (f: number, o: number): { got: Buffer | undefined; exp: Buffer | undefined } => {
    const got = cache.get(f, o);
    const exp = ref.get(f, o);
    assert.equal(got === undefined, exp === undefined, `get hit/miss differs (new ${got === undefined ? 'miss' : 'hit'})`);
    if (got !== undefined && exp !== undefined) {
      assert.equal(got.length, exp.length, 'get length');
      assert.ok(got.equals(exp), 'get bytes differ from the reference');
      const m = model.get(key(f, o));
      assert.ok(m !== undefined, 'hit on a key whose block was never cached or was evicted by file');
      assert.ok(got.equals(m), 'get returned bytes other than the ones cached at the key');
      liveViews.push({ view: got, bytes: Buffer.from(got), what: `get(${f}, ${o}) at op ${op}` });
    }
    return { got, exp };
  };
  const doInsert = (f: number, o: number, blockNew: Buffer, blockRef: Buffer): void => {
    checkLiveViews();
    liveViews = [];
    const expected = Buffer.from(blockNew);
    const retNew = cache.insert(f, o, blockNew);
    const retRef = ref.insert(f, o, blockRef);
    assert.equal(retNew === blockNew, retRef === blockRef, `insert: handed its argument back differs (new: ${retNew === blockNew})`);
    assert.equal(retNew.length, expected.length, 'insert result length');
    assert.ok(retNew.equals(expected), 'insert result bytes');
    assert.ok(retRef.equals(expected), 'reference insert result bytes');
    if (retNew !== blockNew) {
      model.set(key(f, o), expected);
      liveViews.push({ view: retNew, bytes: expected, what: `insert(${f}, ${o}) at op ${op}` });
    }
  };
  try {
    for (op = 0; op < cfg.ops; op++) {
      invariants.enabled = cfg.invariantsEvery === 1 || op % cfg.invariantsEvery === 0;
      const r = rng.nextInt(100);
      const f = pickFile();
      const o = pickOffset();
      if (r < 34) {
        what = `get(${f}, ${o})`;
        compareGet(f, o);
        checkLiveViews();
      } else if (r < 60) {
        const size = sizes();
        what = `insert(${f}, ${o}, ${size}B)`;
        const block = fillBlock(rng, size);
        doInsert(f, o, block, block);
      } else if (r < 68) {
        const size = sizes();
        what = `admits(${f}, ${o}, ${size})`;
        assert.equal(cache.admits(f, o, size), ref.admits(f, o, size), 'admits differs');
        checkLiveViews();
      } else if (r < 80) {
        // The table reader's miss path: admits, then insert when admitted (same size).
        const size = sizes();
        what = `admits+insert(${f}, ${o}, ${size}B)`;
        const a = cache.admits(f, o, size);
        assert.equal(a, ref.admits(f, o, size), 'admits differs');
        if (a) {
          const block = fillBlock(rng, size);
          doInsert(f, o, block, block);
        }
      } else if (r < 86) {
        // Re-insert a block the cache handed out (a view of its own slot), at this or another key.
        const f2 = rng.nextInt(3) === 0 ? f : pickFile();
        const o2 = rng.nextInt(3) === 0 ? o : pickOffset();
        what = `get(${f}, ${o}) then insert(${f2}, ${o2}, that view)`;
        const { got, exp } = compareGet(f, o);
        if (got !== undefined && exp !== undefined) {
          const sub = rng.nextInt(3);
          const a = sub === 0 || got.length < 2 ? 0 : 1 + rng.nextInt(got.length - 1);
          const b = sub === 1 || got.length < 2 ? got.length : a + rng.nextInt(got.length - a + 1);
          doInsert(f2, o2, got.subarray(a, b), exp.subarray(a, b));
        }
      } else if (r < 91) {
        const file = rng.nextInt(4) === 0 ? 1e6 + rng.nextInt(1000) : f;
        what = `evictFile(${file})`;
        checkLiveViews();
        liveViews = [];
        cache.evictFile(file);
        ref.evictFile(file);
        for (const k of [...model.keys()]) if (k.startsWith(`${file}/`)) model.delete(k);
      } else if (r < 93) {
        // Read back every key ever cached, in a random order (same order on both).
        what = 'get every modelled key';
        const keys = [...model.keys()];
        for (let i = keys.length - 1; i > 0; i--) {
          const j = rng.nextInt(i + 1);
          [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
        }
        for (const k of keys) {
          const [fs, os] = k.split('/') as [string, string];
          compareGet(Number(fs), Number(os));
        }
        checkLiveViews();
      } else {
        what = `get(${f}, ${o}) (stats)`;
        compareGet(f, o);
      }
      assert.deepEqual(cache.stats(), ref.stats(), 'stats differ');
    }
  } catch (e) {
    const msg = e instanceof Error ? e.stack ?? e.message : String(e);
    throw new Error(`differential failed: SEED=${seed} ${describe(cfg)} at op ${op}: ${what}\n${log.join('\n')}\n${msg}`, { cause: e });
  } finally {
    invariants.enabled = saved;
  }
}

/** A small random subset (with the edges mixed in) of numbers for file numbers or offsets. */
export function numberPool(rng: Random, n: number, edges: boolean, stride: number): number[] {
  const out = new Set<number>();
  const add = (x: number): void => {
    if (Number.isSafeInteger(x) && x >= 0 && out.size < n) out.add(x);
  };
  if (edges) for (const e of EDGE_NUMBERS) if (rng.nextInt(3) !== 0) add(e);
  let at = rng.nextInt(4) * stride;
  while (out.size < n) {
    const r = rng.nextInt(10);
    if (r < 6) {
      add(at);
      at += stride;
    } else if (r < 8) {
      add(Math.floor(rng.nextFloat() * 2 ** 21) * TWO32 + rng.nextUint32()); // anywhere below 2^53
    } else {
      add((EDGE_NUMBERS[rng.nextInt(EDGE_NUMBERS.length)] as number) - (r === 8 ? 0 : rng.nextInt(3)));
    }
  }
  return [...out];
}
