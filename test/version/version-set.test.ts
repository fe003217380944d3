import { test } from 'node:test';
import assert from 'node:assert/strict';

import { isLightningError, type ErrorCode } from '../../src/base/errors.js';
import { CURRENT_FILE, manifestFileName } from '../../src/base/file-names.js';
import {
  FaultFs,
  failWhile,
  opIn,
  type FaultInjector,
  type FaultOp,
} from '../../src/env/fault-fs.js';
import { MemFs, type CrashOptions } from '../../src/env/mem-fs.js';
import { invariants } from '../../src/util/assert.js';
import { Random } from '../../src/util/random.js';
import { encodeCurrent } from '../../src/version/current-file.js';
import { VersionEdit } from '../../src/version/version-edit.js';
import { VersionSet, type VersionSetOptions } from '../../src/version/version-set.js';
import { fileMeta } from './meta.js';

// Deep Version checks (metadata, unique numbers) on every installed version.
invariants.enabled = true;

const DIR = '/db';
const CURRENT = `${DIR}/${CURRENT_FILE}`;

function newFs(): MemFs {
  const fs = new MemFs();
  fs.mkdir(DIR);
  return fs;
}

const hasCode = (code: ErrorCode) => (e: unknown) => isLightningError(e, code);

/** Everything a restart must preserve. */
function stateOf(vs: VersionSet): string {
  return `${vs.current().describe()}\nlog=${vs.logNumber()} last=${vs.lastSequence()}`;
}

async function recoveredState(fs: MemFs, options: VersionSetOptions = {}): Promise<string> {
  const vs = await VersionSet.recover(fs, DIR, options);
  const state = stateOf(vs);
  await vs.close();
  return state;
}

function manifests(fs: MemFs): string[] {
  return fs.readdir(DIR).filter((n) => n.startsWith('MANIFEST-'));
}

/** A flush: one new L0 table holding `keys`, and the WAL before `logNumber` retired. */
function flushEdit(vs: VersionSet, lo: string, hi: string, seq: number): VersionEdit {
  const edit = new VersionEdit();
  const number = vs.newFileNumber();
  edit.addFile(0, fileMeta(number, lo, hi, seq, seq + 9));
  edit.logNumber = vs.newFileNumber();
  edit.lastSequence = seq + 9;
  return edit;
}

/** A compaction: every L0 and L1 file into one L1 file. */
function compactEdit(vs: VersionSet): VersionEdit {
  const edit = new VersionEdit();
  for (const level of [0, 1]) {
    for (const f of vs.current().files(level)) edit.deleteFile(level, f.number);
  }
  edit.addFile(1, fileMeta(vs.newFileNumber(), 'a', 'z', 1, vs.lastSequence()));
  return edit;
}

async function populated(fs: MemFs, options: VersionSetOptions = {}): Promise<VersionSet> {
  const vs = await VersionSet.create(fs, DIR, options);
  await vs.logAndApply(flushEdit(vs, 'a', 'f', 1));
  await vs.logAndApply(flushEdit(vs, 'c', 'k', 11));
  await vs.logAndApply(compactEdit(vs));
  await vs.logAndApply(flushEdit(vs, 'm', 'q', 21));
  return vs;
}

test('create writes MANIFEST-000001 and a checksummed CURRENT', async () => {
  const fs = newFs();
  const vs = await VersionSet.create(fs, DIR);
  assert.equal(vs.manifestFileNumber(), 1);
  assert.equal(vs.peekNextFileNumber(), 2);
  assert.deepEqual(fs.readdir(DIR), ['CURRENT', 'MANIFEST-000001']);
  assert.equal(fs.readFileRaw(CURRENT).toString('latin1').split('\n')[0], 'MANIFEST-000001');
  assert.deepEqual(fs.readFileRaw(CURRENT), encodeCurrent(1));
  await vs.close();
  await assert.rejects(VersionSet.create(fs, DIR), hasCode('ALREADY_EXISTS'));
  // Durable: a power cut right after create keeps it.
  assert.equal(await recoveredState(fs.crashClone()), '(empty)\nlog=0 last=0');
});

test('logAndApply then recover reproduces the state and starts a fresh manifest', async () => {
  const fs = newFs();
  const vs = await populated(fs);
  const state = stateOf(vs);
  assert.match(
    state,
    /^0: 000007\[m#30,SET-q#21,SET\]\n1: 000006\[a#20,SET-z#1,SET\]\nlog=8 last=30$/,
  );
  assert.deepEqual(
    [...vs.liveFileNumbers()].sort((a, b) => a - b),
    [6, 7],
  );
  await vs.close();

  const again = await VersionSet.recover(fs.crashClone(), DIR);
  assert.equal(stateOf(again), state);
  assert.equal(again.manifestFileNumber(), 9, 'new manifest takes the next number');
  assert.equal(again.peekNextFileNumber(), 10);
  await again.close();

  const recovered = await VersionSet.recover(fs, DIR);
  assert.deepEqual(manifests(fs), ['MANIFEST-000009'], 'old manifest deleted');
  assert.deepEqual(fs.readFileRaw(CURRENT), encodeCurrent(9));
  // The new manifest is one snapshot record; further edits append to it.
  await recovered.logAndApply(flushEdit(recovered, 'r', 's', 31));
  const after = stateOf(recovered);
  await recovered.close();
  assert.equal(await recoveredState(fs.crashClone()), after);
});

test('logAndApply fills in nextFileNumber and lastSequence', async () => {
  const fs = newFs();
  const vs = await VersionSet.create(fs, DIR);
  vs.setLastSequence(41);
  const edit = new VersionEdit();
  edit.addFile(0, fileMeta(vs.newFileNumber(), 'a', 'b', 40, 41));
  await vs.logAndApply(edit);
  assert.equal(edit.nextFileNumber, 3);
  assert.equal(edit.lastSequence, 41);
  vs.markFileNumberUsed(20);
  assert.equal(vs.newFileNumber(), 21);
  await vs.close();
  assert.equal(await recoveredState(fs), `0: 000002[a#41,SET-b#40,SET]\nlog=0 last=41`);
});

test('concurrent edits are queued and all commit in call order', async () => {
  const fs = newFs();
  const vs = await VersionSet.create(fs, DIR);
  const edits = Array.from({ length: 30 }, (_, i) => flushEdit(vs, 'a', 'b', 1 + i * 10));
  const pending = edits.map((e) => vs.logAndApply(e));
  const closing = vs.close(); // Edits queued before close() still commit.
  await Promise.all(pending);
  await closing;
  assert.equal(vs.current().files(0).length, 30);
  assert.equal(vs.logNumber(), edits[29]?.logNumber);
  const state = stateOf(vs);
  assert.equal(await recoveredState(fs.crashClone()), state);
  await assert.rejects(vs.logAndApply(new VersionEdit()), hasCode('CLOSED'));
});

test('a large manifest rolls over to a snapshot manifest', async () => {
  const fs = newFs();
  const vs = await VersionSet.create(fs, DIR, { manifestRollBytes: 400 });
  const seen = new Set<number>();
  for (let i = 0; i < 40; i++) {
    await vs.logAndApply(flushEdit(vs, 'a', 'b', 1 + i * 10));
    seen.add(vs.manifestFileNumber());
    if (i % 5 === 4) await vs.logAndApply(compactEdit(vs));
    assert.deepEqual(manifests(fs), [manifestFileName(vs.manifestFileNumber())]);
    assert.ok(fs.stat(`${DIR}/${manifestFileName(vs.manifestFileNumber())}`).size < 1200);
  }
  assert.ok(seen.size > 3, `rolled ${seen.size} times`);
  const state = stateOf(vs);
  await vs.close();
  assert.equal(await recoveredState(fs.crashClone()), state);
});

test('readOnly recovery writes nothing and refuses edits', async () => {
  const fs = newFs();
  const vs = await populated(fs);
  const state = stateOf(vs);
  await vs.close();
  const before = fs.listAll().map((p) => [p, fs.readFileRaw(p)]);
  const ro = await VersionSet.recover(fs, DIR, { readOnly: true });
  assert.equal(stateOf(ro), state);
  await assert.rejects(ro.logAndApply(new VersionEdit()), hasCode('READ_ONLY'));
  await ro.close();
  assert.deepEqual(
    fs.listAll().map((p) => [p, fs.readFileRaw(p)]),
    before,
  );
});

test('a torn last edit in the manifest is ignored; damage before it is CORRUPTION', async () => {
  const fs = newFs();
  const vs = await populated(fs);
  const manifest = `${DIR}/${manifestFileName(vs.manifestFileNumber())}`;
  const oldState = stateOf(vs);
  const before = fs.readFileRaw(manifest).length;
  await vs.logAndApply(flushEdit(vs, 's', 't', 31));
  await vs.close();
  const full = fs.readFileRaw(manifest);
  for (let cut = before + 1; cut < full.length; cut++) {
    const torn = fs.crashClone();
    torn.writeFileRaw(manifest, full.subarray(0, cut));
    assert.equal(await recoveredState(torn, { readOnly: true }), oldState, `cut=${cut}`);
    assert.equal(await recoveredState(torn), oldState, `cut=${cut}`);
  }
  for (let i = 0; i < before; i += 7) {
    const damaged = fs.crashClone();
    damaged.flipByte(manifest, i);
    await assert.rejects(VersionSet.recover(damaged, DIR), hasCode('CORRUPTION'), `byte ${i}`);
  }
});

test('a bad or missing CURRENT is CORRUPTION (or NOT_FOUND when there is none)', async () => {
  const fs = newFs();
  const vs = await populated(fs);
  await vs.close();
  const current = fs.readFileRaw(CURRENT);
  for (let i = 0; i < current.length; i++) {
    for (const mask of [0x01, 0x20, 0xff]) {
      const bad = fs.crashClone();
      bad.flipByte(CURRENT, i, mask);
      await assert.rejects(VersionSet.recover(bad, DIR), hasCode('CORRUPTION'), `byte ${i}`);
    }
  }
  for (let cut = 0; cut < current.length; cut++) {
    const bad = fs.crashClone();
    bad.writeFileRaw(CURRENT, current.subarray(0, cut));
    await assert.rejects(VersionSet.recover(bad, DIR), hasCode('CORRUPTION'), `cut ${cut}`);
  }
  const extra = fs.crashClone();
  extra.writeFileRaw(CURRENT, Buffer.concat([current, Buffer.from('x')]));
  await assert.rejects(VersionSet.recover(extra, DIR), hasCode('CORRUPTION'));

  const missingManifest = fs.crashClone();
  missingManifest.writeFileRaw(CURRENT, encodeCurrent(77));
  await assert.rejects(VersionSet.recover(missingManifest, DIR), hasCode('CORRUPTION'));

  const wrongNumber = fs.crashClone();
  wrongNumber.writeFileRaw(
    `${DIR}/MANIFEST-000077`,
    wrongNumber.readFileRaw(`${DIR}/MANIFEST-000001`),
  );
  wrongNumber.writeFileRaw(CURRENT, encodeCurrent(77));
  await assert.rejects(VersionSet.recover(wrongNumber, DIR), hasCode('CORRUPTION'));

  const none = fs.crashClone();
  none.unlink(CURRENT);
  await assert.rejects(VersionSet.recover(none, DIR), hasCode('NOT_FOUND'));
});

test('recovering with another comparator is INVALID_ARGUMENT', async () => {
  const fs = newFs();
  await (await VersionSet.create(fs, DIR)).close();
  await assert.rejects(
    VersionSet.recover(fs, DIR, { comparatorName: 'reverse' }),
    hasCode('INVALID_ARGUMENT'),
  );
});

const manifestOps = (ops: FaultOp[]) => (op: FaultOp, path: string) =>
  ops.includes(op) && path.includes('MANIFEST-');

for (const [name, ops, code] of [
  ['sync', ['sync'], 'IO_ERROR'],
  ['write', ['write'], 'IO_ERROR'],
] as const) {
  test(`a failed manifest ${name} leaves the version unchanged; the next edit rolls to a fresh manifest`, async () => {
    const mem = newFs();
    const injector = failWhile(manifestOps([...ops]));
    injector.enabled = false;
    const fs = new FaultFs(mem, injector);
    const vs = await populated(mem);
    await vs.close();
    const reopened = await VersionSet.recover(fs, DIR);
    const oldState = stateOf(reopened);
    const oldManifest = reopened.manifestFileNumber();
    const edit = flushEdit(reopened, 'x', 'y', 31);
    const added = edit.newFiles[0]?.meta.number ?? -1;
    injector.enabled = true;
    await assert.rejects(reopened.logAndApply(edit), hasCode(code));
    injector.enabled = false;
    assert.equal(stateOf(reopened), oldState, 'in-memory version unchanged');
    assert.ok(reopened.liveFileNumbers().has(added), 'maybe-committed file stays live');
    assert.ok(reopened.failed() !== undefined);
    // A crash now may or may not find the failed edit: either state is consistent.
    const between = await recoveredState(mem.crashClone());
    assert.ok(between === oldState || between.includes('x#40,SET'), between);
    // The next edit does not append after the unknown tail: it starts a new manifest.
    await reopened.logAndApply(flushEdit(reopened, 'z', 'z', 41));
    assert.equal(reopened.failed(), undefined);
    assert.notEqual(reopened.manifestFileNumber(), oldManifest);
    const expected = stateOf(reopened);
    assert.ok(expected.includes('z#50,SET') || expected.includes('z#'), expected);
    assert.ok(!expected.includes('x#40,SET'), 'the failed edit is not in the new manifest');
    await reopened.close();
    assert.equal(await recoveredState(mem.crashClone()), expected);
  });
}

test('a full disk during manifest write is DISK_FULL', async () => {
  const mem = newFs();
  const vs0 = await populated(mem);
  await vs0.close();
  const injector = failWhile(manifestOps(['write']), 'ENOSPC');
  injector.enabled = false;
  const vs = await VersionSet.recover(new FaultFs(mem, injector), DIR);
  injector.enabled = true;
  await assert.rejects(vs.logAndApply(flushEdit(vs, 'x', 'y', 31)), hasCode('DISK_FULL'));
  await vs.close();
});

/** Captures what a power cut before each mutating filesystem operation would leave. */
class CrashRecorder implements FaultInjector {
  readonly images: MemFs[] = [];
  private readonly mem: MemFs;
  private readonly crash: () => CrashOptions;

  constructor(mem: MemFs, crash: () => CrashOptions = () => ({})) {
    this.mem = mem;
    this.crash = crash;
  }

  maybeFail(op: FaultOp): null {
    if (opIn('open', 'write', 'sync', 'truncate', 'rename', 'unlink', 'syncDir')(op, '')) {
      this.images.push(this.mem.crashClone(this.crash()));
    }
    return null;
  }
}

const crashModes: [string, (rng: Random) => CrashOptions][] = [
  ['synced only', () => ({})],
  ['torn unsynced', (rng) => ({ rng, tearLastWrite: true, keepUnsyncedProbability: 0.3 })],
];

/**
 * Runs `step` on a VersionSet over a recording FileSystem and checks that a crash before any
 * operation of it recovers to the state before or the state after, never anything else.
 */
async function checkCrashAtEveryStep(
  options: VersionSetOptions,
  step: (vs: VersionSet) => Promise<void>,
): Promise<void> {
  for (const [mode, crashOptions] of crashModes) {
    const mem = newFs();
    const base = await populated(mem, options);
    const oldState = stateOf(base);
    await base.close();
    const rng = new Random(42);
    const recorder = new CrashRecorder(mem, () => crashOptions(rng));
    const vs = await VersionSet.recover(new FaultFs(mem, recorder), DIR, options);
    const firstImage = recorder.images.length;
    await step(vs);
    const newState = stateOf(vs);
    await vs.close();
    assert.notEqual(newState, oldState);
    const images = [...recorder.images.slice(firstImage), mem.crashClone()];
    const outcomes = new Set<string>();
    for (const [i, image] of images.entries()) {
      const got = await recoveredState(image, options);
      assert.ok(got === oldState || got === newState, `${mode} image ${i}:\n${got}`);
      outcomes.add(got === oldState ? 'old' : 'new');
      // Recovery itself must leave a recoverable state behind.
      assert.equal(await recoveredState(image.crashClone()), got, `${mode} image ${i} twice`);
    }
    assert.ok(outcomes.has('old') && outcomes.has('new'), `${mode}: both outcomes reachable`);
    assert.equal(await recoveredState(images[images.length - 1] ?? newFs()), newState);
  }
}

test('a crash at any step of logAndApply recovers the old or the new state', async () => {
  await checkCrashAtEveryStep({}, async (vs) => {
    await vs.logAndApply(compactEdit(vs));
  });
});

test('a crash at any step of a manifest roll recovers the old or the new state', async () => {
  await checkCrashAtEveryStep({ manifestRollBytes: 1 }, async (vs) => {
    const before = vs.manifestFileNumber();
    await vs.logAndApply(flushEdit(vs, 'r', 't', 31));
    assert.notEqual(vs.manifestFileNumber(), before, 'rolled');
  });
});

test('a crash at any step of recovery (the CURRENT switch) keeps the recovered state', async () => {
  for (const [mode, crashOptions] of crashModes) {
    const mem = newFs();
    const vs0 = await populated(mem);
    const state = stateOf(vs0);
    await vs0.close();
    const rng = new Random(7);
    const recorder = new CrashRecorder(mem, () => crashOptions(rng));
    await (await VersionSet.recover(new FaultFs(mem, recorder), DIR)).close();
    assert.ok(recorder.images.length >= 6, 'recovery writes manifest, CURRENT.tmp, renames, syncs');
    for (const [i, image] of recorder.images.entries()) {
      assert.equal(await recoveredState(image), state, `${mode} image ${i}`);
    }
  }
});

test('a crash at any step of create leaves no database or an empty one', async () => {
  const mem = newFs();
  const recorder = new CrashRecorder(mem);
  await (await VersionSet.create(new FaultFs(mem, recorder), DIR)).close();
  let created = 0;
  for (const image of [...recorder.images, mem.crashClone()]) {
    if (!image.exists(CURRENT)) {
      await assert.rejects(VersionSet.recover(image, DIR), hasCode('NOT_FOUND'));
      // The DB then creates again over any leftover manifest.
      await (await VersionSet.create(image, DIR)).close();
    } else {
      created++;
    }
    assert.equal(await recoveredState(image), '(empty)\nlog=0 last=0');
  }
  assert.equal(created, 1, 'only the final image has CURRENT');
});

test('released versions drop out of liveFileNumbers and notify the owner', async () => {
  const fs = newFs();
  let released = 0;
  const vs = await VersionSet.create(fs, DIR, { onVersionReleased: () => released++ });
  await vs.logAndApply(flushEdit(vs, 'a', 'b', 1));
  const pinned = vs.current();
  pinned.ref();
  const released0 = released;
  await vs.logAndApply(compactEdit(vs));
  const l0File = pinned.files(0)[0]?.number ?? -1;
  assert.ok(vs.liveFileNumbers().has(l0File), 'pinned version keeps its files live');
  assert.equal(released, released0);
  pinned.unref();
  assert.equal(released, released0 + 1);
  assert.ok(!vs.liveFileNumbers().has(l0File));
  await vs.close();
});
