/**
 * Review (session 13): TableReader.find / seekGE / get (BlockPointSearch, and the prefix decoder for
 * compressed blocks the cache does not admit) against a sorted model, through readers with no
 * cache, caches that refuse (tiny capacity with admission, capacity below one block), and big
 * caches (with and without admission), several tables sharing one cache, lookups interleaved
 * across readers and with open iterators. Tables vary block size, restart interval, compression,
 * key lengths (empty user keys, > 64 and > 300 bytes), many versions of a key across blocks,
 * deletions, values larger than blocks and larger than the shared 256 KiB buffers.
 * Also checks the cache counters: every miss is either inserted or counted as rejected.
 * Replay: SEED=<n>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { BlockCache } from '../../src/sstable/block-cache.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { compareInternalKeys, describeInternalKey, KIND_DELETE, KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ } from '../../src/base/internal-key.js';
import { LzPrefixDecoder } from '../../src/sstable/lz-codec.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { lowerBound, sortedUnique, type Entry } from '../sstable/model.js';
import { withSeed } from '../harness/seed.js';

invariants.enabled = true;

/** Counts the prefix decoder's work, to be sure the prefix path is exercised. */
let prefixExtends = 0;
const originalExtend = LzPrefixDecoder.prototype.extend;
LzPrefixDecoder.prototype.extend = function (this: LzPrefixDecoder, bytes: number): number {
  prefixExtends++;
  return originalExtend.call(this, bytes);
};

/** Counts what insert/admits decide, to check the cache's counters against. */
class CountingCache extends BlockCache {
  inserted = 0;
  insertRefused = 0;
  override insert(fileNumber: number, offset: number, block: Buffer): Buffer {
    const r = super.insert(fileNumber, offset, block);
    if (r !== block) this.inserted++;
    else this.insertRefused++;
    return r;
  }
  admitsRefused = 0;
  override admits(fileNumber: number, offset: number, length: number): boolean {
    const r = super.admits(fileNumber, offset, length);
    if (!r) this.admitsRefused++;
    return r;
  }
  /** What insert/admits decided so far: [inserted, insertRefused, admitsRefused]. */
  decisions(): number[] {
    return [this.inserted, this.insertRefused, this.admitsRefused];
  }
}

function userKey(rnd: Random, pool: Buffer[]): Buffer {
  const r = rnd.nextInt(20);
  if (pool.length > 0 && r < 8) {
    const base = pool[rnd.nextInt(pool.length)] as Buffer;
    // a neighbour: prefix, extension, or last byte changed
    const m = rnd.nextInt(3);
    if (m === 0) return base.subarray(0, rnd.nextInt(base.length + 1));
    if (m === 1) return Buffer.concat([base, Buffer.from([rnd.nextInt(256)])]);
    const c = Buffer.from(base);
    if (c.length > 0) c[c.length - 1] = rnd.nextInt(256);
    return c;
  }
  if (r === 8) return Buffer.alloc(0);
  let len: number;
  if (r < 15) len = 1 + rnd.nextInt(10);
  else if (r < 18) len = 60 + rnd.nextInt(20); // around the 64-byte key buffer
  else len = 250 + rnd.nextInt(300);
  const b = Buffer.alloc(len);
  const shared = len > 40 ? len - 1 - rnd.nextInt(4) : 0;
  for (let i = 0; i < len; i++) b[i] = i < shared ? 0x6b : [0x00, 0x61, 0x62, 0x7f, 0x80, 0xff][rnd.nextInt(6)] as number;
  return b;
}

function value(rnd: Random, blockSize: number): Buffer {
  const r = rnd.nextInt(40);
  if (r === 0) return Buffer.alloc(0);
  let len: number;
  if (r === 1) len = blockSize + rnd.nextInt(2 * blockSize); // larger than a block
  else if (r === 2 && rnd.nextInt(8) === 0) len = 200_000 + rnd.nextInt(150_000); // around the shared buffers' 256 KiB
  else len = 1 + rnd.nextInt(60);
  const v = Buffer.alloc(len);
  const compressible = rnd.nextInt(3) !== 0;
  for (let i = 0; i < len; i++) v[i] = compressible ? (i % 7 === 0 ? rnd.nextInt(256) : 0x61 + (i % 5)) : rnd.nextInt(256);
  return v;
}

interface Table {
  bytes: Buffer;
  model: Entry[];
  opts: { blockSizeBytes: number; restartInterval: number; compression: 'none' | 'lz' };
}

function buildTable(rnd: Random): Table {
  const blockSizeBytes = [64, 100, 256, 512, 1024, 4096][rnd.nextInt(6)] as number;
  const restartInterval = [1, 2, 3, 16, 32][rnd.nextInt(5)] as number;
  const compression = rnd.nextInt(4) === 0 ? 'none' : 'lz';
  const pool: Buffer[] = [];
  const raw: Entry[] = [];
  const n = 50 + rnd.nextInt(600);
  let seq = 1 + rnd.nextInt(1000);
  for (let i = 0; i < n; i++) {
    const u = userKey(rnd, pool);
    if (pool.length < 200) pool.push(u);
    const versions = rnd.nextInt(30) === 0 ? 20 + rnd.nextInt(150) : 1 + rnd.nextInt(3);
    for (let v = 0; v < versions; v++) {
      seq += 1 + rnd.nextInt(3);
      const kind = rnd.nextInt(5) === 0 ? KIND_DELETE : KIND_VALUE;
      raw.push({ key: makeInternalKey(u, seq, kind), value: kind === KIND_DELETE ? Buffer.alloc(0) : value(rnd, blockSizeBytes) });
    }
  }
  const model = sortedUnique(raw);
  const file = new BufferFile('t.sst');
  const b = new TableBuilder(file, { blockSizeBytes, bloomBitsPerKey: 10, restartInterval, compression });
  for (const e of model) b.add(e.key, e.value);
  b.finish();
  return { bytes: file.contents(), model, opts: { blockSizeBytes, restartInterval, compression } };
}

/** Targets: every key, every user key at random / edge snapshots, neighbours, past the end. */
function targets(rnd: Random, model: Entry[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < model.length; i++) {
    const e = model[i] as Entry;
    if (rnd.nextInt(3) === 0) out.push(e.key);
    const u = e.key.subarray(0, e.key.length - 8);
    if (rnd.nextInt(3) === 0) {
      const seq = e.key.readUInt32LE(e.key.length - 4) * 2 ** 24 + (e.key.readUInt32LE(e.key.length - 8) >>> 8); // approximate
      void seq;
      const s = [0, 1, MAX_SEQ, rnd.nextInt(100_000)][rnd.nextInt(4)] as number;
      out.push(makeInternalKey(u, s, KIND_SEEK));
    }
    if (rnd.nextInt(10) === 0) out.push(makeInternalKey(Buffer.concat([u, Buffer.from([0])]), MAX_SEQ, KIND_SEEK));
    if (rnd.nextInt(10) === 0 && u.length > 0) {
      const c = Buffer.from(u);
      c[c.length - 1] = ((c[c.length - 1] as number) + 1) & 0xff;
      out.push(makeInternalKey(c, rnd.nextInt(2) === 0 ? 0 : MAX_SEQ, KIND_SEEK));
    }
  }
  out.push(makeInternalKey(Buffer.alloc(0), MAX_SEQ, KIND_SEEK));
  out.push(makeInternalKey(Buffer.alloc(0), 0, KIND_DELETE));
  out.push(makeInternalKey(Buffer.alloc(600, 0xff), 0, KIND_DELETE));
  // shuffle
  for (let i = out.length - 1; i > 0; i--) {
    const j = rnd.nextInt(i + 1);
    [out[i], out[j]] = [out[j] as Buffer, out[i] as Buffer];
  }
  return out;
}

interface ReaderCase {
  name: string;
  reader: TableReader;
  cache: CountingCache | null;
  model: Entry[];
}

function check(rc: ReaderCase, target: Buffer, how: number, search: BlockPointSearch, what: string): void {
  const i = lowerBound(rc.model, target);
  const want = rc.model[i];
  let key: Buffer | null = null;
  let val: Buffer | null = null;
  if (how === 0) {
    const block = rc.reader.find(target, search);
    if (block !== null) {
      assert.ok(search.valueStart <= search.valueEnd && search.valueEnd <= block.length, `${what}: value range inside the block`);
      key = Buffer.from(search.keyBuffer.subarray(0, search.keyLength));
      val = Buffer.from(block.subarray(search.valueStart, search.valueEnd));
    }
  } else if (how === 1) {
    const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
    if (rc.reader.seekGE(target, out)) {
      key = Buffer.from(out.key);
      val = Buffer.from(out.value);
    }
  } else {
    const got = rc.reader.get(target);
    if (got !== undefined) {
      key = got.key;
      val = got.value;
    }
  }
  const desc = `${what} [${rc.name}, via ${['find', 'seekGE', 'get'][how]}] target ${describeInternalKey(target).slice(0, 120)}`;
  if (want === undefined) {
    assert.equal(key, null, `${desc}: expected nothing, got ${key === null ? '' : describeInternalKey(key).slice(0, 120)}`);
    return;
  }
  assert.ok(key !== null, `${desc}: expected ${describeInternalKey(want.key).slice(0, 120)}, got nothing`);
  assert.equal(compareInternalKeys(key, want.key), 0, `${desc}: key ${describeInternalKey(key).slice(0, 120)} != ${describeInternalKey(want.key).slice(0, 120)}`);
  assert.ok(val !== null && val.equals(want.value), `${desc}: value differs (len ${val?.length} vs ${want.value.length})`);
}

test('find/seekGE/get agree with the model through every kind of cache, interleaved across tables', async () => {
  await withSeed('session13 table find', async (seed) => {
    const rnd = new Random(seed);
    const deadline = Date.now() + 9000;
    let rounds = 0;
    let prefixLikely = 0;
    while (Date.now() < deadline || rounds < 3) {
      rounds++;
      const tables = [buildTable(rnd), buildTable(rnd), buildTable(rnd)];
      const maxBlock = Math.max(...tables.map((t) => t.opts.blockSizeBytes));
      const slot = maxBlock + 128;
      const caches: [string, () => CountingCache | null][] = [
        ['none', () => null],
        ['tiny-admission', () => new CountingCache(3 * slot, slot, true)],
        ['below-one-block', () => new CountingCache(32, 0, true)],
        ['big-admission', () => new CountingCache(64 * 1024 * 1024, slot, true)],
        ['big-plain', () => new CountingCache(64 * 1024 * 1024, slot, false)],
        ['tiny-plain', () => new CountingCache(2 * slot, slot, false)],
      ];
      const cases: ReaderCase[] = [];
      let fileNumber = 1;
      for (const [name, make] of caches) {
        // Tables of one kind share the cache, as in the DB.
        const cache = make();
        for (const t of tables) {
          cases.push({ name: `${name}/${t.opts.compression}/b${t.opts.blockSizeBytes}/r${t.opts.restartInterval}`, reader: TableReader.open(new BufferFile(`f${fileNumber}.sst`, t.bytes), fileNumber, t.bytes.length, cache), cache, model: t.model });
          fileNumber++;
        }
      }
      // Open iterators, stepped between lookups; their entries must stay right.
      const iters = cases.filter((_, i) => i % 4 === 0).map((c) => ({ c, it: c.reader.iterator(), pos: 0 }));
      for (const x of iters) x.it.first();
      const search = new BlockPointSearch();
      const allTargets = tables.map((t) => targets(rnd, t.model));
      const ops = 3000;
      for (let op = 0; op < ops; op++) {
        const ci = rnd.nextInt(cases.length);
        const rc = cases[ci] as ReaderCase;
        const ti = tables.findIndex((t) => t.model === rc.model);
        const ts = allTargets[ti] as Buffer[];
        const target = ts[rnd.nextInt(ts.length)] as Buffer;
        const before = rc.cache?.stats();
        const decBefore = rc.cache?.decisions();
        check(rc, target, rnd.nextInt(3), search, `round ${rounds} op ${op} (SEED=${seed})`);
        if (rc.cache === null && tables[ti]?.opts.compression === 'lz') prefixLikely++;
        if (rc.cache !== null && before !== undefined) {
          const after = rc.cache.stats();
          assert.ok(after.hits + after.misses >= before.hits + before.misses, 'counters only grow');
          const dec = rc.cache.decisions().map((v, k) => v - (decBefore as number[])[k]!);
          const dMiss = after.misses - before.misses;
          const dRej = after.rejected - before.rejected;
          const stats = `misses +${dMiss}, rejected +${dRej}, inserted +${dec[0]}, insert refused +${dec[1]}, admits refused +${dec[2]}`;
          assert.equal(dMiss, dec[0]! + dec[1]! + dec[2]!, `op ${op} (SEED=${seed}) ${rc.name}: every miss is inserted or refused once: ${stats}`);
          assert.ok(dRej <= dec[1]! + dec[2]!, `op ${op} (SEED=${seed}) ${rc.name}: rejections are refusals: ${stats}`);
          assert.ok(after.usedBytes <= after.capacityBytes, 'cache within budget');
        }
        if (rnd.nextInt(4) === 0 && iters.length > 0) {
          const x = iters[rnd.nextInt(iters.length)] as (typeof iters)[number];
          if (x.it.valid()) {
            const e = x.c.model[x.pos] as Entry;
            assert.ok(x.it.key().equals(e.key) && x.it.value().equals(e.value), `round ${rounds} op ${op} (SEED=${seed}): iterator ${x.c.name} entry ${x.pos} changed under lookups`);
            x.it.next();
            x.pos++;
          } else {
            assert.equal(x.pos, x.c.model.length, `iterator ${x.c.name} ended early`);
          }
        }
      }
      for (const x of iters) x.it.close();
      for (const c of cases) c.reader.close();
    }
    assert.ok(prefixLikely > 0);
    assert.ok(prefixExtends > 0, 'the prefix decoder was used');
    console.log(`session13 table find: ${rounds} rounds, ${prefixExtends} prefix extends`);
  });
});

