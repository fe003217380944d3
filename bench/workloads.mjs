// Shared workload definitions for the benchmark: the seeded PRNG, the key and value generators, the
// measurement helpers (latency, CPU, RSS, /proc/self/io) and one function per workload. Every
// workload verifies its results lightly, so a broken engine cannot look fast.
//
// Keys are 16 bytes of zero-padded decimal (numeric order = byte order). The database filled by
// fillseq/fillrandom holds the N even numbers 0, 2, ..., 2(N-1); readmissing looks up the odd
// numbers between them. Values are 100 bytes: the key (16 bytes), 34 pseudo-random bytes, then a
// copy of the first 50 bytes, so they compress to about half. A read verifies that the value starts
// with the key it was looked up by.

import fs from 'node:fs';
import path from 'node:path';

export const KEY_BYTES = 16;
export const VALUE_BYTES = 100;
export const ENTRY_BYTES = KEY_BYTES + VALUE_BYTES;
export const BATCH_SIZE = 1000;
export const DEFAULT_SEED = 0x5eed_bec4;

/** Every workload, in report order. */
export const WORKLOADS = [
  'fillseq',
  'fillrandom',
  'putsingle',
  'fillsync',
  'fillsync16',
  'readrandom',
  'readmissing',
  'seekrandom',
  'readseq',
  'mixed_a',
  'mixed_b',
  'txn',
];

/** One-line descriptions (README and report). */
export const DESCRIPTIONS = {
  fillseq: 'N puts in ascending key order, batches of 1000, non-durable, fresh DB',
  fillrandom: 'N puts in random order (each key once), batches of 1000, non-durable, fresh DB',
  putsingle: '100k single non-durable puts of random keys, each awaited',
  fillsync: '2,000 single durable (fsync) puts, each awaited one after the other',
  fillsync16: '16 concurrent writers, each awaiting its own durable put (group commit)',
  readrandom: '500k gets of existing keys, after fillrandom, close and reopen',
  readmissing: '200k gets of absent keys (between existing ones)',
  seekrandom: '50k range scans of 100 entries from a random existing key',
  readseq: 'one full forward scan of the N entries',
  mixed_a: 'YCSB-A-like: 50% reads / 50% updates, uniform keys, 4 concurrent clients',
  mixed_b: 'YCSB-B-like: 95% reads / 5% updates, uniform keys, 4 concurrent clients',
  txn: 'bank transfers between 10k accounts through transactions, 4 concurrent clients',
};

/** Default operation counts at N = 1M (scaled down for smaller N, never up). */
const BASE_COUNTS = {
  putsingle: 100_000,
  fillsync: 2_000,
  fillsync16: 4_000,
  readrandom: 500_000,
  readmissing: 200_000,
  seekrandom: 50_000,
  mixed_a: 200_000,
  mixed_b: 200_000,
  txn: 20_000,
};
const MIN_COUNTS = {
  putsingle: 2_000,
  fillsync: 200,
  fillsync16: 320,
  readrandom: 5_000,
  readmissing: 2_000,
  seekrandom: 500,
  mixed_a: 2_000,
  mixed_b: 2_000,
  txn: 500,
};

export function opCount(workload, n) {
  const scale = Math.min(1, n / 1_000_000);
  return Math.max(MIN_COUNTS[workload], Math.round(BASE_COUNTS[workload] * scale));
}

// ---------------------------------------------------------------- PRNG

/** sfc32 seeded through splitmix32: fast, deterministic, good enough for key choice. */
export class Rng {
  constructor(seed) {
    let s = seed >>> 0;
    const split = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform uint32. */
  next() {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A uniform integer in [0, n), n < 2^32. */
  below(n) {
    return Math.floor((this.next() / 4294967296) * n);
  }
}

/** A seeded random permutation of 0..n-1. */
export function permutation(n, seed) {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

// ---------------------------------------------------------------- keys and values

/** Writes `num` as 16 zero-padded decimal digits at buf[off]. */
export function writeKey(buf, off, num) {
  for (let p = off + KEY_BYTES - 1; p >= off; p--) {
    buf[p] = 48 + (num % 10);
    num = Math.floor(num / 10);
  }
}

export function keyOf(num) {
  const b = Buffer.allocUnsafe(KEY_BYTES);
  writeKey(b, 0, num);
  return b;
}

/** Key of the i-th existing entry (0 <= i < N). */
export const existingKey = (i) => keyOf(2 * i);
/** A key that sorts between existing entries i and i+1, and is never written. */
export const missingKey = (i) => keyOf(2 * i + 1);

const POOL_BYTES = 1 << 20;
let pool = null;
function randomPool() {
  if (pool === null) {
    pool = Buffer.allocUnsafe(POOL_BYTES + VALUE_BYTES);
    const rng = new Rng(0xda7a);
    for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(rng.next(), i);
  }
  return pool;
}

/**
 * Writes the 100-byte value of the entry whose key is at key[koff..koff+16) into buf[off..off+100):
 * the key, 34 random bytes (which depend on `version`, so updates change the value), then a copy of
 * the first 50 bytes.
 */
export function writeValue(buf, off, keyBuf, koff, num, version) {
  const p = randomPool();
  // A byte loop and copyWithin, not Buffer.copy: its per-call overhead made these three small
  // copies ~0.2 µs of the harness's ~0.67 µs per entry, timed inside every engine's fill.
  for (let i = 0; i < KEY_BYTES; i++) buf[off + i] = keyBuf[koff + i];
  const src = ((Math.imul(num, 2654435761) + Math.imul(version, 40503)) >>> 0) % POOL_BYTES;
  for (let i = 0; i < 34; i++) buf[off + KEY_BYTES + i] = p[src + i];
  buf.copyWithin(off + 50, off, off + 50);
}

/** A fresh 100-byte value for key `key` (number `num`). */
export function valueFor(key, num, version = 0) {
  const b = Buffer.allocUnsafe(VALUE_BYTES);
  writeValue(b, 0, key, 0, num, version);
  return b;
}

/**
 * A batch of puts `{ type: 'put', key, value }` for key numbers nums[0..count), all in one fresh
 * slab (engines may keep references to the buffers they are given, so slabs are never reused).
 */
export function makeBatch(numAt, start, count, version = 0) {
  const slab = Buffer.allocUnsafeSlow(count * ENTRY_BYTES);
  const ops = new Array(count);
  for (let j = 0; j < count; j++) {
    const num = numAt(start + j);
    const ko = j * ENTRY_BYTES;
    writeKey(slab, ko, num);
    writeValue(slab, ko + KEY_BYTES, slab, ko, num, version);
    ops[j] = {
      type: 'put',
      key: slab.subarray(ko, ko + KEY_BYTES),
      value: slab.subarray(ko + KEY_BYTES, ko + ENTRY_BYTES),
    };
  }
  return ops;
}

/** True when `value` is a 100-byte value written for `key`. */
export function valueMatches(value, key) {
  if (value === undefined || value === null || value.length !== VALUE_BYTES) return false;
  for (let i = 0; i < KEY_BYTES; i++) if (value[i] !== key[i]) return false;
  return true;
}

// ---------------------------------------------------------------- measurement helpers

export class VerificationError extends Error {}

export function check(cond, message) {
  if (!cond) throw new VerificationError(message);
}

/** Bytes actually written to storage by this process so far (Linux /proc/self/io), or null. */
export function ioWriteBytes() {
  try {
    const text = fs.readFileSync('/proc/self/io', 'utf8');
    const m = /^write_bytes:\s*(\d+)/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Allocated bytes (st_blocks) of every file under dir: sparse files count for what they use. */
export function diskBytes(dir) {
  let total = 0;
  const walk = (d) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else {
        try {
          const st = fs.statSync(p);
          total += st.blocks !== undefined ? st.blocks * 512 : st.size;
        } catch {
          // vanished while walking (a file being deleted)
        }
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return total;
}

/** Samples RSS on a timer and whenever tick() is called (synchronous loops starve the timer). */
export class RssSampler {
  constructor() {
    this.peak = process.memoryUsage.rss();
    this.timer = setInterval(() => this.sample(), 50);
    this.timer.unref();
  }
  sample() {
    const r = process.memoryUsage.rss();
    if (r > this.peak) this.peak = r;
  }
  reset() {
    this.peak = 0;
    this.sample();
  }
  stop() {
    clearInterval(this.timer);
  }
}

/** Per-operation latencies in milliseconds, preallocated. */
export class Latencies {
  constructor(capacity) {
    this.values = new Float64Array(capacity);
    this.length = 0;
  }
  add(ms) {
    if (this.length < this.values.length) this.values[this.length++] = ms;
  }
  /** { p50, p99, p999, max } in microseconds. */
  summary() {
    if (this.length === 0) return null;
    const v = this.values.slice(0, this.length).sort();
    const at = (q) => v[Math.min(v.length - 1, Math.floor(q * v.length))] * 1000;
    return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: v[v.length - 1] * 1000 };
  }
}

const now = () => performance.now();

/**
 * Measures one workload run. `body(m)` does the work; m.tick(done) is to be called every few ops
 * (it samples RSS, reports progress and says whether the time budget ran out).
 */
export async function measure(ctx, name, total, body) {
  const { sampler } = ctx;
  if (typeof globalThis.gc === 'function') globalThis.gc();
  sampler.reset();
  const io0 = ioWriteBytes();
  const cpu0 = process.cpuUsage();
  const t0 = now();
  let lastProgress = t0;
  const budgetMs = ctx.maxSeconds * 1000;
  const m = {
    capped: false,
    tick(done) {
      sampler.sample();
      const t = now();
      if (t - lastProgress > 5000) {
        lastProgress = t;
        ctx.emit({ type: 'progress', workload: name, variant: ctx.variant, done, total, seconds: (t - t0) / 1000 });
      }
      return t - t0 > budgetMs;
    },
  };
  const out = await body(m);
  const seconds = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  sampler.sample();
  const io1 = ioWriteBytes();
  return {
    ...out,
    seconds,
    cpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
    peakRssBytes: sampler.peak,
    ioWriteBytes: io0 === null || io1 === null ? null : io1 - io0,
    capped: m.capped,
  };
}

// ---------------------------------------------------------------- workloads
//
// Each takes ctx = { h (open engine handle), n, seed, variant ('default' | 'getSync'), emit,
// sampler, maxSeconds } and returns { ops, bytes, latency?, ...extra } through measure().

const TICK = 1023; // tick every 1024 ops

/** Reads use the synchronous API when the variant asks for it or the engine only has that one. */
function readMode(ctx) {
  const h = ctx.h;
  const syncGet = h.getSync !== undefined && (ctx.variant === 'getSync' || h.get === undefined);
  const syncScan = h.scanSync !== undefined && (ctx.variant === 'getSync' || h.scan === undefined);
  return { syncGet, syncScan };
}

/** fillseq / fillrandom: N puts in batches of 1000. */
export async function fill(ctx, name, order) {
  const { h, n } = ctx;
  const numAt = order === 'seq' ? (i) => 2 * i : (() => {
    const perm = permutation(n, ctx.seed);
    return (i) => 2 * perm[i];
  })();
  const r = await measure(ctx, name, n, async (m) => {
    for (let i = 0; i < n; i += BATCH_SIZE) {
      const count = Math.min(BATCH_SIZE, n - i);
      await h.batchPut(makeBatch(numAt, i, count));
      if ((i / BATCH_SIZE) % 16 === 0) m.tick(i);
    }
    return { ops: n, bytes: n * ENTRY_BYTES };
  });
  return r;
}

/** Reads back `samples` random existing keys (0..limit) and checks them (not timed). */
export async function spotCheck(h, limit, seed, samples = 1000, keyNum = (i) => 2 * i) {
  const rng = new Rng(seed ^ 0x51c3);
  for (let s = 0; s < samples; s++) {
    const key = keyOf(keyNum(rng.below(limit)));
    const v = h.getSync !== undefined ? h.getSync(key) : await h.get(key);
    check(valueMatches(v, key), `spot check: key ${key} missing or wrong after the fill`);
  }
}

/** putsingle: single non-durable puts of random keys, each awaited. */
export async function putSingle(ctx) {
  const { h, n } = ctx;
  const total = opCount('putsingle', n);
  const rng = new Rng(ctx.seed ^ 0x9a7);
  const lat = new Latencies(total);
  const written = [];
  const r = await measure(ctx, 'putsingle', total, async (m) => {
    let done = 0;
    for (; done < total; done++) {
      const num = 2 * rng.below(n);
      const key = keyOf(num);
      const value = valueFor(key, num);
      const t = now();
      await h.put(key, value, false);
      lat.add(now() - t);
      if (done >= total - 100) written.push(key);
      if ((done & TICK) === 0 && m.tick(done)) {
        m.capped = true;
        done++;
        break;
      }
    }
    return { ops: done, bytes: done * ENTRY_BYTES, latency: lat.summary() };
  });
  for (const key of written) check(valueMatches(h.getSync ? h.getSync(key) : await h.get(key), key), 'putsingle: a written key is missing');
  return r;
}

/** fillsync / fillsync16: durable single puts from `writers` concurrent writers. */
export async function fillSync(ctx, name, writers) {
  const { h, n } = ctx;
  const total = opCount(name, n);
  const lat = new Latencies(total);
  let next = 0;
  let stop = false;
  const r = await measure(ctx, name, total, async (m) => {
    const writer = async () => {
      while (!stop && next < total) {
        const i = next++;
        const key = existingKey(i);
        const value = valueFor(key, 2 * i);
        const t = now();
        await h.put(key, value, true);
        lat.add(now() - t);
        if ((i & 63) === 0 && m.tick(i)) {
          m.capped = true;
          stop = true;
        }
      }
    };
    await Promise.all(Array.from({ length: writers }, writer));
    return { ops: lat.length, bytes: lat.length * ENTRY_BYTES, latency: lat.summary(), writers };
  });
  for (let i = 0; i < r.ops; i++) {
    const key = existingKey(i);
    check(valueMatches(h.getSync ? h.getSync(key) : await h.get(key), key), `${name}: durable key ${i} missing`);
  }
  return r;
}

/** readrandom / readmissing: point reads of random existing or absent keys. */
export async function readRandom(ctx, name, missing) {
  const { h, n } = ctx;
  const total = opCount(name, n);
  const rng = new Rng(ctx.seed ^ (missing ? 0x3155 : 0x7ead));
  const lat = new Latencies(total);
  const { syncGet } = readMode(ctx);
  const r = await measure(ctx, name, total, async (m) => {
    let found = 0;
    let wrong = 0;
    let done = 0;
    for (; done < total; done++) {
      const i = rng.below(n);
      const key = missing ? missingKey(i) : existingKey(i);
      const t = now();
      const v = syncGet ? h.getSync(key) : await h.get(key);
      lat.add(now() - t);
      if (v !== undefined && v !== null) {
        found++;
        if (!valueMatches(v, key)) wrong++;
      }
      if ((done & TICK) === 0 && m.tick(done)) {
        m.capped = true;
        done++;
        break;
      }
    }
    check(wrong === 0, `${name}: ${wrong} values did not match their keys`);
    if (missing) check(found === 0, `${name}: ${found} absent keys were found`);
    else check(found === done, `${name}: found ${found} of ${done} existing keys`);
    return { ops: done, bytes: done * (missing ? KEY_BYTES : ENTRY_BYTES), latency: lat.summary(), found, syncApi: syncGet };
  });
  return r;
}

/** seekrandom: scans of 100 entries from random existing keys. */
export async function seekRandom(ctx) {
  const { h, n } = ctx;
  const total = opCount('seekrandom', n);
  const SCAN = 100;
  const rng = new Rng(ctx.seed ^ 0x5eec);
  const lat = new Latencies(total);
  const { syncScan } = readMode(ctx);
  const r = await measure(ctx, 'seekrandom', total, async (m) => {
    let entries = 0;
    let done = 0;
    for (; done < total; done++) {
      const i = rng.below(n);
      const start = existingKey(i);
      const t = now();
      const got = syncScan ? h.scanSync(start, SCAN) : await h.scan(start, SCAN);
      lat.add(now() - t);
      const want = Math.min(SCAN, n - i);
      check(got === want, `seekrandom: scan from entry ${i} returned ${got} entries, expected ${want}`);
      entries += got;
      if ((done & 255) === 0 && m.tick(done)) {
        m.capped = true;
        done++;
        break;
      }
    }
    return { ops: done, bytes: entries * ENTRY_BYTES, entries, latency: lat.summary(), syncApi: syncScan };
  });
  return r;
}

/** readseq: one full scan; checks the count, the order and the values. */
export async function readSeq(ctx) {
  const { h, n } = ctx;
  const { syncScan } = readMode(ctx);
  const r = await measure(ctx, 'readseq', n, async () => {
    const res = syncScan ? h.fullScanSync() : await h.fullScan();
    check(res.count === n, `readseq: scanned ${res.count} entries, expected ${n}`);
    check(res.ordered, 'readseq: keys out of order');
    check(res.bytes === n * ENTRY_BYTES, `readseq: scanned ${res.bytes} bytes, expected ${n * ENTRY_BYTES}`);
    return { ops: res.count, bytes: res.bytes, syncApi: syncScan };
  });
  return r;
}

/** mixed_a / mixed_b: `readPct`% reads, the rest updates, from 4 concurrent clients. */
export async function mixed(ctx, name, readPct) {
  const { h, n } = ctx;
  const total = opCount(name, n);
  const CLIENTS = 4;
  const rng = new Rng(ctx.seed ^ (readPct * 7919));
  const lat = new Latencies(total);
  const { syncGet } = readMode(ctx);
  const version = ctx.variant === 'getSync' ? 2 : 1;
  let next = 0;
  let stop = false;
  let reads = 0;
  let updates = 0;
  let found = 0;
  let wrong = 0;
  const r = await measure(ctx, name, total, async (m) => {
    const client = async () => {
      while (!stop && next < total) {
        const op = next++;
        const i = rng.below(n);
        const isRead = rng.below(100) < readPct;
        const key = existingKey(i);
        const t = now();
        if (isRead) {
          const v = syncGet ? h.getSync(key) : await h.get(key);
          reads++;
          if (v !== undefined && v !== null) {
            found++;
            if (!valueMatches(v, key)) wrong++;
          }
        } else {
          await h.put(key, valueFor(key, 2 * i, version), false);
          updates++;
        }
        lat.add(now() - t);
        if ((op & TICK) === 0 && m.tick(op)) {
          m.capped = true;
          stop = true;
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    check(wrong === 0, `${name}: ${wrong} values did not match their keys`);
    check(found === reads, `${name}: found ${found} of ${reads} existing keys`);
    const ops = reads + updates;
    return { ops, bytes: ops * ENTRY_BYTES, latency: lat.summary(), reads, updates, clients: CLIENTS, syncApi: syncGet };
  });
  return r;
}

// ---- txn: bank transfers

export const TXN_ACCOUNTS = 10_000;
export const TXN_INITIAL = 1000;

export function balanceBytes(amount) {
  return Buffer.from(String(amount).padStart(16, '0'));
}
export function parseBalance(buf) {
  return Number(Buffer.from(buf).toString('latin1'));
}

/** txn: transfers through the engine's transactions; the total balance must be conserved. */
export async function txn(ctx) {
  const { h, n } = ctx;
  const accounts = Math.min(TXN_ACCOUNTS, n);
  const total = opCount('txn', n);
  const CLIENTS = 4;
  const ops = [];
  for (let i = 0; i < accounts; i++) ops.push({ type: 'put', key: existingKey(i), value: balanceBytes(TXN_INITIAL) });
  for (let i = 0; i < ops.length; i += BATCH_SIZE) await h.batchPut(ops.slice(i, i + BATCH_SIZE));
  const rng = new Rng(ctx.seed ^ 0x7a7);
  const lat = new Latencies(total);
  let next = 0;
  let stop = false;
  let applied = 0;
  const r = await measure(ctx, 'txn', total, async (m) => {
    const client = async () => {
      while (!stop && next < total) {
        const op = next++;
        const a = rng.below(accounts);
        let b = rng.below(accounts - 1);
        if (b >= a) b++;
        const amount = 1 + rng.below(100);
        const t = now();
        if (await h.transfer(existingKey(a), existingKey(b), amount)) applied++;
        lat.add(now() - t);
        if ((op & 255) === 0 && m.tick(op)) {
          m.capped = true;
          stop = true;
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    return { ops: lat.length, bytes: lat.length * 2 * (KEY_BYTES + 16), latency: lat.summary(), applied, clients: CLIENTS };
  });
  let sum = 0;
  for (let i = 0; i < accounts; i++) {
    const v = h.getSync ? h.getSync(existingKey(i)) : await h.get(existingKey(i));
    check(v !== undefined && v !== null, `txn: account ${i} vanished`);
    const bal = parseBalance(v);
    check(bal >= 0, `txn: account ${i} went negative`);
    sum += bal;
  }
  check(sum === accounts * TXN_INITIAL, `txn: total balance ${sum}, expected ${accounts * TXN_INITIAL}`);
  return r;
}
