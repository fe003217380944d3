/**
 * The meta (properties) block: facts about a table that the builder knows and a reader, a dump
 * tool or compaction may want without scanning it (docs/formats/sstable.md#meta-block).
 *
 *   meta  = field*
 *   field = varint(tag) varint(length) payload[length]
 *
 * Numeric payloads are one varint filling the payload; key payloads are raw bytes. Readers skip
 * unknown tags, so fields can be added without a new format version. Tags are frozen on disk:
 * never renumber or reuse one.
 */
import { assert } from '../util/assert.js';
import { getVarint, putVarint, varintLength } from '../util/coding.js';
import { corruption } from '../base/errors.js';
import { TRAILER_BYTES } from '../base/internal-key.js';

const TAG_FORMAT_VERSION = 1;
const TAG_ENTRY_COUNT = 2;
const TAG_RAW_KEY_BYTES = 3;
const TAG_RAW_VALUE_BYTES = 4;
const TAG_DATA_BLOCK_COUNT = 5;
const TAG_DELETION_COUNT = 6;
const TAG_SMALLEST_SEQ = 7;
const TAG_LARGEST_SEQ = 8;
const TAG_SMALLEST_KEY = 9;
const TAG_LARGEST_KEY = 10;
const TAG_RESTART_INTERVAL = 11;
const TAG_BLOOM_BITS_PER_KEY = 12;

export interface TableProperties {
  formatVersion: number;
  entryCount: number;
  /** Sum of internal key lengths (before prefix compression). */
  rawKeyBytes: number;
  rawValueBytes: number;
  dataBlockCount: number;
  deletionCount: number;
  smallestSeq: number;
  largestSeq: number;
  /** Smallest and largest internal keys in the table. */
  smallest: Buffer;
  largest: Buffer;
  restartInterval: number;
  bloomBitsPerKey: number;
}

type NumericProperty = Exclude<keyof TableProperties, 'smallest' | 'largest'>;

const NUMERIC_FIELDS: ReadonlyArray<readonly [number, NumericProperty]> = [
  [TAG_FORMAT_VERSION, 'formatVersion'],
  [TAG_ENTRY_COUNT, 'entryCount'],
  [TAG_RAW_KEY_BYTES, 'rawKeyBytes'],
  [TAG_RAW_VALUE_BYTES, 'rawValueBytes'],
  [TAG_DATA_BLOCK_COUNT, 'dataBlockCount'],
  [TAG_DELETION_COUNT, 'deletionCount'],
  [TAG_SMALLEST_SEQ, 'smallestSeq'],
  [TAG_LARGEST_SEQ, 'largestSeq'],
  [TAG_RESTART_INTERVAL, 'restartInterval'],
  [TAG_BLOOM_BITS_PER_KEY, 'bloomBitsPerKey'],
];

/** Serialises the properties into a fresh buffer (once per table; allocation is fine here). */
export function encodeProperties(p: TableProperties): Buffer {
  let size = 0;
  for (const [tag, name] of NUMERIC_FIELDS) {
    const v = p[name];
    assert(Number.isSafeInteger(v) && v >= 0, `property ${name} must be a non-negative integer`);
    size += varintLength(tag) + varintLength(varintLength(v)) + varintLength(v);
  }
  size += varintLength(TAG_SMALLEST_KEY) + varintLength(p.smallest.length) + p.smallest.length;
  size += varintLength(TAG_LARGEST_KEY) + varintLength(p.largest.length) + p.largest.length;
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  for (const [tag, name] of NUMERIC_FIELDS) {
    const v = p[name];
    off = putVarint(buf, off, tag);
    off = putVarint(buf, off, varintLength(v));
    off = putVarint(buf, off, v);
  }
  off = putBytesField(buf, off, TAG_SMALLEST_KEY, p.smallest);
  off = putBytesField(buf, off, TAG_LARGEST_KEY, p.largest);
  assert(off === size, 'properties size accounting is off');
  return buf;
}

function putBytesField(buf: Buffer, off: number, tag: number, bytes: Buffer): number {
  off = putVarint(buf, off, tag);
  off = putVarint(buf, off, bytes.length);
  return off + bytes.copy(buf, off);
}

/**
 * Parses a meta block read from `filePath` at `fileOffset`. Every field above must be present
 * exactly once; keys are copied out of the block. Throws CORRUPTION otherwise.
 */
export function decodeProperties(
  block: Buffer,
  filePath: string,
  fileOffset: number,
): TableProperties {
  const numbers = new Map<number, number>();
  const keys = new Map<number, Buffer>();
  let off = 0;
  while (off < block.length) {
    const fieldStart = off;
    let d = getVarint(block, off, block.length);
    if (d.next < 0) throw corruption(filePath, fileOffset + fieldStart, 'bad meta field tag');
    const tag = d.value;
    d = getVarint(block, d.next, block.length);
    if (d.next < 0 || d.next + d.value > block.length) {
      throw corruption(filePath, fileOffset + fieldStart, 'bad meta field length');
    }
    const start = d.next;
    const end = d.next + d.value;
    if (numbers.has(tag) || keys.has(tag)) {
      throw corruption(filePath, fileOffset + fieldStart, `duplicate meta field ${tag}`);
    }
    if (tag === TAG_SMALLEST_KEY || tag === TAG_LARGEST_KEY) {
      keys.set(tag, Buffer.from(block.subarray(start, end)));
    } else {
      d = getVarint(block, start, end);
      if (d.next !== end) {
        throw corruption(filePath, fileOffset + fieldStart, `bad meta field ${tag}`);
      }
      numbers.set(tag, d.value);
    }
    off = end;
  }
  const smallest = keys.get(TAG_SMALLEST_KEY);
  const largest = keys.get(TAG_LARGEST_KEY);
  if (smallest === undefined || largest === undefined) {
    throw corruption(filePath, fileOffset, 'meta block lacks the key range');
  }
  if (smallest.length < TRAILER_BYTES || largest.length < TRAILER_BYTES) {
    throw corruption(filePath, fileOffset, 'meta block key range is not internal keys');
  }
  const num = (tag: number, name: string): number => {
    const v = numbers.get(tag);
    if (v === undefined) throw corruption(filePath, fileOffset, `meta block lacks ${name}`);
    return v;
  };
  return {
    formatVersion: num(TAG_FORMAT_VERSION, 'formatVersion'),
    entryCount: num(TAG_ENTRY_COUNT, 'entryCount'),
    rawKeyBytes: num(TAG_RAW_KEY_BYTES, 'rawKeyBytes'),
    rawValueBytes: num(TAG_RAW_VALUE_BYTES, 'rawValueBytes'),
    dataBlockCount: num(TAG_DATA_BLOCK_COUNT, 'dataBlockCount'),
    deletionCount: num(TAG_DELETION_COUNT, 'deletionCount'),
    smallestSeq: num(TAG_SMALLEST_SEQ, 'smallestSeq'),
    largestSeq: num(TAG_LARGEST_SEQ, 'largestSeq'),
    smallest,
    largest,
    restartInterval: num(TAG_RESTART_INTERVAL, 'restartInterval'),
    bloomBitsPerKey: num(TAG_BLOOM_BITS_PER_KEY, 'bloomBitsPerKey'),
  };
}
