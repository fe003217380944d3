/**
 * Reviewer tests (session 15c): mergeTables with lowerBound/upperBound (subcompactions), checked
 * against the unbounded merge of the same inputs. For random input tables (many versions per key,
 * tombstones, keys that are prefixes of each other, keys longer than the byte-loop compare),
 * random smallestSnapshot and random deeper-level ranges, and a split key chosen anywhere (an
 * existing key with many versions, a key between two, a prefix of a key, before all, after all):
 *   merge(< s) ++ merge(>= s) must be exactly merge(all), entry for entry, with the same dropped
 *   count; no output of one half holds a key of the other; no user key spans two outputs.
 * The halves run at once on one thread, sliced every entry (as 'main' mode interleaves them),
 * and the bounds are also passed as structured clones (plain Uint8Arrays with a byte offset, as a
 * worker receives them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemFs } from '../../src/env/mem-fs.js';
import { createNewFile } from '../../src/env/open-file.js';
import { tableFileName } from '../../src/base/file-names.js';
import { KIND_DELETE, KIND_VALUE, TRAILER_BYTES, makeInternalKey, kindOfTrailer, seqOfTrailer, trailerOf, compareInternalKeyRanges } from '../../src/base/internal-key.js';
import { TableBuilder, type TableCompression } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { mergeTables, type MergeOutcome, type MergeSpec } from '../../src/compaction/merge-tables.js';
import { packLevelRanges } from '../../src/version/level-ranges.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import { Random } from '../../src/util/random.js';
import { withSeed } from '../harness/seed.js';

const DIR = '/t';

interface Entry {
  key: Buffer; // internal key
  value: Buffer;
}

function userKeyPool(rng: Random): Buffer[] {
  const keys = new Set<string>();
  const n = 10 + rng.nextInt(30);
  while (keys.size < n) {
    const shape = rng.nextInt(6);
    const i = rng.nextInt(40);
    if (shape === 0) keys.add(`k${i}`); // prefixes of one another: k1, k10, k1x
    else if (shape === 1) keys.add(`k${i}x`);
    else if (shape === 2) keys.add(`k${i}`.padEnd(70 + rng.nextInt(40), 'z')); // > 64 bytes: native compare
    else if (shape === 3) keys.add(`k${i}\u0000`);
    else keys.add(`k${String(i).padStart(3, '0')}`);
  }
  return [...keys].map((s) => Buffer.from(s, 'latin1')).sort(Buffer.compare);
}

function cmp(a: Buffer, b: Buffer): number {
  return compareInternalKeyRanges(a, 0, a.length, b, 0, b.length);
}

function writeTable(fs: MemFs, number: number, entries: Entry[], compression: TableCompression): { number: number; sizeBytes: number } {
  const file = createNewFile(fs, `${DIR}/${tableFileName(number)}`);
  const b = new TableBuilder(file, { blockSizeBytes: 256, bloomBitsPerKey: 10, compression });
  for (const e of entries) b.add(e.key, e.value);
  const info = b.finish();
  file.close();
  return { number, sizeBytes: info.fileSizeBytes };
}

function readOutputs(fs: MemFs, outputs: readonly FileMetadata[]): Entry[][] {
  return outputs.map((f) => {
    const r = TableReader.open(fs.open(`${DIR}/${tableFileName(f.number)}`, 'r'), f.number, f.sizeBytes, null);
    const it = r.iterator(false);
    const out: Entry[] = [];
    for (it.first(); it.valid(); it.next()) out.push({ key: Buffer.from(it.key()), value: Buffer.from(it.value()) });
    it.close();
    r.close();
    return out;
  });
}

function userOf(ik: Buffer): Buffer {
  return ik.subarray(0, ik.length - TRAILER_BYTES);
}

function show(e: Entry): string {
  const t = trailerOf(e.key, e.key.length);
  return `${JSON.stringify(userOf(e.key).toString('latin1'))}@${seqOfTrailer(t)}${kindOfTrailer(t) === KIND_DELETE ? 'D' : 'V'}=${e.value.toString('latin1').slice(0, 12)}`;
}

function assertNoKeySpansOutputs(files: Entry[][], what: string): void {
  for (let i = 1; i < files.length; i++) {
    const prev = files[i - 1] as Entry[];
    const cur = files[i] as Entry[];
    if (prev.length === 0 || cur.length === 0) continue;
    const a = userOf((prev[prev.length - 1] as Entry).key);
    const b = userOf((cur[0] as Entry).key);
    assert.ok(Buffer.compare(a, b) < 0, `${what}: outputs ${i - 1} and ${i} share or misorder a user key`);
  }
}

/** A bound as a worker would see it: a plain Uint8Array over a bigger buffer, at an offset. */
function clonedBound(b: Buffer): Uint8Array {
  const backing = Buffer.alloc(b.length + 37, 0xee);
  b.copy(backing, 19);
  const view = backing.subarray(19, 19 + b.length);
  const cloned = structuredClone(view) as Uint8Array;
  assert.ok(!Buffer.isBuffer(cloned));
  return cloned;
}

test('merge(< s) ++ merge(>= s) equals merge(all) for any split key', async () => {
  await withSeed('session15c merge bounds', async (seed) => {
    const rng = new Random(seed);
    let nextNumber = 1;
    let nonTrivial = 0;
    for (let round = 0; round < 160; round++) {
      const fs = new MemFs();
      fs.mkdir(DIR);
      const keys = userKeyPool(rng);
      // Unique seqs across all inputs.
      let seq = 1;
      const tables: Entry[][] = [];
      const nTables = 2 + rng.nextInt(5);
      for (let t = 0; t < nTables; t++) tables.push([]);
      const total = 50 + rng.nextInt(400);
      for (let i = 0; i < total; i++) {
        // Skew: one hot key gets many versions.
        const k = rng.nextInt(4) === 0 ? (keys[Math.floor(keys.length / 2)] as Buffer) : (keys[rng.nextInt(keys.length)] as Buffer);
        const kind = rng.nextInt(4) === 0 ? KIND_DELETE : KIND_VALUE;
        const s = seq++;
        const value = kind === KIND_DELETE ? Buffer.alloc(0) : Buffer.from(`v${s}-`.padEnd(5 + rng.nextInt(60), 'q'));
        (tables[rng.nextInt(nTables)] as Entry[]).push({ key: makeInternalKey(k, s, kind), value });
      }
      const compression: TableCompression = rng.nextInt(2) === 0 ? 'lz' : 'none';
      const inputs = [];
      for (const t of tables) {
        if (t.length === 0) continue;
        t.sort((x, y) => cmp(x.key, y.key));
        inputs.push(writeTable(fs, nextNumber++, t, compression));
      }
      // Deeper levels: a few random disjoint ranges over the key pool.
      const deeper = [];
      const ranges: [Buffer, Buffer][] = [];
      for (let i = 0; i < keys.length; i += 1 + rng.nextInt(4)) {
        if (rng.nextInt(2) === 0) continue;
        const j = Math.min(keys.length - 1, i + rng.nextInt(2));
        ranges.push([keys[i] as Buffer, keys[j] as Buffer]);
        i = j;
      }
      deeper.push(packLevelRanges(ranges));
      const smallestSnapshot = rng.nextInt(3) === 0 ? seq : 1 + rng.nextInt(seq);
      const base: MergeSpec = {
        dir: DIR,
        inputs: rng.nextInt(2) === 0 ? inputs : [...inputs].reverse(),
        firstOutputNumber: 0,
        outputNumberCount: 10_000,
        smallestSnapshot,
        deeperLevels: deeper,
        blockSizeBytes: 256,
        bloomBitsPerKey: 10,
        compression,
        targetFileBytes: 1024 + rng.nextInt(3) * 1024,
      };
      const take = (n: number): number => {
        const first = nextNumber;
        nextNumber += n;
        return first;
      };
      const full = await mergeTables(fs, { ...base, firstOutputNumber: take(10_000) }, 0);
      const fullEntries = readOutputs(fs, full.outputs);
      assertNoKeySpansOutputs(fullEntries, 'full');
      const flat = fullEntries.flat();

      // Split keys: an existing key (the hot one too), between keys, a prefix, before all, after all.
      const hot = keys[Math.floor(keys.length / 2)] as Buffer;
      const pick = keys[rng.nextInt(keys.length)] as Buffer;
      const splits: Buffer[] = [
        hot,
        pick,
        Buffer.concat([pick, Buffer.from([0])]),
        pick.subarray(0, Math.max(1, pick.length - 1)),
        Buffer.from('a'),
        Buffer.from('zzzz'),
        Buffer.alloc(0),
      ];
      for (const s of splits) {
        const cloned = rng.nextInt(2) === 0;
        const below: MergeSpec = { ...base, firstOutputNumber: take(10_000), upperBound: cloned ? clonedBound(s) : s };
        const above: MergeSpec = { ...base, firstOutputNumber: take(10_000), lowerBound: cloned ? clonedBound(s) : s };
        // Concurrently, sliced every entry or few: the interleaving the main thread sees.
        const [lo, hi] = (await Promise.all([
          mergeTables(fs, below, 1 + rng.nextInt(3)),
          mergeTables(fs, above, 1 + rng.nextInt(3)),
        ])) as [MergeOutcome, MergeOutcome];
        const loFiles = readOutputs(fs, lo.outputs);
        const hiFiles = readOutputs(fs, hi.outputs);
        assertNoKeySpansOutputs(loFiles, 'below');
        assertNoKeySpansOutputs(hiFiles, 'above');
        for (const e of loFiles.flat()) assert.ok(Buffer.compare(userOf(e.key), s) < 0, `below half holds ${show(e)} >= split`);
        for (const e of hiFiles.flat()) assert.ok(Buffer.compare(userOf(e.key), s) >= 0, `above half holds ${show(e)} < split`);
        const joined = [...loFiles.flat(), ...hiFiles.flat()];
        const ctx = `round ${round}, split ${JSON.stringify(s.toString('latin1'))}, snapshot ${smallestSnapshot}`;
        assert.deepEqual(joined.map(show), flat.map(show), ctx);
        for (let i = 0; i < joined.length; i++) {
          assert.ok((joined[i] as Entry).key.equals((flat[i] as Entry).key) && (joined[i] as Entry).value.equals((flat[i] as Entry).value), `${ctx}: entry ${i}`);
        }
        assert.equal(lo.entriesDropped + hi.entriesDropped, full.entriesDropped, `${ctx}: dropped`);
        // Metadata of each output matches what it holds.
        for (const [files, metas] of [
          [loFiles, lo.outputs],
          [hiFiles, hi.outputs],
        ] as const) {
          for (let i = 0; i < files.length; i++) {
            const es = files[i] as Entry[];
            const m = metas[i] as FileMetadata;
            assert.equal(m.entryCount, es.length);
            assert.ok(m.smallest.equals((es[0] as Entry).key) && m.largest.equals((es[es.length - 1] as Entry).key), `${ctx}: output bounds`);
          }
        }
        if (loFiles.flat().length > 0 && hiFiles.flat().length > 0) nonTrivial++;
      }
      // Three shares [-, s1), [s1, s2), [s2, -) also concatenate to the whole.
      const [s1, s2] = [keys[rng.nextInt(keys.length)] as Buffer, keys[rng.nextInt(keys.length)] as Buffer].sort(Buffer.compare) as [Buffer, Buffer];
      const parts = await Promise.all([
        mergeTables(fs, { ...base, firstOutputNumber: take(10_000), upperBound: s1 }, 2),
        mergeTables(fs, { ...base, firstOutputNumber: take(10_000), lowerBound: s1, upperBound: s2 }, 3),
        mergeTables(fs, { ...base, firstOutputNumber: take(10_000), lowerBound: s2 }, 5),
      ]);
      assert.deepEqual(parts.flatMap((p) => readOutputs(fs, p.outputs).flat()).map(show), flat.map(show), `round ${round}: three shares`);
    }
    assert.ok(nonTrivial > 200, `splits with data on both sides: ${nonTrivial}`);
  });
});
