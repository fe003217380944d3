/**
 * Helpers for the public-API contract tests (test/db/api, errors, faults, corruption): error
 * assertions that insist on a `LightningError` with a given code, iterator collection, and a
 * recorder for unhandled rejections / uncaught exceptions.
 */
import assert from 'node:assert/strict';
import { LightningError, type ErrorCode } from '../../src/index.js';

/** Describes an error for assertion messages. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}(${(e as { code?: unknown }).code ?? ''}): ${e.message}`;
  return `non-Error ${typeof e}: ${String(e)}`;
}

/** Asserts that `e` is a LightningError whose code is `code` (or one of `code`). */
export function assertLightning(e: unknown, code: ErrorCode | readonly ErrorCode[], what = ''): asserts e is LightningError {
  const codes = typeof code === 'string' ? [code] : code;
  assert.ok(e instanceof LightningError, `${what}: expected LightningError ${codes.join('|')}, got ${describeError(e)}`);
  assert.ok(codes.includes(e.code), `${what}: expected code ${codes.join('|')}, got ${e.code}: ${e.message}`);
}

/** Asserts that calling `fn` throws synchronously a LightningError with `code`. Returns it. */
export function throwsCode(fn: () => unknown, code: ErrorCode | readonly ErrorCode[], what = ''): LightningError {
  let thrown: unknown;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  assert.ok(threw, `${what}: expected a synchronous throw of ${String(code)}`);
  assertLightning(thrown, code, what);
  return thrown;
}

/**
 * Calls a promise-returning `fn` (without awaiting inside a try) and asserts that it did NOT throw
 * synchronously, returned a promise, and that the promise rejects with a LightningError `code`.
 */
export async function rejectsCode(
  fn: () => unknown,
  code: ErrorCode | readonly ErrorCode[],
  what = '',
): Promise<LightningError> {
  let p: unknown;
  try {
    p = fn();
  } catch (e) {
    assert.fail(`${what}: threw synchronously instead of rejecting: ${describeError(e)}`);
  }
  assert.ok(p instanceof Promise, `${what}: expected a Promise, got ${typeof p}`);
  let rejected: unknown;
  let didReject = false;
  try {
    await p;
  } catch (e) {
    didReject = true;
    rejected = e;
  }
  assert.ok(didReject, `${what}: expected a rejection with ${String(code)}, but it resolved`);
  assertLightning(rejected, code, what);
  return rejected;
}

/** Drains an async iterable into [key, value] string pairs (latin1 keeps every byte). */
export async function collect(it: AsyncIterable<[Buffer, Buffer]>): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [k, v] of it) out.push([k.toString('latin1'), v.toString('latin1')]);
  return out;
}

/** Drains a sync iterable into [key, value] string pairs. */
export function collectSync(it: Iterable<[Buffer, Buffer]>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of it) out.push([k.toString('latin1'), v.toString('latin1')]);
  return out;
}

/** Records unhandled rejections and uncaught exceptions from the moment it is created. */
export class ProcessErrorRecorder {
  readonly events: string[] = [];
  private readonly onRejection = (reason: unknown): void => {
    this.events.push(`unhandledRejection: ${describeError(reason)}`);
  };
  private readonly onException = (err: unknown): void => {
    this.events.push(`uncaughtException: ${describeError(err)}`);
  };

  constructor() {
    process.on('unhandledRejection', this.onRejection);
    process.on('uncaughtException', this.onException);
  }

  /** Lets pending microtasks and immediates run, so a late rejection is seen. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  assertNone(): void {
    assert.deepEqual(this.events, [], `unexpected process-level errors:\n${this.events.join('\n')}`);
  }

  dispose(): void {
    process.off('unhandledRejection', this.onRejection);
    process.off('uncaughtException', this.onException);
  }
}

/** Zero-padded key. */
export function k(i: number, prefix = 'key'): string {
  return `${prefix}${String(i).padStart(6, '0')}`;
}
