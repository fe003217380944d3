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
 * Encodes `ops` into a new payload with sequence 0 (set later by `setBatchSequence`) and re-points
 * each op's key and value at its bytes inside the payload: from here on the batch owns its data and
 * the caller may reuse or mutate the buffers it passed.
 */
export function encodeOwnedBatch(ops: BatchOp[], payloadBytes: number): Buffer {
  const out = Buffer.allocUnsafe(payloadBytes);
  let off = putFixed64(out, 0, 0);
  out.writeUInt32LE(ops.length, off);
  off += 4;
  for (const op of ops) {
    out[off++] = op.kind;
    off = putVarint(out, off, op.key.length);
    const keyStart = off;
    off += op.key.copy(out, off);
    op.key = out.subarray(keyStart, off);
    if (op.kind === KIND_VALUE) {
      off = putVarint(out, off, op.value.length);
      const valueStart = off;
      off += op.value.copy(out, off);
      op.value = out.subarray(valueStart, off);
    }
  }
  assert(off === payloadBytes, 'encoded batch size mismatch');
  return out;
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
