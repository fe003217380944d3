/**
 * Tunables of the leveled tree (one line each on why, as LevelDB's dbformat.h does).
 */
export interface CompactionConfig {
  /** L0 files that make L0 the most urgent level (each L0 file is one more place a read looks). */
  l0CompactionTrigger: number;
  /** L0 files at which each write group is delayed a little, so compaction can catch up. */
  l0SlowdownTrigger: number;
  /** L0 files at which writes wait for compaction: memory and read cost stay bounded. */
  l0StopTrigger: number;
  /** Target size of L1; each deeper level is `levelMultiplier` times larger. */
  levelBaseBytes: number;
  levelMultiplier: number;
  /** Compaction outputs are cut at about this size (at a user-key boundary). */
  targetFileBytes: number;
}

/**
 * L1 of 64 MiB and 8 MiB outputs (with 16 MiB memtables) rather than LevelDB's 10 MiB / 2 MiB:
 * measured on 1M random 116-byte entries, write amplification 4.3 → 2.2, fill 173k → 188k ops/s,
 * and a DB reopened right after the fill has 3 L0 files instead of 7 (reads 97k → 116k ops/s).
 * L0 compacts at 2 files, not 4: flushes wrote uncompressed tables then, so fewer of them
 * waiting in L0 meant less disk (1M random entries, right after close: 84.7 → 71.1 MiB) for the
 * same fill rate (write amplification 2.10 → 2.22, on the compaction worker). Flushes compress
 * since 2026-11-26; 4 was measured again then (docs/decisions/2026-11-26-write-path.md): fills
 * ~9% faster, but reads right after a fill and reopen 7-20% slower with 5 tables in L0. Kept 2.
 */
export const COMPACTION_DEFAULTS: CompactionConfig = {
  l0CompactionTrigger: 2,
  l0SlowdownTrigger: 8,
  l0StopTrigger: 12,
  levelBaseBytes: 64 * 1024 * 1024,
  levelMultiplier: 10,
  targetFileBytes: 8 * 1024 * 1024,
};

/** Target size in bytes of level `level` (>= 1). */
export function levelTargetBytes(cfg: CompactionConfig, level: number): number {
  let t = cfg.levelBaseBytes;
  for (let l = 1; l < level; l++) t *= cfg.levelMultiplier;
  return t;
}
