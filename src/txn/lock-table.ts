/**
 * Exclusive key locks for pessimistic transactions: FIFO waiting, deadlock detection on a wait-for
 * graph, and lock-wait timeouts.
 *
 * A lock has one holder and a FIFO queue of waiters. A transaction waits for at most one lock at a
 * time (Transaction chains its lock requests), so its outgoing wait-for edges are: the holder of
 * the key it waits for, and every waiter queued ahead of it (each of those will hold the key, and
 * keep it until it finishes, before this one gets it).
 *
 * Edges appear only when a transaction starts waiting: a grant hands the key to the first waiter,
 * whose edges to the waiters behind it already existed the other way round. So checking for a
 * cycle at the moment a transaction would start waiting finds every deadlock, as early as
 * possible. The requester whose wait would close the cycle is the victim: it fails with DEADLOCK
 * without queueing, and everyone else keeps waiting.
 *
 * Waits time out after `timeoutMs` (TIMEOUT), at most LOCK_TIMEOUT_MS_MAX: a lock wait keeps the
 * process alive only that long. (The timer is not unref'd: a process whose only pending work is a
 * lock wait should report the TIMEOUT, not exit silently with the caller's promise unsettled.)
 */
import { LightningError } from '../base/errors.js';
import { assert } from '../util/assert.js';

/** Who can hold a lock: a transaction. `id` appears in error messages. */
export interface LockOwner {
  readonly id: number;
}

interface Waiter {
  readonly owner: LockOwner;
  readonly key: string;
  readonly resolve: () => void;
  readonly reject: (e: LightningError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

interface LockState {
  holder: LockOwner;
  /** FIFO; the first one gets the key when the holder releases it. */
  readonly waiters: Waiter[];
}

/** Longest allowed lock wait: one hour; a forgotten lock holder never blocks a waiter longer. */
export const LOCK_TIMEOUT_MS_MAX = 3_600_000;

/** Renders a key id (latin1 string of the key bytes) for messages: text if printable, else hex. */
export function describeKeyId(id: string): string {
  const shown = id.length > 48 ? id.slice(0, 48) : id;
  const more = id.length > 48 ? `… (${id.length} bytes)` : '';
  if (/^[\x20-\x7e]*$/.test(shown)) return `${JSON.stringify(shown)}${more}`;
  return `0x${Buffer.from(shown, 'latin1').toString('hex')}${more}`;
}

export class LockTable {
  private readonly locks = new Map<string, LockState>();
  /**
   * The keys each owner holds. Kept here, not by the owner: a grant happens when the previous
   * holder releases, before the new holder's code resumes, and releaseAll must free it even if
   * the new holder ends in between.
   */
  private readonly heldBy = new Map<LockOwner, Set<string>>();
  /** The one wait of each waiting owner. */
  private readonly waiting = new Map<LockOwner, Waiter>();
  private closedError: LightningError | null = null;
  /** Counters (tests and stats). */
  deadlocks = 0;
  timeouts = 0;
  waits = 0;

  /** Number of keys locked now. */
  get size(): number {
    return this.locks.size;
  }

  /** The holder of `key`, if any. */
  holderOf(key: string): LockOwner | undefined {
    return this.locks.get(key)?.holder;
  }

  /** Number of owners waiting for a lock now. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /**
   * Grants `key` to `owner` if it is free or already `owner`'s; never waits.
   * Requires: `owner` is not waiting for a lock.
   */
  tryAcquire(owner: LockOwner, key: string): boolean {
    assert(!this.waiting.has(owner), 'an owner waiting for a lock requests no other');
    if (this.closedError !== null) return false;
    const st = this.locks.get(key);
    if (st === undefined) {
      this.locks.set(key, { holder: owner, waiters: [] });
      this.addHeld(owner, key);
      return true;
    }
    return st.holder === owner;
  }

  /**
   * Waits for `key`: resolves once `owner` holds it. Rejects with DEADLOCK (at once) if the wait
   * would close a cycle, TIMEOUT after `timeoutMs` (at once if 0), CLOSED when the table closes,
   * or the error passed to `cancelWait`.
   * Requires: tryAcquire(owner, key) just returned false; `owner` is not waiting.
   */
  wait(owner: LockOwner, key: string, timeoutMs: number): Promise<void> {
    assert(!this.waiting.has(owner), 'an owner waits for one lock at a time');
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const st = this.locks.get(key);
    assert(st !== undefined && st.holder !== owner, 'wait only for a key held by another owner');
    const cycle = this.cycleThrough(owner, st, st.waiters.length);
    if (cycle !== null) {
      this.deadlocks++;
      return Promise.reject(
        new LightningError(
          'DEADLOCK',
          `transaction ${owner.id} waiting for key ${describeKeyId(key)} would close a wait cycle ` +
            `(${[owner, ...cycle].map((o) => o.id).join(' -> ')} -> ${owner.id}); ` +
            'it was chosen as the victim',
        ),
      );
    }
    if (timeoutMs <= 0) {
      this.timeouts++;
      return Promise.reject(timeoutError(owner, key, st.holder, 0));
    }
    this.waits++;
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { owner, key, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        this.timeouts++;
        this.removeWaiter(w);
        reject(timeoutError(owner, key, this.locks.get(key)?.holder, timeoutMs));
      }, timeoutMs);
      st.waiters.push(w);
      this.waiting.set(owner, w);
    });
  }

  /** Stops `owner`'s wait, if any, rejecting it with the error `makeError` builds. */
  cancelWait(owner: LockOwner, makeError: () => LightningError): void {
    const w = this.waiting.get(owner);
    if (w === undefined) return;
    this.removeWaiter(w);
    w.reject(makeError());
  }

  /** Releases every key `owner` holds, handing each to its first waiter. */
  releaseAll(owner: LockOwner): void {
    const keys = this.heldBy.get(owner);
    if (keys === undefined) return;
    this.heldBy.delete(owner);
    for (const key of keys) {
      const st = this.locks.get(key);
      assert(st !== undefined && st.holder === owner, 'an owner holds the keys recorded for it');
      const next = st.waiters.shift();
      if (next === undefined) {
        this.locks.delete(key);
        continue;
      }
      if (next.timer !== null) clearTimeout(next.timer);
      this.waiting.delete(next.owner);
      st.holder = next.owner;
      this.addHeld(next.owner, key);
      next.resolve();
    }
  }

  private addHeld(owner: LockOwner, key: string): void {
    let keys = this.heldBy.get(owner);
    if (keys === undefined) this.heldBy.set(owner, (keys = new Set()));
    keys.add(key);
  }

  /** Fails every waiter with `err`; later waits fail with it too. Holders keep their keys. */
  close(err: LightningError): void {
    this.closedError = err;
    for (const w of [...this.waiting.values()]) {
      this.removeWaiter(w);
      w.reject(err);
    }
  }

  private removeWaiter(w: Waiter): void {
    if (w.timer !== null) clearTimeout(w.timer);
    w.timer = null;
    this.waiting.delete(w.owner);
    const st = this.locks.get(w.key);
    if (st === undefined) return;
    const i = st.waiters.indexOf(w);
    if (i >= 0) st.waiters.splice(i, 1);
  }

  /**
   * If `owner` waiting on `st` (queued at `position`) would close a cycle, the owners on it
   * (starting with the one `owner` would wait for), else null. Breadth-first over the wait-for
   * graph; each waiting owner is expanded once.
   */
  private cycleThrough(owner: LockOwner, st: LockState, position: number): LockOwner[] | null {
    const parent = new Map<LockOwner, LockOwner | null>();
    const queue: LockOwner[] = [];
    for (const t of waitTargets(st, position)) {
      if (parent.has(t)) continue;
      parent.set(t, null);
      queue.push(t);
    }
    for (let i = 0; i < queue.length; i++) {
      const u = queue[i] as LockOwner;
      if (u === owner) return pathTo(parent, u);
      const w = this.waiting.get(u);
      if (w === undefined) continue;
      const ust = this.locks.get(w.key);
      assert(ust !== undefined, 'a waiter waits for a held key');
      for (const t of waitTargets(ust, ust.waiters.indexOf(w))) {
        if (parent.has(t)) continue;
        parent.set(t, u);
        queue.push(t);
      }
    }
    return null;
  }
}

/** Whom a waiter at `position` of `st`'s queue waits for: the holder and everyone ahead of it. */
function waitTargets(st: LockState, position: number): LockOwner[] {
  const out: LockOwner[] = [st.holder];
  for (let i = 0; i < position; i++) out.push((st.waiters[i] as Waiter).owner);
  return out;
}

/** The owners from the first hop to `end` (the requester), without `end`. */
function pathTo(parent: Map<LockOwner, LockOwner | null>, end: LockOwner): LockOwner[] {
  const path: LockOwner[] = [];
  for (let u = parent.get(end) ?? null; u !== null; u = parent.get(u) ?? null) path.push(u);
  return path.reverse();
}

function timeoutError(
  owner: LockOwner,
  key: string,
  holder: LockOwner | undefined,
  ms: number,
): LightningError {
  const by = holder === undefined ? '' : ` (held by transaction ${holder.id})`;
  const what = `the lock on key ${describeKeyId(key)}${by}`;
  return new LightningError('TIMEOUT', `transaction ${owner.id} waited ${ms} ms for ${what}`);
}
