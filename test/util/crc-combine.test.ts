import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';

import { byteShiftFactor, crc32OfSuffix, mulModPoly } from '../../src/util/crc-combine.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

test('crc32OfSuffix agrees with zlib for random splits, including empty parts and long suffixes', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextInt(256);
  const lengths = [0, 1, 2, 3, 7, 8, 9, 255, 256, 4096, 65_537, 1 << 20];
  for (let trial = 0; trial < 300; trial++) {
    const a = rng.nextInt(data.length + 1);
    const b = trial < lengths.length ? Math.min(data.length, a + (lengths[trial] as number)) : a + rng.nextInt(data.length - a + 1);
    const whole = crc32(data.subarray(0, b));
    const prefix = crc32(data.subarray(0, a));
    assert.equal(crc32OfSuffix(whole, prefix, b - a), crc32(data.subarray(a, b)), `seed ${seed}: [${a}, ${b})`);
  }
});

test('GF(2) arithmetic: x^0 is the identity, factors compose, and shifting by 0 bytes is a no-op', () => {
  const one = 0x80000000;
  for (const v of [0, 1, 0xdeadbeef, 0xffffffff, 0x12345678]) {
    assert.equal(mulModPoly(one, v), v >>> 0);
    assert.equal(mulModPoly(v, one), v >>> 0);
  }
  assert.equal(byteShiftFactor(0), one);
  for (const [m, n] of [[1, 1], [3, 5], [100, 1000], [65_536, 12_345]] as const) {
    assert.equal(mulModPoly(byteShiftFactor(m), byteShiftFactor(n)), byteShiftFactor(m + n), `x^8(${m}+${n})`);
  }
});
