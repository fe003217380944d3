#!/usr/bin/env node
// Benchmark orchestrator: runs every workload group for every engine in its own child process (one
// at a time), collects the JSON lines the children print, then prints a markdown table and writes
// bench/results/<timestamp>.{md,json,svg} and latest.{md,json,svg}. See bench/README.md.
//
//   node bench/run.mjs [--n 1000000] [--only lightning,lmdb] [--workloads fillrandom,readrandom]
//                      [--large] [--seed S] [--max-seconds 90] [--timeout-minutes 30]
//                      [--lib path/to/dist/index.js] [--out dir] [--no-save] [--keep]

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_SEED, WORKLOADS } from './workloads.mjs';
import { fmtOps, fmtUs, markdown, summaryTable, svg, standing } from './report.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoDir = path.dirname(benchDir);

/** Engines in display order; `aliases` are accepted by --only. */
const ENGINES = [
  { engine: 'lightning', aliases: ['ours', 'lightning-db', 'ldb'] },
  { engine: 'classic-level', aliases: ['leveldb', 'classic'] },
  { engine: 'lmdb', aliases: [] },
  { engine: 'rocksdb', aliases: ['@nxtedition/rocksdb', 'rocks'] },
  { engine: 'better-sqlite3', aliases: ['sqlite', 'sqlite3'] },
];

/** Which child process runs which workloads (reads share the DB filled by fillrandom). */
const GROUPS = {
  seq: ['fillseq'],
  random: ['fillrandom', 'readrandom', 'readmissing', 'seekrandom', 'readseq', 'mixed_a', 'mixed_b'],
  single: ['putsingle', 'fillsync', 'fillsync16'],
  txn: ['txn'],
};

const USAGE = `usage: npm run bench -- [options]      (or: node bench/run.mjs [options])
  --n N                 keys in the filled database (default 1,000,000; 10,000,000 with --large)
  --only LIST           engines: ${ENGINES.map((e) => e.engine).join(', ')} (comma-separated)
  --workloads LIST      ${WORKLOADS.join(', ')}; 'mixed' = mixed_a,mixed_b,
                        'reads' = readrandom,readmissing,seekrandom,readseq
  --large               N = 10M, 64 MiB block cache (all engines), longer budgets
  --seed S              PRNG seed (default ${DEFAULT_SEED})
  --max-seconds S       time budget per workload; slower runs stop early and report the rate (default 90, 600 with --large)
  --timeout-minutes M   kill a child process after this long (default 30, 240 with --large)
  --lib PATH            our built library (default dist/index.js)
  --out DIR             results directory (default bench/results)
  --no-save             print only, write no result files
  --keep                keep the temporary database directories`;

let parsed;
try {
  parsed = parseArgs({
    options: {
      n: { type: 'string' },
      only: { type: 'string' },
      workloads: { type: 'string' },
      large: { type: 'boolean', default: false },
      seed: { type: 'string', default: String(DEFAULT_SEED) },
      'max-seconds': { type: 'string' },
      'timeout-minutes': { type: 'string' },
      lib: { type: 'string', default: path.join(repoDir, 'dist', 'index.js') },
      out: { type: 'string', default: path.join(benchDir, 'results') },
      'no-save': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
if (parsed.help) {
  console.log(USAGE);
  process.exit(0);
}

const fail = (msg) => {
  console.error(`bench: ${msg}\n${USAGE}`);
  process.exit(2);
};
const large = parsed.large;
const n = parsed.n !== undefined ? Number(parsed.n.replace(/[_,]/g, '')) : large ? 10_000_000 : 1_000_000;
if (!Number.isInteger(n) || n < 1000 || n > 100_000_000) fail(`--n must be an integer in [1000, 100000000]`);
const seed = Number(parsed.seed);
if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail('--seed must be a uint32');
const maxSeconds = Number(parsed['max-seconds'] ?? (large ? 600 : 90));
const timeoutMinutes = Number(parsed['timeout-minutes'] ?? (large ? 240 : 30));
if (!(maxSeconds > 0) || !(timeoutMinutes > 0)) fail('--max-seconds and --timeout-minutes must be positive');
const cacheBytes = (large ? 64 : 32) * 1024 * 1024;

let engines = ENGINES.map((e) => e.engine);
if (parsed.only) {
  engines = [];
  for (const name of parsed.only.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const e = ENGINES.find((x) => x.engine === name || x.aliases.includes(name));
    if (!e) fail(`unknown engine ${JSON.stringify(name)}`);
    if (!engines.includes(e.engine)) engines.push(e.engine);
  }
  engines.sort((a, b) => ENGINES.findIndex((e) => e.engine === a) - ENGINES.findIndex((e) => e.engine === b));
}

let workloads = WORKLOADS;
if (parsed.workloads) {
  const set = new Set();
  for (const w of parsed.workloads.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (w === 'mixed') ['mixed_a', 'mixed_b'].forEach((x) => set.add(x));
    else if (w === 'reads') ['readrandom', 'readmissing', 'seekrandom', 'readseq'].forEach((x) => set.add(x));
    else if (w === 'all') WORKLOADS.forEach((x) => set.add(x));
    else if (WORKLOADS.includes(w)) set.add(w);
    else fail(`unknown workload ${JSON.stringify(w)}`);
  }
  workloads = WORKLOADS.filter((w) => set.has(w));
}

const libPath = path.resolve(parsed.lib);
if (engines.includes('lightning') && !fs.existsSync(libPath)) {
  console.error(`bench: ${libPath} does not exist: run \`npm run build\` first (npm run bench does it).`);
}

// ---------------------------------------------------------------- progress output

const t0 = Date.now();
const stamp = () => {
  const s = Math.floor((Date.now() - t0) / 1000);
  return `[${String(Math.floor(s / 60)).padStart(2, ' ')}:${String(s % 60).padStart(2, '0')}]`;
};
const log = (msg) => process.stderr.write(`${stamp()} ${msg}\n`);

function describeResult(r, label) {
  const parts = [`${fmtOps(r.opsPerSec)} ops/s`, `${r.mbPerSec.toFixed(1)} MB/s`];
  if (r.latency) parts.push(`p50 ${fmtUs(r.latency.p50)} p99 ${fmtUs(r.latency.p99)}`);
  parts.push(`${r.ops.toLocaleString('en-US')} ops in ${r.seconds.toFixed(2)} s`);
  if (r.diskBytes != null) parts.push(`disk ${(r.diskBytes / 1048576).toFixed(1)} MiB`);
  if (r.writeAmp != null) parts.push(`write amp ${r.writeAmp.toFixed(2)}`);
  if (r.capped) parts.push('capped by --max-seconds');
  return `${label} ${r.workload}: ${parts.join(', ')}`;
}

// ---------------------------------------------------------------- children

const run = {
  meta: {
    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    n,
    large,
    seed,
    cacheBytes,
    maxSeconds,
    workloads,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown cpu',
    memBytes: os.totalmem(),
    tmpdir: os.tmpdir(),
    git: gitDescribe(),
    lib: libPath,
    argv: process.argv.slice(2),
  },
  engines: [],
  results: [],
  skips: [],
  errors: [],
};

function gitDescribe() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} (src modified)` : head;
  } catch {
    return null;
  }
}

/** Runs one child; resolves with { unavailable?, loaded? } after it exits. Never rejects. */
function runChild(engine, group, groupWorkloads) {
  return new Promise((resolve) => {
    const args = [
      '--expose-gc',
      path.join(benchDir, 'child.mjs'),
      '--engine', engine,
      '--group', group,
      '--n', String(n),
      '--workloads', groupWorkloads.join(','),
      '--seed', String(seed),
      '--lib', pathToFileURL(libPath).href,
      '--cache', String(cacheBytes),
      '--max-seconds', String(maxSeconds),
      ...(parsed.keep ? ['--keep'] : []),
    ];
    const child = spawn(process.execPath, args, { cwd: benchDir, stdio: ['ignore', 'pipe', 'inherit'] });
    const state = { loaded: null, unavailable: null, pending: new Set(groupWorkloads), current: null, done: false };
    let label = engine;
    const timer = setTimeout(() => {
      log(`${label}: group ${group} exceeded --timeout-minutes ${timeoutMinutes}; killing it`);
      state.timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMinutes * 60_000);
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        process.stderr.write(`${line}\n`); // stray output from a native module
        return;
      }
      const vlabel = (v) => (v && v !== 'default' ? `${label} (${v})` : label);
      switch (msg.type) {
        case 'loaded':
          state.loaded = msg;
          label = msg.name;
          break;
        case 'unavailable':
          state.unavailable = msg.reason;
          break;
        case 'start':
          state.current = msg;
          if (WORKLOADS.includes(msg.workload) || msg.workload.endsWith('(setup)')) log(`${vlabel(msg.variant)} ${msg.workload} ...`);
          break;
        case 'progress':
          log(`  ${vlabel(msg.variant)} ${msg.workload}: ${Math.round((100 * msg.done) / msg.total)}% after ${msg.seconds.toFixed(0)} s`);
          break;
        case 'result':
          run.results.push(msg);
          state.pending.delete(msg.workload);
          log(describeResult(msg, vlabel(msg.variant)));
          break;
        case 'skip':
          run.skips.push({ engine, workload: msg.workload, variant: msg.variant, reason: msg.reason });
          state.pending.delete(msg.workload);
          log(`${vlabel(msg.variant)} ${msg.workload}: skipped (${msg.reason})`);
          break;
        case 'error': {
          const workload = msg.workload.replace(/ \(setup\)$/, '');
          const e = { engine, workload, variant: msg.variant, message: msg.message, verification: !!msg.verification };
          if (WORKLOADS.includes(workload)) run.errors.push(e);
          else run.errors.push({ ...e, workload: `${msg.workload}` });
          state.pending.delete(workload);
          log(`${vlabel(msg.variant)} ${msg.workload}: ${msg.verification ? 'VERIFICATION FAILED' : 'FAILED'}: ${msg.message}`);
          break;
        }
        case 'done':
          state.done = true;
          state.maxRssBytes = msg.maxRssBytes;
          break;
        default:
          break;
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      rl.close();
      if (!state.done && !state.unavailable) {
        const why = state.timedOut ? `timed out after ${timeoutMinutes} min` : `child exited with ${signal ?? `code ${code}`}`;
        const where = state.current ? ` during ${state.current.workload}` : '';
        log(`${label}: ${why}${where}`);
        if (state.loaded) {
          // Report the workloads that never finished, so the table shows them as failed.
          for (const w of state.pending) {
            run.errors.push({ engine, workload: w, variant: state.current?.variant ?? 'default', message: `${why}${where}`, verification: false });
          }
        } else {
          state.unavailable = `${why} while loading`;
        }
        // A killed child cannot clean up its temporary directory.
        if (state.loaded?.tmpRoot && !parsed.keep) fs.rmSync(state.loaded.tmpRoot, { recursive: true, force: true });
      }
      resolve(state);
    });
  });
}

log(`bench: N = ${n.toLocaleString('en-US')}, engines ${engines.join(', ')}, workloads ${workloads.join(', ')}`);

for (const engine of engines) {
  const entry = { engine, name: engine, status: 'ok', variants: ['default'] };
  run.engines.push(entry);
  for (const [group, members] of Object.entries(GROUPS)) {
    const groupWorkloads = members.filter((w) => workloads.includes(w));
    if (groupWorkloads.length === 0) continue;
    const state = await runChild(engine, group, groupWorkloads);
    if (state.loaded) {
      Object.assign(entry, {
        name: state.loaded.name,
        ours: state.loaded.ours,
        version: state.loaded.version,
        variants: state.loaded.variants,
        ...(state.loaded.sqlite ? { sqlite: state.loaded.sqlite } : {}),
        ...(state.loaded.getSync !== undefined ? { getSync: state.loaded.getSync } : {}),
      });
      entry.maxRssBytes = Math.max(entry.maxRssBytes ?? 0, state.maxRssBytes ?? 0);
    }
    if (state.unavailable) {
      Object.assign(entry, { status: 'skipped', reason: state.unavailable });
      log(`${engine}: skipped (${state.unavailable})`);
      break;
    }
  }
}

run.meta.totalSeconds = (Date.now() - t0) / 1000;
run.meta.finishedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');

// ---------------------------------------------------------------- output

const md = markdown(run);
process.stdout.write(`\n${summaryTable(run)}\n\n`);
for (const s of standing(run)) {
  if (s.ratio < 0.5) process.stdout.write(`  ${s.label} ${s.workload}: ${s.ratio.toFixed(2)}× of ${s.best}\n`);
}
for (const e of run.engines.filter((x) => x.status !== 'ok')) process.stdout.write(`  skipped ${e.engine}: ${e.reason}\n`);

if (!parsed['no-save']) {
  const outDir = path.resolve(parsed.out);
  fs.mkdirSync(outDir, { recursive: true });
  const base = `${run.meta.startedAt.replace(/:/g, '-')}-n${n}`;
  const files = { md, json: JSON.stringify(run, null, 2) + '\n', svg: svg(run) };
  const write = (name, text) => {
    const p = path.join(outDir, name);
    fs.writeFileSync(`${p}.tmp`, text);
    fs.renameSync(`${p}.tmp`, p);
  };
  for (const [ext, text] of Object.entries(files)) {
    write(`${base}.${ext}`, text);
    write(`latest.${ext}`, text);
  }
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), path.join(outDir, base))}.{md,json,svg} and latest.{md,json,svg}\n`);
}
// Peers that fail never fail the run; our engine failing a workload does (the results are written).
const oursFailed = run.errors.filter((e) => run.engines.find((x) => x.engine === e.engine)?.ours);
if (oursFailed.length > 0) process.stderr.write(`bench: ${oursFailed.length} workload(s) of our engine failed (see Errors in the report)\n`);
process.exit(oursFailed.length > 0 ? 1 : 0);
