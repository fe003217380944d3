import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { isLightningError } from '../../src/base/errors.js';
import { Random } from '../../src/util/random.js';
import { compressBlock, lzCompressedBytesLimit, LzPrefixDecoder, lzUncompressedLength } from '../../src/sstable/lz-codec.js';
import { entryArb, ikey, ikeyArb, lowerBound, SEED, sortedUnique, type Entry } from './model.js';

function buildBlock(entries: Entry[], restartInterval: number): Buffer {
  const b = new BlockBuilder(restartInterval, 16);
  for (const e of entries) b.add(e.key, e.value);
  return Buffer.from(b.finish());
}

/** `good` with 1-3 random bytes set at random, and cut short one time in eight. */
function damaged(good: Buffer, rng: Random): Buffer {
  const bad = Buffer.from(good);
  const flips = 1 + rng.nextInt(3);
  for (let f = 0; f < flips; f++) bad[rng.nextInt(bad.length)] = rng.nextInt(256);
  return rng.nextInt(8) === 0 ? bad.subarray(0, rng.nextInt(bad.length)) : bad;
}

/** The search's answer as copies: [key, value], or null. */
function search(s: BlockPointSearch, block: Buffer, target: Buffer): [Buffer, Buffer] | null {
  if (!s.seekGE(block, target, 'test.sst', 0)) return null;
  return [Buffer.from(s.keyBuffer.subarray(0, s.keyLength)), Buffer.from(block.subarray(s.valueStart, s.valueEnd))];
}

test('point search finds what the model and BlockIterator.seekGE find (property)', () => {
  fc.assert(
    fc.property(
      fc.array(entryArb, { maxLength: 120 }),
      fc.constantFrom(1, 2, 3, 16),
      fc.array(ikeyArb, { maxLength: 40 }),
      (raw, restartInterval, targets) => {
        const model = sortedUnique(raw);
        const block = buildBlock(model, restartInterval);
        const it = new BlockIterator(block);
        const s = new BlockPointSearch();
        // Every stored key, and arbitrary keys between them.
        for (const target of [...model.map((e) => e.key), ...targets]) {
          const i = lowerBound(model, target);
          const got = search(s, block, target);
          it.seekGE(target);
          if (i === model.length) {
            assert.equal(got, null);
            assert.equal(it.valid(), false);
            continue;
          }
          const want = model[i] as Entry;
          assert.ok(got !== null, 'found an entry');
          assert.ok(got[0].equals(want.key), 'key');
          assert.ok(got[1].equals(want.value), 'value');
          assert.ok(it.valid() && it.key().equals(got[0]), 'agrees with the iterator');
        }
        it.close();
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('snapshot seeks land on the newest visible version; the key buffer grows for long keys', () => {
  const model: Entry[] = [];
  for (let seq = 90; seq >= 1; seq--) model.push({ key: ikey('k', seq), value: Buffer.from(`v${seq}`) });
  model.push({ key: ikey(Buffer.alloc(300, 0x7a), 4), value: Buffer.from('long') });
  const block = buildBlock(model, 16);
  const s = new BlockPointSearch();
  for (const seq of [95, 90, 50, 17, 1]) {
    const got = search(s, block, ikey('k', seq));
    assert.equal(got?.[1].toString(), `v${Math.min(seq, 90)}`, `snapshot ${seq}`);
  }
  assert.equal(search(s, block, ikey(Buffer.alloc(300, 0x7a), 9))?.[1].toString(), 'long');
  assert.equal(search(s, block, ikey('{', 1)), null, 'past the last key');
  assert.equal(search(s, buildBlock([], 16), ikey('a', 1)), null, 'empty block');
});

test('corrupted blocks: point search raises CORRUPTION or answers, never another error or a hang', () => {
  const rng = new Random(SEED);
  const model = sortedUnique(
    Array.from({ length: 60 }, (_, i) => ({ key: ikey(`user${i % 20}`, i), value: Buffer.alloc(i % 9, i) })),
  );
  const good = buildBlock(model, 4);
  const s = new BlockPointSearch();
  let corruptions = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const cut = damaged(good, rng);
    try {
      for (const target of [ikey('user1', 5), ikey('user19', 100), ikey('a', 1), ikey('zzz', 1)]) {
        if (s.seekGE(cut, target, 'fuzz.sst', 1000)) {
          assert.ok(s.valueStart <= s.valueEnd && s.valueEnd <= cut.length, `trial ${trial} (SEED=${SEED}): value inside the block`);
        }
      }
    } catch (e) {
      assert.ok(isLightningError(e, 'CORRUPTION'), `trial ${trial} (SEED=${SEED}): ${String(e)}`);
      assert.match((e as Error).message, /fuzz\.sst at offset \d+/);
      corruptions++;
    }
  }
  assert.ok(corruptions > 0, 'some corruption must be detected');
});

/** `block` compressed (null if it does not compress). */
function compressed(block: Buffer): Buffer | null {
  const out = Buffer.alloc(Math.max(0, lzCompressedBytesLimit(block.length)));
  const n = compressBlock(block, 0, block.length, out, 0);
  return n < 0 ? null : out.subarray(0, n);
}

/** seekGEInPrefix over `packed` (a compressed block): [key, value, bytes decoded], or null. */
function searchPrefix(s: BlockPointSearch, d: LzPrefixDecoder, packed: Buffer, target: Buffer, path = 'test.sst'): [Buffer, Buffer, number] | null {
  const out = Buffer.alloc(Math.max(1, 2 * packed.length * 255));
  const n = d.begin(packed, 0, packed.length);
  assert.ok(n >= 0, 'header decodes');
  d.into(out, 0);
  if (!s.seekGEInPrefix(d, out, target, path, 0)) return null;
  return [Buffer.from(s.keyBuffer.subarray(0, s.keyLength)), Buffer.from(out.subarray(s.valueStart, s.valueEnd)), d.decoded];
}

test('point search in a compressed block decodes only a prefix and finds what the full search finds (property)', () => {
  let partial = 0;
  fc.assert(
    fc.property(
      fc.array(entryArb, { maxLength: 80 }),
      fc.constantFrom(1, 4, 16),
      fc.array(ikeyArb, { maxLength: 20 }),
      (raw, restartInterval, targets) => {
        const model = sortedUnique(raw).map((e) => ({ key: e.key, value: Buffer.concat([e.value, Buffer.alloc(40, 0x61)]) }));
        const block = buildBlock(model, restartInterval);
        const packed = compressed(block);
        if (packed === null) return;
        const s = new BlockPointSearch();
        const d = new LzPrefixDecoder();
        for (const target of [...model.map((e) => e.key), ...targets]) {
          const want = search(s, block, target);
          const got = searchPrefix(s, d, packed, target);
          assert.deepEqual(got?.slice(0, 2) ?? null, want, 'same answer as the search of the whole block');
          if (got !== null && got[2] < block.length) partial++;
        }
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
  assert.ok(partial > 0, 'some searches stopped before the end of the block');
});

test('corrupted compressed blocks: the prefix search raises CORRUPTION or answers, never another error', () => {
  const rng = new Random(SEED);
  const model = sortedUnique(
    Array.from({ length: 60 }, (_, i) => ({ key: ikey(`user${i % 20}`, i), value: Buffer.alloc(20 + (i % 9), i) })),
  );
  const good = compressed(buildBlock(model, 4));
  assert.ok(good !== null);
  const s = new BlockPointSearch();
  const d = new LzPrefixDecoder();
  let corruptions = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const cut = damaged(good, rng);
    // A damaged length header is the reader's check (lzUncompressedLength), before any search.
    if (lzUncompressedLength(cut, 0, cut.length) < 0) continue;
    try {
      for (const target of [ikey('user1', 5), ikey('user19', 100), ikey('a', 1), ikey('zzz', 1)]) {
        const got = searchPrefix(s, d, cut, target, 'fuzz.sst');
        if (got !== null) assert.ok(s.valueStart <= s.valueEnd && s.valueEnd <= got[2], `trial ${trial} (SEED=${SEED}): the value was decoded`);
      }
    } catch (e) {
      assert.ok(isLightningError(e, 'CORRUPTION'), `trial ${trial} (SEED=${SEED}): ${String(e)}`);
      corruptions++;
    }
  }
  assert.ok(corruptions > 0, 'some corruption must be detected');
});


test('keys whose shared prefixes run into the trailer: both point searches agree with the model (property)', () => {
  // User keys over bytes that also occur in trailers (0x00, 0x01, 0xff), some prefixes of others, with
  // sequence numbers whose trailer bytes are 0x00/0x01/0xff: a key's shared prefix with the previous
  // one can cover a whole user key and part of a trailer, which the search's prefix bookkeeping
  // (compareKeyFrom) must not mistake for user-key bytes.
  const userArb = fc.array(fc.constantFrom(0x00, 0x01, 0xff), { maxLength: 10 }).map((b) => Buffer.from(b));
  const seqArb = fc.constantFrom(0, 1, 255, 256, 257, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 1);
  const keyArb = fc.tuple(userArb, seqArb, fc.constantFrom(0, 1)).map(([u, s, k]) => ikey(u, s, k));
  fc.assert(
    fc.property(
      fc.array(fc.record({ key: keyArb, value: fc.uint8Array({ maxLength: 8 }).map((v) => Buffer.from(v)) }), { maxLength: 100 }),
      fc.constantFrom(1, 2, 5, 16, 64),
      fc.array(keyArb, { maxLength: 30 }),
      (raw, restartInterval, targets) => {
        const model = sortedUnique(raw).map((e) => ({ key: e.key, value: Buffer.concat([e.value, Buffer.alloc(24, 0x61)]) }));
        const block = buildBlock(model, restartInterval);
        const packed = compressed(block);
        const s = new BlockPointSearch();
        const d = new LzPrefixDecoder();
        for (const target of [...model.map((e) => e.key), ...targets]) {
          const i = lowerBound(model, target);
          const want = i === model.length ? null : [(model[i] as Entry).key, (model[i] as Entry).value];
          assert.deepEqual(search(s, block, target), want, 'whole-block search');
          if (packed !== null) assert.deepEqual(searchPrefix(s, d, packed, target)?.slice(0, 2) ?? null, want, 'prefix search');
        }
      },
    ),
    { seed: SEED, numRuns: 400 },
  );
});
