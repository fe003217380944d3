/**
 * One seed drives every PRNG of a test run. Set SEED=<n> to replay; a failing test prints the seed
 * (fast-check prints its own seed and path too).
 */
export function testSeed(): number {
  const env = process.env['SEED'];
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** Runs `fn(seed)`; on failure, rethrows with the replay command in the message. */
export async function withSeed(name: string, fn: (seed: number) => Promise<void>): Promise<void> {
  const seed = testSeed();
  try {
    await fn(seed);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const err = new Error(`${name} failed with SEED=${seed} (replay: SEED=${seed} npm test)\n${msg}`, { cause: e });
    throw err;
  }
}

/** Number of runs for property tests: small by default, large under SOAK=1. */
export function numRuns(dflt: number, soak: number): number {
  return process.env['SOAK'] === '1' ? soak : dflt;
}
