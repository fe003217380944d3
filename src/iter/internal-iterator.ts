/**
 * The one iterator contract every layer implements (memtable, block, table, level, merge).
 * Iterators are synchronous: all reads below them are positioned reads (see env/file-system.ts).
 *
 * Keys are encoded internal keys (base/internal-key.ts) in internal-key order.
 * Errors (corruption, I/O) are thrown as `LightningError` from the positioning call that hit them.
 */
export interface InternalIterator {
  /** True when positioned at an entry. */
  valid(): boolean;
  /** Positions at the first entry. */
  first(): void;
  /** Positions at the last entry. */
  last(): void;
  /** Positions at the first entry with key >= target, or invalid. */
  seekGE(target: Buffer): void;
  /** Positions at the last entry with key <= target, or invalid. */
  seekLE(target: Buffer): void;
  /** Requires: valid(). Moves to the next entry (may become invalid). */
  next(): void;
  /** Requires: valid(). Moves to the previous entry (may become invalid). */
  prev(): void;
  /**
   * Requires: valid(). The current internal key. The returned buffer (and the bytes it views) is
   * only valid until the next positioning call; copy it to keep it.
   */
  key(): Buffer;
  /** Requires: valid(). The current value; same lifetime rule as key(). */
  value(): Buffer;
  /** Requires: valid(). A copy of the current value that the caller owns (no intermediate view). */
  copyValue(): Buffer;
  /** Releases resources. Idempotent. */
  close(): void;
}
