/**
 * Review helpers for the weak-spares change (79d4c85): a spy on every WeakSpares pool of the
 * thread that checks, at each put and take, the ownership claim of the change:
 *
 *   - a buffer enters a pool only once the database that owned it is closed, has no open
 *     iterator and no job in flight on any of its background threads;
 *   - a buffer in a pool belongs to no live structure of any database the test opened (block-cache
 *     slabs of unreleased caches, memtable arenas, rows, filters and key indexes of mem, imm and the
 *     kept spare memtable);
 *   - a buffer is in at most one pool entry, and a taken buffer goes to one owner only.
 *
 * The spy keeps the pooled items strongly reachable while they are in a pool, so take() finds them
 * whatever the garbage collector does: every close really hands its buffers on (the most
 * adversarial case for the claim, and deterministic).
 *
 * Also: seeds (SEED=n replays, the default is fixed), models per database, and read checks.
 */
import assert from 'node:assert/strict';
import { WeakSpares } from '../../src/util/weak-spares.js';
import type { Database } from '../../src/db/db.js';
import { LightningError } from '../../src/base/errors.js';
import { Random } from '../../src/util/random.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Loose = any;

// ------------------------------------------------------------------------------------ seeds

/** SEED from the environment, else the fixed default: the tests are deterministic. */
export function seedOf(dflt: number): number {
  const env = process.env['SEED'];
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  return dflt >>> 0;
}

/** Runs fn(seed); a failure names the seed to replay with. */
export async function seeded(name: string, dflt: number, fn: (seed: number) => Promise<void>): Promise<void> {
  const seed = seedOf(dflt);
  try {
    await fn(seed);
  } catch (e) {
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    throw new Error(`${name} failed with SEED=${seed} (replay: SEED=${seed} node --test <file>)\n${msg}`, { cause: e });
  }
}

// ------------------------------------------------------------------------------------ ownership

function addView(out: Map<ArrayBufferLike, string>, v: unknown, where: string): void {
  if (v === null || v === undefined) return;
  const view = v as ArrayBufferView;
  if (!ArrayBuffer.isView(view) || view.byteLength === 0) return;
  if (!out.has(view.buffer)) out.set(view.buffer, where);
}

/** The buffers of a MemTableStorage ({ list: { arena, rows }, filter, index }). */
export function storageBuffers(s: Loose, where: string, out = new Map<ArrayBufferLike, string>()): Map<ArrayBufferLike, string> {
  if (s === null || s === undefined) return out;
  addView(out, s.list?.arena, `${where}.arena`);
  addView(out, s.list?.rows, `${where}.rows`);
  addView(out, s.filter, `${where}.filter`);
  addView(out, s.index?.nodes, `${where}.index.nodes`);
  addView(out, s.index?.hashes, `${where}.index.hashes`);
  return out;
}

/** The buffers a live MemTable uses. */
function memTableBuffers(m: Loose, where: string, out: Map<ArrayBufferLike, string>): void {
  if (m === null || m === undefined) return;
  addView(out, m.list?.arena, `${where}.arena`);
  addView(out, m.list?.rows, `${where}.rows`);
  addView(out, m.filter, `${where}.filter`);
  addView(out, m.index?.nodes, `${where}.index.nodes`);
  addView(out, m.index?.hashes, `${where}.index.hashes`);
  addView(out, m.spareIndex?.nodes, `${where}.spareIndex.nodes`);
  addView(out, m.spareIndex?.hashes, `${where}.spareIndex.hashes`);
}

/**
 * Every pooled-kind buffer `db` still owns: slabs of its cache unless released, its memtables'
 * buffers, and its kept spare memtable storage (unless it is `except`, the item being put).
 */
export function ownedBy(db: Database, label: string, except: object | null = null): Map<ArrayBufferLike, string> {
  const d = db as Loose;
  const out = new Map<ArrayBufferLike, string>();
  const cache = d.blockCache;
  if (cache !== null && cache !== undefined && cache.released !== true) {
    (cache.slabs as Buffer[]).forEach((s, i) => addView(out, s, `${label}.cache.slab${i}`));
  }
  memTableBuffers(d.mem, `${label}.mem`, out);
  memTableBuffers(d.imm, `${label}.imm`, out);
  if (d.spareMemTable !== null && d.spareMemTable !== except) storageBuffers(d.spareMemTable, `${label}.spareMemTable`, out);
  return out;
}

function itemBuffers(item: object, where: string): Map<ArrayBufferLike, string> {
  if (ArrayBuffer.isView(item)) {
    const out = new Map<ArrayBufferLike, string>();
    addView(out, item, where);
    return out;
  }
  return storageBuffers(item, where);
}

const THREAD_FIELDS = ['compactionThread', 'flushThread', 'sharedThread', 'asideThread'];

// ------------------------------------------------------------------------------------ the spy

export class SpareSpy {
  /** Strong mirror of each pool's live entries (kept alive while pooled), when `strong`. */
  private readonly mirrors = new Map<object, Set<object>>();
  /** Weak mirror otherwise: the garbage collector may empty the pools as it would in production. */
  private readonly weakMirrors = new Map<object, WeakRef<object>[]>();

  /** `strong` (default): pooled items stay reachable, so every take finds what was put. */
  constructor(private readonly strong = true) {}
  /** Databases whose buffers must never be pooled while theirs, by label. */
  private readonly dbs = new Map<Database, string>();
  readonly violations: string[] = [];
  puts = 0;
  takes = 0;
  /** Takes of memtable storage (the rest are slabs). */
  memTakes = 0;
  memPuts = 0;
  /** Arenas of the memtable storage handed out by take() (tests that need to know which). */
  readonly takenArenas = new Set<ArrayBufferLike>();
  private uninstall: (() => void) | null = null;

  install(): this {
    assert.equal(this.uninstall, null, 'installed twice');
    const proto = WeakSpares.prototype as Loose;
    const put = proto.put as (item: object) => void;
    const take = proto.take as (fits: (item: object) => boolean) => object | undefined;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const spy = this;
    proto.put = function (this: object, item: object): void {
      spy.onPut(this, item);
      put.call(this, item);
      spy.sync(this);
    };
    proto.take = function (this: object, fits: (item: object) => boolean): object | undefined {
      const got = take.call(this, fits);
      if (got !== undefined) spy.onTake(this, got);
      spy.sync(this);
      return got;
    };
    this.uninstall = () => {
      proto.put = put;
      proto.take = take;
    };
    return this;
  }

  /** Restores WeakSpares and forgets the mirrors (the pools keep their weak entries). */
  remove(): void {
    this.uninstall?.();
    this.uninstall = null;
    this.mirrors.clear();
    this.weakMirrors.clear();
    this.dbs.clear();
  }

  register(db: Database, label: string): void {
    // The checks read internals: fail loudly if they were renamed rather than check nothing.
    const d = db as Loose;
    assert.ok(Buffer.isBuffer(d.mem?.list?.arena) && d.mem.list.rows instanceof Int32Array, 'MemTable.list.arena/rows');
    assert.ok(Buffer.isBuffer(d.mem.filter) && 'index' in d.mem && 'spareIndex' in d.mem, 'MemTable.filter/index/spareIndex');
    assert.ok('imm' in d && 'spareMemTable' in d && d.iterators instanceof Set && typeof d.state === 'string', 'Database fields');
    assert.ok(d.blockCache === null || (Array.isArray(d.blockCache.slabs) && typeof d.blockCache.released === 'boolean'), 'BlockCache.slabs/released');
    for (const f of THREAD_FIELDS) assert.ok(f in d, `Database.${f}`);
    this.dbs.set(db, label);
  }

  forget(db: Database): void {
    this.dbs.delete(db);
  }

  summary(): string {
    return `puts ${this.puts} (memtable ${this.memPuts}), takes ${this.takes} (memtable ${this.memTakes})`;
  }

  /** Items in pools now (per the mirrors). */
  get pooled(): number {
    let n = 0;
    for (const [, m] of this.pools()) n += m.size;
    return n;
  }

  private sync(pool: object): void {
    const refs = (pool as Loose).refs as WeakRef<object>[];
    const live = new Set<object>();
    for (const r of refs) {
      const x = r.deref();
      if (x !== undefined) live.add(x);
    }
    if (this.strong) this.mirrors.set(pool, live);
    else this.weakMirrors.set(pool, [...live].map((x) => new WeakRef(x)));
  }

  /** Each pool's live items now. */
  private pools(): [object, Set<object>][] {
    if (this.strong) return [...this.mirrors];
    const out: [object, Set<object>][] = [];
    for (const [pool, refs] of this.weakMirrors) {
      const live = new Set<object>();
      for (const r of refs) {
        const x = r.deref();
        if (x !== undefined) live.add(x);
      }
      out.push([pool, live]);
    }
    return out;
  }

  private fail(msg: string): void {
    this.violations.push(msg);
  }

  private owner(item: object): [Database, string] | null {
    for (const [db, label] of this.dbs) {
      const d = db as Loose;
      if (d.spareMemTable === item) return [db, label];
      const slabs = d.blockCache?.slabs as Buffer[] | undefined;
      if (slabs?.includes(item as Buffer) === true) return [db, label];
    }
    return null;
  }

  private onPut(pool: object, item: object): void {
    this.puts++;
    if (!ArrayBuffer.isView(item)) this.memPuts++;
    const pools = this.pools();
    for (const [p, m] of pools) {
      if (m.has(item)) this.fail(`put: an item already in a pool was put again (same pool: ${p === pool})`);
    }
    const who = this.owner(item);
    const putter = who === null ? null : who[0];
    if (who !== null) {
      const [db, label] = who;
      const d = db as Loose;
      if (d.state !== 'closed') this.fail(`put by ${label} while its state is ${String(d.state)}`);
      if (d.iterators.size !== 0) this.fail(`put by ${label} with ${String(d.iterators.size)} open iterators`);
      for (const f of THREAD_FIELDS) {
        const t = d[f];
        if (t === null || t === undefined) continue;
        if (!(t.pending instanceof Map) || !('worker' in t)) this.fail(`CompactionThread internals renamed (pending/worker)`);
        if (t.pending.size !== 0) this.fail(`put by ${label}: ${f} still has ${String(t.pending.size)} jobs in flight`);
      }
      if (d.imm !== null) {
        // The spare must not be the storage of the memtable still being flushed.
        const imm = new Map<ArrayBufferLike, string>();
        memTableBuffers(d.imm, 'imm', imm);
        for (const b of itemBuffers(item, 'item').keys()) if (imm.has(b)) this.fail(`put by ${label}: buffer of its imm`);
      }
    }
    const mine = itemBuffers(item, 'item');
    for (const [db, label] of this.dbs) {
      const owned = ownedBy(db, label, db === putter ? item : null);
      for (const [b, where] of mine) {
        const at = owned.get(b);
        if (at !== undefined) this.fail(`put (${where}) of a buffer still owned by ${at}`);
      }
    }
    for (const [, m] of pools) {
      for (const other of m) {
        if (other === item) continue;
        for (const b of itemBuffers(other, 'pooled').keys()) if (mine.has(b)) this.fail('put: a buffer already pooled in another item');
      }
    }
  }

  private onTake(pool: object, item: object): void {
    this.takes++;
    if (!ArrayBuffer.isView(item)) {
      this.memTakes++;
      const arena = (item as Loose).list?.arena as Buffer | null | undefined;
      if (arena !== null && arena !== undefined) this.takenArenas.add(arena.buffer);
    }
    for (const [p, m] of this.pools()) {
      if (p !== pool && m.has(item)) this.fail('take: the item is also in another pool');
    }
    const mine = itemBuffers(item, 'taken');
    for (const [db, label] of this.dbs) {
      const owned = ownedBy(db, label);
      for (const [b, where] of mine) {
        const at = owned.get(b);
        if (at !== undefined) this.fail(`take (${where}) of a buffer still owned by ${at}`);
      }
    }
  }

  /**
   * Checks now: no buffer is owned by two registered databases, none owned by one is pooled, and
   * no violation was recorded. `open` restricts the database pairs checked (closed databases keep
   * their last memtable, which nothing else may own either, so by default all are checked).
   */
  check(where: string): void {
    const seen = new Map<ArrayBufferLike, string>();
    for (const [db, label] of this.dbs) {
      for (const [b, at] of ownedBy(db, label)) {
        const before = seen.get(b);
        if (before !== undefined) this.fail(`${where}: ${at} is also ${before}`);
        seen.set(b, at);
      }
    }
    for (const [, m] of this.pools()) {
      for (const item of m) {
        for (const b of itemBuffers(item, 'pooled').keys()) {
          const at = seen.get(b);
          if (at !== undefined) this.fail(`${where}: a pooled buffer is owned by ${at}`);
        }
      }
    }
    assert.deepEqual(this.violations, [], `${where}: spare pool violations`);
  }
}

// ------------------------------------------------------------------------------------ models

export interface Tracked {
  label: string;
  dir: string;
  db: Database | null;
  model: Map<string, string>;
  /** Writes issued and not yet awaited. */
  pending: Promise<void>[];
}

export const KEYS = 600;
export const keyOf = (i: number): string => `key${String(i).padStart(5, '0')}`;

/** A value that names its database and key, so bytes of another database are recognised. */
export function valueOf(label: string, key: string, rng: Random): string {
  return `${label}|${key}|${rng.nextInt(1_000_000)}|${'x'.repeat(rng.nextInt(200))}`;
}

/** Issues one batch (not awaited: it joins t.pending) and applies it to the model at once. */
export function writeBatch(t: Tracked, rng: Random, n: number): void {
  const db = t.db;
  assert.ok(db !== null, `${t.label} is open`);
  const ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
  for (let j = 0; j < n; j++) {
    const key = keyOf(rng.nextInt(KEYS));
    if (rng.nextInt(8) === 0) {
      ops.push({ type: 'del', key });
      t.model.delete(key);
    } else {
      const value = valueOf(t.label, key, rng);
      ops.push({ type: 'put', key, value });
      t.model.set(key, value);
    }
  }
  t.pending.push(db.batch(ops as Loose));
}

export async function settle(t: Tracked): Promise<void> {
  const p = t.pending.splice(0);
  await Promise.all(p);
}

function expectValue(t: Tracked, key: string, got: Buffer | undefined, how: string): void {
  assert.equal(got?.toString(), t.model.get(key), `${t.label} ${how} ${key}`);
}

/** Point reads (getSync and get) of a sample of keys, and one full scan each way, against the model. */
export async function verify(t: Tracked, rng: Random, how: string, sample = 120): Promise<void> {
  const db = t.db;
  assert.ok(db !== null);
  const keys: string[] = [];
  for (let i = 0; i < sample; i++) keys.push(keyOf(rng.nextInt(KEYS)));
  for (const k of keys) expectValue(t, k, db.getSync(k), `getSync(${how})`);
  const got = await Promise.all(keys.map((k) => db.get(k)));
  keys.forEach((k, i) => expectValue(t, k, got[i], `get(${how})`));
  const expected = [...t.model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const scanned: [string, string][] = [];
  for (const [k, v] of db.iterator()) scanned.push([k.toString(), v.toString()]);
  assert.deepEqual(scanned, expected, `${t.label} sync scan (${how})`);
  const back: [string, string][] = [];
  for await (const [k, v] of db.iterator({ reverse: true })) back.push([k.toString(), v.toString()]);
  assert.deepEqual(back, expected.reverse(), `${t.label} async reverse scan (${how})`);
}

/** Resolves to the LightningError code `fn` throws or rejects with ('none' if it does not). */
export async function errorCodeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return e instanceof LightningError ? e.code : `not a LightningError: ${String(e)}`;
  }
  return 'none';
}

export { Random };
