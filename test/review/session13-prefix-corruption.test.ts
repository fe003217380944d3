/**
 * Review (session 13): damaged data blocks under the new point-lookup paths.
 *
 *  1. Table level, damage behind a valid CRC (the CRC recomputed after the damage, as a buggy or
 *     hostile writer would leave it), in compressed blocks: point lookups through readers with no
 *     cache (prefix decoding), a refusing cache and a big cache must answer or throw CORRUPTION,
 *     never another error or a hang; lookups answered by undamaged blocks must be right.
 *  2. Block level: uncompressed block content damaged structurally (restart array, entry headers,
 *     lengths), then recompressed, so the LZ stream is valid and only the block format is wrong:
 *     seekGEInPrefix must throw CORRUPTION or answer inside what it decoded.
 *  3. Disk level: bytes flipped in .sst files of a real DB directory (CRC not fixed): every get
 *     through no / tiny / big caches is right or CORRUPTION.
 * Replay: SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { getBlockHandle } from '../../src/sstable/block-handle.js';
import { compressBlock, lzCompressedBytesLimit, LzPrefixDecoder } from '../../src/sstable/lz-codec.js';
import { compareInternalKeys, KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import { crc32Of, maskCrc } from '../../src/util/crc.js';
import { Random } from '../../src/util/random.js';
import { open } from '../../src/index.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { lowerBound, type Entry } from '../sstable/model.js';
import { withSeed } from '../harness/seed.js';

function table(rnd: Random, blockSizeBytes: number): { bytes: Buffer; model: Entry[] } {
  const model: Entry[] = [];
  const n = 150 + rnd.nextInt(150);
  for (let i = 0; i < n; i++) {
    const u = Buffer.from(`key${String(i).padStart(5, '0')}${i % 7 === 0 ? 'x'.repeat(70) : ''}`);
    const versions = i % 23 === 0 ? 12 : 1;
    for (let v = versions; v >= 1; v--) {
      model.push({ key: makeInternalKey(u, 1000 + i * 20 + v, KIND_VALUE), value: Buffer.from(`value-${i}-${v}-${'abcd'.repeat(3 + (i % 9))}`) });
    }
  }
  const file = new BufferFile('d.sst');
  const b = new TableBuilder(file, { blockSizeBytes, bloomBitsPerKey: 10, restartInterval: [1, 4, 16][rnd.nextInt(3)] as number, compression: 'lz' });
  for (const e of model) b.add(e.key, e.value);
  b.finish();
  return { bytes: file.contents(), model };
}

function dataBlocks(bytes: Buffer): { offset: number; sizeBytes: number; type: number; lastKey: Buffer }[] {
  const reader = TableReader.open(new BufferFile('d.sst', bytes), 9, bytes.length, null);
  const it = new BlockIterator(reader.indexBlock, reader.path, reader.indexOffset);
  const out = [];
  for (it.first(); it.valid(); it.next()) {
    const h = { offset: 0, sizeBytes: 0 };
    getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), h, reader.path, reader.indexOffset);
    out.push({ ...h, type: bytes[h.offset + h.sizeBytes] as number, lastKey: Buffer.from(it.key()) });
  }
  it.close();
  reader.close();
  return out;
}

/** For each model entry, the data block holding it (by scanning each block alone). */
function blockOfEntries(bytes: Buffer, model: Entry[]): number[] {
  const blocks = dataBlocks(bytes);
  const reader = TableReader.open(new BufferFile('d.sst', bytes), 9, bytes.length, null);
  const owner: number[] = [];
  let b = 0;
  for (let i = 0; i < blocks.length; i++) {
    const h = blocks[i] as (typeof blocks)[number];
    const block = Buffer.from(reader.readDataBlock(h.offset, h.sizeBytes, false, null));
    const it = new BlockIterator(block, 'd.sst', h.offset);
    for (it.first(); it.valid(); it.next()) owner.push(i);
    it.close();
    b++;
  }
  reader.close();
  assert.equal(owner.length, model.length);
  void b;
  return owner;
}

test('compressed blocks damaged behind a valid CRC: lookups answer or throw CORRUPTION; undamaged blocks answer right', async () => {
  await withSeed('session13 prefix corruption', async (seed) => {
    const rnd = new Random(seed);
    const deadline = Date.now() + 7000;
    let cases = 0;
    let corruptions = 0;
    while (Date.now() < deadline) {
      const { bytes, model } = table(rnd, [256, 1024, 4096][rnd.nextInt(3)] as number);
      const blocks = dataBlocks(bytes);
      const owner = blockOfEntries(bytes, model);
      for (let trial = 0; trial < 40; trial++) {
        const bi = rnd.nextInt(blocks.length);
        const h = blocks[bi] as (typeof blocks)[number];
        if (h.type !== 1) continue;
        const bad = Buffer.from(bytes);
        const flips = 1 + rnd.nextInt(3);
        for (let f = 0; f < flips; f++) {
          // mostly after the header; sometimes the header
          const at = h.offset + (rnd.nextInt(10) === 0 ? 0 : rnd.nextInt(h.sizeBytes));
          bad[at] = rnd.nextInt(3) === 0 ? rnd.nextInt(256) : (bad[at] as number) ^ (1 << rnd.nextInt(8));
        }
        const end = h.offset + h.sizeBytes;
        bad.writeUInt32LE(maskCrc(crc32Of(bad, h.offset, end + 1)), end + 1);
        for (const cacheKind of ['none', 'tiny', 'big'] as const) {
          const cache = cacheKind === 'none' ? null : cacheKind === 'tiny' ? new BlockCache(64, 0, true) : new BlockCache(1 << 24, 0, true);
          const reader = TableReader.open(new BufferFile('d.sst', bad), 9, bad.length, cache);
          const search = new BlockPointSearch();
          for (let q = 0; q < 30; q++) {
            const i = rnd.nextInt(model.length);
            const e = model[i] as Entry;
            const target = rnd.nextInt(3) === 0 ? makeInternalKey(e.key.subarray(0, e.key.length - 8), MAX_SEQ, KIND_SEEK) : e.key;
            const j = lowerBound(model, target);
            const what = `SEED=${seed} trial ${trial} block ${bi} cache ${cacheKind} target entry ${i}`;
            cases++;
            const t0 = Date.now();
            try {
              const block = reader.find(target, search);
              // find searches from the block the index names (the answer's block or the one before
              // it) up to the answer's block: outside those, the damage must not matter.
              const want = model[j];
              const answerBlock = want === undefined ? blocks.length - 1 : (owner[j] as number);
              const damagedOnPath = bi >= answerBlock - 1 && bi <= answerBlock;
              if (!damagedOnPath) {
                if (want === undefined) assert.equal(block, null, `${what}: past the end`);
                else {
                  assert.ok(block !== null, `${what}: found nothing`);
                  const k = search.keyBuffer.subarray(0, search.keyLength);
                  assert.equal(compareInternalKeys(k, want.key), 0, `${what}: key`);
                  assert.ok(block.subarray(search.valueStart, search.valueEnd).equals(want.value), `${what}: value`);
                }
              } else if (block !== null) {
                assert.ok(search.valueStart <= search.valueEnd && search.valueEnd <= block.length, `${what}: value inside the block`);
              }
            } catch (err) {
              if (err instanceof assert.AssertionError) throw err;
              assert.ok(isLightningError(err, 'CORRUPTION'), `${what}: ${err instanceof Error ? err.stack : String(err)}`);
              corruptions++;
            }
            assert.ok(Date.now() - t0 < 2000, `${what}: lookup took too long`);
          }
          reader.close();
        }
      }
    }
    assert.ok(cases > 1000 && corruptions > 0, `${cases} cases, ${corruptions} corruptions`);
  });
});

function compress(block: Buffer): Buffer | null {
  const out = Buffer.alloc(Math.max(16, lzCompressedBytesLimit(block.length)));
  const n = compressBlock(block, 0, block.length, out, 0);
  return n < 0 ? null : Buffer.from(out.subarray(0, n));
}

test('structurally damaged blocks with a valid LZ stream: seekGEInPrefix throws CORRUPTION or answers within the decoded bytes', async () => {
  await withSeed('session13 prefix structure', async (seed) => {
    const rnd = new Random(seed);
    const s = new BlockPointSearch();
    const d = new LzPrefixDecoder();
    let corrupt = 0;
    let answered = 0;
    for (let trial = 0; trial < 4000; trial++) {
      const bb = new BlockBuilder([1, 2, 16][rnd.nextInt(3)] as number, 64);
      const n = 5 + rnd.nextInt(60);
      for (let i = 0; i < n; i++) bb.add(makeInternalKey(Buffer.from(`user${String(i).padStart(4, '0')}`), 100, KIND_VALUE), Buffer.alloc(10 + (i % 13), 0x61 + (i % 3)));
      const good = Buffer.from(bb.finish());
      const bad = Buffer.from(good);
      const m = rnd.nextInt(6);
      if (m === 0) bad.writeUInt32LE(rnd.nextInt(3) === 0 ? 0 : rnd.nextUint32(), bad.length - 4); // restart count
      else if (m === 1) bad.writeUInt32LE(rnd.nextUint32() % (bad.length + 10), bad.length - 8); // a restart point
      else if (m === 2) {
        // zero out a run (reads as empty-key entries or the restart array)
        const at = rnd.nextInt(bad.length);
        bad.fill(0, at, Math.min(bad.length, at + 1 + rnd.nextInt(8)));
      } else if (m === 3) {
        // a varint continuation byte somewhere
        const at = rnd.nextInt(bad.length);
        bad[at] = (bad[at] as number) | 0x80;
      } else {
        for (let f = 0; f < 1 + rnd.nextInt(3); f++) bad[rnd.nextInt(bad.length)] = rnd.nextInt(256);
      }
      const packed = compress(bad);
      if (packed === null) continue;
      const len = d.begin(packed, 0, packed.length);
      assert.equal(len, bad.length);
      const out = Buffer.alloc(len);
      for (const target of [makeInternalKey(Buffer.from('user0003'), 100, KIND_VALUE), makeInternalKey(Buffer.from('a'), 1, KIND_VALUE), makeInternalKey(Buffer.from('zzz'), 1, KIND_VALUE), makeInternalKey(Buffer.from(`user${String(n - 1).padStart(4, '0')}`), 100, KIND_VALUE)]) {
        d.begin(packed, 0, packed.length);
        d.into(out, 0);
        try {
          if (s.seekGEInPrefix(d, out, target, 'crafted.sst', 0)) {
            assert.ok(s.valueStart <= s.valueEnd && s.valueEnd <= d.decoded, `trial ${trial} (SEED=${seed}): the value lies in the decoded prefix`);
            assert.ok(s.keyLength >= 8, 'a key with a trailer');
            answered++;
          }
        } catch (e) {
          assert.ok(isLightningError(e, 'CORRUPTION'), `trial ${trial} (SEED=${seed}) mode ${m}: ${e instanceof Error ? e.stack : String(e)}`);
          corrupt++;
        }
      }
    }
    assert.ok(corrupt > 0 && answered > 0, `${corrupt} corruptions, ${answered} answers`);
  });
});

test('bytes flipped in .sst files on disk: every get is right or CORRUPTION, through no, tiny and big caches', async () => {
  await withSeed('session13 disk flips', async (seed) => {
    const rnd = new Random(seed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session13-flip-'));
    try {
      const model = new Map<string, Buffer>();
      {
        const db = await open(dir, { blockSize: 512, compression: 'lz', memtableSize: 64 * 1024, sync: false, compactionThread: 'main' });
        for (let i = 0; i < 1500; i++) {
          const k = Buffer.from(`k${String(rnd.nextInt(800)).padStart(4, '0')}${i % 5 === 0 ? 'y'.repeat(80) : ''}`);
          const v = Buffer.from(`val-${i}-${'xyz'.repeat(rnd.nextInt(20))}`);
          model.set(k.toString('latin1'), v);
          await db.put(k, v);
          if (i === 700) await db.compactRange();
        }
        await db.compactRange();
        await db.close();
      }
      const ssts = fs.readdirSync(dir).filter((f) => f.endsWith('.sst'));
      assert.ok(ssts.length > 0);
      const originals = new Map(ssts.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
      const deadline = Date.now() + 5000;
      let rounds = 0;
      let corruptions = 0;
      while (Date.now() < deadline) {
        rounds++;
        for (const [f, b] of originals) fs.writeFileSync(path.join(dir, f), b);
        const f = ssts[rnd.nextInt(ssts.length)] as string;
        const orig = originals.get(f) as Buffer;
        const bad = Buffer.from(orig);
        // Data blocks occupy the front of the file.
        const at = rnd.nextInt(Math.max(1, Math.floor(orig.length * 0.7)));
        bad[at] = (bad[at] as number) ^ (1 + rnd.nextInt(255));
        fs.writeFileSync(path.join(dir, f), bad);
        const cacheSize = [0, 64 * 1024, 64 * 1024 * 1024][rounds % 3] as number;
        let db;
        try {
          db = await open(dir, { blockSize: 512, compression: 'lz', blockCacheSize: cacheSize, sync: false, compactionThread: 'main' });
        } catch (e) {
          assert.ok(isLightningError(e, 'CORRUPTION'), `round ${rounds} (SEED=${seed}) open: ${String(e)}`);
          corruptions++;
          continue;
        }
        for (const [k, v] of model) {
          try {
            const got = db.getSync(Buffer.from(k, 'latin1'));
            assert.ok(got !== undefined && got.equals(v), `round ${rounds} (SEED=${seed}) flip at ${at} of ${f}, cache ${cacheSize}: wrong value for ${k}`);
          } catch (e) {
            if (e instanceof assert.AssertionError) throw e;
            assert.ok(isLightningError(e, 'CORRUPTION'), `round ${rounds} (SEED=${seed}) flip at ${at} of ${f}: ${e instanceof Error ? e.stack : String(e)}`);
            corruptions++;
          }
        }
        await db.close().catch(() => undefined);
      }
      assert.ok(corruptions > 0, `${rounds} rounds, no corruption detected`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
