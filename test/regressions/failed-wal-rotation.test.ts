/**
 * Regression: a memtable rotation whose new WAL could not be created (ENOSPC on the header write)
 * left a header-less log behind; after more writes went to the next WAL and power was cut,
 * recovery saw a "torn older WAL followed by a WAL with records" and refused to open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, isLightningError } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';
import { FaultFs, failNth } from '../../src/env/fault-fs.js';
import { Random } from '../../src/util/random.js';

test('a failed WAL creation during rotation leaves nothing that breaks recovery', async () => {
  const mem = new MemFs();
  // Fail the first write to a .log other than the very first WAL: the header of a rotated WAL.
  const fault = failNth(0, 'ENOSPC', (op, path) => op === 'write' && path.endsWith('.log') && !path.endsWith('000002.log'));
  const db = await open('/db', { fs: new FaultFs(mem, fault, { shortWrite: true }), memtableSize: 2048, l0CompactionTrigger: 50, l0SlowdownTrigger: 60, l0StopTrigger: 70 });
  const acked = new Map<string, string>();
  let sawDiskFull = false;
  for (let i = 0; i < 300; i++) {
    try {
      // Crash as soon as a write lands in the WAL after the failed one, before a flush retires it.
      const put = db.put(`k${i % 97}`, `v${i}`, { sync: true });
      if (sawDiskFull) {
        await put;
        acked.set(`k${i % 97}`, `v${i}`);
        break;
      }
      await put;
      acked.set(`k${i % 97}`, `v${i}`);
    } catch (e) {
      assert.ok(isLightningError(e, 'DISK_FULL'), String(e));
      sawDiskFull = true;
    }
  }
  assert.ok(fault.fired, 'the rotated WAL header write failed');
  assert.ok(sawDiskFull);
  // Power cut without close: everything acknowledged with sync must be there.
  // Keep unsynced bytes too (as a process kill would): the half-written header survives.
  const after = await open('/db', { fs: mem.crashClone({ rng: new Random(1), keepUnsyncedProbability: 1 }) });
  for (const [k, v] of acked) assert.equal(after.getSync(k)?.toString(), v, k);
  await after.close();
  await db.close().catch(() => undefined);
});
