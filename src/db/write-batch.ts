/**
 * A write batch: the unit of atomicity. Users' `put`/`delete`/`batch` calls become one batch each;
 * the batch is encoded once into the WAL record payload and applied to the memtable from the same
 * validated operations.
 *
 * WAL payload (docs/formats/wal.md, "batch payload"): frozen on disk.
 *   fixed64 firstSeq | uint32 count | count x ( uint8 kind | varint keyLen | key | [varint valueLen | value] )
 * A DELETE op has no value part. Sequence numbers are firstSeq, firstSeq+1, ... in op order.
 */
import { assert } from '../util/assert.js';
import { copyFirstBytes, trueLength } from '../util/copy-bytes.js';
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from './options.js';
import type { MemTable } from '../memtable/memtable.js';
import { getFixed64, getVarint, putFixed64, putVarint, varintLength } from '../util/coding.js';
import { KIND_DELETE, KIND_VALUE } from '../base/internal-key.js';
import { corruption, invalidArgument } from '../base/errors.js';

export const BATCH_HEADER_BYTES = 12;

/** One validated operation; key and value are Buffers the batch owns or the caller won't mutate. */
export interface BatchOp {
  kind: typeof KIND_VALUE | typeof KIND_DELETE;
  key: Buffer;
  value: Buffer;
}

export const EMPTY_VALUE: Buffer = Buffer.alloc(0);

/** Exact encoded size of a batch's payload. */
export function encodedBatchBytes(ops: readonly BatchOp[]): number {
  let n = BATCH_HEADER_BYTES;
  for (const op of ops) {
    const k = trueLength(op.key);
    n += 1 + varintLength(k) + k;
    if (op.kind === KIND_VALUE) {
      const v = trueLength(op.value);
      n += varintLength(v) + v;
    }
  }
  return n;
}

/** Throws INVALID_ARGUMENT unless a key of `n` bytes is allowed. */
export function checkKeyLength(n: number): void {
  if (n === 0) throw invalidArgument('key must not be empty');
  if (n > KEY_BYTES_MAX) throw invalidArgument(`key is ${n} bytes; the limit is ${KEY_BYTES_MAX}`);
}

/** Throws INVALID_ARGUMENT unless a value of `n` bytes is allowed. */
export function checkValueLength(n: number): void {
  if (n > VALUE_BYTES_MAX) throw invalidArgument(`value is ${n} bytes; the limit is ${VALUE_BYTES_MAX}`);
}

/**
 * Encodes `ops` into a new payload with sequence 0 (set later by `setBatchSequence`). From here on
 * the payload is the batch: it is what the WAL stores and what `applyBatch` inserts, so the caller
 * may reuse or mutate the buffers it passed.
 */
export function encodeBatchPayload(ops: readonly BatchOp[], payloadBytes: number): Buffer {
  const builder = new PayloadBuilder(payloadBytes);
  for (const op of ops) {
    builder.addKey(op.kind, op.key);
    if (op.kind === KIND_VALUE) builder.addValue(op.value);
  }
  const out = builder.finish();
  assert(out.length === payloadBytes, 'encoded batch size mismatch');
  return out;
}

/**
 * Builds a payload operation by operation, copying each key and value as it is added, into a
 * buffer that grows when needed: a batch is validated and encoded in one pass, with no object per
 * operation (db.batch). The payload is a view of the builder's buffer (which may have slack).
 *
 * The builder is the last check before the WAL, and callers' objects may be hostile (a `length`
 * getter that lies, a getter that detaches or resizes a buffer already checked). So it reads
 * each length once, from the engine (`trueLength`), checks it against the limits, and copies
 * exactly that many bytes with no caller code running in between. A put's key is copied before
 * its value is even read (addKey, then addValue).
 */
export class PayloadBuilder {
  private buf: Buffer;
  private off = BATCH_HEADER_BYTES;
  private count = 0;
  /** A put whose key was added and whose value has not been. */
  private valueDue = false;

  /** `capacityBytes`: the first buffer's size; it doubles when full. */
  constructor(capacityBytes: number) {
    this.buf = Buffer.allocUnsafe(Math.max(BATCH_HEADER_BYTES, capacityBytes));
  }

  /** Starts an operation: its kind and its key, copied now. A put needs addValue next. */
  addKey(kind: typeof KIND_VALUE | typeof KIND_DELETE, key: Uint8Array): void {
    assert(!this.valueDue, 'a put needs its value before the next operation');
    const n = trueLength(key);
    checkKeyLength(n);
    const off = this.reserve(1 + varintLength(n) + n);
    const out = this.buf;
    out[off] = kind;
    this.off = copyFirstBytes(key, n, out, putVarint(out, off + 1, n));
    this.count++;
    this.valueDue = kind === KIND_VALUE;
  }

  /** The value of the put whose key was added last, copied now. */
  addValue(value: Uint8Array): void {
    assert(this.valueDue, 'addValue without a put key');
    const n = trueLength(value);
    checkValueLength(n);
    const off = this.reserve(varintLength(n) + n);
    const out = this.buf;
    this.off = copyFirstBytes(value, n, out, putVarint(out, off, n));
    this.valueDue = false;
  }

  /** The payload (sequence 0, the count of operations). The builder must not be used afterwards. */
  finish(): Buffer {
    assert(!this.valueDue, 'a put is missing its value');
    const out = this.buf;
    putFixed64(out, 0, 0);
    out.writeUInt32LE(this.count, 8);
    return out.subarray(0, this.off);
  }

  /** Room for `bytes` more at the end (doubling: at most twice the payload); returns where. */
  private reserve(bytes: number): number {
    const off = this.off;
    if (off + bytes > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(off + bytes, 2 * this.buf.length));
      this.buf.copy(grown, 0, 0, off);
      this.buf = grown;
    }
    return off;
  }
}

/**
 * Inserts every operation of an encoded batch into `mem` with sequences firstSeq, firstSeq+1, ...
 * straight from the payload bytes (no view per key or value). Returns the user bytes applied.
 * Requires: a payload built by encodeBatchPayload (or verified by decodeBatch).
 */
export function applyBatch(payload: Buffer, firstSeq: number, mem: MemTable): number {
  const count = batchCount(payload);
  const end = payload.length;
  let off = BATCH_HEADER_BYTES;
  let seq = firstSeq;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const kind = payload[off++] as number;
    let d = getVarint(payload, off, end);
    const keyStart = d.next;
    const keyEnd = keyStart + d.value;
    let valueStart = keyEnd;
    let valueEnd = keyEnd;
    if (kind === KIND_VALUE) {
      d = getVarint(payload, keyEnd, end);
      valueStart = d.next;
      valueEnd = valueStart + d.value;
    }
    assert(keyStart > 0 && valueEnd <= end, 'applyBatch: malformed payload');
    mem.addFrom(seq++, kind, payload, keyStart, keyEnd, payload, valueStart, valueEnd);
    bytes += keyEnd - keyStart + (valueEnd - valueStart);
    off = valueEnd;
  }
  assert(off === end, 'applyBatch: trailing bytes');
  return bytes;
}

/** The keys of an encoded batch, as views into it (for commit-time validation). */
export function batchKeys(payload: Buffer): Buffer[] {
  const keys: Buffer[] = [];
  const count = batchCount(payload);
  let off = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const kind = payload[off++] as number;
    let d = getVarint(payload, off, payload.length);
    const keyEnd = d.next + d.value;
    keys.push(payload.subarray(d.next, keyEnd));
    off = keyEnd;
    if (kind === KIND_VALUE) {
      d = getVarint(payload, keyEnd, payload.length);
      off = d.next + d.value;
    }
  }
  return keys;
}

/** Number of operations in an encoded batch. */
export function batchCount(payload: Buffer): number {
  return payload.readUInt32LE(8);
}

/** Sets the first sequence number of an encoded batch. */
export function setBatchSequence(payload: Buffer, firstSeq: number): void {
  putFixed64(payload, 0, firstSeq);
}

export interface DecodedBatch {
  firstSeq: number;
  ops: BatchOp[];
}

/**
 * Decodes a payload read back from the WAL. The record's CRC already matched, so a malformed
 * payload means a bug or a collision: reported as CORRUPTION, never thrown as anything else.
 * Keys and values are views into `payload`.
 */
export function decodeBatch(payload: Buffer, file: string, offset: number): DecodedBatch {
  if (payload.length < BATCH_HEADER_BYTES) throw corruption(file, offset, 'short batch header');
  const firstSeq = getFixed64(payload, 0);
  const count = batchCount(payload);
  const ops: BatchOp[] = [];
  let off = BATCH_HEADER_BYTES;
  const end = payload.length;
  for (let i = 0; i < count; i++) {
    if (off >= end) throw corruption(file, offset, 'batch shorter than its count');
    const kind = payload[off++];
    if (kind !== KIND_VALUE && kind !== KIND_DELETE) throw corruption(file, offset, 'bad op kind');
    let d = getVarint(payload, off, end);
    if (d.next < 0 || d.next + d.value > end) throw corruption(file, offset, 'bad key length');
    const key = payload.subarray(d.next, d.next + d.value);
    off = d.next + d.value;
    let value: Buffer = EMPTY_VALUE;
    if (kind === KIND_VALUE) {
      d = getVarint(payload, off, end);
      if (d.next < 0 || d.next + d.value > end) throw corruption(file, offset, 'bad value length');
      value = payload.subarray(d.next, d.next + d.value);
      off = d.next + d.value;
    }
    ops.push({ kind, key, value });
  }
  if (off !== end) throw corruption(file, offset, 'trailing bytes after batch');
  assert(ops.length === count, 'decoded count mismatch');
  return { firstSeq, ops };
}
