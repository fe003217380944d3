/**
 * Regression (found by review): the forward iterator compared each entry with the key it had
 * just handed to the caller to skip older versions of it; a caller mutating that key (it owns it)
 * made the iterator return an older version of the same key. The skip key is now its own copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from '../../src/index.js';
import { MemFs } from '../../src/env/mem-fs.js';

test('mutating keys and values returned by an iterator does not change what it returns next', async () => {
  const mem = new MemFs();
  const db = await open('/db', { fs: mem, memtableSize: 1024 });
  try {
    for (let round = 0; round < 3; round++) {
      for (const key of ['a', 'b', 'c']) await db.put(key, `${key}${round}`);
      if (round === 1) await db.compactRange(); // versions both in tables and in the memtable
    }
    await db.delete('b');
    for (const reverse of [false, true]) {
      const seen: [string, string][] = [];
      for (const [k, v] of db.iterator({ reverse })) {
        seen.push([k.toString(), v.toString()]);
        k.fill(0x7a);
        v.fill(0x7a);
      }
      const want: [string, string][] = [['a', 'a2'], ['c', 'c2']];
      assert.deepEqual(seen, reverse ? want.reverse() : want, `reverse ${reverse}`);
    }
  } finally {
    await db.close();
  }
});
