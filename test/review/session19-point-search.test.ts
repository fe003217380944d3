/**
 * Reviewer tests (session 19) for commit cf96e60's BlockPointSearch change: seekGE and
 * seekGEInPrefix compare each scanned key with the target from min(shared, matched)
 * (compareKeyFrom) instead of from byte 0, and seekGE touches one byte per 64-byte line first.
 *
 * Three oracles: a sorted-array model (first entry >= target), BlockIterator.seekGE, and the search
 * as it was before the change (session19-reference-point-search.ts, verbatim). On well-formed
 * blocks all must agree; on damaged or unsorted blocks the new search must answer (or fail)
 * exactly as the old one did, and fail only with CORRUPTION.
 *
 * Blocks are adversarial for prefix bookkeeping: user keys over bytes that also occur in trailers
 * (0x00, 0x01, 0xff), empty user keys, prefix chains, many versions of one user key, trailers
 * with every kind byte, keys longer than 64 bytes (native compare; key buffer growth mid-scan),
 * restart intervals 1..1024. Seeded: SEED=<n> replays (printed on failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockBuilder } from '../../src/sstable/block-builder.js';
import { BlockIterator } from '../../src/sstable/block-iterator.js';
import { BlockPointSearch } from '../../src/sstable/block-point-search.js';
import { compressBlock, lzCompressedBytesLimit, LzPrefixDecoder, lzUncompressedLength } from '../../src/sstable/lz-codec.js';
import { TRAILER_BYTES } from '../../src/base/internal-key.js';
import { isLightningError } from '../../src/base/errors.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';
import { lowerBound, sortedUnique, type Entry } from '../sstable/model.js';
import { BlockPointSearch as OldSearch } from './session19-reference-point-search.js';

const SEED = testSeed();
console.log(`session19-point-search SEED=${SEED}`);

/** An internal key with an arbitrary 8-byte trailer given as (low, high) 32-bit words. */
function rawKey(user: Buffer, low: number, high: number): Buffer {
  const k = Buffer.alloc(user.length + TRAILER_BYTES);
  user.copy(k, 0);
  k.writeUInt32LE(low >>> 0, user.length);
  k.writeUInt32LE(high >>> 0, user.length + 4);
  return k;
}

const TRAILER_WORDS = [0, 1, 0xff, 0x100, 0x101, 0x1ff, 0xffff, 0xff00, 0x01010101, 0xffffffff, 0xff0000ff, 0x00ff00ff];
const ALPHABET = [0x00, 0x01, 0xff, 0x02, 0x80];

class KeyGen {
  constructor(private readonly rng: Random) {}

  byte(): number {
    return this.rng.nextInt(5) === 0 ? this.rng.nextInt(256) : (ALPHABET[this.rng.nextInt(ALPHABET.length)] as number);
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.byte();
    return b;
  }

  /** A trailer word: one with bytes from the alphabet, or random, or a real (seq, kind) half. */
  word(high: boolean): number {
    const r = this.rng.nextInt(4);
    if (r === 0) return TRAILER_WORDS[this.rng.nextInt(TRAILER_WORDS.length)] as number;
    if (r === 1) return (this.rng.nextInt(0x10000) * 0x10000 + this.rng.nextInt(0x10000)) >>> 0;
    if (r === 2) return high ? this.rng.nextInt(0x2000) : this.bytes(4).readUInt32LE(0);
    return this.bytes(4).readUInt32LE(0);
  }

  /** User keys built around shared stems: prefixes of each other, extensions, empty, long. */
  userKeys(count: number): Buffer[] {
    const stems: Buffer[] = [Buffer.alloc(0)];
    const longStem = this.rng.nextInt(3) === 0;
    for (let i = 0; i < 4; i++) stems.push(this.bytes(longStem ? 60 + this.rng.nextInt(200) : this.rng.nextInt(10)));
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const stem = stems[this.rng.nextInt(stems.length)] as Buffer;
      const r = this.rng.nextInt(5);
      let u: Buffer;
      if (r === 0) u = stem.subarray(0, this.rng.nextInt(stem.length + 1)); // a prefix of a stem
      else if (r === 1) u = Buffer.concat([stem, this.bytes(1 + this.rng.nextInt(3))]);
      else if (r === 2) u = Buffer.concat([stem, this.bytes(8 + this.rng.nextInt(10))]); // longer than a trailer
      else if (r === 3) u = Buffer.from(stem);
      else u = this.bytes(this.rng.nextInt(12));
      // Sometimes a user key that ends with bytes looking like a trailer of a neighbour.
      if (this.rng.nextInt(6) === 0) u = Buffer.concat([u, rawKey(Buffer.alloc(0), this.word(false), this.word(true))]);
      out.push(Buffer.from(u));
      stems.push(Buffer.from(u));
    }
    return out;
  }

  /** Entries: user keys with 1..n versions (sometimes one user key with very many). */
  entries(): Entry[] {
    const users = this.userKeys(1 + this.rng.nextInt(40));
    const raw: Entry[] = [];
    for (const u of users) {
      const versions = this.rng.nextInt(8) === 0 ? 20 + this.rng.nextInt(60) : 1 + this.rng.nextInt(3);
      for (let v = 0; v < versions; v++) {
        raw.push({ key: rawKey(u, this.word(false), this.word(true)), value: this.bytes(this.rng.nextInt(4) === 0 ? 30 + this.rng.nextInt(60) : this.rng.nextInt(6)) });
      }
    }
    return sortedUnique(raw);
  }

  /** Targets near the stored keys: themselves, neighbour trailers, prefixes, extensions, random. */
  targets(model: Entry[]): Buffer[] {
    const out: Buffer[] = [];
    for (const e of model) {
      out.push(e.key);
      const user = e.key.subarray(0, e.key.length - TRAILER_BYTES);
      const low = e.key.readUInt32LE(user.length);
      const high = e.key.readUInt32LE(user.length + 4);
      if (this.rng.nextInt(2) === 0) out.push(rawKey(user, low + 1, high), rawKey(user, low - 1, high), rawKey(user, low, high + 1), rawKey(user, low, high - 1));
      if (this.rng.nextInt(3) === 0) out.push(rawKey(user, this.word(false), this.word(true)));
      if (this.rng.nextInt(3) === 0) out.push(rawKey(user.subarray(0, this.rng.nextInt(user.length + 1)), this.word(false), this.word(true)));
      if (this.rng.nextInt(3) === 0) out.push(rawKey(Buffer.concat([user, this.bytes(1 + this.rng.nextInt(9))]), this.word(false), this.word(true)));
      // The stored key's bytes with the trailer moved into the user key (same bytes, longer user key).
      if (this.rng.nextInt(4) === 0) out.push(rawKey(e.key, this.word(false), this.word(true)));
      if (this.rng.nextInt(4) === 0 && user.length > 0) {
        const t = Buffer.from(user);
        const i = this.rng.nextInt(t.length);
        t[i] = ((t[i] as number) + (this.rng.nextInt(2) === 0 ? 1 : 255)) & 0xff;
        out.push(rawKey(t, low, high));
      }
    }
    for (let i = 0; i < 10; i++) out.push(rawKey(this.bytes(this.rng.nextInt(6)), this.word(false), this.word(true)));
    // At most ~240 per block (a block of 60 versions of many keys would otherwise give thousands).
    while (out.length > 240) out.splice(this.rng.nextInt(out.length), 1);
    out.push(rawKey(Buffer.alloc(0), 0xffffffff, 0xffffffff), rawKey(Buffer.alloc(0), 0, 0), rawKey(Buffer.alloc(300, 0xff), 0, 0));
    return out;
  }

  restartInterval(): number {
    const r = this.rng.nextInt(6);
    return r === 0 ? 1 : r === 1 ? 1024 : 1 + this.rng.nextInt(20);
  }
}

function buildBlock(entries: Entry[], restartInterval: number): Buffer {
  const b = new BlockBuilder(restartInterval, 16);
  for (const e of entries) b.add(e.key, e.value);
  return Buffer.from(b.finish());
}

function compressed(block: Buffer): Buffer | null {
  const out = Buffer.alloc(Math.max(0, lzCompressedBytesLimit(block.length)));
  const n = compressBlock(block, 0, block.length, out, 0);
  return n < 0 ? null : out.subarray(0, n);
}

type Search = { seekGE(block: Buffer, target: Buffer, path: string, off: number): boolean; seekGEInPrefix(d: LzPrefixDecoder, block: Buffer, target: Buffer, path: string, off: number): boolean; keyBuffer: Buffer; keyLength: number; valueStart: number; valueEnd: number };

/** The answer as a comparable string: found key/value, "none", or the error's code and message. */
function answer(s: Search, block: Buffer, target: Buffer): string {
  try {
    if (!s.seekGE(block, target, 'r.sst', 7)) return 'none';
    assert.ok(s.valueStart >= 0 && s.valueStart <= s.valueEnd && s.valueEnd <= block.length, 'value inside the block');
    return `${s.keyBuffer.subarray(0, s.keyLength).toString('hex')}=${block.subarray(s.valueStart, s.valueEnd).toString('hex')}`;
  } catch (e) {
    if (!isLightningError(e, 'CORRUPTION')) throw e;
    return `CORRUPTION ${(e as Error).message}`;
  }
}

/** One shared output buffer for prefix searches, refilled with garbage each time (a reader reuses its output). */
let prefixOut = Buffer.alloc(1024);

function prefixAnswer(s: Search, d: LzPrefixDecoder, packed: Buffer, target: Buffer, rng: Random): string {
  const n = d.begin(packed, 0, packed.length);
  if (n < 0) return `header ${n}`;
  if (prefixOut.length < n + 64) prefixOut = Buffer.alloc(2 * (n + 64));
  for (let i = 0; i < n + 64; i += 8) prefixOut[i] = rng.nextInt(256);
  d.into(prefixOut, 0);
  try {
    if (!s.seekGEInPrefix(d, prefixOut, target, 'p.sst', 9)) return 'none';
    assert.ok(s.valueStart <= s.valueEnd && s.valueEnd <= d.decoded, 'the value was decoded');
    return `${s.keyBuffer.subarray(0, s.keyLength).toString('hex')}=${prefixOut.subarray(s.valueStart, s.valueEnd).toString('hex')}`;
  } catch (e) {
    if (!isLightningError(e, 'CORRUPTION')) throw e;
    return `CORRUPTION ${(e as Error).message}`;
  } finally {
    d.clear();
  }
}

function modelAnswer(model: Entry[], target: Buffer): string {
  const i = lowerBound(model, target);
  const e = model[i];
  return e === undefined ? 'none' : `${e.key.toString('hex')}=${e.value.toString('hex')}`;
}

function iteratorAnswer(it: BlockIterator, target: Buffer): string {
  it.seekGE(target);
  return it.valid() ? `${it.key().toString('hex')}=${it.value().toString('hex')}` : 'none';
}

// Shared across every case, as the reader's one search per thread: stale key bytes carry over.
const fresh = new BlockPointSearch();
const old = new OldSearch();
const decoder = new LzPrefixDecoder();

test('well-formed adversarial blocks: seekGE and seekGEInPrefix agree with the model, BlockIterator and the old search', () => {
  const rng = new Random(SEED);
  const gen = new KeyGen(rng);
  let searches = 0;
  let prefixSearches = 0;
  let bigBlocks = 0;
  for (let round = 0; round < 1500; round++) {
    const model = gen.entries();
    const interval = gen.restartInterval();
    const block = buildBlock(model, interval);
    if (block.length > 8192) bigBlocks++;
    const packed = compressed(block);
    const it = new BlockIterator(block);
    const where = `SEED=${SEED} round ${round} interval ${interval} entries ${model.length}`;
    for (const t of gen.targets(model)) {
      // Sometimes the target is a view at an odd offset of a larger buffer.
      const target = rng.nextInt(4) === 0 ? Buffer.concat([Buffer.alloc(3 + rng.nextInt(5), 0xee), t, Buffer.alloc(4, 0xdd)]).subarray(3, 3 + t.length) : t;
      const want = modelAnswer(model, target);
      const got = answer(fresh, block, target);
      if (got !== want) assert.fail(`${where}: seekGE(${t.toString('hex')}) = ${got}, model ${want}`);
      assert.equal(iteratorAnswer(it, target), want, `${where}: BlockIterator`);
      assert.equal(answer(old, block, target), want, `${where}: old search`);
      searches++;
      if (packed !== null) {
        const p = prefixAnswer(fresh, decoder, packed, target, rng);
        if (p !== want) assert.fail(`${where}: seekGEInPrefix(${t.toString('hex')}) = ${p}, model ${want}`);
        prefixSearches++;
      }
    }
    it.close();
  }
  console.log(`searches ${searches}, prefix searches ${prefixSearches}, blocks over 8 KiB ${bigBlocks}`);
  assert.ok(prefixSearches > 1000, 'some blocks compress');
  assert.ok(bigBlocks > 0, 'some blocks skip touchLines');
});

test('exhaustive small universe: every user key over {00,01,ff} up to 3 bytes, trailers from trailer-like bytes', () => {
  // All user keys of length 0..3 over three bytes (40 keys), each with versions whose trailer bytes
  // are the same three bytes: every target of the same universe against blocks of random subsets.
  const bytes = [0x00, 0x01, 0xff];
  const users: Buffer[] = [Buffer.alloc(0)];
  for (let len = 1; len <= 3; len++) {
    const total = 3 ** len;
    for (let x = 0; x < total; x++) {
      const b = Buffer.alloc(len);
      let y = x;
      for (let i = 0; i < len; i++) {
        b[i] = bytes[y % 3] as number;
        y = Math.floor(y / 3);
      }
      users.push(b);
    }
  }
  const words = [0, 1, 0xff, 0x01ff, 0xff01, 0xffffffff, 0x01010101, 0xff000000];
  const universe: Entry[] = [];
  for (const u of users) for (const lo of words) for (const hi of [0, 1, 0xffffffff]) universe.push({ key: rawKey(u, lo, hi), value: Buffer.from([u.length, lo & 0xff]) });
  const all = sortedUnique(universe);
  const rng = new Random(SEED ^ 0x1234);
  for (let round = 0; round < 40; round++) {
    const keep = 1 + rng.nextInt(4);
    const model = all.filter(() => rng.nextInt(keep + 1) !== 0);
    const interval = [1, 2, 3, 5, 16, 1024][round % 6] as number;
    const block = buildBlock(model, interval);
    const packed = compressed(block);
    for (const e of all) {
      const want = modelAnswer(model, e.key);
      const got = answer(fresh, block, e.key);
      if (got !== want) assert.fail(`SEED=${SEED} round ${round} interval ${interval}: seekGE(${e.key.toString('hex')}) = ${got}, model ${want}`);
      if (packed !== null) {
        const p = prefixAnswer(fresh, decoder, packed, e.key, rng);
        if (p !== want) assert.fail(`SEED=${SEED} round ${round}: seekGEInPrefix(${e.key.toString('hex')}) = ${p}, model ${want}`);
      }
    }
  }
});

test('deliberately unsorted blocks (well-formed entries, keys out of order): new and old search answer alike', () => {
  // BlockBuilder only checks order under invariants: with it off, a block can hold keys in any
  // order, the case the clamp in compareKeyFrom is for. The answer is then "the first entry the scan
  // meets that is >= target", whatever the order; the new search must not differ from the old one.
  const rng = new Random(SEED ^ 0x5a5a);
  const gen = new KeyGen(rng);
  let differs = 0;
  for (let round = 0; round < 700; round++) {
    const model = gen.entries();
    // Shuffle partially: swaps of neighbours and a few far swaps.
    const shuffled = [...model];
    for (let i = 0; i < shuffled.length; i++) {
      if (rng.nextInt(3) === 0) {
        const j = rng.nextInt(4) === 0 ? rng.nextInt(shuffled.length) : Math.min(shuffled.length - 1, i + 1);
        const t = shuffled[i] as Entry;
        shuffled[i] = shuffled[j] as Entry;
        shuffled[j] = t;
      }
    }
    const interval = gen.restartInterval();
    const block = buildBlock(shuffled, interval);
    const packed = compressed(block);
    for (const target of gen.targets(model)) {
      const want = answer(old, block, target);
      const got = answer(fresh, block, target);
      if (got !== want) assert.fail(`SEED=${SEED} round ${round}: unsorted seekGE(${target.toString('hex')}) = ${got}, old ${want}`);
      if (want !== modelAnswer(model, target)) differs++;
      if (packed !== null) {
        const wantP = prefixAnswer(old, decoder, packed, target, rng);
        const gotP = prefixAnswer(fresh, decoder, packed, target, rng);
        if (gotP !== wantP) assert.fail(`SEED=${SEED} round ${round}: unsorted seekGEInPrefix(${target.toString('hex')}) = ${gotP}, old ${wantP}`);
      }
    }
  }
  assert.ok(differs > 0, 'the shuffles made some answers differ from the sorted model');
});

/** 1-4 random bytes changed (often in headers), or a cut, or the restart array rewritten. */
function damaged(good: Buffer, rng: Random): Buffer {
  const bad = Buffer.from(good);
  const mode = rng.nextInt(6);
  if (mode === 0) return bad.subarray(0, rng.nextInt(bad.length));
  if (mode === 1 && bad.length >= 8) {
    // A restart point moved anywhere (possibly into the middle of an entry).
    const count = bad.readUInt32LE(bad.length - 4);
    const at = bad.length - 4 - 4 * (1 + rng.nextInt(Math.max(1, Math.min(count, 1000))));
    if (at >= 0) bad.writeUInt32LE(rng.nextInt(bad.length + 2), at);
    return bad;
  }
  const flips = 1 + rng.nextInt(4);
  for (let f = 0; f < flips; f++) {
    const i = rng.nextInt(bad.length);
    bad[i] = rng.nextInt(3) === 0 ? (ALPHABET[rng.nextInt(ALPHABET.length)] as number) : rng.nextInt(256);
  }
  return bad;
}

test('damaged blocks: both searches raise only CORRUPTION, and exactly as the old search did', () => {
  const rng = new Random(SEED ^ 0xbad);
  const gen = new KeyGen(rng);
  let corruptions = 0;
  let answered = 0;
  for (let round = 0; round < 1000; round++) {
    const model = gen.entries();
    const block = buildBlock(model, gen.restartInterval());
    const packed = compressed(block);
    const targets = gen.targets(model).filter(() => rng.nextInt(3) === 0).slice(0, 12);
    for (let trial = 0; trial < 12; trial++) {
      const bad = damaged(block, rng);
      for (const target of targets) {
        let got: string;
        let want: string;
        try {
          got = answer(fresh, bad, target);
        } catch (e) {
          assert.fail(`SEED=${SEED} round ${round} trial ${trial}: seekGE threw ${String(e)}`);
        }
        try {
          want = answer(old, bad, target);
        } catch (e) {
          want = `old threw ${String(e)}`;
        }
        if (got !== want) assert.fail(`SEED=${SEED} round ${round} trial ${trial}: seekGE(${target.toString('hex')}) on a bad block = ${got}, old ${want}`);
        if (got.startsWith('CORRUPTION')) corruptions++;
        else answered++;
      }
      if (packed !== null) {
        const badPacked = damaged(packed, rng);
        if (lzUncompressedLength(badPacked, 0, badPacked.length) < 0) continue;
        for (const target of targets) {
          let got: string;
          try {
            got = prefixAnswer(fresh, decoder, badPacked, target, rng);
          } catch (e) {
            assert.fail(`SEED=${SEED} round ${round} trial ${trial}: seekGEInPrefix threw ${String(e)}`);
          }
          const want = prefixAnswer(old, decoder, badPacked, target, rng);
          if (got !== want) assert.fail(`SEED=${SEED} round ${round} trial ${trial}: seekGEInPrefix on a bad block = ${got}, old ${want}`);
        }
      }
    }
  }
  console.log(`damaged: ${corruptions} corruption answers, ${answered} other answers`);
  assert.ok(corruptions > 100 && answered > 100, 'the damage produced both outcomes');
});

test('long shared prefixes around the 64-byte compare threshold and key buffer growth mid-scan', () => {
  // Keys of 50..400 bytes that share 60..390 bytes with the target: the old search used the native
  // compare past 64 bytes, the new one a byte loop from `matched`; the key buffer (64 bytes at first)
  // grows in the middle of a scan and must keep the shared bytes.
  const rng = new Random(SEED ^ 0x64);
  for (let round = 0; round < 400; round++) {
    const base = Buffer.alloc(400);
    for (let i = 0; i < base.length; i++) base[i] = ALPHABET[rng.nextInt(3)] as number;
    const raw: Entry[] = [];
    for (let i = 0; i < 40; i++) {
      const len = 50 + rng.nextInt(350);
      const u = Buffer.from(base.subarray(0, len));
      if (rng.nextInt(2) === 0) u[rng.nextInt(len)] = ALPHABET[rng.nextInt(3)] as number;
      raw.push({ key: rawKey(u, rng.nextInt(3) === 0 ? 0xffffffff : rng.nextInt(1000), rng.nextInt(3)), value: Buffer.from([i]) });
    }
    const model = sortedUnique(raw);
    const interval = [1, 4, 16, 1024][round % 4] as number;
    const block = buildBlock(model, interval);
    const packed = compressed(block);
    const s = new BlockPointSearch(); // a fresh one: its 64-byte key buffer must grow mid-scan
    const targets = [...model.map((e) => e.key), ...model.map((e) => rawKey(e.key.subarray(0, e.key.length - 8 - rng.nextInt(3)), 5, 1))];
    for (const target of targets) {
      const want = modelAnswer(model, target);
      assert.equal(answer(s, block, target), want, `SEED=${SEED} round ${round}: long keys, seekGE`);
      if (packed !== null) assert.equal(prefixAnswer(new BlockPointSearch(), decoder, packed, target, rng), want, `SEED=${SEED} round ${round}: long keys, prefix`);
    }
  }
});
