/**
 * Review: the word-wise (DataView) key comparisons and the searches built on them, against
 * Buffer.compare references, with keys chosen to hit the word/byte boundary cases: lengths that are
 * not multiples of 4, keys differing only in their last 1-3 bytes, prefixes of each other, bytes
 * >= 0x80 (a signed read would misorder them), keys longer than the 256-byte probe, 64 KiB keys.
 *   - compareBytesView / compareInternalKeyViews (inside larger buffers, at odd offsets);
 *   - Version.findFile (LevelBounds) against a linear scan;
 *   - MemTable (variable-length skiplist rows, insert hint) against a sorted model;
 *   - TableReader.seekGE (IndexArray.findGE) and iterators with seekGE/seekLE over tiny blocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  KIND_DELETE,
  KIND_SEEK,
  KIND_VALUE,
  MAX_SEQ,
  compareBytesView,
  compareInternalKeyViews,
  compareInternalKeys,
  makeInternalKey,
  trailerOf,
} from '../../src/base/internal-key.js';
import { viewOf } from '../../src/base/key-probe.js';
import { Version } from '../../src/version/version.js';
import { NUM_LEVELS, type FileMetadata } from '../../src/version/file-metadata.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { testSeed } from '../harness/seed.js';

const SEED = testSeed();
const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

const edgeByte = fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x61);
/** A base key: short with edge bytes, or long with a long shared prefix. */
const baseKey = fc.oneof(
  { weight: 6, arbitrary: fc.array(edgeByte, { minLength: 1, maxLength: 13 }).map((a) => Buffer.from(a)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 250, max: 530 }), fc.array(edgeByte, { minLength: 1, maxLength: 3 }))
      .map(([len, tail]) => Buffer.concat([Buffer.alloc(len - tail.length, 0x6b), Buffer.from(tail)])),
  },
);
/** Derived keys: a prefix, an extension, or a change in one of the last 3 bytes. */
function variants(k: Buffer, tweak: number, b: number): Buffer[] {
  const out = [k];
  if (k.length > 1) out.push(k.subarray(0, k.length - 1 - (tweak % Math.min(3, k.length - 1))));
  out.push(Buffer.concat([k, Buffer.from([b])]));
  const c = Buffer.from(k);
  c[c.length - 1 - (tweak % Math.min(3, c.length))] = b;
  out.push(c);
  return out;
}
const keySet = fc
  .array(fc.tuple(baseKey, fc.nat(2), edgeByte), { minLength: 1, maxLength: 25 })
  .map((xs) => xs.flatMap(([k, t, b]) => variants(k, t, b)));

function huge(last: number, len = 64 * 1024): Buffer {
  const b = Buffer.alloc(len, 0x6b);
  b[len - 1] = last;
  return b;
}

test('compareBytesView and compareInternalKeyViews agree with Buffer.compare at any offset', () => {
  fc.assert(
    fc.property(keySet, fc.nat(7), fc.nat(7), fc.nat(3), fc.nat(3), (keys, padA, padB, seqA, seqB) => {
      for (let i = 0; i + 1 < keys.length; i++) {
        const a = keys[i] as Buffer;
        const b = keys[i + 1] as Buffer;
        const ba = Buffer.concat([Buffer.alloc(padA, 0xee), a, Buffer.alloc(5, 0x11)]);
        const bb = Buffer.concat([Buffer.alloc(padB, 0x22), b, Buffer.alloc(2, 0xff)]);
        assert.equal(compareBytesView(viewOf(ba), padA, padA + a.length, viewOf(bb), padB, padB + b.length), sign(Buffer.compare(a, b)));
        const ia = makeInternalKey(a, seqA, KIND_VALUE);
        const ib = makeInternalKey(b, seqB, KIND_DELETE);
        const ca = Buffer.concat([Buffer.alloc(padA, 0xee), ia]);
        const cb = Buffer.concat([Buffer.alloc(padB, 0x22), ib]);
        assert.equal(
          compareInternalKeyViews(viewOf(ca), padA, padA + ia.length, viewOf(cb), padB, padB + ib.length),
          sign(compareInternalKeys(ia, ib)),
        );
      }
    }),
    { seed: SEED, numRuns: 300 },
  );
  // 64 KiB keys differing in the last byte, and one a prefix of the other.
  const big = [huge(0x80), huge(0x7f), huge(0x80, 64 * 1024 - 1), huge(0x6b).subarray(0, 64 * 1024 - 3), huge(0x6b)];
  for (const a of big) {
    for (const b of big) {
      assert.equal(compareBytesView(viewOf(a), 0, a.length, viewOf(b), 0, b.length), sign(Buffer.compare(a, b)));
    }
  }
});

function fileMetaFor(number: number, smallest: Buffer, largest: Buffer): FileMetadata {
  return {
    number,
    sizeBytes: 1000,
    smallest: makeInternalKey(smallest, 9, KIND_VALUE),
    largest: makeInternalKey(largest, 1, KIND_VALUE),
    smallestSeq: 1,
    largestSeq: 9,
    entryCount: 2,
  };
}

test('Version.findFile (packed level bounds) agrees with a linear scan for edge-shaped keys', () => {
  fc.assert(
    fc.property(keySet, keySet, fc.boolean(), (fileKeys, queries, withHuge) => {
      const all = [...fileKeys];
      if (withHuge) all.push(huge(0x80), huge(0x7f), huge(0x80, 64 * 1024 - 1), huge(0xff));
      const uniq = [...new Map(all.map((k) => [k.toString('hex'), k])).values()].sort(Buffer.compare);
      // Pair sorted distinct keys into disjoint files [k0,k1], [k2,k3], ... (some single-key files).
      const files: FileMetadata[] = [];
      let n = 1;
      for (let i = 0; i < uniq.length; ) {
        const single = (i + n) % 3 === 0 || i + 1 === uniq.length;
        const lo = uniq[i] as Buffer;
        const hi = single ? lo : (uniq[i + 1] as Buffer);
        files.push(fileMetaFor(n++, lo, hi));
        i += single ? 1 : 2;
      }
      const levels: FileMetadata[][] = Array.from({ length: NUM_LEVELS }, () => []);
      levels[2] = files;
      const v = new Version(levels);
      for (const q of [...queries, ...uniq, huge(0x80), huge(0x81, 300)]) {
        const expected = files.find(
          (f) => Buffer.compare(f.smallest.subarray(0, -8), q) <= 0 && Buffer.compare(f.largest.subarray(0, -8), q) >= 0,
        );
        assert.equal(v.findFile(2, q)?.number, expected?.number, `query ${q.length}B ..${q.subarray(-4).toString('hex')}`);
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
});

type MemEntry = { ikey: Buffer; value: Buffer };

test('MemTable agrees with a sorted model for edge-shaped keys (gets, seeks, both directions)', () => {
  fc.assert(
    fc.property(keySet, fc.array(fc.tuple(fc.nat(1000), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 200 }), fc.nat(), (keys, ops, seed) => {
      const m = new MemTable(seed);
      const model: MemEntry[] = [];
      let seq = 1;
      const sortedKeys = [...keys].sort(Buffer.compare);
      for (const [pick, del, run] of ops) {
        // "run": several keys in ascending order (the insert hint path), else a random key
        const ks = run ? sortedKeys.slice(pick % sortedKeys.length, (pick % sortedKeys.length) + 5) : [keys[pick % keys.length] as Buffer];
        for (const k of ks) {
          const kind = del ? KIND_DELETE : KIND_VALUE;
          const value = del ? Buffer.alloc(0) : Buffer.from(`v${seq}`);
          m.add(seq, kind, k, value);
          model.push({ ikey: makeInternalKey(k, seq, kind), value });
          seq++;
        }
      }
      model.sort((a, b) => compareInternalKeys(a.ikey, b.ikey));
      // forward and backward order
      const it = m.iterator();
      const fwd: string[] = [];
      for (it.first(); it.valid(); it.next()) fwd.push(it.key().toString('hex'));
      assert.deepEqual(fwd, model.map((e) => e.ikey.toString('hex')));
      const back: string[] = [];
      for (it.last(); it.valid(); it.prev()) back.push(it.key().toString('hex'));
      assert.deepEqual(back, model.map((e) => e.ikey.toString('hex')).reverse());
      // point reads at a few sequences, seekGE / seekLE
      for (const k of [...keys, huge(0x80, 700)]) {
        for (const at of [0, Math.floor(seq / 2), seq]) {
          const visible = model.find((e) => Buffer.compare(e.ikey.subarray(0, -8), k) === 0 && Math.floor(trailerOf(e.ikey, e.ikey.length) / 256) <= at);
          const r = m.get(k, at);
          if (visible === undefined) assert.equal(r.found, false);
          else if (trailerOf(visible.ikey, visible.ikey.length) % 256 === KIND_DELETE) assert.deepEqual(r, { found: true, deleted: true });
          else assert.ok(r.found && !r.deleted && r.value.equals(visible.value));
        }
        const target = makeInternalKey(k, Math.floor(seq / 2), KIND_SEEK);
        const ge = model.find((e) => compareInternalKeys(e.ikey, target) >= 0);
        it.seekGE(target);
        assert.equal(it.valid() ? it.key().toString('hex') : undefined, ge?.ikey.toString('hex'));
        const le = [...model].reverse().find((e) => compareInternalKeys(e.ikey, target) <= 0);
        it.seekLE(target);
        assert.equal(it.valid() ? it.key().toString('hex') : undefined, le?.ikey.toString('hex'));
      }
    }),
    { seed: SEED, numRuns: 120 },
  );
});

test('TableReader.seekGE and table iterators agree with a sorted model for edge-shaped keys and tiny blocks', () => {
  fc.assert(
    fc.property(
      keySet,
      fc.constantFrom(64, 128, 300, 4096),
      fc.constantFrom('none' as const, 'lz' as const),
      fc.constantFrom(0, 1, 700, 5000),
      fc.boolean(),
      (keys, blockSizeBytes, compression, cacheBytes, withHuge) => {
        const all = withHuge ? [...keys, huge(0x80), huge(0x7f, 64 * 1024 - 1)] : keys;
        const uniq = [...new Map(all.map((k) => [k.toString('hex'), k])).values()];
        const entries = uniq.flatMap((k, i) => [
          { ikey: makeInternalKey(k, 100 + i, KIND_VALUE), value: Buffer.alloc(i % 7 === 0 ? 900 : 5, i & 0xff) },
          { ikey: makeInternalKey(k, 50 + i, i % 2 === 0 ? KIND_DELETE : KIND_VALUE), value: Buffer.alloc(i % 2 === 0 ? 0 : 3, 0xab) },
        ]);
        entries.sort((a, b) => compareInternalKeys(a.ikey, b.ikey));
        const file = new BufferFile();
        const b = new TableBuilder(file, { blockSizeBytes, bloomBitsPerKey: 10, compression });
        for (const e of entries) b.add(e.ikey, e.value);
        const info = b.finish();
        const cache = new BlockCache(cacheBytes, cacheBytes > 1000 ? 256 : 0);
        const r = TableReader.open(file, 7, info.fileSizeBytes, cache);
        const it1 = r.iterator();
        const it2 = r.iterator();
        try {
          for (const k of [...uniq, Buffer.from([0x00]), Buffer.from([0xff, 0xff])]) {
            for (const seq of [MAX_SEQ, 75, 0]) {
              const target = makeInternalKey(k, seq, KIND_SEEK);
              const ge = entries.find((e) => compareInternalKeys(e.ikey, target) >= 0);
              const got = r.get(target);
              assert.equal(got?.key.toString('hex'), ge?.ikey.toString('hex'), `seekGE ${k.length}B`);
              if (ge !== undefined) assert.ok(got?.value.equals(ge.value));
              // two iterators over the same table, moved alternately (each keeps its own block)
              it1.seekGE(target);
              const le = [...entries].reverse().find((e) => compareInternalKeys(e.ikey, target) <= 0);
              it2.seekLE(target);
              assert.equal(it1.valid() ? it1.key().toString('hex') : undefined, ge?.ikey.toString('hex'));
              assert.equal(it2.valid() ? it2.key().toString('hex') : undefined, le?.ikey.toString('hex'));
              if (it1.valid() && ge !== undefined) assert.ok(it1.value().equals(ge.value), 'it1 value');
              if (it2.valid() && le !== undefined) assert.ok(it2.value().equals(le.value), 'it2 value');
              if (it1.valid()) {
                const i = entries.indexOf(ge as (typeof entries)[number]);
                it1.next();
                r.get(makeInternalKey(uniq[0] as Buffer, MAX_SEQ, KIND_SEEK)); // another block read in between
                assert.equal(it1.valid() ? it1.key().toString('hex') : undefined, entries[i + 1]?.ikey.toString('hex'));
                if (it1.valid()) assert.ok(it1.value().equals((entries[i + 1] as (typeof entries)[number]).value), 'it1 next value');
              }
              if (it2.valid()) {
                const i = entries.indexOf(le as (typeof entries)[number]);
                it2.prev();
                assert.equal(it2.valid() ? it2.key().toString('hex') : undefined, entries[i - 1]?.ikey.toString('hex'));
                if (it2.valid()) assert.ok(it2.value().equals((entries[i - 1] as (typeof entries)[number]).value), 'it2 prev value');
              }
            }
          }
        } finally {
          it1.close();
          it2.close();
          r.close();
        }
      },
    ),
    { seed: SEED, numRuns: 80 },
  );
});
