/**
 * Review (session 13): since bb212f4 TableReader.findInBlock calls prefixDecoder.begin(raw) for
 * every compressed block it reads from the file — before deciding whether to decode it part way —
 * and clear() runs only on the prefix path. The module-level decoder then keeps a reference to the
 * last block's read buffer. For a block larger than the shared read buffer (big values), that is a
 * buffer of its own, kept alive after the reader, its table and every caller have let go of it.
 *
 * The test tracks large Buffer.allocUnsafeSlow allocations with WeakRefs and checks that the read
 * buffer of a > 256 KiB compressed block is collectable after the lookup and the reader are gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ } from '../../src/base/internal-key.js';
import { BufferFile } from '../sstable/buffer-file.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function bigValueTable(valueBytes: number): Buffer {
  const file = new BufferFile('big.sst');
  const b = new TableBuilder(file, { blockSizeBytes: 4096, bloomBitsPerKey: 10, compression: 'lz' });
  const v = Buffer.alloc(valueBytes);
  for (let i = 0; i < v.length; i++) v[i] = i % 97 === 0 ? (i * 7) & 0xff : 0x61 + (i % 5);
  b.add(makeInternalKey(Buffer.from('big'), 5, KIND_VALUE), v);
  b.add(makeInternalKey(Buffer.from('small'), 6, KIND_VALUE), Buffer.from('x'));
  b.finish();
  return file.contents();
}

async function readBufferSurvives(cache: BlockCache | null): Promise<boolean> {
  const bytes = bigValueTable(6 * 1024 * 1024);
  const tracked: WeakRef<Buffer>[] = [];
  const original = Buffer.allocUnsafeSlow;
  Buffer.allocUnsafeSlow = ((size: number) => {
    const b = original(size);
    if (size >= 300 * 1024) tracked.push(new WeakRef(b));
    return b;
  }) as typeof Buffer.allocUnsafeSlow;
  try {
    const reader = TableReader.open(new BufferFile('big.sst', bytes), 77, bytes.length, cache);
    const search = new BlockPointSearch();
    const block = reader.find(makeInternalKey(Buffer.from('big'), MAX_SEQ, KIND_SEEK), search);
    assert.ok(block !== null && search.valueEnd - search.valueStart === 6 * 1024 * 1024, 'found the big value');
    reader.close();
  } finally {
    Buffer.allocUnsafeSlow = original;
  }
  assert.ok(tracked.length >= 1, 'the block was read into a buffer of its own');
  // Later lookups in an uncompressed table do not touch the prefix decoder.
  const plain = new BufferFile('plain.sst');
  const pb = new TableBuilder(plain, { blockSizeBytes: 4096, bloomBitsPerKey: 10 });
  pb.add(makeInternalKey(Buffer.from('a'), 1, KIND_VALUE), Buffer.from('1'));
  pb.finish();
  const pr = TableReader.open(new BufferFile('plain.sst', plain.contents()), 78, plain.contents().length, null);
  assert.ok(pr.find(makeInternalKey(Buffer.from('a'), MAX_SEQ, KIND_SEEK), new BlockPointSearch()) !== null);
  pr.close();
  for (let i = 0; i < 5; i++) {
    await tick();
    gc();
  }
  await tick();
  const alive = tracked.map((w) => w.deref()).filter((b): b is Buffer => b !== undefined);
  if (alive.length > 0) console.log(`session13: still reachable after gc: buffers of ${alive.map((b) => b.length).join(', ')} bytes (table ${bytes.length} bytes)`);
  return alive.length > 0;
}

test('the read buffer of a large compressed block is not kept alive after the lookup (no cache)', async () => {
  assert.equal(await readBufferSurvives(null), false, 'a > 256 KiB block buffer is still reachable (held by the module-level LzPrefixDecoder)');
});

test('the read buffer of a large compressed block is not kept alive after the lookup (cache)', async () => {
  const cache = new BlockCache(1024 * 1024, 0, true); // smaller than the block: not cached
  assert.equal(await readBufferSurvives(cache), false, 'a > 256 KiB block buffer is still reachable (held by the module-level LzPrefixDecoder)');
});
