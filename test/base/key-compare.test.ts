import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyBytes } from '../../src/util/copy-bytes.js';
import {
  compareBytes as compareUserKeyRanges,
  compareInternalKeyRanges,
  makeInternalKey,
  trailerOf,
} from '../../src/base/internal-key.js';

/** Reference order built on Buffer.compare: user key ascending, then trailer descending. */
function compareInternalKeys(a: Buffer, b: Buffer): number {
  const c = Buffer.compare(a.subarray(0, a.length - 8), b.subarray(0, b.length - 8));
  if (c !== 0) return c;
  const ta = trailerOf(a, a.length);
  const tb = trailerOf(b, b.length);
  return ta > tb ? -1 : ta < tb ? 1 : 0;
}
import { SEED } from '../sstable/model.js';

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

// Short keys from a tiny alphabet (many ties and prefixes) and long ones (the native path).
const userKey = fc.oneof(
  fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b.map((x) => x % 3))),
  fc
    .tuple(fc.nat(3), fc.integer({ min: 60, max: 140 }))
    .map(([fill, len]) => Buffer.alloc(len, fill)),
);
const internalKey = fc
  .tuple(
    userKey,
    fc.oneof(fc.nat(3), fc.constantFrom(2 ** 32 - 1, 2 ** 32, 2 ** 45 - 1)),
    fc.nat(1),
  )
  .map(([u, seq, kind]) => makeInternalKey(u, seq, kind));

test('compareInternalKeyRanges agrees with a Buffer.compare reference, also inside larger buffers', () => {
  fc.assert(
    fc.property(internalKey, internalKey, fc.nat(5), fc.nat(5), (a, b, padA, padB) => {
      const expected = sign(compareInternalKeys(a, b));
      assert.equal(compareInternalKeyRanges(a, 0, a.length, b, 0, b.length), expected);
      const ba = Buffer.concat([Buffer.alloc(padA, 9), a, Buffer.alloc(3, 7)]);
      const bb = Buffer.concat([Buffer.alloc(padB, 1), b]);
      assert.equal(
        compareInternalKeyRanges(ba, padA, padA + a.length, bb, padB, padB + b.length),
        expected,
      );
      const ua = a.subarray(0, a.length - 8);
      const ub = b.subarray(0, b.length - 8);
      assert.equal(
        sign(compareUserKeyRanges(ua, 0, ua.length, ub, 0, ub.length)),
        sign(Buffer.compare(ua, ub)),
      );
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('copyBytes copies short and long ranges', () => {
  for (const n of [0, 1, 31, 32, 33, 500]) {
    const src = Buffer.from(Array.from({ length: n + 4 }, (_, i) => i & 0xff));
    const dst = Buffer.alloc(n + 10, 0xee);
    assert.equal(copyBytes(src, 2, 2 + n, dst, 5), n);
    assert.ok(dst.subarray(5, 5 + n).equals(src.subarray(2, 2 + n)));
    assert.equal(dst[4], 0xee);
    assert.equal(dst[5 + n], 0xee);
  }
});
