/**
 * Reviewer test (session 17, read pacing, ae5e049): the pacer's clock.
 *
 * Fixed in session 17 (monotonic clock in ReadPacer and Database.shareEventLoop).
 * BUG (as found): ReadPacer.due() (src/util/yield.ts) measures "2 ms since the last turn" with Date.now(), the
 * wall clock. When the wall clock steps BACK (NTP step correction, an admin or container setting
 * the time, a VM restored from a snapshot), `now - lastTurnMs` is negative until the clock has
 * caught up again: for that whole time no read is ever paced, and a loop of awaited reads keeps
 * the event loop (timers, sockets, the worker's flush/compaction replies) starved, exactly what
 * the change set out to prevent. A step back of one hour disables pacing for one hour.
 * Expected: pacing keeps working whatever the wall clock does. Suspected fix: a monotonic clock
 * (performance.now(), process.hrtime), or treat a negative elapsed time as "due" and reset.
 * (Database.shareEventLoop, the write-path twin, has the same Date.now() comparison.)
 *
 * The test steps Date.now back by an hour and runs the same "does the event loop turn during a
 * loop of awaited gets" check as test/db/event-loop-share.test.ts. No timing is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

test('BUG: a loop of awaited db.get still lets the event loop turn after the wall clock steps back an hour', async () => {
  const db = await open('/db', { fs: new MemFs(), sync: false });
  await db.put('a', '1');
  const realNow = Date.now;
  try {
    // The wall clock is corrected back by an hour. (Fixed in session 17: the pacer reads
    // performance.now(), so its own last-turn time is left as it is here.)
    Date.now = () => realNow() - 3_600_000;
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    let n = 0;
    const bound = 300_000; // ~100x more reads than normally run before a turn
    while (!turned && n < bound) {
      assert.equal((await db.get('a'))?.toString(), '1');
      n++;
    }
    assert.ok(turned, `the event loop never turned during ${n} awaited gets after the clock stepped back`);
  } finally {
    Date.now = realNow;
    await db.close();
  }
});

test('holds: with a steady clock the same loop turns the event loop', async () => {
  const db = await open('/db', { fs: new MemFs(), sync: false });
  await db.put('a', '1');
  try {
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    let n = 0;
    while (!turned && n < 2_000_000) {
      await db.get('a');
      n++;
    }
    assert.ok(turned);
  } finally {
    await db.close();
  }
});
