/**
 * Power loss at EVERY filesystem operation of a flush followed by a multi-level compaction
 * (Pebble's "fail op i for i = 0, 1, 2, ..." loop): after each cut, the reopened database must hold
 * exactly the acknowledged data, and no file a crash left half-written is ever read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, type OpenOptions } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, countOps } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';
import { CrashAtOp } from '../harness/crash-at-op.js';

const OPTS: OpenOptions = {
  memtableSize: 8 * 1024,
  blockSize: 256,
  levelBaseSize: 16 * 1024,
  levelMultiplier: 2,
  targetFileSize: 8 * 1024,
  l0CompactionTrigger: 100, // only the explicit compactRange compacts: the op sequence is fixed
  l0SlowdownTrigger: 200,
  l0StopTrigger: 300,
};

function key(i: number): string {
  return `key${String(i).padStart(5, '0')}`;
}

/** Durable base state: several L0 tables compacted down, so later compactions merge levels. */
async function baseState(): Promise<{ mem: MemFs; model: Map<string, string> }> {
  const mem = new MemFs();
  const model = new Map<string, string>();
  const db = await open('/db', { ...OPTS, fs: mem });
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 400; i++) {
      const k = key((i * 7 + round * 13) % 600);
      const v = `r${round}-${i}`;
      await db.put(k, v, { sync: false });
      model.set(k, v);
    }
    await db.compactRange();
  }
  await db.close();
  return { mem, model };
}

/** The phase under test: durable writes (memtable + WAL), then flush + compaction of everything. */
async function phase(fs: FaultFs | MemFs, model: Map<string, string>, onAck: () => void = () => undefined): Promise<void> {
  const db = await open('/db', { ...OPTS, fs });
  const batch = [];
  for (let i = 0; i < 300; i++) {
    const k = key((i * 11) % 700);
    if (i % 5 === 0) {
      batch.push({ type: 'del' as const, key: k });
      model.delete(k);
    } else {
      batch.push({ type: 'put' as const, key: k, value: `p-${i}` });
      model.set(k, `p-${i}`);
    }
  }
  await db.batch(batch, { sync: true });
  onAck();
  await db.compactRange();
  await db.close();
}

async function contents(fs: MemFs): Promise<Map<string, string>> {
  const db = await open('/db', { ...OPTS, fs });
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(k.toString(), v.toString());
  await db.close();
  return out;
}

test('power cut at every filesystem operation of flush + compaction loses nothing', async () => {
  const { mem: base, model: baseModel } = await baseState();
  const finalModel = new Map(baseModel);
  const counter = countOps();
  await phase(new FaultFs(base.crashClone(), counter), finalModel);
  const total = counter.count;
  assert.ok(total > 50, `the phase performs many filesystem operations (${total})`);
  const rng = new Random(7);
  let crashedAfterAck = 0;
  for (let i = 1; i <= total; i++) {
    const mem = base.crashClone();
    const crash = new CrashAtOp(mem, i, { rng, tearLastWrite: true });
    const model = new Map(baseModel);
    let ackedBeforeCut = false;
    await phase(new FaultFs(mem, crash), model, () => {
      if (crash.crashed === undefined) ackedBeforeCut = true;
    }).catch(() => undefined);
    const after = crash.crashed ?? mem.crashClone();
    const got = [...(await contents(after)).entries()].sort();
    const full = [...finalModel.entries()].sort();
    const before = [...baseModel.entries()].sort();
    if (ackedBeforeCut) {
      crashedAfterAck++;
      assert.deepEqual(got, full, `cut at op ${i}/${total} after the durable batch was acknowledged: data lost`);
    } else {
      // Not acknowledged: the batch is atomic, so all of it or none of it.
      const isFull = JSON.stringify(got) === JSON.stringify(full);
      assert.ok(isFull || JSON.stringify(got) === JSON.stringify(before), `cut at op ${i}/${total}: partial batch or lost base data`);
    }
  }
  assert.ok(crashedAfterAck > total / 2, 'most cuts happen after the batch was durable (during flush/compaction)');
});
