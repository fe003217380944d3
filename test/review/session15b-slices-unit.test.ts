/**
 * Reviewer tests (session 15b): util/yield.ts `Slices`, the counter that ends the slices of
 * main-thread flushes and of merges, against a reference of its documented rule: a slice ends
 * after `maxEntries` entries or SLICE_BYTES_MAX bytes, whichever comes first, and the next slice
 * starts from zero (no carry-over of bytes past the limit, no carry-over of entries).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLICE_BYTES_MAX, Slices } from '../../src/util/yield.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

test('SLICE_BYTES_MAX is 256 KiB', () => {
  assert.equal(SLICE_BYTES_MAX, 256 * 1024);
});

test('maxEntries 1: every entry ends a slice, whatever its bytes (0, 1, huge)', () => {
  const s = new Slices(1);
  for (const b of [0, 1, 0, SLICE_BYTES_MAX * 10, 0, 5]) assert.equal(s.step(b), true);
});

test('zero-byte entries (tombstones, empty values) end slices by count only', () => {
  const s = new Slices(4);
  const ends: number[] = [];
  for (let i = 1; i <= 20; i++) if (s.step(0)) ends.push(i);
  assert.deepEqual(ends, [4, 8, 12, 16, 20]);
});

test('an entry bigger than SLICE_BYTES_MAX ends its slice alone, and the next slice starts from zero', () => {
  const s = new Slices(1000);
  assert.equal(s.step(10), false);
  assert.equal(s.step(SLICE_BYTES_MAX * 3), true, 'the huge entry ends the slice');
  // No carry-over: the next slice again takes SLICE_BYTES_MAX - 1 bytes without ending.
  assert.equal(s.step(SLICE_BYTES_MAX - 1), false);
  assert.equal(s.step(1), true, 'exactly SLICE_BYTES_MAX bytes end a slice');
  // Entry count also restarts after a slice that ended by bytes.
  for (let i = 1; i < 1000; i++) assert.equal(s.step(0), false, `entry ${i}`);
  assert.equal(s.step(0), true);
});

test('a slice ending by count resets the byte count too', () => {
  const s = new Slices(2);
  assert.equal(s.step(SLICE_BYTES_MAX - 1), false);
  assert.equal(s.step(0), true, 'ends by count');
  assert.equal(s.step(SLICE_BYTES_MAX - 1), false, 'bytes of the previous slice are forgotten');
  assert.equal(s.step(1), true);
});

test('Slices matches a reference of the documented rule on random streams', async () => {
  await withSeed('slices reference', async (seed) => {
    const rng = new Random(seed);
    for (let run = 0; run < 300; run++) {
      const maxEntries = [1, 2, 3, 7, 1024, 4096][rng.nextInt(6)] as number;
      const s = new Slices(maxEntries);
      let entries = 0;
      let bytes = 0;
      const n = 1 + rng.nextInt(5000);
      for (let i = 0; i < n; i++) {
        const kind = rng.nextInt(10);
        const b = kind === 0 ? 0 : kind < 7 ? rng.nextInt(200) : kind < 9 ? rng.nextInt(70_000) : rng.nextInt(3 * SLICE_BYTES_MAX);
        entries++;
        bytes += b;
        const want = entries >= maxEntries || bytes >= SLICE_BYTES_MAX;
        if (want) {
          entries = 0;
          bytes = 0;
        }
        assert.equal(s.step(b), want, `run ${run} (maxEntries ${maxEntries}) entry ${i} of ${b} bytes`);
      }
    }
  });
});
