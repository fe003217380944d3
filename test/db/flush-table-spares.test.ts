/**
 * TableBuilder hands its grown buffers to the next builder on the thread (module-level spares).
 * Two paths used to lose them: a constructor that throws after taking a spare, and a flush whose
 * table write fails (buildFlushTable did not abandon its builder). Each test parks a known staging
 * buffer in the spares and checks that the next good builder gets it back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { buildFlushTable } from '../../src/db/flush-table.js';
import { MemTable } from '../../src/memtable/memtable.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failAll, opIn, pathEndsWith } from '../../src/env/fault-fs.js';
import { KIND_VALUE, makeInternalKey } from '../../src/base/internal-key.js';
import { BufferFile } from '../sstable/buffer-file.js';

const OPTIONS = { blockSizeBytes: 512, bloomBitsPerKey: 10 };

function stagingOf(b: TableBuilder): Buffer {
  return (b as unknown as { staging: Buffer }).staging;
}

/** Builds and finishes a small table; returns the staging buffer it gave to the spares. */
function parkStaging(): Buffer {
  const b = new TableBuilder(new BufferFile('park.sst'), OPTIONS);
  const staging = stagingOf(b);
  b.add(makeInternalKey(Buffer.from('k'), 1, KIND_VALUE), Buffer.from('v'));
  b.finish();
  return staging;
}

test('a TableBuilder constructor that throws takes no spare', () => {
  const parked = parkStaging();
  assert.throws(() => new TableBuilder(new BufferFile('bad.sst'), { ...OPTIONS, blockSizeBytes: 1 }), /blockSizeBytes/);
  const next = new TableBuilder(new BufferFile('next.sst'), OPTIONS);
  assert.equal(stagingOf(next), parked, 'the next builder gets the parked staging buffer');
  next.abandon();
});

test('a flush whose table write fails gives its builder buffers back', async () => {
  const mem = new MemTable(7);
  for (let i = 0; i < 3000; i++) mem.add(i + 1, KIND_VALUE, Buffer.from(`key${String(i).padStart(6, '0')}`), Buffer.alloc(50, i));
  const fs = new FaultFs(new MemFs(), failAll((op, path) => opIn('write')(op, path) && pathEndsWith('.sst')(op, path), 'ENOSPC'));
  fs.mkdir('/db');
  const parked = parkStaging();
  await assert.rejects(
    buildFlushTable(fs, { dir: '/db', fileNumber: 5, ...OPTIONS, compression: 'lz', sorted: mem.sortedEntries() }, 0),
    (e: unknown) => (e as { code?: string }).code === 'DISK_FULL',
  );
  const next = new TableBuilder(new BufferFile('next.sst'), OPTIONS);
  assert.equal(stagingOf(next), parked, 'the failed flush returned the staging buffer it took');
  next.abandon();
});
