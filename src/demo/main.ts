/**
 * `npm start`: a short demonstration on ./data (or the directory given as the first argument).
 * Writes and reads back a few hundred thousand keys, scans a range, reopens, and prints timings and
 * db.stats(). Replaced by the CLI/admin server in a later issue.
 */
import { performance } from 'node:perf_hooks';
import { open, isLightningError } from '../index.js';

const COUNT = Number(process.env['DEMO_KEYS'] ?? 300_000);
const BATCH = 1000;

function key(i: number): string {
  return `key${String(i).padStart(10, '0')}`;
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')} ops/s`;
}

async function timed<T>(label: string, n: number, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  console.log(`${label.padEnd(34)} ${n.toLocaleString('en-US').padStart(9)} in ${ms.toFixed(0).padStart(6)} ms  ${rate(n, ms)}`);
  return r;
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? './data';
  console.log(`Lightning DB demo on ${dir} (${COUNT.toLocaleString('en-US')} keys)`);
  let db = await open(dir);
  const value = Buffer.alloc(100, 'v');
  await timed('write (batches of 1000, durable)', COUNT, async () => {
    for (let i = 0; i < COUNT; i += BATCH) {
      const ops = [];
      for (let j = i; j < Math.min(COUNT, i + BATCH); j++) ops.push({ type: 'put' as const, key: key(j), value });
      await db.batch(ops);
    }
  });
  await timed('read back (getSync)', COUNT, async () => {
    for (let i = 0; i < COUNT; i++) {
      if (db.getSync(key(i)) === undefined) throw new Error(`missing ${key(i)}`);
    }
  });
  const scanned = await timed('range scan 10% (for await)', Math.floor(COUNT / 10), async () => {
    let n = 0;
    for await (const _ of db.iterator({ gte: key(0), lt: key(Math.floor(COUNT / 10)) })) n++;
    return n;
  });
  console.log(`  scanned ${scanned} entries`);
  await timed('close (flush memtable)', 1, () => db.close());
  db = await timed('reopen', 1, () => open(dir));
  await timed('read back after reopen (get)', COUNT, async () => {
    for (let i = 0; i < COUNT; i++) {
      if ((await db.get(key(i))) === undefined) throw new Error(`missing ${key(i)} after reopen`);
    }
  });
  console.log('db.stats():');
  console.log(JSON.stringify(db.stats(), null, 2));
  await db.close();
}

main().catch((e: unknown) => {
  console.error(isLightningError(e) ? `error ${e.code}: ${e.message}` : e);
  process.exitCode = 1;
});
