import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bloomHash,
  bloomProbesFor,
  BloomFilterBuilder,
  mayContain,
} from '../../src/sstable/bloom-filter.js';
import { Random } from '../../src/util/random.js';
import { SEED } from './model.js';

function key(prefix: string, i: number): Buffer {
  return Buffer.from(`${prefix}${i}`);
}

function falsePositiveRate(bitsPerKey: number, n: number): number {
  const b = new BloomFilterBuilder(bitsPerKey);
  for (let i = 0; i < n; i++) b.addKey(key('present-', i));
  const filter = b.finish();
  for (let i = 0; i < n; i++)
    assert.ok(mayContain(filter, key('present-', i)), `false negative ${i}`);
  let fp = 0;
  const probes = 20_000;
  for (let i = 0; i < probes; i++) if (mayContain(filter, key('absent-', i))) fp++;
  return fp / probes;
}

test('no false negatives and about 1% false positives at 10 bits/key', () => {
  const rate = falsePositiveRate(10, 10_000);
  assert.ok(rate < 0.02, `false-positive rate ${rate}`);
  assert.ok(rate > 0.001, `rate ${rate} is implausibly low for 10 bits/key`);
});

test('more bits per key give fewer false positives', () => {
  const r6 = falsePositiveRate(6, 5000);
  const r16 = falsePositiveRate(16, 5000);
  assert.ok(r16 < r6, `16 bits/key (${r16}) should beat 6 bits/key (${r6})`);
  assert.ok(r16 < 0.005, `16 bits/key rate ${r16}`);
});

test('random binary keys: no false negatives, rate near 1%', () => {
  const rng = new Random(SEED);
  const keys: Buffer[] = [];
  const b = new BloomFilterBuilder(10);
  for (let i = 0; i < 5000; i++) {
    const k = Buffer.alloc(1 + rng.nextInt(24));
    for (let j = 0; j < k.length; j++) k[j] = rng.nextInt(256);
    keys.push(k);
    b.addKey(k);
  }
  const filter = b.finish();
  for (const k of keys) assert.ok(mayContain(filter, k));
  let fp = 0;
  for (let i = 0; i < 10_000; i++) {
    // 32-byte keys cannot collide with the <= 24-byte keys added above.
    const k = Buffer.alloc(32);
    for (let j = 0; j < k.length; j++) k[j] = rng.nextInt(256);
    if (mayContain(filter, k)) fp++;
  }
  assert.ok(fp / 10_000 < 0.02, `rate ${fp / 10_000} (SEED=${SEED})`);
});

test('probe count is round(bits * 0.69) clamped to [1, 30]', () => {
  assert.equal(bloomProbesFor(10), 7);
  assert.equal(bloomProbesFor(1), 1);
  assert.equal(bloomProbesFor(0), 1);
  assert.equal(bloomProbesFor(64), 30);
  const filter = new BloomFilterBuilder(10);
  filter.addKey(Buffer.from('x'));
  const f = filter.finish();
  assert.equal(f[f.length - 1], 0x80 | 7, 'k is stored in the last byte, with the cache-local mark');
  const legacy = new BloomFilterBuilder(10, 'legacy');
  legacy.addKey(Buffer.from('x'));
  const g = legacy.finish();
  assert.equal(g[g.length - 1], 7, 'legacy: k alone');
});

test('cache-local layout: whole lines, every probe of a key in one 64-byte line', () => {
  const rng = new Random(SEED);
  for (let n = 0; n < 200; n++) {
    const b = new BloomFilterBuilder(10);
    const k = Buffer.from(`key-${rng.nextInt(1_000_000)}-${n}`);
    b.addKey(k);
    const f = b.finish();
    assert.equal((f.length - 1) % 64, 0, 'filter bits are whole lines');
    const lines = new Set<number>();
    let set = 0;
    for (let i = 0; i < f.length - 1; i++) {
      if (f[i] !== 0) lines.add(Math.floor(i / 64));
      for (let bit = 0; bit < 8; bit++) if (((f[i] as number) >> bit) & 1) set++;
    }
    assert.equal(lines.size, 1, `probes of ${k.toString()} span ${lines.size} lines`);
    assert.ok(set >= 1 && set <= 7);
    assert.ok(mayContain(f, k));
  }
  // A cache-local mark on a filter that is not whole lines is a layout we did not write: "maybe".
  assert.equal(mayContain(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0x87]), Buffer.from('x')), true);
});

test('legacy-layout filters (tables written before the cache-local layout) still answer correctly', () => {
  const b = new BloomFilterBuilder(10, 'legacy');
  for (let i = 0; i < 5_000; i++) b.addKey(key('old-', i));
  const f = b.finish();
  for (let i = 0; i < 5_000; i++) assert.ok(mayContain(f, key('old-', i)), `false negative ${i}`);
  let fp = 0;
  for (let i = 0; i < 10_000; i++) if (mayContain(f, key('absent-', i))) fp++;
  assert.ok(fp / 10_000 < 0.02, `legacy rate ${fp / 10_000}`);
});

test('empty filter and disabled builder answer "may contain"', () => {
  assert.equal(mayContain(Buffer.alloc(0), Buffer.from('x')), true);
  const b = new BloomFilterBuilder(0);
  b.addKey(Buffer.from('x'));
  const f = b.finish();
  assert.equal(f.length, 0);
  assert.equal(mayContain(f, Buffer.from('anything')), true);
  // An unknown probe count (future encoding) is treated as "may contain".
  assert.equal(mayContain(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 31]), Buffer.from('x')), true);
});

test('filter with no keys rejects everything; a range key hashes like the copied key', () => {
  const f = new BloomFilterBuilder(10).finish();
  assert.equal(mayContain(f, Buffer.from('x')), false);
  const big = Buffer.from('prefix-the-key-suffix');
  assert.equal(bloomHash(big, 7, 14), bloomHash(Buffer.from('the-key')));
  const b = new BloomFilterBuilder(10);
  b.addKey(big, 7, 14);
  const filter = b.finish();
  assert.ok(mayContain(filter, Buffer.from('the-key')));
  assert.ok(mayContain(filter, big, 7, 14));
});

test('hash spreads keys that differ in one byte or only in length', () => {
  const seen = new Set<number>();
  for (let len = 0; len < 64; len++) seen.add(bloomHash(Buffer.alloc(len)));
  for (let i = 0; i < 256; i++) seen.add(bloomHash(Buffer.from([1, 2, i, 4, 5])));
  assert.equal(seen.size, 64 + 256);
  assert.equal(bloomHash(Buffer.from('abc')), bloomHash(Buffer.from('abc')), 'deterministic');
});

test('builders hand their hash arrays on: the filter is the same whether the array was grown or taken, and builders alive at once keep their keys apart', () => {
  const rng = new Random(SEED);
  const build = (keys: Buffer[], shared: boolean): Buffer => {
    const b = new BloomFilterBuilder(10);
    for (const k of keys) b.addKey(k);
    return shared ? Buffer.from(b.finishShared()) : b.finish();
  };
  for (let round = 0; round < 8; round++) {
    const n = 1 + rng.nextInt(5000);
    const keys = Array.from({ length: n }, (_, i) => key(`r${round}-`, i));
    const first = build(keys, false);
    // Built again: this builder takes the array the first one handed on (any size: it may be smaller
    // than needed and be outgrown, or larger).
    assert.ok(build(keys, round % 2 === 0).equals(first), `SEED=${SEED} round ${round}: same filter from a spare array`);
    // Two builders at once, interleaved, one abandoned midway: each filter answers for its own keys.
    const x = new BloomFilterBuilder(10);
    const y = new BloomFilterBuilder(10);
    const dropped = new BloomFilterBuilder(10);
    const other = Array.from({ length: 1 + rng.nextInt(3000) }, (_, i) => key(`o${round}-`, i));
    for (let i = 0; i < Math.max(n, other.length); i++) {
      if (i < n) x.addKey(keys[i] as Buffer);
      if (i < other.length) y.addKey(other[i] as Buffer);
      if (i < 1500) dropped.addKey(key('dropped-', i));
    }
    dropped.release();
    const fy = y.finish();
    assert.equal(x.keyCount(), n);
    const fx = x.finishShared();
    assert.ok(fx.equals(first), `SEED=${SEED} round ${round}: interleaved builder x`);
    assert.ok(fy.equals(build(other, false)), `SEED=${SEED} round ${round}: interleaved builder y`);
    for (const k of other) assert.ok(mayContain(fy, k), `SEED=${SEED} round ${round}: false negative`);
    assert.equal(x.keyCount(), 0, 'finish resets the builder');
  }
});
