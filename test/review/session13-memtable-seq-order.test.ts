/**
 * Review (session 13): MemTable.add of an OLDER version of a key (a lower sequence number than a
 * version already there) once the key index exists. Before the index, the skiplist sorted such an
 * insert into place and every read stayed right; with it, `addFrom` takes the index's node as the
 * newest version unconditionally:
 *   - height-1 inserts are linked in before it (SkipList.linkBefore): level 0 leaves internal-key
 *     order (an AssertionError only when invariants are enabled);
 *   - every insert is stored as the key's newest node: get at MAX_SEQ and newestSeq return the
 *     older version.
 * The Database always inserts in ascending sequence order (one group commit at a time; WAL replay
 * checks order), so this is not reachable through the public API; it is an unchecked precondition
 * that key-index.ts states and MemTable.add does not (no assertion guards it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemTable } from '../../src/memtable/memtable.js';
import { KIND_VALUE, MAX_SEQ } from '../../src/base/internal-key.js';
import { invariants } from '../../src/util/assert.js';

test('session13 seq order: an older version added after the index exists leaves reads and order as without the index', () => {
  invariants.enabled = false;
  for (const withIndex of [false, true]) {
    const m = new MemTable(1, 0);
    const k = Buffer.from('k');
    m.add(10, KIND_VALUE, k, Buffer.from('v10'));
    if (withIndex) for (let i = 0; i < 256; i++) m.get(k, MAX_SEQ);
    for (let s = 9; s >= 1; s--) m.add(s, KIND_VALUE, k, Buffer.from(`v${s}`));
    const what = withIndex ? 'with the index' : 'without the index';
    const r = m.get(k, MAX_SEQ);
    assert.ok(r.found && !r.deleted);
    assert.equal(r.value.toString(), 'v10', `${what}: get at MAX_SEQ`);
    assert.equal(m.newestSeq(k), 10, `${what}: newestSeq`);
    const it = m.iterator();
    const seqs: number[] = [];
    for (it.first(); it.valid(); it.next()) seqs.push(Math.floor(it.key().readUInt32LE(1) / 256) + it.key().readUInt32LE(5) * 2 ** 24);
    it.close();
    assert.deepEqual(seqs, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], `${what}: level-0 order`);
  }
});
