/**
 * Review (session 12) of TableBuilder's module-level spare buffers (staging, index block): random
 * interleavings of many live builders with adds, finishes, abandons (also after failed adds and
 * failed finishes, twice), must (1) never let two live builders share a staging or index buffer,
 * and (2) produce tables byte-identical to the same table built by a fresh module instance (no
 * pooling history), which also catches any reliance on zeroed buffers. Readers then check every
 * table reads back exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableBuilder, type TableBuilderOptions, type TableInfo } from '../../src/sstable/table-builder.js';
import { TableReader } from '../../src/sstable/table-reader.js';
import { makeInternalKey, KIND_DELETE, KIND_VALUE } from '../../src/base/internal-key.js';
import { Random } from '../../src/util/random.js';
import { invariants } from '../../src/util/assert.js';
import { testSeed } from '../harness/seed.js';
import { BufferFile, FailingFile } from '../sstable/buffer-file.js';

invariants.enabled = true;

type TB = typeof TableBuilder;
/** A second instance of table-builder.js: its own (empty) spares. */
async function freshBuilderClass(tag: string): Promise<TB> {
  const url = new URL('../../src/sstable/table-builder.js', import.meta.url).href + `?fresh=${tag}`;
  const mod = (await import(url)) as { TableBuilder: TB };
  return mod.TableBuilder;
}

interface Entry {
  key: Buffer;
  value: Buffer;
}

function makeEntries(rng: Random, n: number, valueMax: number): Entry[] {
  const out: Entry[] = [];
  let user = rng.nextInt(1000);
  for (let i = 0; i < n; i++) {
    user += 1 + rng.nextInt(3);
    const u = Buffer.from(`key${String(user).padStart(9, '0')}${'k'.repeat(rng.nextInt(40))}`);
    const seq = 1 + rng.nextInt(1_000_000);
    const value = Buffer.allocUnsafe(rng.nextInt(valueMax + 1));
    // Compressible some of the time (LZ path), random otherwise.
    if (rng.nextInt(2) === 0) value.fill(rng.nextInt(256));
    else for (let j = 0; j < value.length; j++) value[j] = rng.nextInt(256);
    out.push({ key: makeInternalKey(u, seq, rng.nextInt(6) === 0 ? KIND_DELETE : KIND_VALUE), value });
  }
  return out;
}

function randomOpts(rng: Random): TableBuilderOptions {
  const blocks = [64, 256, 1024, 4096, 16384, 100_000];
  return {
    blockSizeBytes: blocks[rng.nextInt(blocks.length)] as number,
    bloomBitsPerKey: rng.nextInt(3) === 0 ? 0 : 1 + rng.nextInt(20),
    restartInterval: 1 + rng.nextInt(20),
    compression: rng.nextInt(2) === 0 ? 'lz' : 'none',
  };
}

function buffersOf(b: TableBuilder): Buffer[] {
  const x = b as unknown as { staging: Buffer; indexBlock: { buf: Buffer } };
  return [x.staging, x.indexBlock.buf];
}

interface Live {
  id: number;
  builder: TableBuilder;
  file: BufferFile;
  entries: Entry[];
  next: number;
  opts: TableBuilderOptions;
  failed: boolean;
}

test('builder pool: random interleavings keep buffers private and tables byte-identical', async () => {
  const seed = testSeed();
  const Fresh = await freshBuilderClass(String(seed));
  const rng = new Random(seed);
  const ctx = (s: string): string => `SEED=${seed}: ${s}`;
  let nextId = 0;
  const live: Live[] = [];
  let finished = 0;
  let failedFinishes = 0;
  const spawn = (): void => {
    const opts = randomOpts(rng);
    const entries = makeEntries(rng, 1 + rng.nextInt(rng.nextInt(4) === 0 ? 3000 : 300), rng.nextInt(3) === 0 ? 20000 : 200);
    // A third of the files fail after some writes (during add() or finish()).
    const file = rng.nextInt(3) === 0 ? new FailingFile(rng.nextInt(6), rng.nextInt(2) === 0 ? 'EIO' : 'ENOSPC') : new BufferFile(`t${nextId}.sst`);
    live.push({ id: nextId++, builder: new TableBuilder(file, opts), file, entries, next: 0, opts, failed: false });
  };
  const checkPrivate = (step: number): void => {
    const owner = new Map<Buffer, number>();
    for (const l of live) {
      if (l.failed) continue; // a failed builder may still hold buffers, but only until abandoned
      for (const b of buffersOf(l.builder)) {
        if (b.length === 0) continue;
        const other = owner.get(b);
        assert.ok(other === undefined || other === l.id, ctx(`step ${step}: builders ${other} and ${l.id} share a buffer`));
        owner.set(b, l.id);
      }
    }
  };
  const reference = (l: Live): Buffer => {
    const f = new BufferFile('ref.sst');
    const b = new Fresh(f, l.opts);
    for (const e of l.entries) b.add(e.key, e.value);
    b.finish();
    return f.contents();
  };
  const verify = (l: Live, info: TableInfo): void => {
    const want = reference(l);
    const got = l.file.contents();
    assert.equal(got.length, want.length, ctx(`table ${l.id}: size`));
    assert.ok(got.equals(want), ctx(`table ${l.id}: bytes differ from a fresh builder's`));
    const r = TableReader.open(l.file, l.id + 1, info.fileSizeBytes, null);
    const it = r.iterator();
    let i = 0;
    for (it.first(); it.valid(); it.next(), i++) {
      const e = l.entries[i] as Entry;
      assert.ok(it.key().equals(e.key), ctx(`table ${l.id}: key ${i}`));
      assert.ok(it.value().equals(e.value), ctx(`table ${l.id}: value ${i}`));
    }
    it.close();
    r.close();
    assert.equal(i, l.entries.length, ctx(`table ${l.id}: entry count`));
  };

  for (let step = 0; step < 3000; step++) {
    if (live.length === 0 || (live.length < 6 && rng.nextInt(8) === 0)) spawn();
    const idx = rng.nextInt(live.length);
    const l = live[idx] as Live;
    const r = rng.nextInt(100);
    if (l.failed || r < 2) {
      // Abandon (after a failure, or midway), sometimes twice.
      l.builder.abandon();
      if (rng.nextInt(2) === 0) l.builder.abandon();
      if (l.failed && rng.nextInt(2) === 0) {
        assert.throws(() => l.builder.finish(), /./, ctx('finish after abandon'));
      }
      live.splice(idx, 1);
    } else if (l.next === l.entries.length) {
      try {
        const info = l.builder.finish();
        live.splice(idx, 1);
        finished++;
        verify(l, info);
      } catch (e) {
        assert.ok(l.file instanceof FailingFile, ctx(`finish of a healthy file threw ${String(e)}`));
        l.failed = true;
        failedFinishes++;
        // finish() again must throw the same failure, not release anything.
        assert.throws(() => l.builder.finish(), /./, ctx('second finish after failure'));
      }
    } else {
      const n = 1 + rng.nextInt(200);
      for (let k = 0; k < n && l.next < l.entries.length; k++) {
        const e = l.entries[l.next] as Entry;
        try {
          l.builder.add(e.key, e.value);
          l.next++;
        } catch (err) {
          assert.ok(l.file instanceof FailingFile, ctx(`add to a healthy file threw ${String(err)}`));
          l.failed = true;
          break;
        }
      }
    }
    checkPrivate(step);
  }
  for (const l of live) l.builder.abandon();
  assert.ok(finished > 20, ctx(`only ${finished} tables finished`));
  assert.ok(failedFinishes > 0 || finished > 0, ctx('nothing exercised'));
});

test('builder pool: spares poisoned by huge, failed and abandoned builders do not leak into new tables', async () => {
  const seed = testSeed();
  const Fresh = await freshBuilderClass(`p${seed}`);
  const rng = new Random(seed ^ 0x5a5a);
  for (let round = 0; round < 30; round++) {
    // Poison: builders with big blocks fill staging (grown up to ~4 MiB) and index buffers.
    const poisonOpts: TableBuilderOptions = { blockSizeBytes: 1 + rng.nextInt(3) === 1 ? 1_000_000 : 64, bloomBitsPerKey: 10 };
    const poison: TableBuilder[] = [];
    for (let p = 0; p < 3; p++) {
      const f = rng.nextInt(2) === 0 ? new FailingFile(rng.nextInt(4), 'EIO') : new BufferFile('poison.sst');
      const b = new TableBuilder(f, poisonOpts);
      poison.push(b);
      const es = makeEntries(rng, 1 + rng.nextInt(2000), rng.nextInt(2) === 0 ? 3000 : 50);
      let ok = true;
      for (const e of es) {
        try {
          b.add(e.key, e.value);
        } catch {
          ok = false;
          break;
        }
      }
      if (ok && rng.nextInt(2) === 0) {
        try {
          b.finish();
          continue;
        } catch {
          /* failed finish: abandon below */
        }
      }
      b.abandon();
    }
    const opts = randomOpts(rng);
    const entries = makeEntries(rng, 1 + rng.nextInt(1500), 300);
    const got = new BufferFile('got.sst');
    const b = new TableBuilder(got, opts);
    for (const e of entries) b.add(e.key, e.value);
    b.finish();
    const want = new BufferFile('want.sst');
    const w = new Fresh(want, opts);
    for (const e of entries) w.add(e.key, e.value);
    w.finish();
    assert.ok(got.contents().equals(want.contents()), `SEED=${seed} round ${round}: table bytes depend on spare history`);
  }
});
