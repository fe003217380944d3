/**
 * Programmer-error assertions (TigerBeetle style). A failed assertion means an invariant of the
 * engine itself is broken; it is never used for bad user input or I/O failures, which are
 * `LightningError`s. Cheap checks stay on in production.
 */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new AssertionError(`assertion failed: ${msg}`);
}

/** Set by tests to enable expensive whole-structure checks. */
export const invariants = { enabled: process.env['LIGHTNING_INVARIANTS'] === '1' };
