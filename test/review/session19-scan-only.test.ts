/**
 * Reviewer tests (session 19) for commit cf96e60's scan-only readers: compaction inputs are opened
 * with TableReader.open(..., scanOnly = true), which reads neither the filter block nor decodes the
 * index for point lookups (IndexArray.decode, which also validated the index against the meta
 * block and the data area).
 *
 *   - Model: MemFs databases with small memtables, overwrites, deletes, held snapshots, partial and
 *     full compactRange, subcompactions (subcompactionMinSize 1 and larger), reopen; and the same
 *     on node:fs with the compaction worker. Contents, gets and snapshot reads equal a Map model.
 *   - Damage: random byte changes in one input table's data, filter, meta or index area; the
 *     compaction must fail with CORRUPTION (the filter may now go unread: then the compaction may
 *     succeed, but no key may change).
 *   - Index blocks that pass their checksum but disagree with the meta block or are out of order
 *     (a writer bug, or a block rewritten with a fresh CRC): TableReader.open without scanOnly
 *     reports CORRUPTION; the merge of such an input must too, not drop keys or fail an assertion.
 *     FOUND (session 19): these last two tests pass on cf96e60's parent and fail on cf96e60. A
 *     scan-only open skips IndexArray.decode, the only check of the index against the meta block's
 *     block count and of handle order: a merge then silently drops the unindexed blocks (and the
 *     compaction deletes its input, so older versions of those keys resurface) or trips
 *     'table keys must be strictly increasing' (an AssertionError, not CORRUPTION). Fixed the same
 *     session: a scan-only open runs the same checks (IndexArray.check) without building arrays.
 *
 * Seeded: SEED=<n> replays (printed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodeFs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open, type Database, type OpenOptions, type Snapshot } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { isLightningError } from '../../src/base/errors.js';
import { makeInternalKey, KIND_VALUE } from '../../src/base/internal-key.js';
import { tableFileName } from '../../src/base/file-names.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { decodeFooter, FOOTER_BYTES, putFooter, type Footer } from '../../src/sstable/footer.js';
import { BLOCK_TRAILER_BYTES, putBlockTrailer } from '../../src/sstable/block-trailer.js';
import { mergeTables, type MergeSpec } from '../../src/compaction/merge-tables.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

const SEED = testSeed();
console.log(`session19-scan-only SEED=${SEED}`);

const key = (i: number): string => `k${String(i).padStart(6, '0')}`;

async function contents(it: AsyncIterable<[Buffer, Buffer]>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of it) out.set(k.toString(), v.toString());
  return out;
}

function diff(got: Map<string, string>, want: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of got) if (want.get(k) !== v) lines.push(`${k}: got ${v.slice(0, 16)} want ${want.get(k)?.slice(0, 16)}`);
  for (const [k, v] of want) if (!got.has(k)) lines.push(`${k}: missing (want ${v.slice(0, 16)})`);
  return `${lines.length} differences: ${lines.slice(0, 6).join('; ')}`;
}

async function check(db: Database | Snapshot, model: Map<string, string>, keys: number, what: string): Promise<void> {
  const got = await contents(db.iterator());
  if (got.size !== model.size || [...model].some(([k, v]) => got.get(k) !== v)) assert.fail(`SEED=${SEED} ${what}: ${diff(got, model)}`);
  for (let i = 0; i < keys; i += 3) {
    const v = db.getSync(key(i));
    if (v?.toString() !== model.get(key(i))) assert.fail(`SEED=${SEED} ${what}: get(${key(i)}) = ${v?.toString()}, want ${model.get(key(i))}`);
  }
}

interface Internals {
  versions: { current(): { files(level: number): readonly FileMetadata[] } };
}

async function modelRun(opts: OpenOptions, dir: string, rng: Random, keys: number, rounds: number, what: string): Promise<{ splits: number; compactions: number }> {
  const model = new Map<string, string>();
  let db = await open(dir, opts);
  let splits = 0;
  let compactions = 0;
  const snaps: { snap: Snapshot; model: Map<string, string> }[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const n = 200 + rng.nextInt(800);
      const base = rng.nextInt(keys);
      const span = rng.nextInt(3) === 0 ? keys : 50 + rng.nextInt(keys / 4);
      for (let j = 0; j < n; j++) {
        const k = key((base + rng.nextInt(span)) % keys);
        if (rng.nextInt(5) === 0) {
          await db.delete(k);
          model.delete(k);
        } else {
          const v = `${round}.${j}.`.padEnd(8 + rng.nextInt(80), String.fromCharCode(97 + rng.nextInt(26)));
          await db.put(k, v);
          model.set(k, v);
        }
      }
      if (rng.nextInt(4) === 0 && snaps.length < 3) snaps.push({ snap: db.snapshot(), model: new Map(model) });
      if (rng.nextInt(3) === 0) {
        const a = rng.nextInt(keys);
        const b = a + rng.nextInt(keys - a);
        await db.compactRange(rng.nextInt(4) === 0 ? undefined : key(a), rng.nextInt(4) === 0 ? undefined : key(b));
      }
      if (rng.nextInt(4) === 0 && snaps.length > 0) {
        const s = snaps.splice(rng.nextInt(snaps.length), 1)[0] as (typeof snaps)[number];
        await check(s.snap, s.model, keys, `${what} round ${round}: snapshot`);
        s.snap.release();
      }
      if (rng.nextInt(5) === 0) {
        const st = db.stats();
        splits += st.compactions.splitCompactions;
        compactions += st.compactions.count;
        for (const s of snaps) s.snap.release();
        snaps.length = 0;
        await db.close();
        db = await open(dir, opts);
      }
      await check(db, model, keys, `${what} round ${round}`);
    }
    await db.compactRange();
    await check(db, model, keys, `${what} after a full compactRange`);
    const st = db.stats();
    splits += st.compactions.splitCompactions;
    compactions += st.compactions.count;
    assert.equal(st.backgroundError, null);
  } finally {
    for (const s of snaps) s.snap.release();
    await db.close();
  }
  db = await open(dir, opts);
  try {
    await check(db, model, keys, `${what} after reopen`);
  } finally {
    await db.close();
  }
  return { splits, compactions };
}

const SHAPE: OpenOptions = {
  memtableSize: 6 * 1024,
  blockSize: 256,
  targetFileSize: 4 * 1024,
  levelBaseSize: 16 * 1024,
  levelMultiplier: 2,
  l0CompactionTrigger: 2,
  sync: false,
};

test('MemFs: overwrites, deletes, snapshots, partial and full compactRange, subcompactions, reopen: contents equal the model', async () => {
  const rng = new Random(SEED);
  for (const [i, sub] of [0, 1, 24 * 1024].entries()) {
    const fs = new MemFs();
    const opts: OpenOptions = { ...SHAPE, fs, subcompactionMinSize: sub, compression: i % 2 === 0 ? 'lz' : 'none', bloomBitsPerKey: i === 2 ? 0 : 10 };
    const r = await modelRun(opts, '/db', rng, 3000, 30, `subcompactionMinSize ${sub}`);
    console.log(`subcompactionMinSize ${sub}: ${r.compactions} compactions, ${r.splits} split`);
    assert.ok(r.compactions > 5, 'compactions ran');
    if (sub > 0) assert.ok(r.splits > 0, 'some merges were split');
  }
});

test('node:fs with the compaction worker (and a second one for subcompactions): contents equal the model', async () => {
  const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'session19-scan-only-'));
  try {
    const rng = new Random(SEED ^ 0x3);
    const r = await modelRun({ ...SHAPE, compactionThread: 'worker', subcompactionMinSize: 1 }, dir, rng, 2000, 12, 'worker');
    console.log(`worker: ${r.compactions} compactions, ${r.splits} split`);
    assert.ok(r.compactions > 3, 'compactions ran');
  } finally {
    nodeFs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Block areas of a table file, from its footer. */
function areasOf(bytes: Buffer): { footer: Footer; data: [number, number]; filter: [number, number]; meta: [number, number]; index: [number, number] } {
  const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_BYTES), 't', bytes.length - FOOTER_BYTES);
  const span = (h: { offset: number; sizeBytes: number }): [number, number] => [h.offset, h.offset + h.sizeBytes + BLOCK_TRAILER_BYTES];
  return { footer, data: [0, footer.filter.offset], filter: span(footer.filter), meta: span(footer.meta), index: span(footer.index) };
}

const L0_OPTS = (fs: MemFs): OpenOptions => ({ ...SHAPE, fs, memtableSize: 16 * 1024, l0CompactionTrigger: 100, l0SlowdownTrigger: 100, l0StopTrigger: 100 });

/**
 * A database on MemFs with several L0 tables (no compaction yet), closed; returns fs, model, and
 * the tables of `level`. With `level` 1 the first tables are compacted into L1 first, then more L0
 * tables written over them (a later merge reads L1 as a sorted run, opening its tables lazily).
 */
async function l0Database(rng: Random, compression: 'lz' | 'none', level = 0): Promise<{ fs: MemFs; model: Map<string, string>; tables: number[] }> {
  const fs = new MemFs();
  const opts: OpenOptions = { ...L0_OPTS(fs), compression };
  const db = await open('/db', opts);
  const model = new Map<string, string>();
  const write = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const k = key(rng.nextInt(1500));
      const v = `v${i}`.padEnd(10 + rng.nextInt(30), 'q');
      await db.put(k, v);
      model.set(k, v);
    }
  };
  await write(3000);
  if (level === 1) {
    await db.compactRange();
    await write(1500);
  }
  const tables = (db as unknown as Internals).versions.current().files(level).map((f) => f.number);
  await db.close();
  return { fs, model, tables };
}


test('random damage in one input table (L0, or L1 read as a sorted run; data, filter, meta or index area): compaction reports CORRUPTION, or (filter) changes nothing', async () => {
  const rng = new Random(SEED ^ 0xd00d);
  const outcomes = new Map<string, number>();
  for (let trial = 0; trial < 32; trial++) {
    const level = trial % 8 < 4 ? 0 : 1;
    const { fs, model, tables } = await l0Database(rng, trial % 3 === 0 ? 'lz' : 'none', level);
    assert.ok(tables.length >= 2, `several L${level} tables (${tables.length})`);
    const victim = tables[rng.nextInt(tables.length)] as number;
    const p = `/db/${tableFileName(victim)}`;
    const bytes = fs.readFileRaw(p);
    const areas = areasOf(bytes);
    const area = (['data', 'filter', 'meta', 'index'] as const)[trial % 4] as 'data' | 'filter' | 'meta' | 'index';
    const [lo, hi] = areas[area];
    const at = lo + rng.nextInt(hi - lo);
    bytes[at] = (bytes[at] as number) ^ (1 + rng.nextInt(255));
    fs.writeFileRaw(p, bytes);
    const db = await open('/db', L0_OPTS(fs));
    let outcome: string;
    try {
      await db.compactRange();
      outcome = 'ok';
    } catch (e) {
      if (!isLightningError(e, 'CORRUPTION')) assert.fail(`SEED=${SEED} trial ${trial} (${area} byte ${at} of table ${victim}): ${String(e)}`);
      assert.match((e as Error).message, new RegExp(tableFileName(victim)), 'names the damaged table');
      outcome = 'CORRUPTION';
    }
    outcomes.set(`L${level} ${area}:${outcome}`, (outcomes.get(`L${level} ${area}:${outcome}`) ?? 0) + 1);
    if (outcome === 'ok') {
      // Only an unread filter may go unnoticed: the merge read every entry, so nothing may differ.
      assert.equal(area, 'filter', `SEED=${SEED} trial ${trial}: damage in the ${area} area (byte ${at} of table ${victim}) went unnoticed by the compaction`);
      await check(db, model, 1500, `trial ${trial} after compacting past a damaged filter`);
    }
    await db.close().catch(() => undefined);
  }
  console.log(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
});

// ---------------------------------------------------------------------------------------------
// Index blocks that pass their checksum but are inconsistent.

/**
 * `bytes` (a table) with its index block replaced by `entries` (fresh trailer CRC and footer), and
 * of the same file size (the manifest records it): the last separator's user key is padded with
 * 0xff bytes (still >= its block's keys) and the restart interval varied until the sizes match.
 */
function withIndex(bytes: Buffer, entries: [Buffer, Buffer][]): Buffer {
  const { footer } = areasOf(bytes);
  const indexBytes = footer.index.sizeBytes;
  for (let interval = 1; interval <= 16; interval++) {
    for (let pad = 0; pad < 600; pad++) {
      const bb = new BlockBuilder(interval, 64);
      entries.forEach(([k, v], i) => {
        if (i === entries.length - 1 && pad > 0) k = Buffer.concat([k.subarray(0, k.length - 8), Buffer.alloc(pad, 0xff), k.subarray(k.length - 8)]);
        bb.add(k, v);
      });
      const block = Buffer.from(bb.finish());
      if (block.length > indexBytes) break;
      if (block.length !== indexBytes) continue;
      const out = Buffer.from(bytes);
      block.copy(out, footer.index.offset);
      putBlockTrailer(out, footer.index.offset, block.length);
      putFooter(out, out.length - FOOTER_BYTES, footer);
      return out;
    }
  }
  throw new Error('no index of the same size found');
}

function indexEntries(bytes: Buffer): [Buffer, Buffer][] {
  const { footer } = areasOf(bytes);
  const it = new BlockIterator(Buffer.from(bytes.subarray(footer.index.offset, footer.index.offset + footer.index.sizeBytes)));
  const out: [Buffer, Buffer][] = [];
  for (it.first(); it.valid(); it.next()) out.push([Buffer.from(it.key()), Buffer.from(it.value())]);
  it.close();
  return out;
}

/** The damaged variants: each must be CORRUPTION for a full open (it is, before and after the change). */
function inconsistentIndexes(entries: [Buffer, Buffer][]): { name: string; entries: [Buffer, Buffer][] }[] {
  const e = entries;
  const mid = e.length >> 1;
  return [
    { name: 'last entry missing', entries: e.slice(0, -1) },
    { name: 'a middle entry missing', entries: [...e.slice(0, mid), ...e.slice(mid + 1)] },
    { name: 'a block indexed twice (in place of the next)', entries: [...e.slice(0, mid + 1), [(e[mid + 1] as [Buffer, Buffer])[0], (e[mid] as [Buffer, Buffer])[1]], ...e.slice(mid + 2)] },
    { name: 'two handles swapped', entries: [...e.slice(0, mid), [(e[mid] as [Buffer, Buffer])[0], (e[mid + 1] as [Buffer, Buffer])[1]], [(e[mid + 1] as [Buffer, Buffer])[0], (e[mid] as [Buffer, Buffer])[1]], ...e.slice(mid + 2)] },
  ];
}

function buildInput(fs: MemFs, dir: string, number: number, n: number): Buffer {
  const f = fs.open(`${dir}/${tableFileName(number)}`, 'create-excl');
  const b = new TableBuilder(f, { blockSizeBytes: 256, bloomBitsPerKey: 10, compression: 'none' });
  for (let i = 0; i < n; i++) b.add(makeInternalKey(Buffer.from(key(i)), 10, KIND_VALUE), Buffer.from(`value-${i}`));
  b.finish();
  f.close();
  return fs.readFileRaw(`${dir}/${tableFileName(number)}`);
}

test('checksum-valid but inconsistent index: a full open says CORRUPTION (control)', () => {
  const fs = new MemFs();
  fs.mkdir('/t');
  const good = buildInput(fs, '/t', 5, 400);
  for (const v of inconsistentIndexes(indexEntries(good))) {
    const bad = withIndex(good, v.entries);
    fs.writeFileRaw('/t/000009.sst', bad);
    const file = fs.open('/t/000009.sst', 'r');
    assert.throws(() => TableReader.open(file, 9, bad.length, null), (e: unknown) => isLightningError(e, 'CORRUPTION'), v.name);
    file.close();
  }
});

test('checksum-valid but inconsistent index in a merge input: the merge reports CORRUPTION (no keys dropped, no assertion)', async () => {
  const fs = new MemFs();
  fs.mkdir('/t');
  const n = 400;
  const good = buildInput(fs, '/t', 5, n);
  const failures: string[] = [];
  for (const v of inconsistentIndexes(indexEntries(good))) {
    const bad = withIndex(good, v.entries);
    fs.writeFileRaw('/t/000009.sst', bad);
    const spec: MergeSpec = {
      dir: '/t',
      inputs: [{ number: 9, sizeBytes: bad.length }],
      firstOutputNumber: 100,
      outputNumberCount: 50,
      smallestSnapshot: 1000,
      deeperLevels: [],
      blockSizeBytes: 256,
      bloomBitsPerKey: 10,
      compression: 'none',
      targetFileBytes: 1 << 20,
    };
    try {
      const out = await mergeTables(fs, spec, 0);
      let entries = 0;
      for (const o of out.outputs) {
        const r = TableReader.open(fs.open(`/t/${tableFileName(o.number)}`, 'r'), o.number, o.sizeBytes, null);
        const it = r.iterator(false);
        for (it.first(); it.valid(); it.next()) entries++;
        it.close();
        r.close();
        fs.unlink(`/t/${tableFileName(o.number)}`);
      }
      failures.push(`${v.name}: the merge succeeded with ${entries} of ${n} entries`);
    } catch (e) {
      if (!isLightningError(e, 'CORRUPTION')) failures.push(`${v.name}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  assert.deepEqual(failures, [], 'every inconsistent index must be CORRUPTION in a merge, as at a full open');
});

test('database: an L0 table whose index lost its last entry (checksum valid) fails compactRange with CORRUPTION, no key is lost', async () => {
  const rng = new Random(SEED ^ 0x1d);
  const { fs, model, tables } = await l0Database(rng, 'none');
  const victim = tables[0] as number;
  const p = `/db/${tableFileName(victim)}`;
  const bytes = fs.readFileRaw(p);
  fs.writeFileRaw(p, withIndex(bytes, indexEntries(bytes).slice(0, -1)));
  const db = await open('/db', L0_OPTS(fs));
  let error: unknown = null;
  try {
    await db.compactRange();
  } catch (e) {
    error = e;
  }
  if (error === null) {
    // What a reader now sees: keys of the unindexed block are gone for good (the input was deleted).
    const got = await contents(db.iterator());
    await db.close();
    assert.fail(`SEED=${SEED}: compactRange succeeded over a table whose index misses a block; ${diff(got, model)}`);
  }
  await db.close().catch(() => undefined);
  assert.ok(isLightningError(error, 'CORRUPTION'), String(error));
  assert.doesNotMatch((error as Error).message, /footer|truncated/, 'the damage is in the index, not the file size');
});
