/**
 * Review (session 13): the memtable key index (key-index.ts), built lazily after 256 list searches,
 * inserts linked in before a key's newest version (SkipList.linkBefore) and level-0 back links
 * (iterator prev). A seeded random workload against a sorted model interleaves, on one memtable:
 *   - adds (hot keys with dozens of versions, deletions, empty keys, keys > 64 bytes, keys that
 *     are prefixes of each other, keys whose full 32-bit bloomHash collides, bulk loads of fresh
 *     keys that overflow a small index);
 *   - point reads at the newest and at old snapshots, with and without the caller's hash;
 *   - newestSeq;
 *   - up to three live iterators stepped with first/last/next/prev/seekGE/seekLE while adds go on
 *     (each step is checked against the model as it is at that moment);
 *   - whole forward/backward walks and the sortedEntries walk (the flush's in-place reader).
 * Capacities: 0 (1024 slots: overflows), 64 KiB, 1 MiB, 16 MiB. Some runs start from a retired
 * memtable's buffers. Each run reports whether the index was built and whether it overflowed, and
 * the test asserts both cases were covered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemTable, type MemTableStorage } from '../../src/memtable/memtable.js';
import { NIL, firstSorted, nextSorted, sortedKeyLength, sortedKeyOffset, sortedValueLength } from '../../src/memtable/skiplist.js';
import { KIND_DELETE, KIND_VALUE, MAX_SEQ, compareInternalKeys, describeInternalKey, makeInternalKey } from '../../src/base/internal-key.js';
import type { InternalIterator } from '../../src/iter/internal-iterator.js';
import { bloomHash } from '../../src/sstable/bloom-filter.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { withSeed } from '../harness/seed.js';

invariants.enabled = true;

/** Pairs (and triples) of distinct keys with the same 32-bit bloomHash, found by brute force. */
function collidingGroups(): Buffer[][] {
  const seen = new Map<number, number>();
  const groups = new Map<number, Set<number>>();
  for (let i = 0; i < 1 << 18; i++) {
    const h = bloomHash(Buffer.from(`c${i}`));
    const j = seen.get(h);
    if (j === undefined) seen.set(h, i);
    else {
      const g = groups.get(h) ?? new Set([j]);
      g.add(i);
      groups.set(h, g);
    }
  }
  return [...groups.values()].map((g) => [...g].map((i) => Buffer.from(`c${i}`)));
}
const COLLIDING = collidingGroups();

function ok(cond: unknown, msg: string | (() => string)): void {
  if (!cond) assert.fail(typeof msg === 'string' ? msg : msg());
}
function eq(got: unknown, want: unknown, msg: string | (() => string) = ''): void {
  if (got !== want) assert.fail(`${typeof msg === 'string' ? msg : msg()}: got ${String(got)}, want ${String(want)}`);
}

interface Entry {
  ikey: Buffer;
  key: Buffer;
  seq: number;
  kind: number;
  value: Buffer;
}

function keyPool(rng: Random): Buffer[] {
  const pool: Buffer[] = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('ab'), Buffer.from('abc'), Buffer.from([0x61, 0]), Buffer.from([0x61, 0xff]), Buffer.from([0])];
  const long = Buffer.alloc(200, 0x6b);
  for (const n of [63, 64, 65, 66, 100, 199, 200]) pool.push(long.subarray(0, n));
  const l2 = Buffer.from(long.subarray(0, 130));
  l2[129] = 0x6c;
  pool.push(l2);
  for (const g of COLLIDING.slice(0, 4)) pool.push(...g);
  for (let i = 0; i < 30; i++) {
    const len = rng.nextInt(4) === 0 ? 60 + rng.nextInt(90) : rng.nextInt(10);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = rng.nextInt(4) === 0 ? rng.nextInt(256) : 0x61 + rng.nextInt(3);
    pool.push(b);
  }
  return pool;
}

class Model {
  readonly sorted: Entry[] = [];
  readonly versions = new Map<string, Entry[]>(); // newest first

  add(e: Entry): void {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareInternalKeys((this.sorted[mid] as Entry).ikey, e.ikey) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.sorted.splice(lo, 0, e);
    const k = e.key.toString('latin1');
    const v = this.versions.get(k) ?? [];
    v.unshift(e);
    this.versions.set(k, v);
  }

  /** Index of the first entry with ikey >= t (or > t when strict). */
  lowerBound(t: Buffer, strict: boolean): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareInternalKeys((this.sorted[mid] as Entry).ikey, t);
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  visible(key: Buffer, seq: number): Entry | undefined {
    return this.versions.get(key.toString('latin1'))?.find((e) => e.seq <= seq);
  }
}

interface Cursor {
  it: InternalIterator;
  /** The model entry it is at, or null (invalid). */
  at: Entry | null;
}

async function runOne(seed: number, run: number, stats: { built: number; overflowed: number; builtWithIterators: number }): Promise<void> {
  const rng = new Random(seed);
  const capacity = [0, 64 * 1024, 1 << 20, 16 << 20][rng.nextInt(4)] as number;
  let storage: MemTableStorage | null = null;
  if (rng.nextInt(3) === 0) {
    // Start on a retired memtable's buffers, whose index was built over other keys.
    const old = new MemTable(seed ^ 0x55, capacity);
    for (let i = 0; i < 600; i++) old.add(i + 1, KIND_VALUE, Buffer.from(`stale${i % 200}`), Buffer.from(`stale-value-${i}`));
    for (let i = 0; i < 400; i++) old.get(Buffer.from(`stale${i % 200}`), 10_000);
    old.retire((s) => {
      storage = s;
    });
  }
  const m = new MemTable(seed, capacity, storage);
  const model = new Model();
  const pool = keyPool(rng);
  const seqStart = rng.nextInt(4);
  let seq = seqStart === 0 ? 1 : seqStart === 1 ? MAX_SEQ - 200_000 : 1 + rng.nextInt(1_000_000);
  const firstSeq = seq;
  const cursors: Cursor[] = [];
  let fresh = 0;
  const label = (what: string): string => `run ${run} (capacity ${capacity}, seq ${seq}): ${what}`;

  const pickKey = (): Buffer => {
    const r = rng.nextInt(10);
    if (r < 4) return pool[rng.nextInt(6)] as Buffer; // hot: many versions
    return pool[rng.nextInt(pool.length)] as Buffer;
  };
  const add = (key: Buffer): void => {
    const kind = rng.nextInt(5) === 0 ? KIND_DELETE : KIND_VALUE;
    const vlen = rng.nextInt(6) === 0 ? 70 + rng.nextInt(100) : rng.nextInt(12);
    const value = kind === KIND_DELETE ? Buffer.alloc(0) : Buffer.concat([Buffer.from(`${seq}/${key.toString('hex')}/`), Buffer.alloc(vlen, seq & 0xff)]);
    m.add(seq, kind, key, value);
    model.add({ ikey: makeInternalKey(key, seq, kind), key, seq, kind, value });
    seq++;
  };
  const checkCursor = (c: Cursor, whatFn: () => string): void => {
    const what = { toString: whatFn };
    const at = c.at;
    if (at === null) {
      eq(c.it.valid(), false, () => label(`${what}: iterator valid at ${c.it.valid() ? describeInternalKey(c.it.key()) : ''}, model says end`));
      return;
    }
    ok(c.it.valid(), () => label(`${what}: iterator invalid, model at ${describeInternalKey(at.ikey)}`));
    const k = c.it.key();
    if (!k.equals(at.ikey)) assert.fail(label(`${what}: iterator at ${describeInternalKey(k)}, model at ${describeInternalKey(at.ikey)}`));
    ok(c.it.value().equals(at.value), () => label(`${what}: value at ${describeInternalKey(k)}`));
  };
  const randomTarget = (): Buffer => {
    const key = rng.nextInt(8) === 0 ? Buffer.from(`absent${rng.nextInt(5)}`) : pickKey();
    const r = rng.nextInt(4);
    const s = r === 0 ? MAX_SEQ : r === 1 ? seq : r === 2 ? firstSeq + rng.nextInt(Math.max(1, seq - firstSeq)) : 0;
    return makeInternalKey(key, s, rng.nextInt(2) === 0 ? KIND_VALUE : KIND_DELETE);
  };
  const stepCursor = (c: Cursor): void => {
    const s = model.sorted;
    const op = rng.nextInt(c.at === null ? 4 : 10);
    if (op === 0) {
      c.it.first();
      c.at = s[0] ?? null;
      checkCursor(c, () => 'first');
    } else if (op === 1) {
      c.it.last();
      c.at = s[s.length - 1] ?? null;
      checkCursor(c, () => 'last');
    } else if (op === 2) {
      const t = randomTarget();
      c.it.seekGE(t);
      c.at = s[model.lowerBound(t, false)] ?? null;
      checkCursor(c, () => `seekGE ${describeInternalKey(t)}`);
    } else if (op === 3) {
      const t = randomTarget();
      c.it.seekLE(t);
      c.at = s[model.lowerBound(t, true) - 1] ?? null;
      checkCursor(c, () => `seekLE ${describeInternalKey(t)}`);
    } else if (op < 7) {
      const from = c.at as Entry;
      c.it.next();
      c.at = s[model.lowerBound(from.ikey, true)] ?? null;
      checkCursor(c, () => `next from ${describeInternalKey(from.ikey)}`);
    } else {
      const from = c.at as Entry;
      c.it.prev();
      c.at = s[model.lowerBound(from.ikey, false) - 1] ?? null;
      checkCursor(c, () => `prev from ${describeInternalKey(from.ikey)}`);
    }
  };
  const checkGet = (key: Buffer, at: number): void => {
    const want = model.visible(key, at);
    const r = rng.nextInt(2) === 0 ? m.get(key, at, bloomHash(key)) : m.get(key, at);
    const what = (): string => label(`get ${key.toString('hex')} at ${at}`);
    if (want === undefined) eq(r.found, false, what);
    else if (want.kind === KIND_DELETE) {
      if (!(r.found && r.deleted)) assert.fail(`${what()}: ${JSON.stringify(r)}, want deleted (seq ${want.seq})`);
    } else {
      if (!r.found || r.deleted) {
        assert.fail(`${what()}: ${JSON.stringify(r)}, want seq ${want.seq}`);
        return;
      }
      if (!r.value.equals(want.value)) assert.fail(`${what()}: value ${r.value.toString('latin1').slice(0, 40)}, want ${want.value.toString('latin1').slice(0, 40)}`);
    }
  };
  const readOnce = (): void => {
    const key = rng.nextInt(10) === 0 ? Buffer.from(`absent${rng.nextInt(5)}`) : pickKey();
    const vs = model.versions.get(key.toString('latin1')) ?? [];
    const r = rng.nextInt(6);
    let at: number;
    if (r === 0 || vs.length === 0) at = seq;
    else if (r === 1) at = MAX_SEQ;
    else if (r === 2) at = (vs[rng.nextInt(vs.length)] as Entry).seq;
    else if (r === 3) at = (vs[rng.nextInt(vs.length)] as Entry).seq - 1;
    else if (r === 4) at = (vs[Math.min(vs.length - 1, 7 + rng.nextInt(4))] as Entry).seq; // around the walk limit
    else at = firstSeq - 1 + rng.nextInt(seq - firstSeq + 1);
    if (at < 0) at = 0;
    checkGet(key, at);
    if (rng.nextInt(3) === 0) {
      const want = vs[0]?.seq ?? -1;
      const got = rng.nextInt(2) === 0 ? m.newestSeq(key) : m.newestSeq(key, bloomHash(key));
      eq(got, want, () => label(`newestSeq ${key.toString('hex')}`));
    }
  };
  const fullCheck = (what: string): void => {
    const it = m.iterator();
    let i = 0;
    for (it.first(); it.valid(); it.next(), i++) {
      const e = model.sorted[i];
      if (e === undefined || !it.key().equals(e.ikey)) assert.fail(label(`${what}: forward entry ${i}: ${describeInternalKey(it.key())} vs ${e ? describeInternalKey(e.ikey) : 'end'}`));
      ok(it.value().equals(e.value), () => label(`${what}: forward value ${i}`));
    }
    eq(i, model.sorted.length, () => label(`${what}: forward count`));
    i = model.sorted.length - 1;
    for (it.last(); it.valid(); it.prev(), i--) {
      const e = model.sorted[i];
      if (e === undefined || !it.key().equals(e.ikey)) assert.fail(label(`${what}: backward entry ${i}: ${describeInternalKey(it.key())} vs ${e ? describeInternalKey(e.ikey) : 'start'}`));
    }
    eq(i, -1, () => label(`${what}: backward count`));
    it.close();
    const se = m.sortedEntries();
    eq(se.count, model.sorted.length, () => label(`${what}: sortedEntries count`));
    const bytes = Buffer.from(se.bytes.buffer, se.bytes.byteOffset, se.bytes.byteLength);
    i = 0;
    for (let x = firstSorted(se); x !== NIL; x = nextSorted(se, x), i++) {
      const off = sortedKeyOffset(se, x);
      const kend = off + sortedKeyLength(se, x);
      const e = model.sorted[i] as Entry;
      ok(bytes.subarray(off, kend).equals(e.ikey), () => label(`${what}: sortedEntries key ${i}`));
      ok(bytes.subarray(kend, kend + sortedValueLength(se, x)).equals(e.value), () => label(`${what}: sortedEntries value ${i}`));
    }
    eq(i, model.sorted.length, () => label(`${what}: sortedEntries walk length`));
    eq(m.entryCount, model.sorted.length);
  };

  const ops = 1200 + rng.nextInt(1800);
  // Reads come in bursts so that the index is built at a random point of the run (or never).
  const readBias = rng.nextInt(4);
  for (let op = 0; op < ops; op++) {
    const a = rng.nextInt(100);
    if (a < 35) add(pickKey());
    else if (a < 37) {
      // A burst of fresh keys (overflows the 1024-slot index of capacity 0).
      const n = 50 + rng.nextInt(300);
      for (let i = 0; i < n; i++) add(Buffer.from(`fresh${String(fresh++).padStart(6, '0')}`));
    } else if (a < 37 + 10 * readBias) readOnce();
    else if (a < 75) {
      if (cursors.length < 3 && rng.nextInt(4) === 0) cursors.push({ it: m.iterator(), at: null });
      else if (cursors.length > 0) {
        const c = cursors[rng.nextInt(cursors.length)] as Cursor;
        for (let i = 1 + rng.nextInt(5); i > 0; i--) stepCursor(c);
        if (rng.nextInt(15) === 0) {
          c.it.close();
          cursors.splice(cursors.indexOf(c), 1);
        }
      }
    } else if (a < 76 && rng.nextInt(4) === 0) fullCheck(`op ${op}`);
    else if (a < 80 && readBias > 0) {
      // A long read burst: crosses the 256-search threshold at once.
      for (let i = 0; i < 40; i++) readOnce();
    } else add(pickKey());
    // Every cursor still holds its place after inserts (its node's key never changes).
    for (const c of cursors) checkCursor(c, () => `after op ${op}`);
  }
  const priv = m as unknown as { index: { complete: boolean } | null };
  if (priv.index !== null) {
    stats.built++;
    if (!priv.index.complete) stats.overflowed++;
    if (cursors.length > 0) stats.builtWithIterators++;
  }
  // Force the index, then everything again: each key at each of its versions.
  for (let i = 0; i < 300; i++) readOnce();
  fullCheck('final');
  for (const [k, vs] of model.versions) {
    const key = Buffer.from(k, 'latin1');
    eq(m.newestSeq(key), (vs[0] as Entry).seq, () => label(`final newestSeq ${key.toString('hex')}`));
    for (const v of vs.slice(0, 20)) {
      checkGet(key, v.seq);
      checkGet(key, v.seq - 1);
    }
  }
  for (const c of cursors) c.it.close();
}

test('session13 memtable: random interleavings of adds, reads, live iterators against a model, across the index threshold', { timeout: 60_000 }, async (t) => {
  ok(COLLIDING.length >= 2, 'brute force found colliding keys');
  await withSeed('session13 memtable model', async (seed) => {
    const stats = { built: 0, overflowed: 0, builtWithIterators: 0 };
    const started = Date.now();
    let run = 0;
    for (; run < 400 && Date.now() - started < 12_000; run++) await runOne((seed + run * 0x9e3779b9) >>> 0, run, stats);
    t.diagnostic(`SEED=${seed}: ${run} runs, ${JSON.stringify(stats)}, ${COLLIDING.length} colliding groups`);
    ok(run >= 20, `only ${run} runs`);
    ok(stats.built > 0 && stats.overflowed > 0 && stats.built < run, `coverage: ${JSON.stringify(stats)} of ${run} runs`);
  });
});
