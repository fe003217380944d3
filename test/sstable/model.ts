/**
 * Shared helpers for sstable tests: internal-key builders, a sorted-array model of an iterator,
 * and a runner that replays positioning ops against both and compares every step.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  compareInternalKeys,
  describeInternalKey,
  KIND_DELETE,
  KIND_VALUE,
  makeInternalKey,
} from '../../src/base/internal-key.js';
import type { InternalIterator } from '../../src/iter/internal-iterator.js';

export interface Entry {
  key: Buffer;
  value: Buffer;
}

export function ikey(user: string | Buffer, seq: number, kind: number = KIND_VALUE): Buffer {
  return makeInternalKey(typeof user === 'string' ? Buffer.from(user, 'latin1') : user, seq, kind);
}

/** Sorts by internal key order and drops duplicate internal keys (first one wins). */
export function sortedUnique(entries: Entry[]): Entry[] {
  const sorted = [...entries].sort((a, b) => compareInternalKeys(a.key, b.key));
  const out: Entry[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last === undefined || compareInternalKeys(last.key, e.key) !== 0) out.push(e);
  }
  return out;
}

/** Index of the first entry >= target, or entries.length. */
export function lowerBound(entries: Entry[], target: Buffer): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareInternalKeys((entries[mid] as Entry).key, target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the last entry <= target, or -1. */
export function floorIndex(entries: Entry[], target: Buffer): number {
  const i = lowerBound(entries, target);
  const e = entries[i];
  if (e !== undefined && compareInternalKeys(e.key, target) === 0) return i;
  return i - 1;
}

export type Op =
  | { op: 'first' }
  | { op: 'last' }
  | { op: 'next' }
  | { op: 'prev' }
  | { op: 'seekGE'; target: Buffer }
  | { op: 'seekLE'; target: Buffer }
  /** Seek to the key of model entry `index % length` (exact hits are rare with random targets). */
  | { op: 'seekGEExisting'; index: number }
  | { op: 'seekLEExisting'; index: number };

export function describeOp(o: Op): string {
  if (o.op === 'seekGE' || o.op === 'seekLE') return `${o.op}(${describeInternalKey(o.target)})`;
  if (o.op === 'seekGEExisting' || o.op === 'seekLEExisting') return `${o.op}(${o.index})`;
  return o.op;
}

/**
 * Replays ops on `it` and on the model; after each op both must agree on validity, key and value.
 * next/prev are skipped while invalid (the contract requires valid()).
 */
export function runOps(it: InternalIterator, model: Entry[], ops: Op[]): void {
  let pos = -1;
  const trace: string[] = [];
  for (const original of ops) {
    const o = resolve(original, model);
    const valid = pos >= 0 && pos < model.length;
    if ((o.op === 'next' || o.op === 'prev') && !valid) continue;
    trace.push(describeOp(o));
    switch (o.op) {
      case 'first':
        it.first();
        pos = 0;
        break;
      case 'last':
        it.last();
        pos = model.length - 1;
        break;
      case 'next':
        it.next();
        pos++;
        break;
      case 'prev':
        it.prev();
        pos--;
        break;
      case 'seekGE':
        it.seekGE(o.target);
        pos = lowerBound(model, o.target);
        break;
      case 'seekLE':
        it.seekLE(o.target);
        pos = floorIndex(model, o.target);
        break;
      case 'seekGEExisting':
      case 'seekLEExisting':
        assert.fail('resolved above');
    }
    checkPosition(it, model, pos, trace);
  }
}

function resolve(o: Op, model: Entry[]): Op {
  if (o.op !== 'seekGEExisting' && o.op !== 'seekLEExisting') return o;
  const e = model[o.index % Math.max(1, model.length)];
  const target = e === undefined ? Buffer.alloc(8) : Buffer.from(e.key);
  return o.op === 'seekGEExisting' ? { op: 'seekGE', target } : { op: 'seekLE', target };
}

function checkPosition(it: InternalIterator, model: Entry[], pos: number, trace: string[]): void {
  const expected = model[pos];
  if (expected === undefined) {
    assert.equal(it.valid(), false, `expected invalid after ${trace.join(' ')}`);
    return;
  }
  assert.equal(
    it.valid(),
    true,
    `expected ${describeInternalKey(expected.key)} after ${trace.join(' ')}`,
  );
  assert.equal(describeInternalKey(it.key()), describeInternalKey(expected.key), trace.join(' '));
  assert.ok(it.key().equals(expected.key), trace.join(' '));
  assert.ok(it.value().equals(expected.value), `value differs after ${trace.join(' ')}`);
}

/** Full forward and backward scans must reproduce the model exactly. */
export function checkFullScans(it: InternalIterator, model: Entry[]): void {
  let i = 0;
  for (it.first(); it.valid(); it.next()) {
    const e = model[i];
    assert.ok(e !== undefined, 'iterator has more entries than the model');
    assert.ok(it.key().equals(e.key), `forward key ${i}`);
    assert.ok(it.value().equals(e.value), `forward value ${i}`);
    i++;
  }
  assert.equal(i, model.length, 'forward scan length');
  i = model.length - 1;
  for (it.last(); it.valid(); it.prev()) {
    const e = model[i];
    assert.ok(e !== undefined, 'iterator has more entries than the model (backward)');
    assert.ok(it.key().equals(e.key), `backward key ${i}`);
    assert.ok(it.value().equals(e.value), `backward value ${i}`);
    i--;
  }
  assert.equal(i, -1, 'backward scan length');
}

/**
 * User keys from a small alphabet with shared prefixes, so blocks get real prefix compression, and
 * duplicates, so one user key carries several sequence numbers.
 */
export const userKeyArb: fc.Arbitrary<Buffer> = fc
  .array(fc.constantFrom(0x00, 0x61, 0x62, 0x63, 0xfe, 0xff), { minLength: 0, maxLength: 6 })
  .map((bytes) => Buffer.from(bytes));

/** Sequence numbers including the edges 0 and MAX_SEQ. */
export const seqArb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 2, 2 ** 45 - 1, 2 ** 32, 2 ** 32 - 1),
  fc.integer({ min: 0, max: 1000 }),
);

export const ikeyArb: fc.Arbitrary<Buffer> = fc
  .tuple(userKeyArb, seqArb, fc.constantFrom(KIND_DELETE, KIND_VALUE))
  .map(([u, s, k]) => makeInternalKey(u, s, k));

export const entryArb: fc.Arbitrary<Entry> = fc.record({
  key: ikeyArb,
  value: fc.uint8Array({ maxLength: 40 }).map((v) => Buffer.from(v)),
});

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant<Op>({ op: 'first' }),
  fc.constant<Op>({ op: 'last' }),
  { arbitrary: fc.constant<Op>({ op: 'next' }), weight: 4 },
  { arbitrary: fc.constant<Op>({ op: 'prev' }), weight: 4 },
  { arbitrary: ikeyArb.map((target): Op => ({ op: 'seekGE', target })), weight: 2 },
  { arbitrary: ikeyArb.map((target): Op => ({ op: 'seekLE', target })), weight: 2 },
  fc.nat().map((index): Op => ({ op: 'seekGEExisting', index })),
  fc.nat().map((index): Op => ({ op: 'seekLEExisting', index })),
);

/** Seed for fast-check and PRNG-driven tests: SEED env var to replay, else fixed. */
export const SEED = process.env['SEED'] === undefined ? 0x5eed : Number(process.env['SEED']);
