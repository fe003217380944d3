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

export const COMPACTION_DEFAULTS: CompactionConfig = {
  l0CompactionTrigger: 4,
  l0SlowdownTrigger: 8,
  l0StopTrigger: 12,
  levelBaseBytes: 10 * 1024 * 1024,
  levelMultiplier: 10,
  targetFileBytes: 2 * 1024 * 1024,
};

/** Target size in bytes of level `level` (>= 1). */
export function levelTargetBytes(cfg: CompactionConfig, level: number): number {
  let t = cfg.levelBaseBytes;
  for (let l = 1; l < level; l++) t *= cfg.levelMultiplier;
  return t;
}
