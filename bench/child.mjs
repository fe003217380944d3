// Runs one group of workloads for one engine, in its own process, in fresh temporary directories
// under os.tmpdir(). Writes one JSON object per line to stdout:
//   { type: 'loaded', engine, version, ... }     the engine's module loaded
//   { type: 'unavailable', engine, reason }       it did not (the orchestrator skips the engine)
//   { type: 'start', workload, variant }
//   { type: 'progress', workload, done, total, seconds }
//   { type: 'result', workload, variant, ...metrics }
//   { type: 'skip', workload, variant, reason }   e.g. txn on an engine without transactions
//   { type: 'error', workload, variant, message, verification }
//   { type: 'done' }
// Usage: node child.mjs --engine NAME --group GROUP --n N --workloads a,b --seed S --lib URL
//        [--cache BYTES] [--max-seconds S] [--keep]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as W from './workloads.mjs';

const { values: args } = parseArgs({
  options: {
    engine: { type: 'string' },
    group: { type: 'string' },
    n: { type: 'string', default: '1000000' },
    workloads: { type: 'string', default: W.WORKLOADS.join(',') },
    seed: { type: 'string', default: String(W.DEFAULT_SEED) },
    lib: { type: 'string' },
    cache: { type: 'string', default: String(32 * 1024 * 1024) },
    'max-seconds': { type: 'string', default: '90' },
    keep: { type: 'boolean', default: false },
  },
});

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const n = Number(args.n);
const seed = Number(args.seed);
const cacheBytes = Number(args.cache);
const wanted = new Set(args.workloads.split(',').filter(Boolean));
const engineName = args.engine;

let adapter;
try {
  adapter = await import(`./engines/${engineName}.mjs`);
} catch (e) {
  emit({ type: 'unavailable', engine: engineName, reason: `no adapter: ${e.message}` });
  process.exit(0);
}
let loadInfo;
try {
  loadInfo = await adapter.load({ lib: args.lib });
} catch (e) {
  emit({ type: 'unavailable', engine: engineName, reason: String(e.message).split('\n')[0] });
  process.exit(0);
}
const { info } = adapter;

const sampler = new W.RssSampler();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), `ldb-bench-${engineName}-`));
emit({ type: 'loaded', engine: engineName, name: info.name, variants: info.variants, ours: !!info.ours, tmpRoot, ...loadInfo });
let dirSeq = 0;
const freshDir = () => {
  const d = path.join(tmpRoot, `db${dirSeq++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
};
const cleanup = () => {
  if (!args.keep) fs.rmSync(tmpRoot, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const baseCtx = { n, seed, emit, sampler, maxSeconds: Number(args['max-seconds']), variant: 'default' };

const timed = async (fn) => {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
};

/** Our write amplification from db.stats(): (WAL + flush + compaction bytes) / user bytes. */
function writeAmp(stats) {
  if (!stats || !stats.writes || !stats.writes.userBytesWritten) return null;
  const wal = stats.writes.walBytesWritten ?? 0;
  const flush = stats.flushes?.bytesWritten ?? 0;
  const compaction = stats.compactions?.bytesWritten ?? 0;
  return {
    writeAmp: (wal + flush + compaction) / stats.writes.userBytesWritten,
    walBytes: wal,
    flushBytes: flush,
    compactionBytes: compaction,
    userBytes: stats.writes.userBytesWritten,
  };
}

function oursSummary(stats) {
  if (!stats) return undefined;
  return {
    levels: (stats.levels ?? []).filter((l) => l.files > 0).map((l) => `L${l.level}:${l.files}f/${(l.bytes / 1048576).toFixed(1)}MiB`).join(' '),
    groups: stats.writes?.groups,
    batches: stats.writes?.batches,
    walSyncs: stats.writes?.walSyncs,
    stalls: stats.writes?.stalls,
    stallMs: stats.writes?.stallMs,
    flushes: stats.flushes?.count,
    compactions: stats.compactions?.count,
    trivialMoves: stats.compactions?.trivialMoves,
    blockCache: stats.blockCache ? { hits: stats.blockCache.hits, misses: stats.blockCache.misses } : undefined,
  };
}

async function safeStats(h) {
  try {
    return h.stats ? h.stats() : null;
  } catch {
    return null;
  }
}

function report(workload, variant, r, extra = {}) {
  const ops = r.ops;
  const result = {
    type: 'result',
    engine: engineName,
    workload,
    variant,
    ...r,
    opsPerSec: ops / r.seconds,
    mbPerSec: r.bytes / r.seconds / 1e6,
    ...extra,
  };
  if (result.ioWriteBytes != null && (workload.startsWith('fill') || workload === 'putsingle')) {
    result.ioWriteAmp = result.ioWriteBytes / r.bytes;
  }
  emit(result);
}

/** Runs fn, reporting a failure (instead of crashing) so the next workloads still run. */
async function attempt(workload, variant, fn) {
  emit({ type: 'start', workload, variant });
  try {
    await fn();
    return true;
  } catch (e) {
    emit({
      type: 'error',
      workload,
      variant,
      verification: e instanceof W.VerificationError,
      message: String(e && e.stack ? e.stack : e).split('\n').slice(0, 4).join(' | '),
    });
    return false;
  }
}

/** A fill into a fresh dir, measured until the DB is closed (the close is timed separately). */
async function runFill(dir, workload, order, report_) {
  const h = await adapter.open(dir, { durable: false, cacheBytes });
  const io0 = W.ioWriteBytes();
  const r = await W.fill({ ...baseCtx, h }, workload, order);
  await W.spotCheck(h, n, seed);
  const before = await safeStats(h);
  const [, closeMs] = await timed(() => h.close());
  const after = await safeStats(h);
  const io1 = W.ioWriteBytes();
  const stats = after && after.writes ? after : before;
  if (report_) {
    report(workload, 'default', r, {
      diskBytes: W.diskBytes(dir),
      closeMs,
      ioWriteBytesInclClose: io0 === null || io1 === null ? null : io1 - io0,
      ioWriteAmp: io0 === null || io1 === null ? null : (io1 - io0) / r.bytes,
      ...(info.ours ? { ...writeAmp(stats), ours: oursSummary(stats) } : {}),
    });
  }
}

/** One workload in its own fresh DB (single-op write workloads and txn). */
async function runFresh(workload, durable, fn, variant = 'default') {
  const dir = freshDir();
  const h = await adapter.open(dir, { durable, cacheBytes, variant });
  try {
    const io0 = W.ioWriteBytes();
    const r = await fn({ ...baseCtx, h });
    const before = await safeStats(h);
    const [, closeMs] = await timed(() => h.close());
    const after = await safeStats(h);
    const io1 = W.ioWriteBytes();
    const stats = after && after.writes ? after : before;
    const extra = { diskBytes: W.diskBytes(dir), closeMs };
    if (workload !== 'txn') {
      extra.ioWriteBytesInclClose = io0 === null || io1 === null ? null : io1 - io0;
      extra.ioWriteAmp = io0 === null || io1 === null ? null : (io1 - io0) / r.bytes;
    }
    if (info.ours) Object.assign(extra, writeAmp(stats), { ours: oursSummary(stats) });
    report(workload, variant, r, extra);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A durable-write workload, plus its (getSync) variant where the engine has synchronous fsync. */
async function runDurable(workload, writers) {
  await attempt(workload, 'default', () => runFresh(workload, true, (c) => W.fillSync(c, workload, writers)));
  if (info.syncDurableWrites) {
    await attempt(workload, 'getSync', () => runFresh(workload, true, (c) => W.fillSync({ ...c, variant: 'getSync' }, workload, writers), 'getSync'));
  }
}

const group = args.group;
const has = (w) => wanted.has(w);

if (group === 'seq') {
  if (has('fillseq')) {
    const dir = freshDir();
    await attempt('fillseq', 'default', () => runFill(dir, 'fillseq', 'seq', true));
    fs.rmSync(dir, { recursive: true, force: true });
  }
} else if (group === 'single') {
  if (has('putsingle')) await attempt('putsingle', 'default', () => runFresh('putsingle', false, (c) => W.putSingle(c)));
  if (has('fillsync')) await runDurable('fillsync', 1);
  if (has('fillsync16')) await runDurable('fillsync16', 16);
} else if (group === 'txn') {
  if (has('txn')) {
    if (!info.txn) emit({ type: 'skip', workload: 'txn', variant: 'default', reason: 'not supported' });
    else await attempt('txn', 'default', () => runFresh('txn', false, (c) => W.txn(c)));
  }
} else if (group === 'random') {
  const reads = ['readrandom', 'readmissing', 'seekrandom', 'readseq'].filter(has);
  const mixes = ['mixed_a', 'mixed_b'].filter(has);
  const dir = freshDir();
  // The read workloads need the filled DB: fill it even when fillrandom itself is not reported.
  const filled = await attempt(has('fillrandom') ? 'fillrandom' : 'fillrandom (setup)', 'default', () =>
    runFill(dir, 'fillrandom', 'random', has('fillrandom')),
  );
  const notRun = (list, variant, why) => {
    for (const w of list) emit({ type: 'error', workload: w, variant, verification: false, message: `not run: ${why}` });
  };
  if (!filled) notRun([...reads, ...mixes], 'default', 'the fillrandom it reads failed');
  if (filled) {
    for (const [list, label] of [[reads, 'reads'], [mixes, 'mixed']]) {
      if (list.length === 0) continue;
      for (const variant of info.variants) {
        let h = null;
        let openMs = 0;
        const opened = await attempt(`reopen for ${label}`, variant, async () => {
          [h, openMs] = await timed(() => adapter.open(dir, { durable: false, cacheBytes }));
        });
        if (!opened) {
          notRun(list, variant, 'reopen failed');
          continue;
        }
        for (const w of list) {
          // A variant only runs where it changes the API used (classic-level has no sync iterator).
          const scanBased = w === 'seekrandom' || w === 'readseq';
          if (variant === 'getSync' && (scanBased ? !h.scanSync : !h.getSync)) continue;
          await attempt(w, variant, async () => {
            const ctx = { ...baseCtx, h, variant };
            let r;
            if (w === 'readrandom') r = await W.readRandom(ctx, w, false);
            else if (w === 'readmissing') r = await W.readRandom(ctx, w, true);
            else if (w === 'seekrandom') r = await W.seekRandom(ctx);
            else if (w === 'readseq') r = await W.readSeq(ctx);
            else if (w === 'mixed_a') r = await W.mixed(ctx, w, 50);
            else r = await W.mixed(ctx, w, 95);
            const extra = {};
            if (w === list[0]) extra.openMs = openMs;
            if (info.ours) extra.ours = oursSummary(await safeStats(h));
            report(w, variant, r, extra);
          });
        }
        await attempt(`close after ${label}`, variant, () => h.close());
      }
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
} else {
  emit({ type: 'error', workload: group, variant: 'default', message: `unknown group ${group}` });
}

sampler.stop();
emit({ type: 'done', maxRssBytes: process.resourceUsage().maxRSS * 1024 });
process.exit(0);
