/**
 * The index search (IndexArray.findGE: shared prefix, then 48-bit fingerprints, then whole keys
 * where fingerprints tie) against a linear model, with keys built to make the shortcuts hard:
 * a long shared prefix, keys that differ only after the 6 fingerprint bytes, keys that end inside
 * the fingerprint next to keys with 0x00 bytes there (equal fingerprints, different order), and
 * targets shorter than, below, above or inside the shared prefix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareInternalKeys, KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ } from '../../src/base/internal-key.js';
import { commonPrefixLength, fingerprintOf } from '../../src/base/key-fingerprint.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { BufferFile } from './buffer-file.js';
import { testSeed } from '../harness/seed.js';

const SEED = testSeed();

test('fingerprints never contradict byte order', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 10 }), fc.uint8Array({ maxLength: 10 }), fc.nat(3), (a, b, p) => {
      const c = Buffer.compare(Buffer.from(a), Buffer.from(b));
      const shared = commonPrefixLength(a, 0, a.length, b, 0, b.length);
      const prefix = Math.min(p, shared);
      const fa = fingerprintOf(a, 0, a.length, prefix);
      const fb = fingerprintOf(b, 0, b.length, prefix);
      if (c < 0) assert.ok(fa <= fb, `${Buffer.from(a).toString('hex')} < ${Buffer.from(b).toString('hex')}`);
      if (c > 0) assert.ok(fa >= fb);
      if (c === 0) assert.equal(fa, fb);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

const tailByte = fc.constantFrom(0x00, 0x01, 0x30, 0x7f, 0x80, 0xff);
/** A shared prefix (maybe empty) plus a tail of 0-10 edge bytes. */
const keysArb = fc
  .tuple(fc.constantFrom('', 'k', 'user:0000'), fc.array(fc.array(tailByte, { maxLength: 10 }), { minLength: 1, maxLength: 60 }))
  .map(([prefix, tails]) => tails.map((t) => Buffer.concat([Buffer.from(prefix), Buffer.from(t)])));

test('TableReader point seeks agree with a linear model when fingerprints tie', () => {
  fc.assert(
    fc.property(keysArb, fc.array(fc.array(tailByte, { maxLength: 12 }), { maxLength: 20 }), (keys, extraTargets) => {
      const uniq = [...new Map(keys.map((k) => [k.toString('hex'), k])).values()].filter((k) => k.length > 0);
      fc.pre(uniq.length > 0);
      const entries = uniq.map((k, i) => ({ ikey: makeInternalKey(k, 10 + i, KIND_VALUE), value: Buffer.from([i & 0xff]) }));
      entries.sort((a, b) => compareInternalKeys(a.ikey, b.ikey));
      const file = new BufferFile();
      // 64-byte blocks: about one entry per block, so the index holds (nearly) every key.
      const b = new TableBuilder(file, { blockSizeBytes: 64, bloomBitsPerKey: 10, compression: 'none' });
      for (const e of entries) b.add(e.ikey, e.value);
      const info = b.finish();
      const r = TableReader.open(file, 1, info.fileSizeBytes, null);
      try {
        const first = uniq[0] as Buffer;
        const targets = [...uniq, ...extraTargets.map((t) => Buffer.from(t)), first.subarray(0, 1), first.subarray(0, Math.max(1, first.length - 7)), Buffer.from([0xff, 0xff])];
        for (const k of targets) {
          for (const seq of [MAX_SEQ, 10, 0]) {
            const target = makeInternalKey(k, seq, KIND_SEEK);
            const want = entries.find((e) => compareInternalKeys(e.ikey, target) >= 0);
            const got = r.get(target);
            assert.equal(got?.key.toString('hex'), want?.ikey.toString('hex'), `target ${k.toString('hex')}#${seq}`);
          }
        }
      } finally {
        r.close();
      }
    }),
    { seed: SEED, numRuns: 300 },
  );
});
