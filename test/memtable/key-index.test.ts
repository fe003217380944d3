import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyIndex, keyIndexSlots, type KeyNodes } from '../../src/memtable/key-index.js';
import { NIL } from '../../src/memtable/skiplist.js';

/** Nodes are indices into `keys`: a stand-in for the skiplist. */
function nodesOf(keys: string[]): KeyNodes {
  return { userKeyEqualsRange: (node, src, start, end) => keys[node] === Buffer.from(src.subarray(start, end)).toString() };
}

/** What MemTable.addFrom does: find the key's slot, then store the new node there. */
function put(index: KeyIndex, hash: number, node: number, keys: string[], list: KeyNodes): void {
  const key = Buffer.from(keys[node] as string);
  index.store(index.slotOf(hash, key, 0, key.length, list), hash, node);
}

test('key index: the last put of a key wins; colliding hashes and unsigned hashes are told apart', () => {
  const keys = ['a', 'b', 'a', 'c', 'b', 'a'];
  const list = nodesOf(keys);
  const index = new KeyIndex(1024, null);
  // Every key gets the same (unsigned, > 2^31) hash: one probe chain.
  const hash = 0xdeadbeef;
  keys.forEach((_, node) => put(index, hash, node, keys, list));
  assert.equal(index.find(hash, Buffer.from('a'), list), 5);
  assert.equal(index.find(hash, Buffer.from('b'), list), 4);
  assert.equal(index.find(hash, Buffer.from('c'), list), 3);
  assert.equal(index.find(hash, Buffer.from('d'), list), NIL);
  assert.equal(index.find(hash ^ 1, Buffer.from('a'), list), NIL, 'another hash: another chain');
  assert.equal(index.complete, true);
});

test('key index: full at three quarters, it keeps what it has and says it is incomplete; reuse starts empty', () => {
  const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
  const list = nodesOf(keys);
  const index = new KeyIndex(1024, null);
  keys.forEach((_, node) => put(index, Math.imul(node, 0x9e3779b1) >>> 0, node, keys, list));
  assert.equal(index.complete, false);
  let held = 0;
  keys.forEach((k, node) => {
    const got = index.find(Math.imul(node, 0x9e3779b1) >>> 0, Buffer.from(k), list);
    if (got !== NIL) {
      assert.equal(got, node);
      held++;
    }
  });
  assert.equal(held, 768);
  // A newer version of a held key still replaces it when full.
  keys.push('k0');
  const k0Hash = Math.imul(0, 0x9e3779b1) >>> 0;
  assert.equal(index.find(k0Hash, Buffer.from('k0'), list), 0, 'k0 was among the first keys, so it is held');
  put(index, k0Hash, 1000, keys, list);
  assert.equal(index.find(k0Hash, Buffer.from('k0'), list), 1000);
  const reused = new KeyIndex(1024, index.storage());
  assert.equal(reused.find(k0Hash, Buffer.from('k0'), list), NIL, 'a reused index starts empty');
  assert.equal(reused.complete, true);
  assert.equal(new KeyIndex(2048, index.storage()).find(k0Hash, Buffer.from('k0'), list), NIL, 'other sizes allocate');
});

test('key index size follows the memtable capacity, bounded', () => {
  assert.equal(keyIndexSlots(0), 1024);
  assert.equal(keyIndexSlots(16 * 1024 * 1024), 262_144);
  assert.equal(keyIndexSlots(2 ** 40), 1 << 22);
});
