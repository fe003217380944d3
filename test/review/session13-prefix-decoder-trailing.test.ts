/**
 * Review (session 13): LzPrefixDecoder claims "Checks as decompressBlock, except that a block left
 * part way is not checked to its end". The review found a block whose output is complete after a
 * match but whose input goes on (junk after the last match) decoded to its full length and
 * accepted by the prefix decoder, while decompressBlock rejects it. Fixed: a decoder that reaches
 * the end of the output keeps going to the end of the input and returns decompressBlock's error.
 *
 * Accepted by design (docs/decisions/2026-11-26-read-path.md): a get that finds its entry before
 * the damage stops decoding there, so it returns the entry's stored bytes where a full decode
 * (a cached get, a scan) reports CORRUPTION. Such a block has a valid CRC, so only an encoder bug
 * could write it; a damaged file fails its CRC before any decoding.
 *
 * The blocks built here end with an empty last sequence (the greedy encoder matched up to the end);
 * its token 0x00 is replaced by 0xff, keeping the size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { getBlockHandle } from '../../src/sstable/block-handle.js';
import { decompressBlock, LzPrefixDecoder, lzUncompressedLength, LZ_ERR_TRUNCATED } from '../../src/sstable/lz-codec.js';
import { KIND_VALUE, makeInternalKey } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import { crc32Of, maskCrc } from '../../src/util/crc.js';
import { BufferFile } from '../sstable/buffer-file.js';

function junkTailTable(): { bytes: Buffer; block: { offset: number; sizeBytes: number }; key: Buffer } {
  const file = new BufferFile('j.sst');
  const b = new TableBuilder(file, { blockSizeBytes: 512, bloomBitsPerKey: 10, restartInterval: 1024, compression: 'lz' });
  const key = (i: number): Buffer => makeInternalKey(Buffer.from(`key${String(i).padStart(4, '0')}`), 100, KIND_VALUE);
  for (let i = 0; i < 100; i++) b.add(key(i), Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]));
  b.finish();
  const bytes = file.contents();
  const reader = TableReader.open(new BufferFile('j.sst', bytes), 1, bytes.length, null);
  const it = new BlockIterator(reader.indexBlock, reader.path, reader.indexOffset);
  it.first();
  const h = { offset: 0, sizeBytes: 0 };
  getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), h, reader.path, reader.indexOffset);
  it.close();
  reader.close();
  assert.equal(bytes[h.offset + h.sizeBytes], 1, 'the first data block is compressed');
  assert.equal(bytes[h.offset + h.sizeBytes - 1], 0, 'its last sequence is an empty token');
  const bad = Buffer.from(bytes);
  bad[h.offset + h.sizeBytes - 1] = 0xff;
  const end = h.offset + h.sizeBytes;
  bad.writeUInt32LE(maskCrc(crc32Of(bad, h.offset, end + 1)), end + 1);
  return { bytes: bad, block: h, key: key(0) };
}

test('codec: a block with junk after its complete output is rejected by decompressBlock and by the prefix decoder alike', () => {
  const { bytes, block } = junkTailTable();
  const src = bytes.subarray(block.offset, block.offset + block.sizeBytes);
  const n = lzUncompressedLength(src, 0, src.length);
  assert.ok(n > 0);
  assert.equal(decompressBlock(Buffer.from(src), 0, src.length, Buffer.alloc(n), 0, n), LZ_ERR_TRUNCATED, 'decompressBlock rejects it');
  const d = new LzPrefixDecoder();
  assert.equal(d.begin(Buffer.from(src), 0, src.length), n);
  d.into(Buffer.alloc(n), 0);
  const r = d.extend(n);
  assert.ok(r < 0, `the prefix decoder decoded all ${n} bytes and accepted the block (extend returned ${r}); decompressBlock says TRUNCATED`);
});

test('table: a get that stops before the junk returns the stored value; decoding to the end fails', () => {
  const { bytes, key } = junkTailTable();
  const outcome = (cache: BlockCache | null, target: Buffer): string => {
    const reader = TableReader.open(new BufferFile('j.sst', bytes), 1, bytes.length, cache);
    try {
      const s = new BlockPointSearch();
      const block = reader.find(target, s);
      return block === null ? 'none' : `value ${block.subarray(s.valueStart, s.valueEnd).toString('hex')}`;
    } catch (e) {
      assert.ok(isLightningError(e, 'CORRUPTION'), String(e));
      return 'CORRUPTION';
    } finally {
      reader.close();
    }
  };
  assert.equal(outcome(null, key), 'value 00000000010000000000000001000000', 'uncached: stops at the first entry');
  assert.equal(outcome(new BlockCache(1 << 20, 0, true), key), 'CORRUPTION', 'a cache that admits the block decodes all of it');
  // Every other get stops at its entry: the stored bytes (a target past the last key of a block
  // lands in the next block here, so none scans the damaged block to its end).
  for (let i = 0; i < 100; i++) {
    const got = outcome(null, makeInternalKey(Buffer.from(`key${String(i).padStart(4, '0')}~`), 100, KIND_VALUE));
    assert.equal(got, i === 99 ? 'none' : 'value 00000000010000000000000001000000', `past key ${i}`);
  }
});
