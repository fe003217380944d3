/**
 * Reviewer tests (session 15) for the shared background thread (CompactionThread with a request id
 * per job, at most one merge and one flush in flight). A scripted fake Worker (no thread) makes
 * every ordering deterministic: replies in either order, unknown and duplicate ids, a death before
 * or after WorkerReady with both jobs in flight, a death between the two replies, close() with both
 * in flight, the idle-retire timer and prestart() while jobs are pending. Checks: every promise
 * settles exactly once with the right outcome, orHere reruns exactly the start failures, the worker
 * is ref'd exactly while a job is pending, and nothing becomes an unhandled rejection.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { CompactionThread, WORKER_IDLE_RETIRE_MS } from '../../src/compaction/compaction-thread.js';
import type { MergeOutcome, MergeSpec } from '../../src/compaction/merge-tables.js';
import type { FlushSpec } from '../../src/db/flush-table.js';
import type { FileMetadata } from '../../src/version/file-metadata.js';
import type { WorkerRequest } from '../../src/compaction/worker-protocol.js';
import { Random } from '../../src/util/random.js';
import { testSeed } from '../harness/seed.js';

const SEED = testSeed();
console.log(`session15-thread-lifecycle SEED=${SEED}`);

const unhandled: unknown[] = [];
process.on('unhandledRejection', (e) => {
  unhandled.push(e);
});

function assertNoUnhandled(what: string): void {
  assert.deepEqual(
    unhandled.splice(0).map((e) => String((e as Error)?.stack ?? e)),
    [],
    `${what}: unhandled rejections`,
  );
}

/** A Worker stand-in: records posts, ref state and terminate calls; the test emits its events. */
class FakeWorker extends EventEmitter {
  readonly posted: WorkerRequest[] = [];
  refed = true; // a new Worker is ref'd
  terminated = 0;
  exited = false;

  ref(): void {
    this.refed = true;
  }
  unref(): void {
    this.refed = false;
  }
  postMessage(m: WorkerRequest): void {
    this.posted.push(m);
  }
  terminate(): Promise<number> {
    this.terminated++;
    // A real terminate() emits 'exit' (code 1) asynchronously and resolves with it.
    return new Promise((resolve) =>
      setImmediate(() => {
        this.die(1);
        resolve(1);
      }),
    );
  }
  ready(): void {
    this.emit('message', { ready: true });
  }
  die(code: number): void {
    if (this.exited) return;
    this.exited = true;
    this.emit('exit', code);
  }
  idOf(kind: 'merge' | 'flush'): number {
    const r = this.posted.find((p) => p.job.kind === kind);
    assert.ok(r !== undefined, `no ${kind} was posted`);
    return r.id;
  }
  replyOk(id: number, outcome: MergeOutcome): void {
    this.emit('message', { id, ok: true, outcome });
  }
  replyErr(id: number, code: string, message: string): void {
    this.emit('message', { id, ok: false, error: { name: 'LightningError', message, code } });
  }
}

function fakeFactory(): { make: () => Worker; all: FakeWorker[]; last: () => FakeWorker } {
  const all: FakeWorker[] = [];
  return {
    make: () => {
      const w = new FakeWorker();
      all.push(w);
      return w as unknown as Worker;
    },
    all,
    last: () => {
      const w = all[all.length - 1];
      assert.ok(w !== undefined, 'no worker was started');
      return w;
    },
  };
}

const MERGE_SPEC = { dir: '/nowhere', inputs: [] } as unknown as MergeSpec;
const FLUSH_SPEC = { dir: '/nowhere', fileNumber: 7 } as unknown as FlushSpec;

function meta(number: number): FileMetadata {
  return {
    number,
    sizeBytes: 100 + number,
    smallest: new Uint8Array([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1]) as Buffer,
    largest: new Uint8Array([4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 1]) as Buffer,
    smallestSeq: 1,
    largestSeq: 2,
    entryCount: 3,
  };
}

/** Tracks how often (and how) a promise settled: exactly once is the rule. */
function track<T>(p: Promise<T>): { settled: () => number; value: () => T | undefined; error: () => unknown; done: Promise<void> } {
  let n = 0;
  let value: T | undefined;
  let error: unknown;
  const done = p.then(
    (v) => {
      n++;
      value = v;
    },
    (e: unknown) => {
      n++;
      error = e;
    },
  );
  return { settled: () => n, value: () => value, error: () => error, done };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('replies in either order, an unknown id and a duplicate reply: each job settles once, the worker is ref\'d until both replied', async () => {
  const rng = new Random(SEED);
  for (let round = 0; round < 20; round++) {
    const f = fakeFactory();
    const thread = new CompactionThread('background', f.make);
    const mergeFirst = rng.nextInt(2) === 0;
    const merge = track(thread.run(MERGE_SPEC));
    const flush = track(thread.flush(FLUSH_SPEC));
    const w = f.last();
    assert.equal(f.all.length, 1, 'one worker for both jobs');
    if (rng.nextInt(2) === 0) w.ready();
    assert.equal(w.posted.length, 2);
    const mergeId = w.idOf('merge');
    const flushId = w.idOf('flush');
    assert.notEqual(mergeId, flushId, 'distinct request ids');
    assert.equal(w.refed, true, 'ref\'d with jobs pending');
    // A reply for an id nobody posted changes nothing.
    w.replyOk(mergeId + flushId + 1000, { outputs: [meta(99)], entriesDropped: 0 });
    await turn();
    assert.equal(merge.settled() + flush.settled(), 0, 'an unknown id settled a job');
    assert.equal(w.refed, true, 'an unknown id unref\'d the worker with both jobs pending');
    const [firstId, secondId] = mergeFirst ? [mergeId, flushId] : [flushId, mergeId];
    const outcomeOf = (id: number): MergeOutcome => (id === mergeId ? { outputs: [meta(10), meta(11)], entriesDropped: 5 } : { outputs: [meta(7)], entriesDropped: 0 });
    w.replyOk(firstId, outcomeOf(firstId));
    await turn();
    assert.equal(w.refed, true, `round ${round}: unref'd after the first reply with the other job still pending`);
    // The same reply again (a duplicate) must not settle anything else.
    w.replyOk(firstId, outcomeOf(firstId));
    await turn();
    assert.equal((mergeFirst ? merge : flush).settled(), 1);
    assert.equal((mergeFirst ? flush : merge).settled(), 0, 'a duplicate reply settled the other job');
    assert.equal(w.refed, true);
    w.replyOk(secondId, outcomeOf(secondId));
    await Promise.all([merge.done, flush.done]);
    assert.equal(merge.settled(), 1);
    assert.equal(flush.settled(), 1);
    assert.equal(merge.value()?.outputs.length, 2);
    assert.equal(merge.value()?.entriesDropped, 5);
    assert.ok(Buffer.isBuffer(merge.value()?.outputs[0]?.smallest), 'keys come back as Buffers');
    assert.equal(flush.value()?.number, 7);
    assert.equal(w.refed, false, 'an idle worker must be unref\'d');
    assert.equal(thread.broken, false);
    // The kinds are free again: both can be posted once more, to the same worker.
    const merge2 = track(thread.run(MERGE_SPEC));
    const flush2 = track(thread.flush(FLUSH_SPEC));
    assert.equal(f.all.length, 1);
    assert.equal(w.refed, true);
    const ids2 = w.posted.slice(2).map((p) => p.id);
    assert.equal(new Set([...ids2, mergeId, flushId]).size, 4, 'ids are never reused');
    for (const p of w.posted.slice(2)) w.replyOk(p.id, p.job.kind === 'merge' ? outcomeOf(mergeId) : outcomeOf(flushId));
    await Promise.all([merge2.done, flush2.done]);
    assert.equal(merge2.settled() + flush2.settled(), 2);
    await thread.close();
  }
  assertNoUnhandled('replies in any order');
});

test('an error reply fails only its own job; the other job still completes in the same worker', async () => {
  const f = fakeFactory();
  const thread = new CompactionThread('background', f.make);
  const merge = track(thread.run(MERGE_SPEC));
  const flush = track(thread.flush(FLUSH_SPEC));
  const w = f.last();
  w.ready();
  w.replyErr(w.idOf('flush'), 'DISK_FULL', 'DISK_FULL: no space');
  await flush.done;
  assert.equal((flush.error() as { code?: string }).code, 'DISK_FULL');
  assert.equal(merge.settled(), 0);
  assert.equal(w.refed, true);
  w.replyOk(w.idOf('merge'), { outputs: [meta(10)], entriesDropped: 0 });
  await merge.done;
  assert.equal(merge.settled(), 1);
  assert.equal(thread.broken, false, 'a job error is not a broken worker');
  assert.equal(w.refed, false);
  await thread.close();
  assertNoUnhandled('error reply');
});

for (const when of ['before ready', 'after ready'] as const) {
  for (const how of ['error then exit', 'exit only'] as const) {
    test(`a worker that dies ${when} (${how}) with a merge and a flush in flight: each settles once; orHere reruns them here iff it never got ready`, async () => {
      const f = fakeFactory();
      const thread = new CompactionThread('background', f.make);
      let mergeHere = 0;
      let flushHere = 0;
      const merge = track(
        thread.orHere(
          () => thread.run(MERGE_SPEC),
          async () => {
            mergeHere++;
            return { outputs: [meta(50)], entriesDropped: 0 };
          },
        ),
      );
      const flush = track(
        thread.orHere(
          () => thread.flush(FLUSH_SPEC),
          async () => {
            flushHere++;
            return meta(7);
          },
        ),
      );
      const w = f.last();
      if (when === 'after ready') w.ready();
      if (how === 'error then exit') w.emit('error', new Error('boom'));
      w.die(1);
      // A late reply from the dead worker (already queued when it died) is ignored.
      w.replyOk(w.idOf('flush'), { outputs: [meta(7)], entriesDropped: 0 });
      await Promise.all([merge.done, flush.done]);
      await turn();
      assert.equal(merge.settled(), 1);
      assert.equal(flush.settled(), 1);
      assert.equal(thread.broken, true);
      assert.equal(w.refed, false, 'a dead worker is left unref\'d');
      if (when === 'before ready') {
        assert.equal(mergeHere, 1, 'the merge never ran in the worker: it runs here, once');
        assert.equal(flushHere, 1, 'the flush never ran in the worker: it runs here, once');
        assert.equal(merge.value()?.outputs[0]?.number, 50);
        assert.equal(flush.value()?.number, 7);
      } else {
        assert.equal(mergeHere + flushHere, 0, 'a job that may have run in the worker must not be rerun here');
        assert.equal((merge.error() as { code?: string }).code, 'IO_ERROR');
        assert.equal((flush.error() as { code?: string }).code, 'IO_ERROR');
      }
      // Later jobs run here without starting a worker.
      let later = 0;
      await thread.orHere(
        () => thread.run(MERGE_SPEC),
        async () => {
          later++;
          return { outputs: [], entriesDropped: 0 };
        },
      );
      assert.equal(later, 1);
      assert.equal(f.all.length, 1, 'a broken thread starts no new worker');
      thread.prestart();
      assert.equal(f.all.length, 1, 'prestart of a broken thread starts no worker');
      await thread.close();
      await thread.close();
      assertNoUnhandled(`death ${when}, ${how}`);
    });
  }
}

test('a worker that dies between the two replies: the answered job keeps its result, the other fails with IO_ERROR', async () => {
  for (const firstKind of ['merge', 'flush'] as const) {
    const f = fakeFactory();
    const thread = new CompactionThread('background', f.make);
    const merge = track(thread.run(MERGE_SPEC));
    const flush = track(thread.flush(FLUSH_SPEC));
    const w = f.last();
    w.ready();
    w.replyOk(w.idOf(firstKind), firstKind === 'merge' ? { outputs: [meta(10)], entriesDropped: 0 } : { outputs: [meta(7)], entriesDropped: 0 });
    await turn();
    assert.equal(w.refed, true, 'still ref\'d: the other job is pending');
    w.emit('error', new Error('boom'));
    w.die(1);
    await Promise.all([merge.done, flush.done]);
    const [answered, failed] = firstKind === 'merge' ? [merge, flush] : [flush, merge];
    assert.equal(answered.settled(), 1);
    assert.equal(answered.error(), undefined, `${firstKind}: the answered job was failed afterwards`);
    assert.equal(failed.settled(), 1);
    assert.equal((failed.error() as { code?: string }).code, 'IO_ERROR');
    assert.equal(thread.broken, true);
    await thread.close();
  }
  assertNoUnhandled('death between replies');
});

test('close() with a merge and a flush in flight: both fail once with CLOSED, the worker is ref\'d then terminated once; repeated close is a no-op', async () => {
  const f = fakeFactory();
  const thread = new CompactionThread('background', f.make);
  const merge = track(thread.run(MERGE_SPEC));
  const flush = track(thread.flush(FLUSH_SPEC));
  const w = f.last();
  w.ready();
  const closing = [thread.close(), thread.close(), thread.close()];
  assert.equal(w.refed, true, 'terminate() settles on exit: the worker must be ref\'d until then');
  await Promise.all(closing);
  await Promise.all([merge.done, flush.done]);
  assert.equal(merge.settled(), 1);
  assert.equal(flush.settled(), 1);
  assert.equal((merge.error() as { code?: string }).code, 'CLOSED');
  assert.equal((flush.error() as { code?: string }).code, 'CLOSED');
  assert.equal(w.terminated, 1, 'terminated once');
  // The terminated worker's exit (and any reply it had queued) change nothing.
  w.replyOk(w.idOf('merge'), { outputs: [meta(10)], entriesDropped: 0 });
  await turn();
  assert.equal(merge.settled(), 1);
  assert.equal(thread.broken, false, 'the exit that close() caused is not a failure');
  await assert.rejects(thread.run(MERGE_SPEC), /after close/);
  thread.prestart();
  assert.equal(f.all.length, 1, 'prestart after close starts nothing');
  assertNoUnhandled('close with both in flight');
});

test('the idle-retire timer never retires a worker with a job of either kind pending; prestart with jobs pending starts nothing', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const f = fakeFactory();
    const thread = new CompactionThread('background', f.make);
    thread.prestart();
    const w = f.last();
    assert.equal(w.refed, false, 'a prestarted idle worker is unref\'d');
    w.ready();
    mock.timers.tick(WORKER_IDLE_RETIRE_MS - 1);
    assert.equal(w.terminated, 0);
    const merge = track(thread.run(MERGE_SPEC));
    assert.equal(w.refed, true);
    mock.timers.tick(10 * WORKER_IDLE_RETIRE_MS);
    assert.equal(w.terminated, 0, 'retired with a merge pending');
    const flush = track(thread.flush(FLUSH_SPEC));
    thread.prestart();
    assert.equal(f.all.length, 1, 'prestart started a second worker');
    w.replyOk(w.idOf('merge'), { outputs: [meta(10)], entriesDropped: 0 });
    await merge.done;
    mock.timers.tick(10 * WORKER_IDLE_RETIRE_MS);
    assert.equal(w.terminated, 0, 'retired with a flush pending');
    assert.equal(w.refed, true);
    w.replyOk(w.idOf('flush'), { outputs: [meta(7)], entriesDropped: 0 });
    await flush.done;
    assert.equal(w.refed, false);
    mock.timers.tick(WORKER_IDLE_RETIRE_MS - 1);
    assert.equal(w.terminated, 0, 'retired early');
    mock.timers.tick(1);
    assert.equal(w.terminated, 1, 'an idle worker retires');
    // Its exit is expected: the thread is not broken, and the next job starts a new worker.
    await turn();
    assert.equal(w.exited, true);
    assert.equal(thread.broken, false);
    const merge2 = track(thread.run(MERGE_SPEC));
    assert.equal(f.all.length, 2);
    const w2 = f.last();
    assert.equal(w2.refed, true);
    w2.ready();
    w2.replyOk(w2.idOf('merge'), { outputs: [meta(10)], entriesDropped: 0 });
    await merge2.done;
    assert.equal(merge2.settled(), 1);
    assert.equal(merge2.error(), undefined);
    await thread.close();
  } finally {
    mock.timers.reset();
  }
  assertNoUnhandled('idle retire');
});

test('a retired worker whose replacement fails before ready: the new jobs are start failures (the old worker\'s ready does not count)', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const f = fakeFactory();
    const thread = new CompactionThread('background', f.make);
    const m1 = track(thread.run(MERGE_SPEC));
    const w1 = f.last();
    w1.ready();
    w1.replyOk(w1.idOf('merge'), { outputs: [meta(10)], entriesDropped: 0 });
    await m1.done;
    mock.timers.tick(WORKER_IDLE_RETIRE_MS);
    assert.equal(w1.terminated, 1);
    let here = 0;
    const merge = track(
      thread.orHere(
        () => thread.run(MERGE_SPEC),
        async () => {
          here++;
          return { outputs: [], entriesDropped: 0 };
        },
      ),
    );
    const flush = track(
      thread.orHere(
        () => thread.flush(FLUSH_SPEC),
        async () => {
          here++;
          return meta(7);
        },
      ),
    );
    const w2 = f.last();
    assert.notEqual(w2, w1);
    // The old worker's late messages must not mark the new one ready.
    w1.ready();
    w2.die(1);
    await Promise.all([merge.done, flush.done]);
    assert.equal(here, 2, 'both jobs never ran: both run here');
    assert.equal(merge.error(), undefined);
    assert.equal(flush.error(), undefined);
    await thread.close();
  } finally {
    mock.timers.reset();
  }
  assertNoUnhandled('retired then start failure');
});
