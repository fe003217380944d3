/**
 * Review (session 10): the LZ encoder keeps its hash table across calls (positions stored offset
 * by a moving tableBase; entries below the base are stale). The existing test covers inputs at
 * srcStart 0; this one stresses what only a shared table can get wrong:
 *   - sub-ranges (srcStart > 0) of a buffer whose bytes BEFORE srcStart repeat the block, and
 *     that the previous call compressed: stale entries then point at in-bounds positions with
 *     matching bytes, which a back-reference must never use (output identical to a fresh table,
 *     and it decodes to the block);
 *   - inputs of 64 KiB and more (the 65535 offset limit) at large srcStart;
 *   - table bases just below the Int32 limit, exactly at the wrap boundary (n + 1 ==
 *     0x7fffffff - base), and at the limit itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compressBlock, decompressBlock, lzCompressedBytesLimit, setLzTableBaseForTests } from '../../src/sstable/lz-codec.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const MAX = 0x7fffffff;

/** Compressed bytes of src[start, end) (null: stored raw), into a buffer at an odd offset. */
function compressRange(src: Buffer, start: number, end: number): Buffer | null {
  const n = end - start;
  const dst = Buffer.alloc(lzCompressedBytesLimit(n) + 10, 0xa5);
  const w = compressBlock(src, start, end, dst, 3);
  if (w < 0) return null;
  return Buffer.from(dst.subarray(3, 3 + w));
}

function fresh(src: Buffer, start: number, end: number): Buffer | null {
  setLzTableBaseForTests(MAX); // the next call wraps: a cleared table
  return compressRange(src, start, end);
}

function decodes(block: Buffer, expected: Buffer, what: string): void {
  const out = Buffer.alloc(expected.length + 4, 0x5a);
  const r = decompressBlock(block, 0, block.length, out, 2, expected.length);
  assert.equal(r, expected.length, `${what}: decode result ${r}`);
  assert.ok(out.subarray(2, 2 + expected.length).equals(expected), `${what}: round trip`);
}

function randomBlock(r: Random, n: number): Buffer {
  const b = Buffer.alloc(n);
  const alpha = 1 + r.nextInt(r.nextInt(2) === 0 ? 4 : 256);
  const period = 1 + r.nextInt(r.nextInt(2) === 0 ? 50 : 70_000);
  for (let i = 0; i < n; i++) b[i] = r.nextInt(6) === 0 ? r.nextInt(alpha) : ((i % period) * 7) % alpha;
  return b;
}

test('session10: LZ output of a sub-range never depends on earlier calls over the same buffer', async () => {
  await withSeed('session10 lz sub-ranges', async (seed) => {
    const r = new Random(seed);
    const sizes = [0, 1, 4, 5, 13, 100, 2048, 4096, 65_535, 65_536, 65_537, 70_000, 140_001];
    for (let it = 0; it < 120; it++) {
      const n = it < sizes.length ? (sizes[it] as number) : r.nextInt(r.nextInt(4) === 0 ? 150_000 : 5000);
      const block = randomBlock(r, n);
      // [copy of block][gap][block][tail]: the first copy is compressed first (priming the table
      // with positions whose bytes equal the second copy's), then the second copy as a sub-range.
      const gap = r.nextInt(3) === 0 ? 0 : r.nextInt(70_000);
      const src = Buffer.alloc(n + gap + n + 5);
      for (let i = 0; i < src.length; i++) src[i] = r.nextInt(256);
      block.copy(src, 0);
      block.copy(src, n + gap);
      const start = n + gap;
      const expected = fresh(src, start, start + n);
      for (const base of [1, 1 + r.nextInt(1_000_000), MAX - 2 * n - 10, MAX - n - 1, MAX - n - 2, MAX]) {
        setLzTableBaseForTests(Math.max(1, Math.min(MAX, base)));
        compressRange(src, 0, n); // the first copy
        if (gap > 0) compressRange(src, n, start); // the random gap too
        const got = compressRange(src, start, start + n);
        const what = `case ${it}: n=${n} gap=${gap} base=${base}`;
        assert.deepEqual(got, expected, `${what}: output depends on history`);
        if (got !== null) decodes(got, block, what);
        // Twice in a row at the same range: the second call sees only its own stale entries.
        assert.deepEqual(compressRange(src, start, start + n), expected, `${what}: repeated call`);
      }
    }
  });
});
