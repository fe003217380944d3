/**
 * Deletes obsolete files — tables a compaction replaced, WALs a flush made redundant — without
 * blocking the event loop (FileSystem.remove: node:fs does it in the libuv thread pool; freeing a
 * 16 MiB file's blocks took ~7 ms on the main thread, a latency spike for every writer and reader).
 *
 * Failures are ignored: such a file is garbage either way, and the next open removes orphans.
 * idle() resolves once nothing is in flight; close() and Database.idle() wait for it.
 */
import type { FileSystem } from '../env/file-system.js';

export class BackgroundDeleter {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly fs: FileSystem) {}

  /** Starts removing `path`; `onRemoved` runs once it is gone. Never throws. */
  remove(path: string, onRemoved?: () => void): void {
    let started: Promise<void>;
    try {
      started = this.fs.remove(path);
    } catch {
      return; // a synchronous failure: left for the next open's cleanup
    }
    const tracked: Promise<void> = started
      .then(
        () => onRemoved?.(),
        () => undefined,
      )
      .finally(() => {
        this.pending.delete(tracked);
      });
    this.pending.add(tracked);
  }

  /** Deletions in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Resolves once no deletion is in flight (including ones started meanwhile). Never rejects. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
