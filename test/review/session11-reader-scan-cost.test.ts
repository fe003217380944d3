/**
 * Review of cece3c0: is the scan past a bad record linear in the file size whatever the bytes are?
 *
 * 1. skipCorrupt: the checksum budget max(64 MiB, 4 x file size) is per scan, and skipCorrupt runs
 *    one scan per corrupt region. A candidate whose claimed length ends exactly at EOF always
 *    passes the "what follows could be a record" filter (EOF is plausible), so every such false
 *    candidate is checksummed over the rest of the file. K damaged regions with c such candidates
 *    each cost about K * c * size / 2 bytes: quadratic in the file size (the number of regions
 *    grows with it), bounded only by K * 64 MiB.
 * 2. A torn record of 0x01 bytes followed by zeros (a zero tail): every offset is a candidate
 *    whose end lands in the zeros, outside the read window, so the follower check does a 9-byte
 *    positioned read per byte offset (one pread syscall per byte on NodeFs).
 *
 * These tests failed against cece3c0; its budget and follower filter were replaced by exact checks
 * from prefix-CRC checkpoints (src/wal/record-reader.ts PrefixCrcs), and they pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';

import { MemFs } from '../../src/env/mem-fs.js';
import { NodeFs } from '../../src/env/node-fs.js';
import { LOG_FORMAT_VERSION, RECORD_TYPE_DATA } from '../../src/wal/format.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { countingReads } from '../harness/counting-file.js';

const PATH = '/db/000007.log';

/**
 * Header, then `regions` x (a bad record holding `fakes` 9-byte fake headers, each claiming a
 * length that ends exactly at EOF; a good 32-byte record).
 */
function manyRegionsLog(regions: number, fakes: number): { fs: MemFs; size: number } {
  const fs = new MemFs();
  fs.mkdir('/db');
  const w = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal', LOG_FORMAT_VERSION);
  const badAt: number[] = [];
  for (let i = 0; i < regions; i++) {
    badAt.push(w.sizeBytes());
    w.add(Buffer.alloc(9 * fakes, 0x55));
    w.add(Buffer.alloc(32, i & 0xff));
  }
  w.close();
  const bytes = Buffer.from(fs.readFileRaw(PATH));
  const size = bytes.length;
  for (const b of badAt) {
    for (let j = 0; j < fakes; j++) {
      const q = b + 9 + 9 * j;
      bytes.writeUInt32LE(0xdeadbeef, q);
      bytes.writeUInt32LE(size - q - 9, q + 4);
      bytes[q + 8] = RECORD_TYPE_DATA;
    }
  }
  fs.writeFileRaw(PATH, bytes); // payloads changed after their CRCs: every "bad" record is bad
  return { fs, size };
}

test('skipCorrupt over many damaged regions: total bytes read stay linear in the file size', () => {
  const regions = 300;
  const { fs, size } = manyRegionsLog(regions, 100);
  const file = fs.open(PATH, 'r');
  const c = countingReads(file);
  const t0 = performance.now();
  let records = 0;
  let skipped = 0;
  try {
    const reader = new RecordReader(c.handle, PATH, { skipCorrupt: true });
    while (reader.next() !== undefined) records++;
    skipped = reader.skippedRecords;
  } finally {
    file.close();
  }
  const ms = performance.now() - t0;
  const perMiB = ms / 1000 / (size / 2 ** 20);
  console.log(
    `file ${(size / 1024).toFixed(0)} KiB: read ${(c.bytes() / 2 ** 20).toFixed(0)} MiB ` +
      `(${(c.bytes() / size).toFixed(0)} x the file) in ${ms.toFixed(0)} ms = ${perMiB.toFixed(1)} s/MiB`,
  );
  assert.equal(records, regions, 'every good record is recovered');
  assert.equal(skipped, regions, 'every bad record is skipped');
  // Generous linear bound: 64 x the file size plus one scan's minimum budget.
  assert.ok(
    c.bytes() <= 64 * size + 64 * 2 ** 20,
    `skipCorrupt read ${(c.bytes() / 2 ** 20).toFixed(0)} MiB for a ${(size / 1024).toFixed(0)} KiB log ` +
      `(${(c.bytes() / size).toFixed(0)} x its size, ${perMiB.toFixed(1)} s/MiB): each of the ${regions} scans has its own budget`,
  );
});

test('a torn record of 0x01 bytes followed by a zero tail (NodeFs): read calls stay far below one per byte', () => {
  const dir = nodeFs.mkdtempSync(nodePath.join(os.tmpdir(), 'session11-reader-'));
  const path = nodePath.join(dir, '000007.log');
  try {
    const nfs = new NodeFs();
    const w = RecordWriter.create(nfs.open(path, 'truncate'), 7, 'wal', LOG_FORMAT_VERSION);
    for (let i = 0; i < 3; i++) w.add(Buffer.alloc(50, i + 1));
    const tornAt = w.sizeBytes();
    w.close();
    // The torn write: its header and 2 MiB of a 0x01 value reached the disk; then 16 MiB of
    // zeros where the rest of its pages never did.
    const torn = Buffer.alloc(9 + (2 << 20) + (16 << 20));
    torn.writeUInt32LE(0x12345678, 0);
    torn.writeUInt32LE(40 << 20, 4);
    torn[8] = RECORD_TYPE_DATA;
    torn.fill(0x01, 9, 9 + (2 << 20));
    nodeFs.appendFileSync(path, torn);
    const size = nodeFs.statSync(path).size;

    const file = nfs.open(path, 'r');
    const c = countingReads(file);
    const t0 = performance.now();
    let records = 0;
    let tornOffset: number | undefined;
    try {
      const reader = new RecordReader(c.handle, path);
      while (reader.next() !== undefined) records++;
      tornOffset = reader.tornTailOffset;
    } finally {
      file.close();
    }
    const ms = performance.now() - t0;
    console.log(`${(size / 2 ** 20).toFixed(0)} MiB log: ${c.calls()} read calls, ${ms.toFixed(0)} ms`);
    assert.equal(records, 3);
    assert.equal(tornOffset, tornAt, 'a torn tail');
    assert.ok(
      c.calls() < size / 64,
      `${c.calls()} read calls (${ms.toFixed(0)} ms) for a ${(size / 2 ** 20).toFixed(0)} MiB log: a 9-byte pread per candidate whose end is outside the window`,
    );
  } finally {
    nodeFs.rmSync(dir, { recursive: true, force: true });
  }
});
