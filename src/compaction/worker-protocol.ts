/**
 * Messages between the main thread and the compaction worker, and their (de)serialisation.
 * Structured clone turns a Buffer into a plain Uint8Array and copies the view's WHOLE backing
 * ArrayBuffer, so keys cross as exact-size copies and are turned back into Buffers on arrival.
 */
import { LightningError, type ErrorCode } from '../base/errors.js';
import type { FileMetadata } from '../version/file-metadata.js';
import type { MergeOutcome, MergeSpec } from './merge-tables.js';
import type { FlushSpec } from '../db/flush-table.js';

/** A job for the background worker: a compaction merge, or building a flushed memtable's table. */
export type WorkerJob = { kind: 'merge'; spec: MergeSpec } | { kind: 'flush'; spec: FlushSpec };

/** A job as posted: its id comes back with the reply (a flush and a merge may run at once). */
export interface WorkerRequest {
  id: number;
  job: WorkerJob;
}

export interface WireError {
  name: string;
  message: string;
  /** Set for LightningError. */
  code?: string;
  stack?: string;
}

/**
 * A flush replies with a MergeOutcome too (its one output table, nothing dropped). Its input, the
 * memtable's SharedArrayBuffers, was shared rather than copied, so nothing goes back.
 */
export type WorkerReply = { id: number; ok: true; outcome: MergeOutcome } | { id: number; ok: false; error: WireError };

/**
 * Posted once by a worker whose code has loaded and which listens for jobs: a worker that fails
 * before it never ran a job (a job posted to it is still unstarted and may run elsewhere).
 */
export interface WorkerReady {
  ready: true;
}

export function outcomeToWire(o: MergeOutcome): MergeOutcome {
  const outputs = o.outputs.map((f) => ({
    ...f,
    smallest: new Uint8Array(f.smallest) as Buffer,
    largest: new Uint8Array(f.largest) as Buffer,
  }));
  return { outputs, entriesDropped: o.entriesDropped };
}

/** A Buffer over `u`'s bytes, no copy (what structured clone made of a Buffer arrives as a Uint8Array). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function outcomeFromWire(o: MergeOutcome): MergeOutcome {
  const outputs: FileMetadata[] = o.outputs.map((f) => ({ ...f, smallest: asBuffer(f.smallest), largest: asBuffer(f.largest) }));
  return { outputs, entriesDropped: o.entriesDropped };
}

export function errorToWire(e: unknown): WireError {
  if (e instanceof LightningError) return { name: e.name, message: e.message, code: e.code, ...(e.stack === undefined ? {} : { stack: e.stack }) };
  if (e instanceof Error) return { name: e.name, message: e.message, ...(e.stack === undefined ? {} : { stack: e.stack }) };
  return { name: 'Error', message: String(e) };
}

/** The worker's error as thrown on the main thread: a LightningError keeps its code. */
export function errorFromWire(w: WireError): Error {
  let err: Error;
  if (w.code !== undefined) {
    const prefix = `${w.code}: `;
    const message = w.message.startsWith(prefix) ? w.message.slice(prefix.length) : w.message;
    err = new LightningError(w.code as ErrorCode, message);
  } else {
    err = new Error(`${w.name} in the compaction worker: ${w.message}`);
  }
  if (w.stack !== undefined) err.stack = `${err.stack ?? ''}\n--- in the compaction worker ---\n${w.stack}`;
  return err;
}
