/**
 * The LZ block codec (src/sstable/lz-codec.ts): round trips over random, repetitive and
 * benchmark-like data of every size up to 1 MiB; the 12.5% rule; writes stay inside their
 * ranges; and the decoder's contract on hostile input — any mutation or truncation of a valid
 * block decodes to the stated length or returns a negative error code, never throws, never
 * writes outside its output range, never hangs. Randomized tests print SEED=… on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compressBlock,
  decompressBlock,
  lzCompressedBytesLimit,
  lzErrorMessage,
  lzUncompressedLength,
  LZ_ERR_HEADER,
  LZ_ERR_OFFSET,
  LZ_UNCOMPRESSED_BYTES_MAX,
  LzPrefixDecoder,
  setLzTableBaseForTests,
} from '../../src/sstable/lz-codec.js';
import { Random } from '../../src/util/random.js';
import { numRuns, testSeed, withSeed } from '../harness/seed.js';

const CANARY = 0xa5;

/** Compresses `data` into a canary-filled buffer at an odd offset; returns the block or null. */
function compress(data: Buffer): Buffer | null {
  const pad = 7;
  const limit = lzCompressedBytesLimit(data.length);
  const dst = Buffer.alloc(pad + Math.max(0, limit) + pad, CANARY);
  const n = compressBlock(data, 0, data.length, dst, pad);
  for (let i = 0; i < pad; i++) assert.equal(dst[i], CANARY, 'compressBlock wrote before dstStart');
  for (let i = pad + Math.max(0, limit); i < dst.length; i++) assert.equal(dst[i], CANARY, 'compressBlock wrote past its limit');
  if (n < 0) {
    assert.equal(n, -1);
    return null;
  }
  assert.ok(n <= limit, `compressed ${data.length} to ${n} bytes, limit ${limit}`);
  assert.ok(n * 8 <= data.length * 7, 'at least 12.5% smaller');
  return Buffer.from(dst.subarray(pad, pad + n));
}

/** Decodes `block` into a canary-guarded buffer; returns the output or the negative code. */
function decompress(block: Buffer, expected: number): Buffer | number {
  const pad = 5;
  const dst = Buffer.alloc(pad + expected + pad, CANARY);
  const r = decompressBlock(block, 0, block.length, dst, pad, expected);
  for (let i = 0; i < pad; i++) assert.equal(dst[i], CANARY, 'decompressBlock wrote before dstStart');
  for (let i = pad + expected; i < dst.length; i++) assert.equal(dst[i], CANARY, 'decompressBlock wrote past its range');
  if (r < 0) return r;
  assert.equal(r, expected);
  return dst.subarray(pad, pad + expected);
}

function roundTrip(data: Buffer, what: string): Buffer | null {
  const block = compress(data);
  if (block === null) return null;
  assert.equal(lzUncompressedLength(block, 0, block.length), data.length, `${what}: header`);
  const out = decompress(block, data.length);
  assert.ok(Buffer.isBuffer(out), `${what}: decode failed: ${typeof out === 'number' ? lzErrorMessage(out) : ''}`);
  assert.ok(out.equals(data), `${what}: round trip differs`);
  return block;
}

function randomBytes(rnd: Random, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rnd.nextInt(256);
  return b;
}

/** Data like the benchmark's: 16-byte decimal keys, 100-byte values (key, 34 random, copy of 50). */
function benchmarkLike(rnd: Random, n: number): Buffer {
  const out = Buffer.alloc(n);
  let at = 0;
  let num = rnd.nextInt(1_000_000) * 2;
  while (at < n) {
    const entry = Buffer.alloc(3 + 16 + 8 + 100);
    entry[0] = 0;
    entry[1] = 24;
    entry[2] = 100;
    entry.write(String(num).padStart(16, '0'), 3, 'latin1');
    for (let i = 0; i < 8; i++) entry[19 + i] = rnd.nextInt(256);
    entry.copy(entry, 27, 3, 19);
    for (let i = 0; i < 34; i++) entry[43 + i] = rnd.nextInt(256);
    entry.copy(entry, 77, 27, 77);
    at += entry.copy(out, at);
    num += 2;
  }
  return out;
}

/** Arbitrary compressible data: chunks of random bytes, runs, and copies of earlier bytes. */
const repetitiveArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => ({ kind: 'lit' as const, bytes: b })),
      fc.record({ kind: fc.constant('run' as const), byte: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 600 }) }),
      fc.record({ kind: fc.constant('copy' as const), back: fc.integer({ min: 1, max: 70_000 }), n: fc.integer({ min: 1, max: 700 }) }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => {
    const out: number[] = [];
    for (const p of parts) {
      if (p.kind === 'lit') out.push(...p.bytes);
      else if (p.kind === 'run') for (let i = 0; i < p.n; i++) out.push(p.byte);
      else if (out.length > 0) {
        const from = Math.max(0, out.length - p.back);
        for (let i = 0; i < p.n; i++) out.push(out[from + i] as number); // may overlap: a pattern
      }
    }
    return Buffer.from(out);
  });

test('codec: empty, 1 byte and tiny inputs are stored raw (-1); the decoder still handles them', () => {
  for (let n = 0; n <= 6; n++) assert.equal(compress(Buffer.alloc(n, 0x61)), null, `n=${n}`);
  assert.equal(roundTrip(Buffer.alloc(7, 0x61), 'run of 7')?.length, 6, 'the shortest compressible run');
  // Hand-made blocks: header 0 + a token with no literals; header 1 + one literal.
  assert.deepEqual(decompress(Buffer.from([0x00, 0x00]), 0), Buffer.alloc(0));
  assert.deepEqual(decompress(Buffer.from([0x01, 0x10, 0x7a]), 1), Buffer.from('z'));
  // A run that starts with one literal and repeats it (offset 1, overlapping) 20 more times.
  const run = decompress(Buffer.from([21, 0x1f, 0x41, 0x01, 0x00, 0x01, 0x00]), 21);
  assert.deepEqual(run, Buffer.alloc(21, 0x41));
});

test('codec: round trips of random, repetitive and benchmark-like data (property)', async () => {
  await withSeed('lz round trip', async (seed) => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 5000 }).map((b) => Buffer.from(b)), repetitiveArb), (data) => {
        roundTrip(data, `${data.length} bytes`);
      }),
      { seed, numRuns: numRuns(300, 5000) },
    );
    fc.assert(
      fc.property(repetitiveArb, (data) => {
        // Anything with a 600-byte run compresses; the property above covers the -1 side.
        if (data.length > 0 && data.equals(Buffer.alloc(data.length, data[0]))) {
          assert.ok(data.length < 16 || compress(data) !== null, 'a long run compresses');
        }
      }),
      { seed, numRuns: numRuns(100, 1000) },
    );
    const rnd = new Random(seed);
    for (const n of [64, 100, 4096, 4100, 16_384, 65_536, 65_537, 200_000]) {
      const block = roundTrip(benchmarkLike(rnd, n), `benchmark-like ${n}`);
      // Below one entry (127 bytes) there is little to find.
      if (n >= 4096) assert.ok(block !== null && block.length < n * 0.6, `benchmark-like ${n} bytes compress to ${block?.length}`);
    }
  });
});

test('codec: long runs and overlapping matches of every short period', () => {
  for (const period of [1, 2, 3, 4, 5, 7, 8, 13, 31, 32, 33, 64, 65, 100, 255, 256, 1000]) {
    for (const n of [period * 3 + 17, 300, 4096, 70_000]) {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = (i % period) * 37 + 1;
      const block = roundTrip(data, `period ${period}, ${n} bytes`);
      if (n >= period * 3 + 17 && n >= 64) assert.ok(block !== null, `period ${period}, ${n} bytes compresses`);
    }
  }
  // Runs whose lengths hit the 15 / 15 + 255k boundaries of the length encoding.
  for (const n of [18, 19, 20, 33, 34, 35, 273, 274, 275, 529, 530, 531, 65_535, 65_536, 65_540]) {
    const data = Buffer.concat([Buffer.from('0123456789abcdefghij'), Buffer.alloc(n, 0x78), Buffer.from('tail')]);
    assert.ok(roundTrip(data, `run ${n}`) !== null || n < 40);
  }
  // Literal runs hitting the same boundaries, followed by a match.
  const rnd = new Random(7);
  for (const n of [14, 15, 16, 269, 270, 271, 524, 525, 526]) {
    const lit = randomBytes(rnd, n);
    const data = Buffer.concat([lit, lit, lit]);
    roundTrip(data, `literals ${n}`);
  }
});

test('codec: blocks up to 1 MiB (random, runs, benchmark-like, offsets near 65535)', () => {
  const rnd = new Random(0x1b10c);
  const MiB = 1024 * 1024;
  assert.equal(compress(randomBytes(rnd, MiB)), null, '1 MiB of random bytes is stored raw');
  const runs = roundTrip(Buffer.alloc(MiB, 0x20), '1 MiB run');
  assert.ok(runs !== null && runs.length < MiB / 200, `a 1 MiB run compresses to ${runs?.length}`);
  const bench = roundTrip(benchmarkLike(rnd, MiB), '1 MiB benchmark-like');
  assert.ok(bench !== null && bench.length < MiB * 0.6);
  // Random chunks repeated at about the largest offset (the greedy encoder may or may not find
  // such far matches; either way the round trip holds).
  for (const period of [65_534, 65_535, 65_536]) {
    const chunk = randomBytes(rnd, period);
    roundTrip(Buffer.concat([chunk, chunk, chunk.subarray(0, 30_000)]), `period ${period}`);
  }
  // Hand-made: 65535 literals, then a 100-byte match at offset 65535 (the largest).
  const lits = randomBytes(rnd, 65_535);
  const ext = [...(Array(256).fill(0xff) as number[]), 240]; // 15 + 256 * 255 + 240 = 65535
  const far = Buffer.concat([Buffer.from([0xe3, 0x80, 0x04]), Buffer.from([0xff, ...ext]), lits, Buffer.from([0xff, 0xff, 81, 0x00])]);
  assert.equal(lzUncompressedLength(far, 0, far.length), 65_635);
  const out = decompress(far, 65_635);
  assert.ok(Buffer.isBuffer(out) && out.subarray(0, 65_535).equals(lits) && out.subarray(65_535).equals(lits.subarray(0, 100)));
  // One literal fewer: the same offset now reaches before the start of the output.
  const short = Buffer.concat([Buffer.from([0xe2, 0x80, 0x04]), Buffer.from([0xff, ...ext.slice(0, -1), 239]), lits.subarray(1), Buffer.from([0xff, 0xff, 81, 0x00])]);
  assert.equal(decompress(short, 65_634), LZ_ERR_OFFSET);
});

test('codec: incompressible data returns -1; the 12.5% rule is exact', () => {
  const rnd = new Random(99);
  for (const n of [16, 100, 1000, 4096, 100_000]) assert.equal(compress(randomBytes(rnd, n)), null, `random ${n}`);
  assert.equal(lzCompressedBytesLimit(8), 7);
  assert.equal(lzCompressedBytesLimit(4096), 3584);
  assert.equal(lzCompressedBytesLimit(4097), 3584);
  // Random bytes, then a run long enough to bring the whole just under or over the limit.
  const head = randomBytes(rnd, 800);
  const results = [];
  for (let run = 50; run <= 200; run++) {
    const data = Buffer.concat([head, Buffer.alloc(run, 0x30)]);
    const block = roundTrip(data, `run ${run}`);
    results.push(block === null ? -1 : block.length);
    if (block !== null) assert.ok(block.length <= lzCompressedBytesLimit(data.length));
  }
  assert.ok(results.includes(-1) && results.some((r) => r > 0), 'both outcomes occur around the threshold');
  // A destination shorter than the limit: -1 rather than a write past its end.
  const data = Buffer.alloc(1000, 0x41);
  assert.equal(compressBlock(data, 0, data.length, Buffer.alloc(3), 0), -1);
});

test('codec: output depends only on the input, never on earlier calls (hash table reuse and wrap-around)', async () => {
  await withSeed('lz history independence', async (seed) => {
    const rnd = new Random(seed);
    const inputs: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const n = 1 + rnd.nextInt(i % 5 === 0 ? 70_000 : 3000);
      inputs.push(i % 3 === 0 ? randomBytes(rnd, n) : benchmarkLike(rnd, n));
    }
    // Reference: each input compressed right after a table wrap (a fresh table).
    const fresh = inputs.map((data) => {
      setLzTableBaseForTests(0x7fffffff);
      return compress(data);
    });
    // The same inputs back to back, with table bases that make some calls wrap around and others
    // start just below the limit; and with the same input twice in a row (all entries stale-looking
    // positions of identical bytes).
    const bases = [1, 0x7fffffff - 100, 0x7fffffff - 5000, 0x7fffffff - 70_000, 1000];
    for (const b of bases) {
      setLzTableBaseForTests(b);
      inputs.forEach((data, i) => {
        for (let rep = 0; rep < 2; rep++) {
          const block = compress(data);
          const expected = fresh[i] as Buffer | null;
          assert.deepEqual(block, expected, `SEED=${seed} base ${b} input ${i} (${data.length} bytes) rep ${rep}`);
          if (block !== null) roundTrip(data, `SEED=${seed} input ${i}`);
        }
      });
    }
    assert.throws(() => setLzTableBaseForTests(0), RangeError);
  });
});

test('codec: sub-ranges of src and dst are respected', () => {
  const rnd = new Random(3);
  const data = benchmarkLike(rnd, 5000);
  const src = Buffer.concat([randomBytes(rnd, 33), data, randomBytes(rnd, 11)]);
  const dst = Buffer.alloc(9000, CANARY);
  const n = compressBlock(src, 33, 33 + data.length, dst, 1000);
  assert.ok(n > 0);
  assert.ok(dst.subarray(0, 1000).equals(Buffer.alloc(1000, CANARY)));
  assert.ok(dst.subarray(1000 + lzCompressedBytesLimit(data.length)).equals(Buffer.alloc(9000 - 1000 - lzCompressedBytesLimit(data.length), CANARY)));
  const out = Buffer.alloc(6000, CANARY);
  assert.equal(decompressBlock(dst, 1000, 1000 + n, out, 500, data.length), data.length);
  assert.ok(out.subarray(500, 500 + data.length).equals(data));
  assert.ok(out.subarray(0, 500).equals(Buffer.alloc(500, CANARY)));
  assert.ok(out.subarray(500 + data.length).equals(Buffer.alloc(6000 - 500 - data.length, CANARY)));
  // Caller errors (not data errors) are RangeErrors.
  assert.throws(() => decompressBlock(dst, 1000, 1000 + n, out, 500, 6000), RangeError);
  assert.throws(() => compressBlock(src, 10, 5, dst, 0), RangeError);
});

test('codec: the length header is bounded and must match', () => {
  const header = (n: number): Buffer => {
    const b: number[] = [];
    while (n >= 0x80) {
      b.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    b.push(n);
    return Buffer.from(b);
  };
  const payload = Buffer.alloc(1000, 0xff);
  assert.equal(lzUncompressedLength(Buffer.concat([header(LZ_UNCOMPRESSED_BYTES_MAX + 1), payload]), 0, 1004), LZ_ERR_HEADER);
  // More than 255 output bytes per remaining input byte is impossible.
  const small = Buffer.concat([header(255 * 10 + 1), Buffer.alloc(10)]);
  assert.equal(lzUncompressedLength(small, 0, small.length), LZ_ERR_HEADER);
  const ok = Buffer.concat([header(255 * 10), Buffer.alloc(10)]);
  assert.equal(lzUncompressedLength(ok, 0, ok.length), 2550);
  assert.equal(lzUncompressedLength(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01]), 0, 5), LZ_ERR_HEADER, 'a 5-byte varint');
  assert.equal(lzUncompressedLength(Buffer.from([0x80]), 0, 1), LZ_ERR_HEADER, 'truncated varint');
  assert.equal(lzUncompressedLength(Buffer.alloc(0), 0, 0), LZ_ERR_HEADER, 'empty block');
  const block = compress(Buffer.alloc(100, 0x41));
  assert.ok(block !== null);
  assert.equal(decompress(block, 99), LZ_ERR_HEADER, 'expected length differs from the header');
  assert.equal(decompress(block, 101), LZ_ERR_HEADER);
});

/**
 * Decodes hostile input: must return the expected length or a negative code, never throw, never
 * write outside its range (decompress checks canaries).
 */
function decodeHostile(block: Buffer, expected: number, what: string): void {
  let r: Buffer | number;
  try {
    r = decompress(block, expected);
  } catch (e) {
    assert.fail(`${what}: decoder threw ${e instanceof Error ? e.stack : String(e)}`);
  }
  if (typeof r === 'number') assert.ok(r < 0 && lzErrorMessage(r).startsWith('compressed block'), `${what}: code ${r}`);
  else assert.equal(r.length, expected);
}

test('codec fuzz: mutated and truncated blocks never throw, overrun or hang (property)', { timeout: 120_000 }, async () => {
  await withSeed('lz decoder fuzz', async (seed) => {
    const rnd = new Random(seed);
    const sources = [benchmarkLike(rnd, 4100), benchmarkLike(rnd, 300), Buffer.alloc(3000, 0x41), Buffer.concat([randomBytes(rnd, 200), Buffer.alloc(500, 7), randomBytes(rnd, 100)])];
    const blocks = sources.map((s) => {
      const b = compress(s);
      assert.ok(b !== null);
      return { block: b, length: s.length };
    });
    const mutationArb = fc.record({
      which: fc.nat(),
      edits: fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
          fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0, 0x0f, 0xf0, 0xff, 0x80, 1) }),
          fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
          fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      lengthDelta: fc.constantFrom(0, 0, 0, -1, 1, 1000),
    });
    fc.assert(
      fc.property(mutationArb, ({ which, edits, lengthDelta }) => {
        const base = blocks[which % blocks.length] as { block: Buffer; length: number };
        let b = Buffer.from(base.block);
        for (const e of edits) {
          const at = b.length === 0 ? 0 : e.at % b.length;
          if (e.op === 'flip' && b.length > 0) b[at] = (b[at] as number) ^ e.mask;
          else if (e.op === 'set' && b.length > 0) b[at] = e.byte;
          else if (e.op === 'cut') b = b.subarray(0, at);
          else if (e.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from([e.byte]), b.subarray(at)]);
          else if (e.op === 'delete' && b.length > 0) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        }
        const expected = Math.max(0, base.length + lengthDelta);
        decodeHostile(b, expected, 'mutated block');
        // The reader's path: size the output from the (possibly damaged) header.
        const stated = lzUncompressedLength(b, 0, b.length);
        if (stated >= 0) decodeHostile(b, stated, 'mutated block, stated length');
      }),
      { seed, numRuns: numRuns(3000, 100_000) },
    );
    // Every truncation of every block.
    for (const { block, length } of blocks) {
      for (let cut = 0; cut < block.length; cut++) {
        const r = decompress(block.subarray(0, cut), length);
        assert.ok(typeof r === 'number' && r < 0, `a block cut at ${cut} of ${block.length} must fail`);
      }
    }
    // Pure noise, with a plausible header.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 5000 }), (noise, n) => {
        decodeHostile(Buffer.from(noise), n, 'noise');
        const stated = lzUncompressedLength(Buffer.from(noise), 0, noise.length);
        if (stated >= 0) decodeHostile(Buffer.from(noise), stated, 'noise, stated length');
      }),
      { seed, numRuns: numRuns(2000, 50_000) },
    );
  });
});

/**
 * The format read the simplest way (one byte at a time, into an array): the reference the fast
 * decoder (4-byte word copies, copyWithin, wild copies) must agree with on any input.
 */
function referenceDecode(block: Buffer, expected: number): Buffer | null {
  let ip = 0;
  let header = 0;
  for (let shift = 0; ; shift += 7) {
    if (ip >= block.length || shift > 21) return null;
    const b = block[ip++] as number;
    header += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  if (header !== expected) return null;
  const out: number[] = [];
  const length = (nibble: number): number | null => {
    let len = nibble;
    if (nibble === 15) {
      for (;;) {
        if (ip >= block.length) return null;
        const b = block[ip++] as number;
        len += b;
        if (b !== 255) break;
      }
    }
    return len;
  };
  for (;;) {
    if (ip >= block.length) return null;
    const token = block[ip++] as number;
    const lit = length(token >> 4);
    if (lit === null || ip + lit > block.length) return null;
    for (let i = 0; i < lit; i++) out.push(block[ip++] as number);
    if (out.length > expected) return null;
    if (ip === block.length) return (token & 15) === 0 && out.length === expected ? Buffer.from(out) : null;
    if (ip + 2 > block.length) return null;
    const offset = (block[ip] as number) | ((block[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > out.length) return null;
    const m = length(token & 15);
    if (m === null) return null;
    const from = out.length - offset;
    for (let i = 0; i < m + 4; i++) out.push(out[from + i] as number);
    if (out.length > expected) return null;
  }
}

test('codec fuzz: the decoder agrees with a byte-at-a-time reference decoder (property)', async () => {
  await withSeed('lz differential', async (seed) => {
    fc.assert(
      fc.property(
        fc.oneof(repetitiveArb, fc.uint8Array({ maxLength: 3000 }).map((b) => Buffer.from(b))),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 3 }),
        (data, edits) => {
          const block = compress(data);
          if (block === null) return;
          for (const e of edits) if (block.length > 1) block[1 + (e.at % (block.length - 1))] = e.byte; // keep the header
          const ours = decompress(block, data.length);
          const reference = referenceDecode(block, data.length);
          if (reference === null) assert.ok(typeof ours === 'number', 'the reference rejects this block, the decoder must too');
          else assert.ok(Buffer.isBuffer(ours) && ours.equals(reference), 'same output as the reference');
          if (edits.length === 0) assert.ok(reference !== null && reference.equals(data));
        },
      ),
      { seed, numRuns: numRuns(500, 20_000) },
    );
  });
});

test('codec fuzz: adversarial length extensions and offsets fail cleanly and quickly', () => {
  // A match length of ~255 * 100,000 bytes against a tiny output: rejected as an overrun, after
  // reading the extension bytes (bounded by the input), without allocating or writing.
  const ext = Buffer.alloc(100_000, 0xff);
  const block = Buffer.concat([Buffer.from([100, 0x1f, 0x41, 0x01, 0x00]), ext, Buffer.from([0])]);
  const started = Date.now();
  assert.ok((decompress(block, 100) as number) < 0);
  assert.ok(Date.now() - started < 1000);
  // Offset 0, and an offset reaching before the output start.
  assert.ok((decompress(Buffer.from([10, 0x10, 0x41, 0x00, 0x00, 0x00]), 10) as number) < 0);
  assert.ok((decompress(Buffer.from([10, 0x10, 0x41, 0x02, 0x00, 0x00]), 10) as number) < 0);
  // A final sequence with a match nibble, and a sequence ending after its offset.
  assert.ok((decompress(Buffer.from([1, 0x11, 0x41]), 1) as number) < 0);
  assert.ok((decompress(Buffer.from([5, 0x10, 0x41, 0x01, 0x00]), 5) as number) < 0);
  // Literal length extension running off the end.
  assert.ok((decompress(Buffer.from([40, 0xf0, 0xff, 0xff]), 40) as number) < 0);
});

/**
 * Decodes `block` with an LzPrefixDecoder in steps of the given sizes (then to the end), checking
 * after every step that the final bytes are a prefix of `whole` and that nothing is written outside
 * the output range. Returns the final length or the first negative code.
 */
function decodeInSteps(block: Buffer, steps: number[], whole: Buffer | null): number {
  const decoder = new LzPrefixDecoder();
  const stated = lzUncompressedLength(block, 0, block.length);
  const pad = 3;
  const dst = Buffer.alloc(pad + Math.max(0, stated) + pad, CANARY);
  const n = decoder.begin(block, 0, block.length);
  assert.equal(n, stated, 'begin returns the header length or its error');
  if (n < 0) return n;
  decoder.into(dst, pad);
  assert.equal(decoder.decoded, 0, 'begin decodes nothing');
  let final = 0;
  for (const want of [...steps, n]) {
    const got = decoder.extend(want);
    if (got < 0) return got;
    assert.ok(got >= final, 'decoding never goes back');
    assert.ok(got >= Math.min(want, n) && got <= n, `extend(${want}) gave ${got} of ${n}`);
    final = got;
    if (whole !== null) assert.ok(dst.subarray(pad, pad + got).equals(whole.subarray(0, got)), `the first ${got} bytes are final`);
  }
  for (let i = 0; i < pad; i++) assert.equal(dst[i], CANARY, 'wrote before dstStart');
  for (let i = pad + n; i < dst.length; i++) assert.equal(dst[i], CANARY, 'wrote past the output range');
  return final;
}

test('prefix decoder: decoding in steps gives final prefixes of the whole block (property)', async () => {
  await withSeed('lz prefix decoder', async (seed) => {
    const rnd = new Random(seed);
    const sources = [benchmarkLike(rnd, 2100), benchmarkLike(rnd, 4100), Buffer.alloc(3000, 0x41)];
    fc.assert(
      fc.property(fc.oneof(repetitiveArb, fc.constantFrom(...sources)), fc.array(fc.nat({ max: 5000 }), { maxLength: 8 }), (data, steps) => {
        const block = compress(data);
        if (block === null) return;
        assert.equal(decodeInSteps(block, steps, data), data.length);
      }),
      { seed, numRuns: numRuns(500, 20_000) },
    );
  });
});

test('prefix decoder: damaged blocks fail with a code or decode, never throw or write outside (property)', async () => {
  await withSeed('lz prefix decoder fuzz', async (seed) => {
    const rnd = new Random(seed);
    const block = compress(benchmarkLike(rnd, 2100));
    assert.ok(block !== null);
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 3 }), fc.nat(), fc.array(fc.nat({ max: 3000 }), { maxLength: 4 }), (flips, cut, steps) => {
        const b = Buffer.from(block);
        for (const f of flips) b[f.at % b.length] = (b[f.at % b.length] as number) ^ f.mask;
        const damaged = cut % 4 === 0 ? b.subarray(0, cut % b.length) : b;
        let r: number;
        try {
          r = decodeInSteps(damaged, steps, null);
        } catch (e) {
          assert.fail(`decoder threw ${e instanceof Error ? e.stack : String(e)}`);
        }
        if (r < 0) assert.ok(lzErrorMessage(r).startsWith('compressed block'), `code ${r}`);
      }),
      { seed, numRuns: numRuns(2000, 50_000) },
    );
    // A block cut anywhere fails by the end, however it is decoded.
    for (let cut = 0; cut < block.length; cut += 7) assert.ok(decodeInSteps(block.subarray(0, cut), [cut * 2], null) < 0, `cut at ${cut}`);
  });
});


test('codec: literals copied a word at a time never write past a tight destination, and round-trip', () => {
  const SEED = testSeed();
  // The encoder copies short literal runs 4 bytes per step and may run up to 3 bytes past them:
  // only where the output limit (dst's end or the 12.5% bound) leaves room. Destinations cut
  // exactly at every length near the compressed size must see no write past their end (a DataView
  // would throw) and no byte before dstStart.
  const rnd = new Random(SEED ^ 0x11);
  for (let round = 0; round < 300; round++) {
    const data = round % 3 === 0 ? randomBytes(rnd, 1 + rnd.nextInt(300)) : benchmarkLike(rnd, 1 + rnd.nextInt(3000));
    const start = rnd.nextInt(8);
    const roomy = Buffer.alloc(start + data.length + 64, CANARY);
    const n = compressBlock(data, 0, data.length, roomy, start);
    for (let cut = Math.max(0, n - 6); cut <= (n < 0 ? 8 : n + 6); cut++) {
      const dst = Buffer.alloc(start + cut, CANARY);
      const m = compressBlock(data, 0, data.length, dst, start);
      assert.ok(dst.subarray(0, start).equals(Buffer.alloc(start, CANARY)), `SEED=${SEED} round ${round}: wrote before dstStart`);
      if (m < 0) continue;
      assert.ok(m <= cut, `SEED=${SEED} round ${round}: claims ${m} bytes in ${cut}`);
      const out = Buffer.alloc(data.length);
      assert.equal(decompressBlock(dst, start, start + m, out, 0, data.length), data.length, `SEED=${SEED} round ${round}`);
      assert.ok(out.equals(data), `SEED=${SEED} round ${round}: round trip`);
    }
  }
});
