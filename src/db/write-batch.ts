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
import { copyBytes } from '../util/copy-bytes.js';
import type { MemTable } from '../memtable/memtable.js';
import { getFixed64, getVarint, putFixed64, putVarint, varintLength } from '../util/coding.js';
import { KIND_DELETE, KIND_VALUE } from '../base/internal-key.js';
import { corruption } from '../base/errors.js';

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
    n += 1 + varintLength(op.key.length) + op.key.length;
    if (op.kind === KIND_VALUE) n += varintLength(op.value.length) + op.value.length;
  }
  return n;
}

/**
 * Encodes `ops` into a new payload with sequence 0 (set later by `setBatchSequence`). From here on
 * the payload is the batch: it is what the WAL stores and what `applyBatch` inserts, so the caller
 * may reuse or mutate the buffers it passed.
 */
export function encodeBatchPayload(ops: readonly BatchOp[], payloadBytes: number): Buffer {
  const builder = new PayloadBuilder(payloadBytes, ops.length);
  for (const op of ops) builder.add(op.kind, op.key, op.value);
  const out = builder.finish();
  assert(out.length === payloadBytes, 'encoded batch size mismatch');
  return out;
}

/**
 * Builds a payload operation by operation, copying each key and value as it is added, into a
 * buffer that grows when needed: a batch is validated and encoded in one pass, with no object per
 * operation (db.batch). The payload is a view of the builder's buffer (which may have slack).
 */
export class PayloadBuilder {
  private buf: Buffer;
  private off = BATCH_HEADER_BYTES;
  private count = 0;

  /** `capacityBytes`: the first buffer's size; `expectedOps`: how many adds to size growth for. */
  constructor(capacityBytes: number, private readonly expectedOps: number) {
    this.buf = Buffer.allocUnsafe(Math.max(BATCH_HEADER_BYTES, capacityBytes));
  }

  add(kind: typeof KIND_VALUE | typeof KIND_DELETE, key: Buffer, value: Buffer): void {
    let need = 1 + varintLength(key.length) + key.length;
    if (kind === KIND_VALUE) need += varintLength(value.length) + value.length;
    if (this.off + need > this.buf.length) this.grow(need);
    const out = this.buf;
    let off = this.off;
    out[off++] = kind;
    off = putVarint(out, off, key.length);
    // Whole buffers: copyBytes hands them to a native copy without making a view.
    off += copyBytes(key, 0, key.length, out, off);
    if (kind === KIND_VALUE) {
      off = putVarint(out, off, value.length);
      off += copyBytes(value, 0, value.length, out, off);
    }
    this.off = off;
    this.count++;
  }

  /** The payload (sequence 0, the count of adds). The builder must not be used afterwards. */
  finish(): Buffer {
    const out = this.buf;
    putFixed64(out, 0, 0);
    out.writeUInt32LE(this.count, 8);
    return out.subarray(0, this.off);
  }

  /** A bigger buffer: room for `need` more bytes and, at the average so far, the ops still expected. */
  private grow(need: number): void {
    const used = this.off - BATCH_HEADER_BYTES;
    const remaining = Math.max(0, this.expectedOps - this.count - 1);
    const perOp = this.count > 0 ? used / this.count : need;
    const size = Math.max(this.off + need + Math.ceil(perOp * remaining * 1.125), Math.floor(this.buf.length * 1.5));
    const grown = Buffer.allocUnsafe(size);
    copyBytes(this.buf, 0, this.off, grown, 0);
    this.buf = grown;
  }
}

/**
 * Inserts every operation of an encoded batch into `mem` with sequences firstSeq, firstSeq+1, ...
 * straight from the payload bytes (no view per key or value). Returns the user bytes applied.
 * Requires: a payload built by encodeBatchPayload (or verified by decodeBatch).
 */
export function applyBatch(payload: Buffer, firstSeq: number, mem: MemTable): number {
  const count = payload.readUInt32LE(8);
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
  const count = payload.readUInt32LE(8);
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
  const count = payload.readUInt32LE(8);
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
