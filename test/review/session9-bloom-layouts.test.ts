/**
 * Review (session 9): the cache-local bloom layout (all probes of a key in one 64-byte line, last
 * byte 0x80 | k) next to the legacy layout:
 *   - no false negatives for every key count 1..300 and every bits-per-key setting, both layouts,
 *     through mayContain and mayContainHash (the point-read path hashes once);
 *   - no false negatives for a large random key set, and a sane false-positive rate;
 *   - filters an unknown writer could produce (marker set but not whole lines, k out of range)
 *     answer "may contain", never a false "no";
 *   - tables of both layouts in one database (MemFs, main-thread flushes; the builder forced to
 *     'legacy' for some flushes): every key is found by point reads, before and after compaction
 *     rewrites them in the new layout, and after reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bloomHash, BloomFilterBuilder, mayContain, mayContainHash, type BloomLayout } from '../../src/sstable/bloom-filter.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { makeInternalKey, KIND_VALUE, compareInternalKeys } from '../../src/base/internal-key.js';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { Random } from '../../src/util/random.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { testSeed } from '../harness/seed.js';

const LAYOUTS: BloomLayout[] = ['cache-local', 'legacy'];

function randomKey(rng: Random): Buffer {
  const k = Buffer.alloc(rng.nextInt(40));
  for (let i = 0; i < k.length; i++) k[i] = rng.nextInt(4) === 0 ? 0xff : rng.nextInt(256);
  return k;
}

test('no false negatives for every key count 1..300, every bits-per-key, both layouts', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const layout of LAYOUTS) {
    for (const bitsPerKey of [1, 2, 3, 7, 10, 13, 20, 30, 64]) {
      for (let n = 1; n <= 300; n += bitsPerKey >= 20 ? 7 : 1) {
        const b = new BloomFilterBuilder(bitsPerKey, layout);
        const keys: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          const k = randomKey(rng);
          keys.push(k);
          // half through a range of a bigger buffer
          if (i % 2 === 0) b.addKey(k);
          else {
            const host = Buffer.concat([Buffer.from([1, 2, 3]), k, Buffer.from([9])]);
            b.addKey(host, 3, 3 + k.length);
          }
        }
        const filter = b.finish();
        if (layout === 'cache-local') {
          assert.equal((filter.length - 1) % 64, 0, 'whole lines');
          assert.ok(((filter[filter.length - 1] as number) & 0x80) !== 0, 'marker');
        } else {
          assert.equal((filter[filter.length - 1] as number) & 0x80, 0, 'legacy has no marker');
        }
        for (const k of keys) {
          if (!mayContain(filter, k)) assert.fail(`SEED=${seed}: false negative (${layout}, ${bitsPerKey} bits/key, n=${n}) for ${k.toString('hex')}`);
          if (!mayContainHash(filter, bloomHash(k))) assert.fail(`SEED=${seed}: false negative via hash (${layout}, ${bitsPerKey}, n=${n})`);
        }
        // the builder is reusable after finish()
        b.addKey(Buffer.from('again'));
        assert.ok(mayContain(b.finish(), Buffer.from('again')));
      }
    }
  }
});

test('a large random key set: no false negatives; false positives near the documented rate', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const layout of LAYOUTS) {
    const b = new BloomFilterBuilder(10, layout);
    const keys: Buffer[] = [];
    for (let i = 0; i < 60_000; i++) {
      const k = Buffer.alloc(8 + rng.nextInt(12));
      for (let j = 0; j < k.length; j++) k[j] = rng.nextInt(256);
      keys.push(k);
      b.addKey(k);
    }
    const filter = b.finish();
    for (const k of keys) if (!mayContain(filter, k)) assert.fail(`SEED=${seed}: false negative (${layout})`);
    let fp = 0;
    const probes = 60_000;
    for (let i = 0; i < probes; i++) {
      const k = Buffer.alloc(24); // longer than every key added: never a member
      for (let j = 0; j < k.length; j++) k[j] = rng.nextInt(256);
      if (mayContain(filter, k)) fp++;
    }
    const rate = fp / probes;
    assert.ok(rate < (layout === 'cache-local' ? 0.025 : 0.02), `SEED=${seed}: ${layout} false-positive rate ${rate}`);
    // sequential-looking keys, the common DB case
    const b2 = new BloomFilterBuilder(10, layout);
    for (let i = 0; i < 50_000; i++) b2.addKey(Buffer.from(`user${String(i).padStart(10, '0')}`));
    const f2 = b2.finish();
    for (let i = 0; i < 50_000; i++) if (!mayContain(f2, Buffer.from(`user${String(i).padStart(10, '0')}`))) assert.fail(`false negative user${i} (${layout})`);
    let fp2 = 0;
    for (let i = 50_000; i < 100_000; i++) if (mayContain(f2, Buffer.from(`user${String(i).padStart(10, '0')}`))) fp2++;
    assert.ok(fp2 / 50_000 < 0.03, `${layout}: sequential keys false-positive rate ${fp2 / 50_000}`);
  }
});

test('filters this version did not write answer "may contain" (never a false no)', () => {
  const k = Buffer.from('anything');
  const h = bloomHash(k);
  // marker set, but the bits are not whole lines
  for (const len of [2, 3, 63, 66, 100, 130]) {
    const f = Buffer.alloc(len);
    f[len - 1] = 0x80 | 6;
    assert.equal(mayContain(f, k), true, `len ${len}`);
    assert.equal(mayContainHash(f, h), true);
  }
  // k out of range, either layout
  for (const last of [0, 31, 0x7f, 0x80, 0x80 | 31, 0xff]) {
    const f = Buffer.alloc(129);
    f[128] = last;
    assert.equal(mayContain(f, k), true, `last byte ${last}`);
  }
  assert.equal(mayContain(Buffer.alloc(0), k), true);
  assert.equal(mayContain(Buffer.from([0x86]), k), true);
});

test('TableBuilder bloomLayout: both layouts read back through TableReader.mayContain', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const layout of LAYOUTS) {
    const users = new Map<string, Buffer>();
    while (users.size < 3000) {
      const u = randomKey(rng);
      users.set(u.toString('hex'), u);
    }
    const entries = [...users.values()].map((u, i) => ({ key: makeInternalKey(u, i + 1, KIND_VALUE), value: Buffer.from([i & 0xff]) }));
    entries.sort((a, b) => compareInternalKeys(a.key, b.key));
    const file = new BufferFile('bl.sst');
    const b = new TableBuilder(file, { blockSizeBytes: 512, bloomBitsPerKey: 10, bloomLayout: layout });
    for (const e of entries) b.add(e.key, e.value);
    const info = b.finish();
    const r = TableReader.open(file, 1, info.fileSizeBytes, null);
    for (const u of users.values()) {
      if (!r.mayContain(u)) assert.fail(`SEED=${seed}: ${layout} table filter says no for ${u.toString('hex')}`);
      if (!r.mayContainHash(bloomHash(u))) assert.fail(`SEED=${seed}: ${layout} mayContainHash`);
    }
    r.close();
  }
});

test('one database with tables of both layouts: every key found, before and after compaction and reopen', async () => {
  const seed = testSeed();
  const rng = new Random(seed);
  // TableBuilder finishes its filter with finishShared (a reused buffer); hook both ways to finish.
  const proto = BloomFilterBuilder.prototype as unknown as { finish(this: BloomFilterBuilder): Buffer; finishShared(this: BloomFilterBuilder): Buffer };
  const realFinish = proto.finish;
  const realFinishShared = proto.finishShared;
  let forceLegacy = false;
  let legacyBuilt = 0;
  const hooked = (real: (this: BloomFilterBuilder) => Buffer) =>
    function (this: BloomFilterBuilder): Buffer {
      if (forceLegacy) (this as unknown as { layout: BloomLayout }).layout = 'legacy';
      const f = real.call(this);
      if (f.length > 0 && ((f[f.length - 1] as number) & 0x80) === 0) legacyBuilt++;
      return f;
    };
  proto.finish = hooked(realFinish);
  proto.finishShared = hooked(realFinishShared);
  try {
    const fs = new MemFs();
    const opts = { fs, memtableSize: 16 * 1024, blockSize: 256, l0CompactionTrigger: 50, l0SlowdownTrigger: 50, l0StopTrigger: 50, compression: 'none' as const };
    const db = await open('/db', opts);
    const model = new Map<string, string>();
    let legacyFlushes = 0;
    for (let round = 0; round < 12; round++) {
      forceLegacy = round % 2 === 0;
      if (forceLegacy) legacyFlushes++;
      const ops = [];
      for (let i = 0; i < 150; i++) {
        const k = randomKey(rng);
        if (k.length === 0) continue;
        const v = `${round}:${i}`;
        ops.push({ type: 'put' as const, key: k, value: v });
        model.set(k.toString('hex'), v);
      }
      await db.batch(ops);
      await db.compactRange(Buffer.alloc(48, 0xff), undefined); // flush (and nothing to compact)
    }
    forceLegacy = false;
    assert.ok(legacyFlushes > 0 && legacyBuilt >= legacyFlushes, `legacy filters written: ${legacyBuilt}`);
    const check = async (d: typeof db, what: string): Promise<void> => {
      for (const [kh, v] of model) {
        const got = d.getSync(Buffer.from(kh, 'hex'));
        if (got?.toString() !== v) assert.fail(`SEED=${seed} ${what}: key ${kh} read ${got?.toString()} want ${v}`);
      }
    };
    assert.ok(db.stats().levels[0]!.files >= 6, `L0 files: ${db.stats().levels[0]!.files}`);
    await check(db, 'mixed L0');
    await db.compactRange();
    await check(db, 'after compaction');
    await db.close();
    const again = await open('/db', { fs });
    await check(again, 'after reopen');
    await again.close();
  } finally {
    proto.finish = realFinish;
    proto.finishShared = realFinishShared;
  }
});
