/**
 * Point reads in SSTables: L0 files newest first (they overlap), then at most one file per deeper
 * level. A table whose key range or bloom filter excludes the key costs no disk read.
 */
import { KIND_DELETE, KIND_SEEK, MAX_SEQ, TRAILER_BYTES, compareBytes, compareUserKeyOf, kindOfTrailer, putTrailer, seqOfTrailer, trailerOf } from '../base/internal-key.js';
import type { Version } from '../version/version.js';
import type { FileMetadata } from '../version/file-metadata.js';
import { NUM_LEVELS } from '../version/file-metadata.js';
import type { TableCache } from './table-cache.js';
import { BlockPointSearch } from '../sstable/block-point-search.js';
import { bloomHash } from '../sstable/bloom-filter.js';
import { copyBytes, copyOfRange } from '../util/copy-bytes.js';

const enum Lookup {
  Missing,
  Found,
  Deleted,
}

interface LookupState {
  value: Buffer | undefined;
  search: BlockPointSearch;
  /** bloomHash of the user key, computed at the first table (-1 until then). */
  hash: number;
}

/** Reused by every lookup (reads are synchronous and never re-enter): no allocation per get. */
const scratch: LookupState = { value: undefined, search: new BlockPointSearch(), hash: -1 };

/**
 * Newest visible value of `userKey` at `seq` in the tables of `version`, or undefined. `hash` is
 * the key's bloomHash if the caller computed it (-1: computed at the first table that needs it).
 */
export function getFromTables(
  version: Version,
  tables: TableCache,
  userKey: Buffer,
  seq: number,
  hash = -1,
): Buffer | undefined {
  let seekKey: Buffer | null = null;
  const out = scratch;
  out.value = undefined;
  out.hash = hash;
  // An index loop: for-of here allocated an iterator and a result object per get (sampled).
  const l0 = version.files(0);
  for (let i = 0; i < l0.length; i++) {
    const meta = l0[i] as FileMetadata;
    if (!inRange(meta, userKey)) continue;
    seekKey ??= seekKeyFor(userKey, seq);
    const r = lookupInTable(tables, meta, userKey, seekKey, out);
    if (r !== Lookup.Missing) return out.value;
  }
  for (let level = 1; level < NUM_LEVELS; level++) {
    const meta = version.findFile(level, userKey);
    if (meta === undefined) continue;
    seekKey ??= seekKeyFor(userKey, seq);
    const r = lookupInTable(tables, meta, userKey, seekKey, out);
    if (r !== Lookup.Missing) return out.value;
  }
  return undefined;
}

/** Reused seek-key buffer (lookups are synchronous and never re-enter), and its last view. */
let seekKeyBuffer = Buffer.allocUnsafeSlow(256);
let seekKeyView = seekKeyBuffer.subarray(0, 0);

/**
 * The internal seek key (userKey, seq, KIND_SEEK), in a buffer valid until the next call. The view
 * is reused while key lengths repeat (no Buffer object per get).
 */
function seekKeyFor(userKey: Buffer, seq: number): Buffer {
  const n = userKey.length + TRAILER_BYTES;
  if (n > seekKeyBuffer.length) {
    seekKeyBuffer = Buffer.allocUnsafeSlow(Math.max(n, 2 * seekKeyBuffer.length));
    seekKeyView = seekKeyBuffer.subarray(0, 0);
  }
  copyBytes(userKey, 0, userKey.length, seekKeyBuffer, 0);
  putTrailer(seekKeyBuffer, userKey.length, seq, KIND_SEEK);
  if (seekKeyView.length !== n) seekKeyView = seekKeyBuffer.subarray(0, n);
  return seekKeyView;
}

function inRange(meta: FileMetadata, userKey: Buffer): boolean {
  const s = meta.smallest;
  const l = meta.largest;
  return (
    compareUserKeyOf(s, userKey) <= 0 && compareUserKeyOf(l, userKey) >= 0
  );
}

function lookupInTable(
  tables: TableCache,
  meta: FileMetadata,
  userKey: Buffer,
  seekKey: Buffer,
  out: LookupState,
): Lookup {
  // Synchronous from here to the copy of the value: a peeked reader cannot be closed under us.
  const reader = tables.peek(meta);
  if (out.hash < 0) out.hash = bloomHash(userKey);
  if (!reader.mayContainHash(out.hash)) return Lookup.Missing;
  const search = out.search;
  const block = reader.find(seekKey, search);
  if (block === null) return Lookup.Missing;
  const key = search.keyBuffer;
  const keyLength = search.keyLength;
  if (compareBytes(key, 0, keyLength - TRAILER_BYTES, userKey, 0, userKey.length) !== 0) return Lookup.Missing;
  if (kindOfTrailer(trailerOf(key, keyLength)) === KIND_DELETE) {
    out.value = undefined;
    return Lookup.Deleted;
  }
  out.value = copyOfRange(block, search.valueStart, search.valueEnd);
  return Lookup.Found;
}

/**
 * Sequence number of the newest version of `userKey` (value or deletion) in the tables of
 * `version`, or -1. The first table (newest first: L0, then by level) holding the key has it.
 * `hash` is the key's bloomHash (computed here if the caller has none).
 */
export function newestSeqInTables(version: Version, tables: TableCache, userKey: Buffer, hash = bloomHash(userKey)): number {
  const seekKey = seekKeyFor(userKey, MAX_SEQ);
  const search = scratch.search;
  for (let level = 0; level < NUM_LEVELS; level++) {
    const candidates = level === 0 ? version.files(0) : [version.findFile(level, userKey)];
    for (const meta of candidates) {
      if (meta === undefined || !inRange(meta, userKey)) continue;
      const reader = tables.peek(meta);
      if (!reader.mayContainHash(hash) || reader.find(seekKey, search) === null) continue;
      const key = search.keyBuffer;
      const keyLength = search.keyLength;
      if (compareBytes(key, 0, keyLength - TRAILER_BYTES, userKey, 0, userKey.length) === 0) return seqOfTrailer(trailerOf(key, keyLength));
    }
  }
  return -1;
}
