/**
 * Review (session 13): the decoder loop of lz-codec.ts was factored into a resumable
 * decodeSequences and LzPrefixDecoder was added. decompressBlock must behave exactly as before.
 *
 *  - A verbatim copy of the pre-change decompressBlock (commit 77a6a2b) is the oracle: for valid,
 *    mutated, truncated, extended and random inputs, at odd dst offsets and with reused buffers,
 *    the new decompressBlock returns the same code and leaves the destination buffer byte-for-byte
 *    identical (including scratch bytes written before an error).
 *  - LzPrefixDecoder, driven by random extend() steps: its final bytes are always a prefix of the
 *    oracle's output; when the oracle succeeds the decoder reaches the end with the same bytes; when
 *    the decoder fails, the oracle fails too, with the same code.
 * Seeds: SEED=<n> replays (printed on failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compressBlock,
  decompressBlock,
  lzCompressedBytesLimit,
  lzUncompressedLength,
  LzPrefixDecoder,
  LZ_ERR_HEADER,
  LZ_ERR_LENGTH,
  LZ_ERR_OFFSET,
  LZ_ERR_OVERRUN,
  LZ_ERR_TRAILING,
  LZ_ERR_TRUNCATED,
} from '../../src/sstable/lz-codec.js';
import { copyBytes } from '../../src/util/copy-bytes.js';
import { Random } from '../../src/util/random.js';
import { numRuns, withSeed } from '../harness/seed.js';

// ------------------------------------------------------------------ the pre-change decoder (oracle)

const MIN_MATCH = 4;
const LOOP_MATCH_BYTES_MAX = 64;
const LOOP_LITERAL_BYTES_MAX = 64;

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

let oldParsed = 0;
function oldParseHeader(src: Buffer, start: number, end: number): number {
  let ip = start;
  let n = 0;
  for (let shift = 0; ; shift += 7) {
    if (ip >= end || shift > 21) return -1;
    const b = src[ip++] as number;
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  oldParsed = n;
  return ip;
}

function oldDecompressBlock(src: Buffer, start: number, end: number, dst: Buffer, dstStart: number, expectedLength: number): number {
  if (!(Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(dstStart) && Number.isInteger(expectedLength))) {
    throw new RangeError('decompressBlock: positions must be integers');
  }
  if (!(start >= 0 && start <= end && end <= src.length && dstStart >= 0 && expectedLength >= 0 && dstStart + expectedLength <= dst.length)) {
    throw new RangeError('decompressBlock: range outside its buffer');
  }
  const sv = viewOf(src);
  const dv = viewOf(dst);
  let ip = oldParseHeader(src, start, end);
  if (ip < 0 || oldParsed !== expectedLength) return LZ_ERR_HEADER;
  const oend = dstStart + expectedLength;
  let op = dstStart;
  for (;;) {
    if (ip >= end) return LZ_ERR_TRUNCATED;
    const token = src[ip++] as number;
    let len = token >>> 4;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) return LZ_ERR_TRUNCATED;
        b = src[ip++] as number;
        len += b;
      } while (b === 255);
    }
    if (len > 0) {
      if (len > end - ip) return LZ_ERR_TRUNCATED;
      if (len > oend - op) return LZ_ERR_OVERRUN;
      if (len > LOOP_LITERAL_BYTES_MAX) {
        copyBytes(src, ip, ip + len, dst, op);
      } else if (op + len + 3 < oend && ip + len + 3 < end) {
        for (let i = 0; i < len; i += 4) dv.setInt32(op + i, sv.getInt32(ip + i, true), true);
      } else {
        let i = 0;
        for (; i + 4 <= len; i += 4) dv.setInt32(op + i, sv.getInt32(ip + i, true), true);
        for (; i < len; i++) dst[op + i] = src[ip + i] as number;
      }
      ip += len;
      op += len;
    }
    if (ip === end) {
      if ((token & 15) !== 0) return LZ_ERR_TRAILING;
      break;
    }
    if (end - ip < 2) return LZ_ERR_TRUNCATED;
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op - dstStart) return LZ_ERR_OFFSET;
    len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) return LZ_ERR_TRUNCATED;
        b = src[ip++] as number;
        len += b;
      } while (b === 255);
    }
    len += MIN_MATCH;
    if (len > oend - op) return LZ_ERR_OVERRUN;
    const ref = op - offset;
    if (len <= LOOP_MATCH_BYTES_MAX) {
      if (offset >= 4 && op + len + 3 < oend) {
        for (let i = 0; i < len; i += 4) dv.setInt32(op + i, dv.getInt32(ref + i, true), true);
      } else {
        let i = 0;
        if (offset >= 4) for (; i + 4 <= len; i += 4) dv.setInt32(op + i, dv.getInt32(ref + i, true), true);
        for (; i < len; i++) dst[op + i] = dst[ref + i] as number;
      }
      op += len;
    } else if (offset >= len) {
      dst.copyWithin(op, ref, ref + len);
      op += len;
    } else {
      const mend = op + len;
      while (op < mend) {
        const chunk = Math.min(op - ref, mend - op);
        dst.copyWithin(op, ref, ref + chunk);
        op += chunk;
      }
    }
  }
  if (op !== oend) return LZ_ERR_LENGTH;
  return expectedLength;
}

// ------------------------------------------------------------------ inputs

function compress(data: Buffer): Buffer | null {
  const dst = Buffer.alloc(Math.max(8, lzCompressedBytesLimit(data.length)));
  const n = compressBlock(data, 0, data.length, dst, 0);
  return n < 0 ? null : Buffer.from(dst.subarray(0, n));
}

function sampleData(rnd: Random): Buffer {
  const n = 1 + rnd.nextInt(rnd.nextInt(4) === 0 ? 20_000 : 3000);
  const out = Buffer.alloc(n);
  const kind = rnd.nextInt(4);
  if (kind === 0) {
    out.fill(rnd.nextInt(256));
    for (let i = 0; i < n / 50; i++) out[rnd.nextInt(n)] = rnd.nextInt(256);
  } else if (kind === 1) {
    const period = 1 + rnd.nextInt(9);
    for (let i = 0; i < n; i++) out[i] = i < period ? rnd.nextInt(256) : (out[i - period] as number);
  } else {
    // block-like: keys with shared prefixes, some random runs, some copies
    let i = 0;
    while (i < n) {
      const r = rnd.nextInt(3);
      const len = 1 + rnd.nextInt(r === 2 ? 200 : 30);
      for (let j = 0; j < len && i < n; j++, i++) {
        if (r === 0) out[i] = 0x61 + rnd.nextInt(4);
        else if (r === 1) out[i] = rnd.nextInt(256);
        else out[i] = i >= 100 ? (out[i - 100] as number) : 0;
      }
    }
  }
  return out;
}

/** A valid block, or a damaged variant of one, or plain noise. */
function sampleInput(rnd: Random): Buffer {
  let block: Buffer | null = null;
  for (let tries = 0; tries < 10 && block === null; tries++) block = compress(sampleData(rnd));
  if (block === null || rnd.nextInt(20) === 0) {
    const noise = Buffer.alloc(1 + rnd.nextInt(60));
    for (let i = 0; i < noise.length; i++) noise[i] = rnd.nextInt(256);
    return noise;
  }
  const mode = rnd.nextInt(8);
  const b = Buffer.from(block);
  if (mode === 0) return b;
  if (mode <= 3) {
    const flips = 1 + rnd.nextInt(4);
    for (let f = 0; f < flips; f++) b[rnd.nextInt(b.length)] = rnd.nextInt(256);
    return b;
  }
  if (mode === 4) return b.subarray(0, rnd.nextInt(b.length + 1));
  if (mode === 5) return Buffer.concat([b, Buffer.from([rnd.nextInt(256), rnd.nextInt(256)].slice(0, 1 + rnd.nextInt(2)))]);
  if (mode === 6) {
    // drop or duplicate a byte in the middle
    const at = rnd.nextInt(b.length);
    return rnd.nextInt(2) === 0 ? Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]) : Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1), b.subarray(at)]);
  }
  return b;
}

test('decompressBlock returns the same code and writes the same bytes as the pre-change decoder', async () => {
  await withSeed('session13 lz equivalence', async (seed) => {
    const rnd = new Random(seed);
    // Reused buffers (the codec caches DataViews per buffer object) and fresh ones.
    const reusedSrc = Buffer.alloc(64 * 1024);
    const reusedDst = Buffer.alloc(64 * 1024);
    const counts = new Map<number, number>();
    const runs = numRuns(3000, 50_000);
    for (let run = 0; run < runs; run++) {
      const input = sampleInput(rnd);
      const header = lzUncompressedLength(input, 0, input.length);
      let expected = header >= 0 ? header : rnd.nextInt(5000);
      const r = rnd.nextInt(10);
      if (r === 0) expected = Math.max(0, expected - 1 - rnd.nextInt(3));
      else if (r === 1) expected += 1 + rnd.nextInt(3);
      const srcStart = rnd.nextInt(3) === 0 ? rnd.nextInt(9) : 0;
      const dstStart = rnd.nextInt(3) === 0 ? rnd.nextInt(9) : 0;
      const tail = rnd.nextInt(3) === 0 ? rnd.nextInt(9) : 0;
      const useReused = rnd.nextInt(2) === 0 && srcStart + input.length <= reusedSrc.length && dstStart + expected + tail <= reusedDst.length;
      const fill = rnd.nextInt(256);
      let srcA: Buffer;
      let srcB: Buffer;
      let dstA: Buffer;
      let dstB: Buffer;
      if (useReused) {
        srcA = reusedSrc;
        srcB = Buffer.from(reusedSrc);
        input.copy(srcA, srcStart);
        input.copy(srcB, srcStart);
        dstA = reusedDst;
        dstA.fill(fill);
        dstB = Buffer.alloc(reusedDst.length, fill);
      } else {
        srcA = Buffer.alloc(srcStart + input.length + tail, 0x5a);
        input.copy(srcA, srcStart);
        srcB = Buffer.from(srcA);
        dstA = Buffer.alloc(dstStart + expected + tail, fill);
        dstB = Buffer.alloc(dstStart + expected + tail, fill);
      }
      const end = srcStart + input.length;
      const got = decompressBlock(srcA, srcStart, end, dstA, dstStart, expected);
      const want = oldDecompressBlock(srcB, srcStart, end, dstB, dstStart, expected);
      const what = `run ${run} (SEED=${seed}): input ${input.toString('hex').slice(0, 200)} expected ${expected} srcStart ${srcStart} dstStart ${dstStart}`;
      assert.equal(got, want, `${what}: return code`);
      assert.ok(dstA.equals(dstB), `${what}: destination bytes differ`);
      counts.set(want, (counts.get(want) ?? 0) + 1);
    }
    // Every error code and success must have been exercised.
    for (const code of [LZ_ERR_HEADER, LZ_ERR_TRUNCATED, LZ_ERR_OFFSET, LZ_ERR_OVERRUN, LZ_ERR_LENGTH, LZ_ERR_TRAILING]) {
      assert.ok((counts.get(code) ?? 0) > 0, `SEED=${seed}: code ${code} never produced (${JSON.stringify([...counts])})`);
    }
  });
});

test('hand-made edge cases: same code as the pre-change decoder', () => {
  const cases: [number[], number][] = [
    [[0], 0], // empty block, header only: truncated
    [[0, 0x00], 0], // one empty last sequence
    [[4, 0x40, 1, 2, 3, 4], 4],
    [[4, 0x40, 1, 2, 3, 4], 5],
    [[4, 0x41, 1, 2, 3, 4], 4], // trailing match nibble
    [[8, 0x40, 1, 2, 3, 4, 4, 0], 8], // ends with a match: truncated at the next token
    [[8, 0x40, 1, 2, 3, 4, 4, 0, 0x00], 8], // match ends the output, then an empty last sequence
    [[8, 0x40, 1, 2, 3, 4, 4, 0, 0x10, 9], 8], // overrun in the last literals
    [[8, 0x40, 1, 2, 3, 4, 4, 0, 0xff], 8], // trailing junk after the output is complete
    [[8, 0x40, 1, 2, 3, 4, 5, 0, 0x00], 8], // offset beyond the output
    [[8, 0x40, 1, 2, 3, 4, 0, 0, 0x00], 8], // offset 0
    [[9, 0x40, 1, 2, 3, 4, 4, 0, 0x00], 9], // short
    [[20, 0x1f, 7, 1, 0, 0x00], 20], // overlapping match of period 1, 19 bytes... length mismatch
    [[20, 0x1f, 7, 1, 0, 0x00], 19],
  ];
  for (const [bytes, expected] of cases) {
    const src = Buffer.from(bytes);
    const a = Buffer.alloc(expected + 4, 0xa5);
    const b = Buffer.alloc(expected + 4, 0xa5);
    const got = decompressBlock(src, 0, src.length, a, 2, expected);
    const want = oldDecompressBlock(src, 0, src.length, b, 2, expected);
    assert.equal(got, want, `${src.toString('hex')} expecting ${expected}`);
    assert.ok(a.equals(b), `${src.toString('hex')}: bytes`);
  }
});

/**
 * Drives an LzPrefixDecoder with random steps. Returns its final result (bytes or code) and checks
 * that every prefix it declared final matches the oracle's output.
 */
let lastPrefixOutput = Buffer.alloc(0);
function prefixDecode(rnd: Random, input: Buffer, oracle: Buffer | null, what: string): number {
  const d = new LzPrefixDecoder();
  const n = lzUncompressedLength(input, 0, input.length);
  const dst = Buffer.alloc(Math.max(0, n) + 6, 0xa5);
  const r = d.begin(input, 0, input.length);
  assert.equal(r, n, `${what}: begin`);
  if (r < 0) return r;
  d.into(dst, 3);
  let last = 0;
  for (let step = 0; step < 12; step++) {
    const want = step === 11 ? n : rnd.nextInt(n + 20);
    const got = d.extend(want);
    if (got < 0) {
      assert.equal(d.decoded, 0, `${what}: a failed decoder reports nothing final`);
      return got;
    }
    assert.ok(got >= last && got >= Math.min(want, n) && got <= n, `${what}: extend(${want}) = ${got}, n ${n}`);
    assert.equal(d.decoded, got, `${what}: decoded`);
    if (oracle !== null) assert.ok(dst.subarray(3, 3 + got).equals(oracle.subarray(0, got)), `${what}: final prefix of ${got} bytes differs`);
    last = got;
  }
  for (let i = 0; i < 3; i++) assert.equal(dst[i], 0xa5, `${what}: wrote before dstStart`);
  for (let i = 3 + n; i < dst.length; i++) assert.equal(dst[i], 0xa5, `${what}: wrote past the block`);
  lastPrefixOutput = dst.subarray(3, 3 + n);
  return last;
}

test('LzPrefixDecoder agrees with the pre-change decoder on valid and damaged blocks', async () => {
  await withSeed('session13 lz prefix equivalence', async (seed) => {
    const rnd = new Random(seed);
    const runs = numRuns(3000, 50_000);
    let bothFailed = 0;
    let acceptedWhatOldRejects = 0;
    const acceptedExamples: string[] = [];
    for (let run = 0; run < runs; run++) {
      const input = sampleInput(rnd);
      const n = lzUncompressedLength(input, 0, input.length);
      if (n < 0) continue;
      const out = Buffer.alloc(n);
      const want = oldDecompressBlock(input, 0, input.length, out, 0, n);
      const what = `run ${run} (SEED=${seed}) input ${input.toString('hex').slice(0, 200)}`;
      const got = prefixDecode(rnd, input, want >= 0 ? out : null, what);
      if (want >= 0) {
        assert.equal(got, n, `${what}: the old decoder succeeds, the prefix decoder gave ${got}`);
      } else if (got < 0) {
        assert.equal(got, want, `${what}: error code`);
        bothFailed++;
      } else {
        // The prefix decoder decoded every output byte but the old decoder rejects the input: only
        // possible when the input goes on after the output is complete (junk after the last
        // match), so the old decoder had produced the same bytes before failing.
        assert.ok(lastPrefixOutput.equals(out), `${what}: accepted by the prefix decoder with other bytes than the old decoder produced before failing (${want})`);
        acceptedWhatOldRejects++;
        if (acceptedExamples.length < 3) acceptedExamples.push(`${input.toString('hex').slice(0, 80)} (old: ${want})`);
      }
    }
    assert.ok(bothFailed > 0, 'some damaged blocks fail in both');
    if (acceptedWhatOldRejects > 0) {
      // See session13-prefix-decoder-trailing.test.ts. Reported here, not failed.
      console.log(`session13: prefix decoder fully decoded ${acceptedWhatOldRejects} inputs decompressBlock rejects, e.g. ${acceptedExamples.join('; ')}`);
    }
  });
});

test('fast-check: random sequences of tokens (hand-built streams) decode identically', () => {
  const seqArb = fc.record({
    lit: fc.uint8Array({ maxLength: 70 }),
    matchLen: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 600 })),
    offset: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 70_000 })),
  });
  fc.assert(
    fc.property(fc.array(seqArb, { maxLength: 12 }), fc.uint8Array({ maxLength: 40 }), fc.integer({ min: -2, max: 2 }), fc.nat(), (seqs, lastLit, delta, seed) => {
      const parts: number[] = [];
      let outLen = 0;
      const putLen = (len: number): void => {
        if (len < 15) return;
        len -= 15;
        while (len >= 255) {
          parts.push(255);
          len -= 255;
        }
        parts.push(len);
      };
      for (const s of seqs) {
        const ml = s.matchLen;
        parts.push(((s.lit.length < 15 ? s.lit.length : 15) << 4) | (ml < 15 ? ml : 15));
        putLen(s.lit.length);
        parts.push(...s.lit);
        parts.push(s.offset & 0xff, (s.offset >>> 8) & 0xff);
        putLen(ml);
        outLen += s.lit.length + ml + 4;
      }
      parts.push((lastLit.length < 15 ? lastLit.length : 15) << 4);
      putLen(lastLit.length);
      parts.push(...lastLit);
      outLen += lastLit.length;
      const n = Math.max(0, outLen + delta);
      const header: number[] = [];
      let v = n;
      while (v >= 0x80) {
        header.push((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      header.push(v);
      const src = Buffer.from([...header, ...parts]);
      const a = Buffer.alloc(n + 2, 0xa5);
      const b = Buffer.alloc(n + 2, 0xa5);
      const got = decompressBlock(src, 0, src.length, a, 1, n);
      const want = oldDecompressBlock(src, 0, src.length, b, 1, n);
      assert.equal(got, want, `stream ${src.toString('hex').slice(0, 120)}`);
      assert.ok(a.equals(b));
      if (lzUncompressedLength(src, 0, src.length) === n) {
        const oracle = want >= 0 ? b.subarray(1, 1 + n) : null;
        const r = prefixDecode(new Random(seed), src, oracle, `stream ${src.toString('hex').slice(0, 120)}`);
        if (want >= 0) assert.equal(r, n);
        else if (r < 0) assert.equal(r, want);
      }
    }),
    { seed: Number(process.env['SEED'] ?? 0x13), numRuns: numRuns(2000, 20_000) },
  );
});
