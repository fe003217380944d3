/**
 * MemTable against a sorted-array model: ascending runs (which take the insert hint), random keys,
 * many versions of one key; forward and backward iteration, seeks, and point reads at sequences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemTable, type MemTableStorage } from '../../src/memtable/memtable.js';
import { NIL, firstSorted, nextSorted, sortedKeyLength, sortedKeyOffset, sortedValueLength } from '../../src/memtable/skiplist.js';
import { KIND_DELETE, KIND_VALUE, compareInternalKeys, makeInternalKey } from '../../src/base/internal-key.js';
import { testSeed } from '../harness/seed.js';
import { bloomHash } from '../../src/sstable/bloom-filter.js';
import { invariants } from '../../src/util/assert.js';

// The skiplist checks that a version linked in by the key index sorts where it goes.
invariants.enabled = true;

type Entry = { key: Buffer; seq: number; kind: number; value: Buffer };

const opsArb = fc.array(
  fc.oneof(
    fc.record({ t: fc.constant('run' as const), start: fc.nat(2000), len: fc.integer({ min: 1, max: 80 }) }),
    fc.record({ t: fc.constant('random' as const), key: fc.nat(2500), del: fc.boolean() }),
  ),
  { maxLength: 60 },
);

test('memtable matches a sorted model (ascending runs, random keys, versions)', () => {
  fc.assert(
    fc.property(opsArb, fc.nat(), (ops, seed) => {
      const m = new MemTable(seed);
      const model: Entry[] = [];
      let seq = 1;
      const add = (k: number, kind: number): void => {
        const key = Buffer.from(String(k).padStart(6, '0'));
        const value = Buffer.from(`v${seq}`);
        m.add(seq, kind, key, kind === KIND_DELETE ? Buffer.alloc(0) : value);
        model.push({ key, seq, kind, value: kind === KIND_DELETE ? Buffer.alloc(0) : value });
        seq++;
      };
      for (const op of ops) {
        if (op.t === 'run') for (let i = 0; i < op.len; i++) add(op.start + i, KIND_VALUE);
        else add(op.key, op.del ? KIND_DELETE : KIND_VALUE);
      }
      const ikeys = model.map((e) => makeInternalKey(e.key, e.seq, e.kind));
      const order = ikeys.map((_, i) => i).sort((a, b) => compareInternalKeys(ikeys[a] as Buffer, ikeys[b] as Buffer));
      const it = m.iterator();
      const fwd: string[] = [];
      for (it.first(); it.valid(); it.next()) fwd.push(it.key().toString('hex'));
      assert.deepEqual(fwd, order.map((i) => (ikeys[i] as Buffer).toString('hex')));
      const back: string[] = [];
      for (it.last(); it.valid(); it.prev()) back.push(it.key().toString('hex'));
      assert.deepEqual(back, [...fwd].reverse());
      assert.equal(m.entryCount, model.length);
      // Point reads: newest version at or below a sequence.
      for (const probe of [1, Math.floor(seq / 2), seq]) {
        for (const e of model.slice(0, 50)) {
          const visible = model.filter((x) => x.key.equals(e.key) && x.seq <= probe).sort((a, b) => b.seq - a.seq)[0];
          const r = m.get(e.key, probe);
          if (visible === undefined) assert.equal(r.found, false);
          else if (visible.kind === KIND_DELETE) assert.deepEqual(r, { found: true, deleted: true });
          else assert.ok(r.found && !r.deleted && r.value.equals(visible.value));
          assert.equal(m.newestSeq(e.key), Math.max(...model.filter((x) => x.key.equals(e.key)).map((x) => x.seq)));
        }
      }
    }),
    { seed: testSeed(), numRuns: 150 },
  );
});

/** The entries of a sortedEntries() walk, as key=value hex strings. */
function listed(e: ReturnType<MemTable['sortedEntries']>): string[] {
  const out: string[] = [];
  const bytes = Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  for (let x = firstSorted(e); x !== NIL; x = nextSorted(e, x)) {
    const off = sortedKeyOffset(e, x);
    const keyEnd = off + sortedKeyLength(e, x);
    out.push(`${bytes.subarray(off, keyEnd).toString('hex')}=${bytes.subarray(keyEnd, keyEnd + sortedValueLength(e, x)).toString('hex')}`);
  }
  return out;
}

function contents(m: MemTable): string[] {
  const want: string[] = [];
  const it = m.iterator();
  for (it.first(); it.valid(); it.next()) want.push(`${it.key().toString('hex')}=${it.value().toString('hex')}`);
  it.close();
  return want;
}

test('sortedEntries walks every entry in iterator order, in shared memory', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(3000), fc.nat(40)), { minLength: 1, maxLength: 300 }), fc.nat(), fc.constantFrom(0, 100, 1 << 20), (puts, seed, capacity) => {
      const m = new MemTable(seed, capacity);
      puts.forEach(([k, vlen], i) => m.add(i + 1, KIND_VALUE, Buffer.from(`key${k}`), Buffer.alloc(vlen, i & 0xff)));
      const e = m.sortedEntries();
      assert.equal(e.count, puts.length);
      assert.ok(e.bytes.buffer instanceof SharedArrayBuffer && e.rows.buffer instanceof SharedArrayBuffer);
      assert.deepEqual(listed(e), contents(m));
    }),
    { seed: testSeed(), numRuns: 100 },
  );
});

test('a retired memtable hands its buffers on only after its last iterator closes, and the next memtable starts empty on them', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(3000), fc.nat(40)), { minLength: 1, maxLength: 200 }),
      fc.array(fc.tuple(fc.nat(3000), fc.nat(40)), { maxLength: 200 }),
      fc.nat(3),
      fc.nat(),
      (first, second, openIterators, seed) => {
        const capacity = 64 * 1024;
        const a = new MemTable(seed, capacity);
        first.forEach(([k, vlen], i) => a.add(i + 1, KIND_VALUE, Buffer.from(`key${k}`), Buffer.alloc(vlen, i & 0xff)));
        const before = contents(a);
        const its = Array.from({ length: openIterators }, () => a.iterator());
        for (const it of its) it.first();
        let spare: MemTableStorage | null = null;
        a.retire((s) => {
          spare = s;
        });
        // Open iterators keep reading the old entries, untouched.
        for (let i = 0; i < its.length; i++) {
          assert.equal(spare, null, 'buffers handed on while an iterator is open');
          const it = its[i] as ReturnType<MemTable['iterator']>;
          const seen: string[] = [];
          for (; it.valid(); it.next()) seen.push(`${it.key().toString('hex')}=${it.value().toString('hex')}`);
          assert.deepEqual(seen, before);
          it.close();
          it.close(); // twice is harmless
        }
        assert.notEqual(spare, null, 'buffers not handed on after the last iterator closed');
        const b = new MemTable(seed + 1, capacity, spare);
        assert.equal(b.entryCount, 0);
        assert.deepEqual(contents(b), []);
        const model = new MemTable(seed + 1, capacity);
        second.forEach(([k, vlen], i) => {
          for (const m of [b, model]) m.add(i + 1, KIND_VALUE, Buffer.from(`key${k}`), Buffer.alloc(vlen, (i * 7) & 0xff));
        });
        assert.deepEqual(contents(b), contents(model));
        for (const [k] of first) {
          const key = Buffer.from(`key${k}`);
          assert.deepEqual(b.get(key, 1_000_000, bloomHash(key)), model.get(key, 1_000_000, bloomHash(key)));
        }
      },
    ),
    { seed: testSeed(), numRuns: 100 },
  );
});

test('the memtable filter: every written key passes, most others are turned away, get with a hash agrees', () => {
  const seed = testSeed();
  const rnd = fc.sample(fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), { minLength: 2000, maxLength: 2000 }), { seed, numRuns: 1 })[0] as Uint8Array[];
  // A small capacity (the filter's minimum size) with many keys: a loaded filter, the hard case.
  const mem = new MemTable(seed, 64 * 1024);
  const written = new Set<string>();
  rnd.forEach((bytes, i) => {
    const key = Buffer.from(bytes);
    if (i % 2 === 0) {
      mem.add(i + 1, i % 6 === 0 ? KIND_DELETE : KIND_VALUE, key, Buffer.from(`v${i}`));
      written.add(key.toString('latin1'));
    }
  });
  let passed = 0;
  let absent = 0;
  for (const bytes of rnd) {
    const key = Buffer.from(bytes);
    const hash = bloomHash(key);
    const withHash = mem.get(key, 1_000_000, hash);
    const without = mem.get(key, 1_000_000);
    assert.deepEqual(withHash, without, `SEED=${seed} key ${key.toString('hex')}`);
    if (written.has(key.toString('latin1'))) {
      assert.ok(mem.mayContainHash(hash), `SEED=${seed}: written key ${key.toString('hex')} turned away`);
      assert.ok(withHash.found, `SEED=${seed}: written key ${key.toString('hex')} not found`);
      assert.ok(mem.newestSeq(key) > 0);
    } else {
      absent++;
      if (mem.mayContainHash(hash)) passed++;
      assert.equal(mem.newestSeq(key), -1);
    }
  }
  // 1000 keys in a 32 Kibit filter (~32 bits per key): false positives stay far below 5%.
  assert.ok(absent > 0 && passed / absent < 0.05, `SEED=${seed}: ${passed} of ${absent} absent keys passed the filter`);
});

test('key index: reads of keys with many versions at every snapshot, before and after the index is built, complete and overflowing', () => {
  for (const capacity of [1 << 20, 0]) {
    // capacity 0: the smallest index (1024 slots, 768 keys): 2000 keys overflow it.
    const m = new MemTable(11, capacity);
    const model = new Map<string, { seq: number; kind: number; value: string }[]>();
    let seq = 1;
    const rng = (x: number): number => (Math.imul(x, 0x9e3779b1) >>> 0) % 2000;
    const write = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        const k = String(i < 2000 ? i : rng(i) % (i % 3 === 0 ? 5 : 2000)).padStart(6, '0');
        const kind = i % 11 === 0 ? KIND_DELETE : KIND_VALUE;
        const value = kind === KIND_DELETE ? '' : `v${seq}`;
        m.add(seq, kind, Buffer.from(k), Buffer.from(value));
        const versions = model.get(k) ?? [];
        versions.unshift({ seq, kind, value });
        model.set(k, versions);
        seq++;
      }
    };
    const check = (phase: string): void => {
      for (const [k, versions] of model) {
        const key = Buffer.from(k);
        const what = `${phase}, capacity ${capacity}, key ${k}`;
        assert.equal(m.newestSeq(key), (versions[0] as { seq: number }).seq, `${what}: newestSeq`);
        // Snapshots at, between and before versions; hot keys (0-4) have thousands of versions.
        const probes = [seq, ...versions.slice(0, 12).map((v) => v.seq), ...versions.slice(0, 12).map((v) => v.seq - 1), 1];
        for (const at of probes) {
          const visible = versions.find((v) => v.seq <= at);
          const r = m.get(key, at, bloomHash(key));
          if (visible === undefined) assert.equal(r.found, false, `${what} at ${at}`);
          else if (visible.kind === KIND_DELETE) assert.deepEqual(r, { found: true, deleted: true }, `${what} at ${at}`);
          else assert.ok(r.found && !r.deleted && r.value.toString() === visible.value, `${what} at ${at}`);
        }
      }
      for (const absent of ['zzz', '002000', '']) assert.equal(m.get(Buffer.from(absent), seq).found, false, `${phase}: absent`);
      // Backward iteration walks the level-0 back links that inserts through the index maintain.
      const it = m.iterator();
      let n = 0;
      for (it.last(); it.valid(); it.prev()) n++;
      it.close();
      assert.equal(n, seq - 1, `${phase}: backward iteration sees every entry`);
    };
    write(0, 6000);
    check('reads before the index (they build it)');
    write(6000, 12_000); // inserts of known keys now link in through the index
    check('after inserts through the index');
  }
});

test('key index: the build walks the list a few nodes per read or insert, never all at once; answers stay exact', () => {
  const m = new MemTable(5, 4 << 20);
  const n = 20_000;
  for (let i = 0; i < n; i++) m.add(i + 1, KIND_VALUE, Buffer.from(`key${String(i).padStart(6, '0')}`), Buffer.from(`v${i}`));
  const priv = m as unknown as { index: unknown; buildCursor: number };
  let i = 0;
  const readNext = (): void => {
    const k = (i * 7919) % n;
    const r = m.get(Buffer.from(`key${String(k).padStart(6, '0')}`), n + 1);
    assert.ok(r.found && !r.deleted && r.value.toString() === `v${k}`, `read ${i}: key ${k}`);
    i++;
  };
  while (priv.index === null) readNext();
  assert.notEqual(priv.buildCursor, NIL, 'the build has only begun at the read that started it');
  let reads = 0;
  while (priv.buildCursor !== NIL) {
    readNext();
    reads++;
    if (reads % 50 === 0) m.add(n + reads, KIND_VALUE, Buffer.from(`key${String(reads).padStart(6, '0')}`), Buffer.from(`w${reads}`));
  }
  assert.ok(reads > 100, `the build took ${reads} reads (64 nodes each)`);
  for (let r = 50; r <= reads; r += 50) {
    const got = m.get(Buffer.from(`key${String(r).padStart(6, '0')}`), n + reads + 1);
    assert.ok(got.found && !got.deleted && got.value.toString() === `w${r}`, `key ${r} written during the build`);
  }
});
