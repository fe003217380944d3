/**
 * Review (session 13): targeted cases of the memtable key index.
 *   - the build threshold: answers identical 255 searches in, at the 256th and after, with adds of
 *     the same keys in between (the 256th search builds, the next add links in through it);
 *   - which reads count (a key the filter turns away does not; get without a hash does);
 *   - an index full at build time (capacity 0: 768 keys) and after it;
 *   - keys whose full 32-bit bloomHash collides, on one probe chain, many versions each;
 *   - a retired memtable (iterators still open) never builds an index; the next memtable on its
 *     buffers (and on the buffers of one that had a full index) answers nothing of the old
 *     contents, also through its own index; buffers of another capacity are not taken;
 *   - a version walk longer than VERSION_WALK_MAX falls back to the list search.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemTable, type MemTableStorage } from '../../src/memtable/memtable.js';
import { KIND_DELETE, KIND_VALUE, MAX_SEQ, compareInternalKeys, makeInternalKey } from '../../src/base/internal-key.js';
import { bloomHash } from '../../src/sstable/bloom-filter.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { withSeed } from '../harness/seed.js';

invariants.enabled = true;

interface Priv {
  index: { complete: boolean } | null;
  searches: number;
  spareIndex: { nodes: Int32Array } | null;
}
const priv = (m: MemTable): Priv => m as unknown as Priv;

interface V {
  seq: number;
  kind: number;
  value: Buffer;
}

/** A memtable with its model (versions newest first per key). */
class Checked {
  readonly versions = new Map<string, V[]>();
  seq: number;
  constructor(
    readonly m: MemTable,
    firstSeq = 1,
  ) {
    this.seq = firstSeq;
  }
  add(key: Buffer, kind = KIND_VALUE): void {
    const value = kind === KIND_DELETE ? Buffer.alloc(0) : Buffer.from(`${key.toString('hex')}@${this.seq}`);
    this.m.add(this.seq, kind, key, value);
    const vs = this.versions.get(key.toString('latin1')) ?? [];
    vs.unshift({ seq: this.seq, kind, value });
    this.versions.set(key.toString('latin1'), vs);
    this.seq++;
  }
  /** Checks get at every version boundary and newestSeq of every key (does not count searches if `quiet`). */
  checkAll(what: string, probesPerKey = Infinity): void {
    for (const [k, vs] of this.versions) {
      const key = Buffer.from(k, 'latin1');
      assert.equal(this.m.newestSeq(key), (vs[0] as V).seq, `${what}: newestSeq ${key.toString('hex')}`);
      const probes = [MAX_SEQ, this.seq];
      for (const v of vs.slice(0, probesPerKey)) probes.push(v.seq, v.seq - 1);
      for (const at of probes) this.checkGet(key, at, what);
    }
    const it = this.m.iterator();
    const fwd: Buffer[] = [];
    for (it.first(); it.valid(); it.next()) fwd.push(Buffer.from(it.key()));
    const back: Buffer[] = [];
    for (it.last(); it.valid(); it.prev()) back.push(Buffer.from(it.key()));
    it.close();
    const want: Buffer[] = [];
    for (const [k, vs] of this.versions) for (const v of vs) want.push(makeInternalKey(Buffer.from(k, 'latin1'), v.seq, v.kind));
    want.sort(compareInternalKeys);
    assert.equal(fwd.length, want.length, `${what}: forward count`);
    for (let i = 0; i < want.length; i++) assert.ok((fwd[i] as Buffer).equals(want[i] as Buffer), `${what}: forward entry ${i}`);
    assert.deepEqual(back.map((b) => b.toString('hex')), want.map((b) => b.toString('hex')).reverse(), `${what}: backward`);
  }
  checkGet(key: Buffer, at: number, what: string, hash = bloomHash(key)): void {
    const want = this.versions.get(key.toString('latin1'))?.find((v) => v.seq <= at);
    const r = this.m.get(key, at, hash);
    const msg = `${what}: get ${key.toString('hex')} at ${at}`;
    if (want === undefined) assert.deepEqual(r, { found: false }, msg);
    else if (want.kind === KIND_DELETE) assert.deepEqual(r, { found: true, deleted: true }, msg);
    else assert.ok(r.found && !r.deleted && r.value.equals(want.value), `${msg}: ${JSON.stringify(r)} want seq ${want.seq}`);
  }
}

test('session13 threshold: answers agree 255 searches in, at the 256th and after; the next add links in through the new index', () => {
  for (const capacity of [0, 1 << 20]) {
    const c = new Checked(new MemTable(3, capacity));
    const hot = [Buffer.alloc(0), Buffer.from('k'), Buffer.from('k\0'), Buffer.alloc(90, 0x41), Buffer.alloc(91, 0x41)];
    for (let round = 0; round < 12; round++) for (const k of hot) c.add(k, round % 5 === 4 ? KIND_DELETE : KIND_VALUE);
    // Reads of keys never written, turned away by the filter, do not count (hash passed).
    for (let i = 0; i < 500; i++) {
      const absent = Buffer.from(`absent-${i}`);
      const h = bloomHash(absent);
      if (c.m.mayContainHash(h)) continue;
      assert.equal(c.m.get(absent, MAX_SEQ, h).found, false);
    }
    assert.equal(priv(c.m).searches, 0, 'filtered-out reads do not count');
    // 255 counted searches, each correct, with adds of the same keys between them.
    let n = 0;
    while (priv(c.m).searches < 255) {
      const k = hot[n % hot.length] as Buffer;
      c.checkGet(k, n % 3 === 0 ? MAX_SEQ : c.seq - 1 - (n % 40), 'before');
      if (n % 17 === 0) c.add(k);
      n++;
    }
    assert.equal(priv(c.m).index, null, 'no index before the 256th search');
    // The 256th: a read of an old version (a walk down from the newest node).
    c.checkGet(hot[1] as Buffer, 5, 'at the 256th search');
    assert.notEqual(priv(c.m).index, null, 'index built at the 256th search');
    // Adds of indexed keys link in before their newest version (three in four).
    for (let round = 0; round < 30; round++) for (const k of hot) c.add(k, round % 7 === 6 ? KIND_DELETE : KIND_VALUE);
    c.add(Buffer.from('new-after-index'));
    c.checkAll(`after, capacity ${capacity}`);
  }
});

test('session13 threshold: get without a hash and newestSeq count; a memtable read only through misses still builds', () => {
  const c = new Checked(new MemTable(5, 0));
  c.add(Buffer.from('x'));
  // get without a hash skips the filter: reads of absent keys count (and must still miss).
  for (let i = 0; i < 256; i++) assert.equal(c.m.get(Buffer.from(`nope${i}`), MAX_SEQ).found, false);
  assert.notEqual(priv(c.m).index, null);
  assert.equal(priv(c.m).index?.complete, true);
  for (let i = 0; i < 50; i++) assert.equal(c.m.get(Buffer.from(`nope${i}`), MAX_SEQ).found, false, 'absent key via complete index');
  for (let i = 0; i < 20; i++) c.add(Buffer.from('x'));
  c.checkAll('x');
  const d = new Checked(new MemTable(6, 0));
  d.add(Buffer.from('y'));
  for (let i = 0; i < 256; i++) assert.equal(d.m.newestSeq(Buffer.from('y')), 1);
  assert.notEqual(priv(d.m).index, null, 'newestSeq counts');
});

test('session13 threshold: an index full at build (768 keys of 1024 slots) and keys added after it', async () => {
  await withSeed('session13 full index', async (seed) => {
    const rng = new Random(seed);
    const c = new Checked(new MemTable(seed, 0));
    const keys: Buffer[] = [];
    for (let i = 0; i < 1500; i++) keys.push(Buffer.from(`key${String(rng.nextInt(1_000_000)).padStart(7, '0')}-${i}`));
    for (const k of keys) c.add(k);
    for (let i = 0; i < 3000; i++) c.add(keys[rng.nextInt(40)] as Buffer, rng.nextInt(6) === 0 ? KIND_DELETE : KIND_VALUE);
    for (let i = 0; i < 256; i++) c.checkGet(keys[rng.nextInt(keys.length)] as Buffer, c.seq, `SEED=${seed} build`);
    assert.ok(priv(c.m).index !== null, 'the 256th search starts the index');
    // Keys in and out of the index, both updated and read at old snapshots. (The build walks the
    // list 64 nodes per read or insert, so these also run while it is under way.)
    for (let i = 0; i < 4000; i++) {
      const k = keys[rng.nextInt(4) === 0 ? rng.nextInt(40) : rng.nextInt(keys.length)] as Buffer;
      c.add(k, rng.nextInt(6) === 0 ? KIND_DELETE : KIND_VALUE);
      if (i % 3 === 0) c.checkGet(k, c.seq - 1 - rng.nextInt(200), `SEED=${seed} mixed`);
    }
    assert.equal(priv(c.m).index?.complete, false, 'overflowed');
    for (let i = 0; i < 300; i++) c.add(Buffer.from(`late${i}`));
    c.checkAll(`SEED=${seed} full index`, 12);
  });
});

function collisions(want: number): Buffer[][] {
  const seen = new Map<number, number>();
  const out = new Map<number, Buffer[]>();
  for (let i = 0; out.size < want && i < 1 << 22; i++) {
    const b = Buffer.from(`x${i}`);
    const h = bloomHash(b);
    const j = seen.get(h);
    if (j === undefined) seen.set(h, i);
    else out.set(h, [...(out.get(h) ?? [Buffer.from(`x${j}`)]), b]);
  }
  return [...out.values()];
}

test('session13 threshold: keys with equal 32-bit bloomHash (one probe chain), many versions each, before and after the index', () => {
  const groups = collisions(6);
  assert.ok(groups.length >= 6);
  for (const g of groups) assert.equal(new Set(g.map((k) => bloomHash(k))).size, 1);
  for (const capacity of [0, 64 * 1024]) {
    const c = new Checked(new MemTable(9, capacity));
    const all = groups.flat();
    // The second of each pair written first: the chain's order differs from the key order.
    for (let r = 0; r < 20; r++) for (const k of [...all].reverse()) c.add(k, (r + k.length) % 6 === 0 ? KIND_DELETE : KIND_VALUE);
    c.checkAll(`collisions before/at the build, capacity ${capacity}`);
    assert.notEqual(priv(c.m).index, null);
    for (let r = 0; r < 20; r++) for (const k of all) c.add(k, r % 5 === 0 ? KIND_DELETE : KIND_VALUE);
    c.checkAll(`collisions through the index, capacity ${capacity}`);
    // The pair partner of a written key, never written: same hash, must miss.
    const lone = collisions(8).slice(6).map((g) => g[0] as Buffer);
    for (const k of lone) assert.equal(c.m.get(k, MAX_SEQ, bloomHash(k)).found, false);
  }
});

test('session13 threshold: a retired memtable builds no index; the next ones on its buffers answer nothing of the old contents', async () => {
  await withSeed('session13 reuse', async (seed) => {
    const rng = new Random(seed);
    let storage: MemTableStorage | null = null;
    let prev: Checked | null = null;
    for (let gen = 0; gen < 12; gen++) {
      const capacity = gen === 7 ? 1 << 20 : 0; // one generation of another size: its arrays are not taken
      const c: Checked = new Checked(new MemTable(seed + gen, capacity, storage), 1 + gen * 100_000);
      storage = null;
      assert.equal(c.m.entryCount, 0);
      // Keys of this generation; some shared with the last one (other values, other seqs).
      const n = gen % 3 === 0 ? 1200 : 200 + rng.nextInt(300); // some generations overflow the index
      for (let i = 0; i < n; i++) c.add(Buffer.from(`g${rng.nextInt(2) === 0 ? gen : 'shared'}-${rng.nextInt(n)}`), rng.nextInt(8) === 0 ? KIND_DELETE : KIND_VALUE);
      for (let i = 0; i < 300; i++) c.add(Buffer.from(`hot${i % 5}`));
      // The old generation's keys: absent here, also once this memtable's index is built.
      if (prev !== null) {
        const old: string[] = [...prev.versions.keys()].filter((k) => !c.versions.has(k)).slice(0, 400);
        for (const pass of ['before the index', 'through the index']) {
          for (const k of old) {
            const key = Buffer.from(k, 'latin1');
            assert.deepEqual(c.m.get(key, MAX_SEQ), { found: false }, `SEED=${seed} gen ${gen} ${pass}: old key ${k}`);
            assert.equal(c.m.newestSeq(key), -1, `SEED=${seed} gen ${gen} ${pass}: old key ${k} newestSeq`);
          }
          for (let i = 0; priv(c.m).index === null && i < 300; i++) c.m.get(Buffer.from('hot1'), MAX_SEQ);
        }
        assert.notEqual(priv(c.m).index, null, 'the reads built the index');
      }
      c.checkAll(`SEED=${seed} gen ${gen}`, 10);
      // Retire with iterators open: reads of the retired memtable (still holding its buffers)
      // do not build an index, whatever the count.
      const its = Array.from({ length: rng.nextInt(3) }, () => c.m.iterator());
      const hadIndex = priv(c.m).index !== null;
      c.m.retire((s) => {
        storage = s;
      });
      if (its.length > 0) {
        assert.equal(storage, null);
        for (const it of its) it.first();
        if (!hadIndex) {
          for (let i = 0; i < 600; i++) c.checkGet(Buffer.from(`hot${i % 5}`), MAX_SEQ, `SEED=${seed} gen ${gen} retired`);
          assert.equal(priv(c.m).index, null, 'a retired memtable built an index');
        }
        for (const it of its) it.close();
      }
      assert.notEqual(storage, null);
      const st = storage as unknown as MemTableStorage;
      if (hadIndex) assert.notEqual(st.index, null, 'the index arrays are handed on');
      prev = c;
    }
  });
});

test('session13 threshold: spare index arrays of a never-indexed memtable pass through to the next', () => {
  const a = new MemTable(1, 0);
  a.add(1, KIND_VALUE, Buffer.from('a'), Buffer.from('1'));
  for (let i = 0; i < 300; i++) a.get(Buffer.from('a'), MAX_SEQ);
  let s: MemTableStorage | null = null;
  a.retire((x) => {
    s = x;
  });
  const arrays = (s as unknown as MemTableStorage).index;
  assert.ok(arrays !== null);
  // b never reads: its spare passes on to c, which builds its index on those very arrays.
  const b = new MemTable(2, 0, s);
  b.add(1, KIND_VALUE, Buffer.from('b'), Buffer.from('2'));
  s = null;
  b.retire((x) => {
    s = x;
  });
  assert.equal((s as unknown as MemTableStorage).index, arrays);
  const c = new Checked(new MemTable(3, 0, s));
  c.add(Buffer.from('c'));
  for (let i = 0; i < 300; i++) {
    assert.equal(c.m.get(Buffer.from('a'), MAX_SEQ).found, false);
    assert.equal(c.m.get(Buffer.from('b'), MAX_SEQ).found, false);
  }
  assert.equal(priv(c.m).spareIndex, null);
  c.checkAll('c');
});

test('session13 threshold: version walks past VERSION_WALK_MAX (8) fall back to the list, at every depth', () => {
  const c = new Checked(new MemTable(12, 0));
  const keys = [Buffer.from('a'), Buffer.from('b'), Buffer.from('ba')];
  for (let i = 0; i < 40; i++) for (const k of keys) c.add(k, i % 9 === 3 ? KIND_DELETE : KIND_VALUE);
  for (let i = 0; i < 300; i++) c.m.newestSeq(Buffer.from('b'));
  assert.notEqual(priv(c.m).index, null);
  for (const k of keys) {
    const vs = c.versions.get(k.toString('latin1')) as V[];
    for (let d = 0; d < vs.length; d++) {
      c.checkGet(k, (vs[d] as V).seq, `depth ${d}`);
      c.checkGet(k, (vs[d] as V).seq - 1, `depth ${d} - 1`);
    }
  }
  c.checkGet(Buffer.from('b'), 0, 'before every version');
});

test('session13 threshold: iterators parked on a key\'s newest version and on its predecessor see a version linked in between', () => {
  for (let seed = 0; seed < 40; seed++) {
    const m = new MemTable(seed, 0);
    let seq = 1;
    const keys = ['a', 'b', 'c'].map((k) => Buffer.from(k));
    for (const k of keys) m.add(seq++, KIND_VALUE, k, Buffer.from(`${k}${seq}`));
    for (let i = 0; i < 256; i++) m.get(keys[1] as Buffer, MAX_SEQ);
    assert.notEqual(priv(m).index, null);
    for (let round = 0; round < 8; round++) {
      const atNewest = m.iterator();
      atNewest.seekGE(makeInternalKey(keys[1] as Buffer, MAX_SEQ, KIND_VALUE));
      const atPrev = m.iterator();
      atPrev.seekLE(makeInternalKey(keys[0] as Buffer, 0, KIND_DELETE));
      const oldNewest = Buffer.from(atNewest.key());
      const s = seq++;
      m.add(s, KIND_VALUE, keys[1] as Buffer, Buffer.from(`b${s}`));
      const added = makeInternalKey(keys[1] as Buffer, s, KIND_VALUE);
      atPrev.next();
      assert.ok(atPrev.valid() && atPrev.key().equals(added), `seed ${seed} round ${round}: next from the predecessor`);
      atPrev.prev();
      assert.ok(atPrev.valid() && atPrev.key().subarray(0, 1).toString() === 'a', `seed ${seed} round ${round}: back to the predecessor`);
      assert.ok(atNewest.key().equals(oldNewest));
      atNewest.prev();
      assert.ok(atNewest.valid() && atNewest.key().equals(added), `seed ${seed} round ${round}: prev from the old newest`);
      atNewest.next();
      assert.ok(atNewest.key().equals(oldNewest), `seed ${seed} round ${round}: next back`);
      atNewest.close();
      atPrev.close();
      assert.equal(m.newestSeq(keys[1] as Buffer), s);
    }
  }
});
