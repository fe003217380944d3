// Micro-benchmark of the SSTable block codec (src/sstable/lz-codec.ts); not part of the tests.
//
//   npm run build && node bench/lz-codec.mjs [--blocks N] [--seconds S] [--block-size B] [--lib DIR]
//
// Builds data blocks the way a table of the benchmark data looks (bench/workloads.mjs): 16-byte
// zero-padded decimal keys (consecutive even numbers, as in a compacted table) as internal keys
// with an 8-byte trailer, prefix-compressed with restarts every 16 entries by the real
// BlockBuilder, and 100-byte values (the key, 34 random bytes, a copy of the first 50 bytes).
// Reports compress and decompress throughput (MB/s of uncompressed bytes), µs per 4 KiB block,
// and the compressed/uncompressed ratio; zlib deflate/inflate (raw, level 1) for reference, and
// the encoder's early give-up on incompressible blocks. Each figure is the best of 5 timed runs
// (the median is shown too): shared machines are noisy.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng, writeKey, writeValue } from './workloads.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    blocks: { type: 'string', default: '512' },
    seconds: { type: 'string', default: '1.5' },
    'block-size': { type: 'string', default: '4096' },
    lib: { type: 'string' },
  },
});

// The compiled library: --lib, else dist/ (npm run build) or build/src/ (npm run build:test),
// whichever was built last.
const libDir = (args.lib === undefined ? ['dist', 'build/src'] : [args.lib])
  .map((d) => path.resolve(repo, d))
  .filter((d) => fs.existsSync(path.join(d, 'sstable', 'lz-codec.js')))
  .sort((a, b) => fs.statSync(path.join(b, 'sstable', 'lz-codec.js')).mtimeMs - fs.statSync(path.join(a, 'sstable', 'lz-codec.js')).mtimeMs)[0];
if (libDir === undefined) {
  console.error('bench/lz-codec.mjs: build first (npm run build)');
  process.exit(2);
}
const lib = (p) => import(pathToFileURL(path.join(libDir, p)).href);
const codec = await lib('sstable/lz-codec.js');
const { BlockBuilder } = await lib('sstable/block-builder.js');
const { makeInternalKey, KIND_VALUE } = await lib('base/internal-key.js');

const BLOCK_COUNT = Number(args.blocks);
const SECONDS = Number(args.seconds);
const BLOCK_SIZE = Number(args['block-size']);

function buildBlocks() {
  const rng = new Rng(0x1234);
  const builder = new BlockBuilder(16, BLOCK_SIZE * 2);
  const key = Buffer.alloc(16);
  const value = Buffer.alloc(100);
  const blocks = [];
  let num = 2 * rng.below(1_000_000);
  while (blocks.length < BLOCK_COUNT) {
    writeKey(key, 0, num);
    writeValue(value, 0, key, 0, num, 0);
    builder.add(makeInternalKey(key, 1 + rng.below(1_000_000), KIND_VALUE), value);
    num += 2;
    if (builder.estimatedSizeBytes() >= BLOCK_SIZE) {
      blocks.push(Buffer.from(builder.finish()));
      builder.reset();
    }
  }
  return blocks;
}

function randomBlocks(like) {
  const rng = new Rng(0xbad);
  return like.map((b) => {
    const r = Buffer.alloc(b.length);
    for (let i = 0; i + 4 <= r.length; i += 4) r.writeUInt32LE(rng.next(), i);
    return r;
  });
}

const TRIALS = 5;

/**
 * Runs `round` (one pass over all blocks) in TRIALS timed runs of SECONDS / TRIALS each; returns
 * the best and the median ns per pass.
 */
function time(round) {
  for (let i = 0; i < 3; i++) round(); // warm up
  const budget = BigInt(Math.round((SECONDS / TRIALS) * 1e9));
  const trials = [];
  for (let t = 0; t < TRIALS; t++) {
    let passes = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0n;
    do {
      round();
      passes++;
      elapsed = process.hrtime.bigint() - start;
    } while (elapsed < budget);
    trials.push(Number(elapsed) / passes);
  }
  trials.sort((a, b) => a - b);
  return { best: trials[0], median: trials[TRIALS >> 1] };
}

function report(name, { best, median }, rawBytes, blockCount) {
  const mbps = rawBytes / (best / 1e9) / 1e6;
  const usPer4k = (best / 1e3) * (4096 / rawBytes);
  const usPerBlock = best / 1e3 / blockCount;
  const medianPer4k = (median / 1e3) * (4096 / rawBytes);
  console.log(
    `${name.padEnd(32)} ${mbps.toFixed(0).padStart(6)} MB/s  ${usPer4k.toFixed(2).padStart(6)} µs / 4 KiB  ${usPerBlock.toFixed(2).padStart(6)} µs / block  (median ${medianPer4k.toFixed(2)} µs / 4 KiB)`,
  );
}

const blocks = buildBlocks();
let rawBytes = 0;
for (const b of blocks) rawBytes += b.length;
const maxLen = Math.max(...blocks.map((b) => b.length));
const dst = Buffer.alloc(maxLen);
const out = Buffer.alloc(maxLen);

// Compress once, check the round trip, keep the compressed blocks.
const compressed = [];
let compressedBytes = 0;
let rawStored = 0;
for (const b of blocks) {
  const n = codec.compressBlock(b, 0, b.length, dst, 0);
  if (n < 0) {
    rawStored++;
    compressed.push(null);
    compressedBytes += b.length;
    continue;
  }
  const c = Buffer.from(dst.subarray(0, n));
  const len = codec.lzUncompressedLength(c, 0, c.length);
  const r = codec.decompressBlock(c, 0, c.length, out, 0, len);
  if (r !== b.length || !out.subarray(0, r).equals(b)) throw new Error('round trip failed');
  compressed.push(c);
  compressedBytes += n;
}
const zBlocks = blocks.map((b) => zlib.deflateRawSync(b, { level: 1 }));
const zBytes = zBlocks.reduce((s, z) => s + z.length, 0);

console.log(`${path.relative(repo, libDir)}/sstable/lz-codec.js, node ${process.version}, ${blocks.length} blocks of ~${Math.round(rawBytes / blocks.length)} bytes (block size ${BLOCK_SIZE}), ${(rawBytes / 1e6).toFixed(2)} MB`);
console.log(`ratio lz:   ${(compressedBytes / rawBytes).toFixed(3)} (compressed / raw; ${rawStored} blocks stored raw)`);
console.log(`ratio zlib: ${(zBytes / rawBytes).toFixed(3)} (deflate raw, level 1, for reference)`);

let sink = 0;
report('lz compress', time(() => {
  for (const b of blocks) sink += codec.compressBlock(b, 0, b.length, dst, 0);
}), rawBytes, blocks.length);
// As the table reader does: compressed bytes come from one reused read buffer (the stored
// compressed blocks are back to back in `stored`), output goes to one reused buffer.
const stored = Buffer.concat(compressed.filter((c) => c !== null));
const ends = [];
for (let at = 0, i = 0; i < compressed.length; i++) if (compressed[i] !== null) ends.push((at += compressed[i].length));
report('lz decompress', time(() => {
  let start = 0;
  for (const end of ends) {
    sink += codec.decompressBlock(stored, start, end, out, 0, codec.lzUncompressedLength(stored, start, end));
    start = end;
  }
}), rawBytes, blocks.length);
const incompressible = randomBlocks(blocks);
report('lz compress (random: gives up)', time(() => {
  for (const b of incompressible) sink += codec.compressBlock(b, 0, b.length, dst, 0);
}), rawBytes, blocks.length);
report('zlib deflateRaw level 1', time(() => {
  for (const b of blocks) sink += zlib.deflateRawSync(b, { level: 1 }).length;
}), rawBytes, blocks.length);
report('zlib inflateRaw', time(() => {
  for (const z of zBlocks) sink += zlib.inflateRawSync(z).length;
}), rawBytes, blocks.length);
if (sink === 0.5) console.log(sink); // keep the work observable
