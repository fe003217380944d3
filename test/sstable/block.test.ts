import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { invariants } from '../../src/util/assert.js';
import { isLightningError } from '../../src/base/errors.js';
import {
  KIND_DELETE,
  KIND_SEEK,
  KIND_VALUE,
  MAX_SEQ,
  makeInternalKey,
} from '../../src/base/internal-key.js';
import { Random } from '../../src/util/random.js';
import {
  checkFullScans,
  entryArb,
  ikey,
  opArb,
  runOps,
  SEED,
  sortedUnique,
  type Entry,
} from './model.js';

invariants.enabled = true;

function buildBlock(entries: Entry[], restartInterval: number): Buffer {
  const b = new BlockBuilder(restartInterval, 16);
  for (const e of entries) b.add(e.key, e.value);
  return Buffer.from(b.finish());
}

test('block round trip and positioning match a sorted model (property)', () => {
  fc.assert(
    fc.property(
      fc.array(entryArb, { maxLength: 120 }),
      fc.constantFrom(1, 2, 3, 16),
      fc.array(opArb, { maxLength: 60 }),
      (raw, restartInterval, ops) => {
        const model = sortedUnique(raw);
        const it = new BlockIterator(buildBlock(model, restartInterval));
        checkFullScans(it, model);
        runOps(it, model, ops);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('one user key with many sequence numbers: snapshot seeks land on the newest visible', () => {
  const model: Entry[] = [];
  for (let seq = 200; seq >= 1; seq--) {
    model.push({
      key: ikey('k', seq, seq % 7 === 0 ? KIND_DELETE : KIND_VALUE),
      value: Buffer.from(`v${seq}`),
    });
  }
  model.unshift({ key: ikey('j', 5), value: Buffer.from('j') });
  model.push({ key: ikey('l', 1), value: Buffer.from('l') });
  const it = new BlockIterator(buildBlock(model, 16));
  checkFullScans(it, model);
  for (let snap = 0; snap <= 210; snap++) {
    it.seekGE(makeInternalKey(Buffer.from('k'), snap, KIND_SEEK));
    assert.ok(it.valid());
    const expected = snap === 0 ? 'l' : `v${Math.min(snap, 200)}`;
    assert.equal(it.value().toString(), expected, `snapshot ${snap}`);
  }
  // seekLE to the largest trailer of 'k' (sorts before every 'k' entry) gives the last 'j'.
  it.seekLE(makeInternalKey(Buffer.from('k'), MAX_SEQ, KIND_SEEK));
  assert.equal(it.value().toString(), 'j');
  it.seekLE(ikey('k', 0, KIND_DELETE));
  assert.equal(it.value().toString(), 'v1');
});

test('edge keys: empty user key, 0xff bytes, long keys that grow the key buffer', () => {
  const long = Buffer.alloc(3000, 0x61);
  const longer = Buffer.concat([long, Buffer.from([0x62])]);
  const raw: Entry[] = [
    { key: ikey(Buffer.alloc(0), MAX_SEQ), value: Buffer.alloc(0) },
    { key: ikey(Buffer.alloc(0), 0, KIND_DELETE), value: Buffer.from('e') },
    { key: ikey(long, 3), value: Buffer.alloc(5000, 1) },
    { key: ikey(longer, 3), value: Buffer.from('x') },
    { key: ikey(Buffer.from([0xff, 0xff]), 1), value: Buffer.from('ff') },
    { key: ikey(Buffer.from([0xff, 0xff, 0x00]), 1), value: Buffer.from('ff00') },
  ];
  const model = sortedUnique(raw);
  for (const interval of [1, 2, 16]) {
    const it = new BlockIterator(buildBlock(model, interval));
    checkFullScans(it, model);
    it.seekGE(ikey(long, 3));
    assert.ok(it.key().equals(ikey(long, 3)));
    it.next();
    assert.ok(it.key().equals(ikey(longer, 3)));
    it.prev();
    it.prev();
    assert.ok(it.key().equals(ikey(Buffer.alloc(0), 0, KIND_DELETE)));
  }
});

test('empty block: every positioning call leaves the iterator invalid', () => {
  const it = new BlockIterator(buildBlock([], 16));
  it.first();
  assert.equal(it.valid(), false);
  it.last();
  assert.equal(it.valid(), false);
  it.seekGE(ikey('a', 1));
  assert.equal(it.valid(), false);
  it.seekLE(ikey('a', 1));
  assert.equal(it.valid(), false);
});

test('seeking to a key view returned by the same iterator works (aliasing)', () => {
  const model = sortedUnique(
    Array.from({ length: 100 }, (_, i) => ({
      key: ikey(`key${String(i).padStart(3, '0')}`, i),
      value: Buffer.from([i]),
    })),
  );
  const it = new BlockIterator(buildBlock(model, 16));
  for (let i = 0; i < model.length; i += 7) {
    it.seekGE((model[i] as Entry).key);
    it.seekGE(it.key());
    assert.ok(it.key().equals((model[i] as Entry).key));
    it.seekLE(it.key());
    assert.ok(it.key().equals((model[i] as Entry).key));
  }
});

test('key() reuses one buffer for same-length keys (no per-entry allocation)', () => {
  const model = Array.from({ length: 50 }, (_, i) => ({
    key: ikey(`k${String(i).padStart(4, '0')}`, 1),
    value: Buffer.from('v'),
  }));
  const it = new BlockIterator(buildBlock(model, 16));
  it.first();
  const first = it.key();
  it.next();
  assert.equal(it.key(), first, 'same Buffer object for same-length keys');
  assert.ok(first.equals((model[1] as Entry).key), 'its bytes follow the iterator');
});

test('restart interval bounds the entries between restart points', () => {
  const model = Array.from({ length: 100 }, (_, i) => ({
    key: ikey(`k${String(i).padStart(3, '0')}`, 1),
    value: Buffer.alloc(0),
  }));
  for (const interval of [1, 16, 100]) {
    const block = buildBlock(model, interval);
    const restarts = block.readUInt32LE(block.length - 4);
    assert.equal(restarts, Math.ceil(100 / interval));
  }
});

test('corrupted blocks raise CORRUPTION or decode, never another error or a hang', () => {
  const rng = new Random(SEED);
  const model = sortedUnique(
    Array.from({ length: 60 }, (_, i) => ({
      key: ikey(`user${i % 20}`, i),
      value: Buffer.alloc(i % 9, i),
    })),
  );
  const good = buildBlock(model, 4);
  let corruptions = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const bad = Buffer.from(good);
    const flips = 1 + rng.nextInt(3);
    for (let f = 0; f < flips; f++) {
      const at = rng.nextInt(bad.length);
      bad[at] = rng.nextInt(256);
    }
    const cut = rng.nextInt(8) === 0 ? bad.subarray(0, rng.nextInt(bad.length)) : bad;
    try {
      const it = new BlockIterator(cut, 'fuzz.sst', 1000);
      let steps = 0;
      for (it.first(); it.valid() && steps < 1000; it.next()) steps++;
      for (it.last(); it.valid() && steps < 2000; it.prev()) steps++;
      it.seekGE(ikey('user1', 5));
      it.seekLE(ikey('user1', 5));
      if (it.valid()) it.prev();
    } catch (e) {
      assert.ok(isLightningError(e, 'CORRUPTION'), `trial ${trial} (SEED=${SEED}): ${String(e)}`);
      assert.match((e as Error).message, /fuzz\.sst at offset \d+/);
      corruptions++;
    }
  }
  assert.ok(corruptions > 0, 'some corruption must be detected');
});

test('builder rejects out-of-order keys when invariants are on', () => {
  const b = new BlockBuilder(16);
  b.add(ikey('b', 1), Buffer.alloc(0));
  assert.throws(() => b.add(ikey('a', 1), Buffer.alloc(0)), /strictly increasing/);
  const c = new BlockBuilder(16);
  c.add(ikey('a', 1), Buffer.alloc(0));
  assert.throws(
    () => c.add(ikey('a', 2), Buffer.alloc(0)),
    /strictly increasing/,
    'higher seq sorts first',
  );
});
