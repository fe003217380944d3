/**
 * Large buffers a closed database left behind, held weakly, for the next database opened in the
 * same process (thread) to take instead of allocating its own.
 *
 * Why: a closed database's block-cache slabs and memtable arenas are garbage, but JavaScript cannot
 * free them; they stay resident until a full GC finds them. A process that closes one database
 * and opens another (a tool, a test, the benchmark's reopen between workloads) held both sets at
 * once: measured, ArrayBuffers went from 66 to 113 MiB at the benchmark's second read pass.
 * Taking the old buffers reuses pages that are already resident. Held through WeakRefs, so a
 * process that never opens another database loses nothing: the GC frees them as before.
 *
 * Only put() a buffer nothing will read or write again: the database that owned it must be closed
 * and must have stopped using it (see BlockCache.release, DB.close).
 */
export class WeakSpares<T extends object> {
  private refs: WeakRef<T>[] = [];

  /** `max`: most buffers remembered (the oldest are forgotten first). */
  constructor(private readonly max: number) {}

  put(item: T): void {
    this.prune();
    if (this.refs.length >= this.max) this.refs.shift();
    this.refs.push(new WeakRef(item));
  }

  /** The most recently put buffer still alive that `fits`, removed from the pool; or undefined. */
  take(fits: (item: T) => boolean): T | undefined {
    for (let i = this.refs.length - 1; i >= 0; i--) {
      const item = (this.refs[i] as WeakRef<T>).deref();
      if (item !== undefined && fits(item)) {
        this.refs.splice(i, 1);
        return item;
      }
    }
    this.prune();
    return undefined;
  }

  /** How many remembered buffers are still alive (tests). */
  get size(): number {
    this.prune();
    return this.refs.length;
  }

  private prune(): void {
    this.refs = this.refs.filter((ref) => ref.deref() !== undefined);
  }
}
