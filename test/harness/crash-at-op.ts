/**
 * Power loss at an exact filesystem operation: wrap a MemFs in FaultFs with this injector; when the
 * Kth operation is about to run, the MemFs state is cloned as a power cut would leave it
 * (`crashed`), and that operation and every later one fail with EIO, so the old database instance
 * stops touching storage. Deterministic from (K, rng).
 */
import type { FaultInjector, FaultOp } from '../../src/env/fault-fs.js';
import type { CrashOptions, MemFs } from '../../src/env/mem-fs.js';

export class CrashAtOp implements FaultInjector {
  private count = 0;
  crashed: MemFs | undefined = undefined;

  constructor(
    private readonly mem: MemFs,
    private readonly atOp: number,
    private readonly crashOptions: CrashOptions,
  ) {}

  get ops(): number {
    return this.count;
  }

  maybeFail(_op: FaultOp, _path: string): 'EIO' | null {
    this.count++;
    if (this.count === this.atOp) this.crashed = this.mem.crashClone(this.crashOptions);
    return this.count >= this.atOp ? 'EIO' : null;
  }
}
