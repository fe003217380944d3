/**
 * Corruption sweeps (LevelDB corruption_test style): flip every byte of a small table and cut it
 * at every length. Each case must give the right data or a CORRUPTION error, never wrong data and
 * never another exception type. Every byte of the file is covered by a CRC or the magic, so every
 * flip must in fact be detected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { FOOTER_BYTES } from '../../src/sstable/footer.js';
import { invariants } from '../../src/util/assert.js';
import { isLightningError } from '../../src/base/errors.js';
import { crc32Of, maskCrc } from '../../src/util/crc.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { getBlockHandle } from '../../src/sstable/block-handle.js';
import { BufferFile } from './buffer-file.js';
import { ikey, type Entry } from './model.js';

invariants.enabled = true;

function smallTable(): { bytes: Buffer; model: Entry[] } {
  const model: Entry[] = [];
  for (let i = 0; i < 60; i++) {
    model.push({
      key: ikey(`key${String(i).padStart(3, '0')}`, 100 + i),
      value: Buffer.from(`value-${i}`),
    });
  }
  const file = new BufferFile('small.sst');
  const b = new TableBuilder(file, {
    blockSizeBytes: 256,
    bloomBitsPerKey: 10,
    restartInterval: 4,
  });
  for (const e of model) b.add(e.key, e.value);
  b.finish();
  return { bytes: file.contents(), model };
}

/**
 * Opens and reads everything (scans both ways, point lookups). Returns 'ok' if all data matched,
 * 'corruption' on a CORRUPTION error; anything else (wrong data, other errors) fails the test.
 */
function readAll(
  bytes: Buffer,
  sizeBytes: number,
  model: Entry[],
  what: string,
): 'ok' | 'corruption' {
  try {
    const reader = TableReader.open(
      new BufferFile('small.sst', bytes),
      9,
      sizeBytes,
      new BlockCache(0),
    );
    const it = reader.iterator();
    let i = 0;
    for (it.first(); it.valid(); it.next()) {
      const e = model[i++];
      assert.ok(
        e !== undefined && it.key().equals(e.key) && it.value().equals(e.value),
        `${what}: forward ${i}`,
      );
    }
    assert.equal(i, model.length, `${what}: forward count`);
    for (it.last(); it.valid(); it.prev()) {
      const e = model[--i];
      assert.ok(
        e !== undefined && it.key().equals(e.key) && it.value().equals(e.value),
        `${what}: backward ${i}`,
      );
    }
    assert.equal(i, 0, `${what}: backward count`);
    const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
    for (const e of model) {
      assert.ok(reader.seekGE(e.key, out), `${what}: lookup`);
      assert.ok(out.key.equals(e.key) && out.value.equals(e.value), `${what}: lookup value`);
    }
    it.close();
    reader.close();
    return 'ok';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(isLightningError(e, 'CORRUPTION'), `${what}: ${String(e)}`);
    assert.match((e as Error).message, /small\.sst at offset \d+/, 'names file and offset');
    return 'corruption';
  }
}

test('the unmodified table reads back', () => {
  const { bytes, model } = smallTable();
  assert.ok(bytes.length > 1500 && bytes.length < 4096, `table is ${bytes.length} bytes`);
  assert.equal(readAll(bytes, bytes.length, model, 'pristine'), 'ok');
});

test('flipping any byte is detected as CORRUPTION', () => {
  const { bytes, model } = smallTable();
  for (let off = 0; off < bytes.length; off++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(bytes);
      bad[off] = (bad[off] as number) ^ mask;
      assert.equal(
        readAll(bad, bad.length, model, `flip ${mask} at ${off}`),
        'corruption',
        `flip at ${off}`,
      );
    }
  }
});

test('a truncated file is CORRUPTION at open, whatever size the caller believes', () => {
  const { bytes, model } = smallTable();
  for (let len = 0; len < bytes.length; len++) {
    const cut = bytes.subarray(0, len);
    assert.equal(readAll(cut, len, model, `cut ${len}, size ${len}`), 'corruption');
    assert.equal(
      readAll(cut, bytes.length, model, `cut ${len}, size ${bytes.length}`),
      'corruption',
    );
  }
});

test('footer errors name the problem: magic, version, checksum, size', () => {
  const { bytes } = smallTable();
  const footer = bytes.length - FOOTER_BYTES;
  const attempt = (b: Buffer, size = b.length): string => {
    try {
      TableReader.open(new BufferFile('small.sst', b), 1, size, null);
    } catch (e) {
      assert.ok(isLightningError(e, 'CORRUPTION'));
      return e.message;
    }
    return 'opened';
  };
  const badMagic = Buffer.from(bytes);
  badMagic.write('NOTANSST', footer + 56, 'latin1');
  assert.match(attempt(badMagic), new RegExp(`bad table magic .* at offset ${footer + 56}`));
  const badVersion = Buffer.from(bytes);
  badVersion.writeUInt32LE(3, footer + 48);
  assert.match(attempt(badVersion), /unsupported table format version 3/);
  const badCrc = Buffer.from(bytes);
  badCrc[footer + 3] = (badCrc[footer + 3] as number) ^ 1;
  assert.match(attempt(badCrc), /footer checksum mismatch/);
  assert.match(attempt(bytes.subarray(0, 10)), /too small/);
});

test('a block with a valid CRC but an unknown compression type is CORRUPTION', () => {
  const { bytes, model } = smallTable();
  // The first data block starts at 0; find its trailer by scanning for a matching CRC.
  let found = false;
  for (let size = 8; size < 300 && !found; size++) {
    const crc = maskCrc(crc32Of(bytes, 0, size + 1));
    if (bytes[size] === 0 && bytes.readUInt32LE(size + 1) === crc) {
      // Type 1 (LZ) exists only in version 2 tables; this one is version 1. Type 2 exists nowhere.
      for (const [type, message] of [
        [1, /compression type 1 in a version 1 table/],
        [2, /unsupported block compression type 2/],
      ] as const) {
        const bad = Buffer.from(bytes);
        bad[size] = type;
        bad.writeUInt32LE(maskCrc(crc32Of(bad, 0, size + 1)), size + 1);
        const reader = TableReader.open(new BufferFile('small.sst', bad), 1, bad.length, null);
        const it = reader.iterator();
        assert.throws(
          () => it.first(),
          (e: unknown) => isLightningError(e, 'CORRUPTION') && message.test(e.message),
        );
        reader.close();
      }
      found = true;
    }
  }
  assert.ok(found, 'first data block trailer located');
  assert.equal(readAll(bytes, bytes.length, model, 'pristine'), 'ok');
});

// ====================================================== tables with compressed data blocks

function smallCompressedTable(): { bytes: Buffer; model: Entry[] } {
  const model: Entry[] = [];
  for (let i = 0; i < 60; i++) {
    model.push({
      key: ikey(`key${String(i).padStart(3, '0')}`, 100 + i),
      value: Buffer.from(`value-${i}-${'abc'.repeat(5 + (i % 7))}`),
    });
  }
  const file = new BufferFile('small.sst');
  const b = new TableBuilder(file, { blockSizeBytes: 256, bloomBitsPerKey: 10, restartInterval: 4, compression: 'lz' });
  for (const e of model) b.add(e.key, e.value);
  b.finish();
  return { bytes: file.contents(), model };
}

/** Handles of the data blocks of a table (which must open). */
function dataBlocks(bytes: Buffer): { offset: number; sizeBytes: number; type: number }[] {
  const reader = TableReader.open(new BufferFile('small.sst', bytes), 9, bytes.length, null);
  const it = new BlockIterator(reader.indexBlock, reader.path, reader.indexOffset);
  const out = [];
  for (it.first(); it.valid(); it.next()) {
    const h = { offset: 0, sizeBytes: 0 };
    getBlockHandle(it.valueBlock(), it.valueStart(), it.valueEnd(), h, reader.path, reader.indexOffset);
    out.push({ ...h, type: bytes[h.offset + h.sizeBytes] as number });
  }
  it.close();
  reader.close();
  return out;
}

/**
 * Reads everything without comparing data (for damage behind a valid CRC, where wrong data cannot
 * be told from right). Returns 'ok' or 'corruption'; any other error fails the test.
 */
function readAnything(bytes: Buffer, what: string): 'ok' | 'corruption' {
  try {
    const reader = TableReader.open(new BufferFile('small.sst', bytes), 9, bytes.length, new BlockCache(0));
    const it = reader.iterator();
    let n = 0;
    for (it.first(); it.valid(); it.next()) n++;
    for (it.last(); it.valid(); it.prev()) n--;
    it.close();
    reader.close();
    assert.equal(n, 0, `${what}: scans agree`);
    return 'ok';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(isLightningError(e, 'CORRUPTION'), `${what}: ${e instanceof Error ? e.stack : String(e)}`);
    return 'corruption';
  }
}

test('compressed table: it is version 2, its data blocks are compressed, and it reads back', () => {
  const { bytes, model } = smallCompressedTable();
  const blocks = dataBlocks(bytes);
  assert.ok(blocks.length >= 8, `${blocks.length} data blocks`);
  assert.ok(blocks.every((b) => b.type === 1), 'every data block is compressed');
  assert.equal(bytes.readUInt32LE(bytes.length - FOOTER_BYTES + 48), 2, 'footer version 2');
  assert.equal(readAll(bytes, bytes.length, model, 'pristine'), 'ok');
});

test('compressed table: flipping any byte is detected as CORRUPTION', () => {
  const { bytes, model } = smallCompressedTable();
  for (let off = 0; off < bytes.length; off++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(bytes);
      bad[off] = (bad[off] as number) ^ mask;
      assert.equal(readAll(bad, bad.length, model, `flip ${mask} at ${off}`), 'corruption', `flip at ${off}`);
    }
  }
});

test('compressed table: a truncated file is CORRUPTION', () => {
  const { bytes, model } = smallCompressedTable();
  for (let len = 0; len < bytes.length; len++) {
    const cut = bytes.subarray(0, len);
    assert.equal(readAll(cut, len, model, `cut ${len}`), 'corruption');
    assert.equal(readAll(cut, bytes.length, model, `cut ${len}, size ${bytes.length}`), 'corruption');
  }
});

test('compressed block damaged behind a valid CRC: CORRUPTION (or CRC-valid garbage), never another error', () => {
  const { bytes, model } = smallCompressedTable();
  const blocks = dataBlocks(bytes);
  const first = blocks[0] as { offset: number; sizeBytes: number };
  const withCrc = (bad: Buffer, b: { offset: number; sizeBytes: number }): Buffer => {
    const end = b.offset + b.sizeBytes;
    bad.writeUInt32LE(maskCrc(crc32Of(bad, b.offset, end + 1)), end + 1);
    return bad;
  };
  // The length header says one byte more, or one less: the decoder's exact-length check. (The
  // low 7 bits of the varint's first byte are the length's low bits.)
  const low = (bytes[first.offset] as number) & 0x7f;
  assert.ok(low > 0 && low < 0x7f, 'the length can be moved by one in its first byte');
  for (const delta of [1, -1]) {
    const bad = Buffer.from(bytes);
    bad[first.offset] = (bad[first.offset] as number) + delta;
    withCrc(bad, first);
    const reader = TableReader.open(new BufferFile('small.sst', bad), 9, bad.length, null);
    const it = reader.iterator();
    assert.throws(() => it.first(), (e: unknown) => isLightningError(e, 'CORRUPTION') && /compressed block/.test(e.message) && /small\.sst at offset 0/.test(e.message));
    reader.close();
  }
  // Every byte of every compressed block set to a few values, CRC fixed: whatever the decoder
  // makes of it, the reader reports CORRUPTION or returns some data; it never throws otherwise.
  let corrupt = 0;
  let cases = 0;
  for (const b of blocks) {
    for (let off = b.offset; off < b.offset + b.sizeBytes; off++) {
      for (const v of [0x00, 0x0f, 0xf0, 0xff, (bytes[off] as number) ^ 0x01]) {
        if (v === bytes[off]) continue;
        const bad = Buffer.from(bytes);
        bad[off] = v;
        withCrc(bad, b);
        if (readAnything(bad, `set ${v} at ${off}`) === 'corruption') corrupt++;
        cases++;
      }
    }
  }
  assert.ok(corrupt > cases / 3, `${corrupt} of ${cases} damaged blocks detected`);
  assert.equal(readAll(bytes, bytes.length, model, 'pristine'), 'ok');
});
