/**
 * Option inlineSync: durable commits fdatasync on the event-loop thread. The writes are as durable
 * as with the thread pool (test/crash/kill.test.ts kills a child in both modes); here: the option is
 * validated, every durable group still syncs, concurrent writers still share a sync, and the data
 * reads back after reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from '../../src/index.js';
import { assertLightning } from '../harness/api-helpers.js';

test('inlineSync: validated, syncs every durable group, group commit intact, data survives reopen', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-inline-sync-'));
  try {
    await assert.rejects(open(dir, { inlineSync: 'yes' as unknown as boolean }), (e: unknown) => {
      assertLightning(e, 'INVALID_ARGUMENT');
      return true;
    });
    const db = await open(dir, { inlineSync: true });
    for (let i = 0; i < 20; i++) await db.put(`a${i}`, `v${i}`);
    assert.equal(db.stats().writes.walSyncs, 20);
    // 16 concurrent durable writers: fewer syncs than writes.
    await Promise.all(Array.from({ length: 16 }, (_, i) => db.put(`b${i}`, `w${i}`)));
    const syncs = db.stats().writes.walSyncs - 20;
    assert.ok(syncs >= 1 && syncs < 16, `16 concurrent writes took ${syncs} syncs`);
    await db.put('c', 'lazy', { sync: false });
    await db.close();
    const again = await open(dir);
    for (let i = 0; i < 20; i++) assert.equal(again.getSync(`a${i}`)?.toString(), `v${i}`);
    for (let i = 0; i < 16; i++) assert.equal(again.getSync(`b${i}`)?.toString(), `w${i}`);
    assert.equal(again.getSync('c')?.toString(), 'lazy');
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
