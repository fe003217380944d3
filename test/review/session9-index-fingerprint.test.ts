/**
 * Review (session 9): the index search (IndexArray.findGE: shared prefix, 48-bit fingerprints,
 * then whole keys) through TableBuilder / TableReader.seekGE against a sorted model, with
 * adversarial key sets:
 *   - one user key in many versions spread over many blocks (separators tie on the whole user key
 *     and differ only in the trailer);
 *   - keys that differ only after the 6 fingerprint bytes past a long shared prefix;
 *   - keys that are prefixes of each other, padded with 0x00 (equal fingerprints, different order);
 *   - empty user keys, bytes >= 0x80 (0xff runs), 64 KiB keys;
 *   - targets: every key at several sequence numbers, their prefixes, 0x00/0xff extensions, the
 *     byte after, keys outside the shared prefix on either side.
 * Point reads must agree with the model, and with the table iterator's seekGE (which searches the
 * index block itself, not the decoded array).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareInternalKeys, KIND_DELETE, KIND_SEEK, KIND_VALUE, makeInternalKey, MAX_SEQ, describeInternalKey } from '../../src/base/internal-key.js';
import { TableBuilder } from '../../src/sstable/table-builder.js';
import { TableReader, type TableEntry } from '../../src/sstable/table-reader.js';
import { Random } from '../../src/util/random.js';
import { BufferFile } from '../sstable/buffer-file.js';
import { lowerBound } from '../sstable/model.js';
import { testSeed } from '../harness/seed.js';

interface Entry {
  key: Buffer;
  value: Buffer;
}


/** Builds a table of `users` (each with `versions(i)` sequence numbers) and checks many targets. */
function checkTable(users: Buffer[], versionsOf: (i: number) => number, blockSize: number, extraTargets: Buffer[], what: string, maxSeqs = 40): void {
  const uniq = [...new Map(users.map((u) => [u.toString('hex'), u])).values()];
  const model: Entry[] = [];
  let seq = 1;
  uniq.forEach((u, i) => {
    const n = versionsOf(i);
    for (let v = 0; v < n; v++) {
      const s = (seq += 1 + (v % 3));
      model.push({ key: makeInternalKey(u, s, v % 4 === 3 ? KIND_DELETE : KIND_VALUE), value: Buffer.from(`${i}/${s}`) });
    }
  });
  model.sort((a, b) => compareInternalKeys(a.key, b.key));
  const file = new BufferFile('idx.sst');
  const b = new TableBuilder(file, { blockSizeBytes: blockSize, bloomBitsPerKey: 10, compression: 'none' });
  for (const e of model) b.add(e.key, e.value);
  const info = b.finish();
  const reader = TableReader.open(file, 1, info.fileSizeBytes, null);
  const it = reader.iterator(false);
  const out: TableEntry = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
  try {
    const userTargets: Buffer[] = [...extraTargets, Buffer.alloc(0), Buffer.from([0xff, 0xff, 0xff])];
    for (const u of uniq) {
      userTargets.push(u, Buffer.concat([u, Buffer.from([0])]), Buffer.concat([u, Buffer.from([0xff])]));
      for (const cut of [1, 2, 6, 7, 8]) if (u.length >= cut) userTargets.push(u.subarray(0, u.length - cut));
      if (u.length > 0) {
        const bumped = Buffer.from(u);
        const last = bumped.length - 1;
        if ((bumped[last] as number) < 0xff) {
          bumped[last] = (bumped[last] as number) + 1;
          userTargets.push(bumped);
        }
      }
    }
    const seqTargets = [MAX_SEQ, 0, 1];
    for (const e of model) seqTargets.push(Number((e.key.readBigUInt64LE(e.key.length - 8) >> 8n) & 0xffffffffffffn));
    const seqs = [...new Set(seqTargets)].slice(0, maxSeqs);
    const targets: Buffer[] = [];
    for (const u of userTargets) for (const s of seqs) targets.push(makeInternalKey(u, s, KIND_SEEK));
    for (const e of model) targets.push(e.key);
    for (const t of targets) {
      const want = model[lowerBound(model, t)];
      const found = reader.seekGE(t, out);
      const d = (k: Buffer): string => (k.length > 200 ? `${describeInternalKey(k).slice(0, 60)}...(${k.length} bytes)` : describeInternalKey(k));
      if (want === undefined) {
        if (found) assert.fail(`${what}: seekGE(${d(t)}) found ${d(out.key)}, model has nothing`);
      } else {
        if (!found) assert.fail(`${what}: seekGE(${d(t)}) found nothing, model has ${d(want.key)}`);
        if (!out.key.equals(want.key)) assert.fail(`${what}: seekGE(${d(t)}) = ${d(out.key)}, model ${d(want.key)}`);
        if (!out.value.equals(want.value)) assert.fail(`${what}: value`);
      }
      it.seekGE(t);
      if (want === undefined) {
        if (it.valid()) assert.fail(`${what}: iterator seekGE(${d(t)}) valid, model has nothing`);
      } else if (!it.valid() || !it.key().equals(want.key)) {
        assert.fail(`${what}: iterator seekGE(${d(t)}) disagrees with the model (${d(want.key)})`);
      }
    }
  } finally {
    it.close();
    reader.close();
  }
}

test('one user key in hundreds of versions across many blocks (separators tie on the user key)', () => {
  for (const blockSize of [64, 200]) {
    for (const u of [Buffer.alloc(0), Buffer.from('k'), Buffer.from([0xff, 0xff]), Buffer.alloc(40, 0x00)]) {
      checkTable([u], () => 300, blockSize, [Buffer.from('j'), Buffer.from('l')], `versions of ${u.toString('hex')} block ${blockSize}`);
      // with neighbours
      checkTable([Buffer.concat([u, Buffer.from([0])]), u, Buffer.concat([u, Buffer.from([0, 0, 0, 0, 0, 0, 0, 1])])], (i) => (i === 1 ? 200 : 50), blockSize, [], `neighbours of ${u.toString('hex')}`);
    }
  }
});

test('keys differing only after the fingerprint bytes past a long shared prefix', () => {
  const seed = testSeed();
  const rng = new Random(seed);
  for (const prefixLen of [0, 1, 9, 300]) {
    const prefix = Buffer.alloc(prefixLen, 0x6b);
    const users: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      // six identical bytes after the prefix (one fingerprint), then a differing tail
      const mid = Buffer.from([0x00, 0x80, 0xff, 0x00, 0x01, rng.nextInt(2) === 0 ? 0x00 : 0xff]);
      const tail = Buffer.alloc(rng.nextInt(5));
      for (let j = 0; j < tail.length; j++) tail[j] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.nextInt(5)] as number;
      users.push(Buffer.concat([prefix, mid.subarray(0, rng.nextInt(7)), tail]));
    }
    const extra = [prefix.subarray(0, Math.max(0, prefixLen - 1)), Buffer.concat([prefix, Buffer.from([0x6a])]), Buffer.concat([prefix.subarray(0, Math.max(0, prefixLen - 1)), Buffer.from([0x6c])])];
    checkTable(users, (i) => 1 + (i % 3), 64, extra, `SEED=${seed} prefix ${prefixLen}`, 12);
  }
});

test('64 KiB keys sharing almost all their bytes, next to short keys', () => {
  const big = Buffer.alloc(64 * 1024 - 8, 0x80);
  const users: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const u = Buffer.from(big);
    u[u.length - 1 - (i % 8)] = i;
    users.push(u);
    users.push(u.subarray(0, 6 + i));
  }
  users.push(Buffer.from([0x80]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), Buffer.from([0x81]));
  checkTable(users, (i) => 1 + (i % 2), 1024, [], '64 KiB keys', 3);
});

const edgeByte = fc.constantFrom(0x00, 0x01, 0x6b, 0x7f, 0x80, 0xfe, 0xff);
const tailArb = fc.array(edgeByte, { maxLength: 14 });

test('random adversarial key sets (fast-check)', () => {
  const seed = testSeed();
  fc.assert(
    fc.property(
      fc.constantFrom('', 'p', 'prefix:\u0000\u00ff'),
      fc.array(tailArb, { minLength: 1, maxLength: 80 }),
      fc.array(tailArb, { maxLength: 10 }),
      fc.constantFrom(64, 128, 512),
      fc.nat(4),
      (prefix, tails, extraTails, blockSize, maxVersions) => {
        const p = Buffer.from(prefix, 'latin1');
        const users = tails.map((t) => Buffer.concat([p, Buffer.from(t)]));
        const extra = extraTails.map((t) => Buffer.concat([p.subarray(0, t.length % (p.length + 1)), Buffer.from(t)]));
        checkTable(users, (i) => 1 + ((i * 7) % (maxVersions + 1)), blockSize, extra, `prefix ${JSON.stringify(prefix)}`);
      },
    ),
    { seed, numRuns: 150 },
  );
});
