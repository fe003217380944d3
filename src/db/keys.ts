/**
 * Conversion and validation of user-supplied keys, values, batches and ranges. Everything that
 * crosses the public API is checked here, before any state changes, so that an invalid batch is
 * rejected whole.
 */
import { LightningError, invalidArgument, messageOf } from '../base/errors.js';
import { KIND_DELETE, KIND_VALUE } from '../base/internal-key.js';
import type { UserRange } from '../iter/db-iterator.js';
import { BATCH_HEADER_BYTES, PayloadBuilder, checkKeyLength, checkValueLength } from './write-batch.js';
import { trueLength } from '../util/copy-bytes.js';
import { BATCH_OPS_MAX, KEY_BYTES_MAX } from './options.js';

/** A key or value as users pass it: bytes, or a string encoded as UTF-8. */
export type Bytes = Uint8Array | string;

function toBuffer(v: unknown, what: string): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) {
    // instanceof also accepts a Proxy of a Uint8Array and an object made from its prototype,
    // whose every property access throws; isView checks for a real typed array.
    if (!ArrayBuffer.isView(v)) throw invalidArgument(`${what} is not a real Uint8Array (a proxy, or an object made from its prototype)`);
    if (Buffer.isBuffer(v)) return v;
    try {
      return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    } catch (e) {
      throw invalidArgument(`${what} cannot be read: ${messageOf(e)} (a detached ArrayBuffer?)`);
    }
  }
  throw invalidArgument(`${what} must be a Uint8Array or a string, got ${describeType(v)}`);
}

/**
 * An error thrown while reading a call's arguments: ours (already typed), or the caller's own
 * (a getter or proxy that throws), which becomes INVALID_ARGUMENT with it as the cause — never
 * IO_ERROR, which would send the caller looking at their disk.
 */
export function argumentError(e: unknown): LightningError {
  if (e instanceof LightningError) return e;
  return new LightningError('INVALID_ARGUMENT', `reading the arguments threw: ${messageOf(e)}`, { cause: e });
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function toKey(key: unknown): Buffer {
  const b = toBuffer(key, 'key');
  checkKeyLength(trueLength(b));
  return b;
}

export function toValue(value: unknown): Buffer {
  const b = toBuffer(value, 'value');
  checkValueLength(trueLength(b));
  return b;
}

/** A batch operation as users write it. */
export type BatchOperation =
  | { type: 'put'; key: Bytes; value: Bytes }
  | { type: 'del'; key: Bytes };

/**
 * Validates a user's batch and encodes it into a payload (write-batch.ts) in one pass: each
 * operation's fields are read once, and no object is made per operation. Its operation count is
 * `batchCount(payload)`.
 */
export function toBatchPayload(ops: unknown): Buffer {
  if (!Array.isArray(ops)) throw invalidArgument('batch must be an array of operations');
  // The length read once: a getter of an operation (or a proxy) may shrink or grow the array.
  const n = ops.length;
  if (n > BATCH_OPS_MAX) throw invalidArgument(`batch has ${n} operations; the limit is ${BATCH_OPS_MAX}`);
  const builder = new PayloadBuilder(BATCH_HEADER_BYTES + Math.min(n * BATCH_OP_BYTES_GUESS, BATCH_FIRST_BUFFER_MAX));
  for (let i = 0; i < n; i++) {
    const op: unknown = ops[i];
    if (typeof op !== 'object' || op === null) throw invalidArgument(`batch[${i}] is not an object`);
    const o = op as Record<string, unknown>;
    const type = o['type'];
    // The key is checked and copied before the value is read: a value getter cannot change it.
    if (type === 'put') {
      builder.addKey(KIND_VALUE, toBuffer(o['key'], 'key'));
      builder.addValue(toBuffer(o['value'], 'value'));
    } else if (type === 'del') {
      builder.addKey(KIND_DELETE, toBuffer(o['key'], 'key'));
    } else {
      throw invalidArgument(`batch[${i}].type must be 'put' or 'del'`);
    }
  }
  return builder.finish();
}

/** First guess of an operation's encoded size, and the most the first buffer takes (it doubles). */
const BATCH_OP_BYTES_GUESS = 64;
const BATCH_FIRST_BUFFER_MAX = 1024 * 1024;

/** Range options of iterators. */
export interface RangeOptions {
  gt?: Bytes;
  gte?: Bytes;
  lt?: Bytes;
  lte?: Bytes;
  /** Only keys starting with these bytes. Combines with the other bounds. */
  prefix?: Bytes;
  /** Iterate from the largest key down. Default false. */
  reverse?: boolean;
  /** Stop after this many entries. Default: no limit. */
  limit?: number;
}

const RANGE_KEYS = new Set(['gt', 'gte', 'lt', 'lte', 'prefix', 'reverse', 'limit']);

/** Smallest key greater than every key starting with `prefix`, or undefined if none (all 0xff). */
function prefixSuccessor(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const b = prefix[i] as number;
    if (b !== 0xff) {
      const out = Buffer.from(prefix.subarray(0, i + 1));
      out[i] = b + 1;
      return out;
    }
  }
  return undefined;
}

function boundKey(v: unknown, name: string): Buffer {
  const b = toBuffer(v, `range option ${name}`);
  if (b.length > KEY_BYTES_MAX) throw invalidArgument(`range option ${name} is longer than a key can be`);
  return b;
}

/** Validates range options and reduces them to one lower and one upper bound. */
export function toRange(options: unknown): UserRange {
  const r: UserRange = {
    lower: undefined,
    lowerExclusive: false,
    upper: undefined,
    upperExclusive: false,
    reverse: false,
    limit: Infinity,
  };
  if (options === undefined || options === null) return r;
  if (typeof options !== 'object') throw invalidArgument('range options must be an object');
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!RANGE_KEYS.has(k)) throw invalidArgument(`unknown range option ${JSON.stringify(k)}`);
  }
  if (o['gt'] !== undefined && o['gte'] !== undefined) throw invalidArgument('use gt or gte, not both');
  if (o['lt'] !== undefined && o['lte'] !== undefined) throw invalidArgument('use lt or lte, not both');
  if (o['gte'] !== undefined) r.lower = boundKey(o['gte'], 'gte');
  if (o['gt'] !== undefined) {
    r.lower = boundKey(o['gt'], 'gt');
    r.lowerExclusive = true;
  }
  if (o['lte'] !== undefined) r.upper = boundKey(o['lte'], 'lte');
  if (o['lt'] !== undefined) {
    r.upper = boundKey(o['lt'], 'lt');
    r.upperExclusive = true;
  }
  if (o['prefix'] !== undefined) applyPrefix(r, boundKey(o['prefix'], 'prefix'));
  const reverse = o['reverse'];
  if (reverse !== undefined && typeof reverse !== 'boolean') throw invalidArgument('reverse must be a boolean');
  r.reverse = reverse === true;
  const limit = o['limit'];
  if (limit !== undefined) {
    if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0 || (!Number.isInteger(limit) && limit !== Infinity)) {
      throw invalidArgument('limit must be a non-negative integer');
    }
    r.limit = limit;
  }
  return r;
}

/** Intersects the range with [prefix, successor(prefix)). */
function applyPrefix(r: UserRange, prefix: Buffer): void {
  if (r.lower === undefined || Buffer.compare(r.lower, prefix) < 0) {
    r.lower = prefix;
    r.lowerExclusive = false;
  }
  const succ = prefixSuccessor(prefix);
  if (succ !== undefined && (r.upper === undefined || Buffer.compare(succ, r.upper) <= 0)) {
    r.upper = succ;
    r.upperExclusive = true;
  }
}
