/**
 * A small LZ77 block codec in the manner of LZ4's block format, for SSTable data blocks
 * (docs/formats/sstable.md#compressed-data-blocks). Pure TypeScript, no allocation per call.
 *
 *   block    := varint uncompressedLength  sequence*  lastSeq
 *   sequence := token  [litExt*]  literal[litLen]  offset:fixed16  [matchExt*]
 *   lastSeq  := token  [litExt*]  literal[litLen]                 (match nibble 0; ends the input)
 *
 * token: high nibble = literal length, low nibble = match length - 4. A nibble of 15 is followed
 * by extension bytes, each added to the length, up to and including the first byte below 255.
 * offset (1..65535, little-endian) counts back from the current output position; the match may
 * overlap the bytes it produces (offset < length repeats a pattern). Matches are at least 4 bytes.
 * The input ends right after the last sequence's literals: that is how the decoder knows it is the
 * last one.
 *
 * Encoder: greedy, one hash table of 4-byte sequences (4096 slots, module-level, not cleared per
 * call: see hashTable), LZ4's skip acceleration over incompressible stretches, backward extension
 * of matches.
 * It gives up (returns -1) as soon as the output would not be at least 12.5% smaller than the
 * input: the caller then stores the block raw.
 *
 * Decoder: every length, offset and copy is checked against both buffers; input that does not
 * decode to exactly the length its header states — truncated, corrupted or malicious — returns a
 * negative error code (see lzErrorMessage), never an exception (a RangeError only for caller
 * errors: ranges outside the buffers). Each loop step consumes input, so it terminates; it writes
 * only inside dst[dstStart, dstStart + expectedLength) and allocates nothing.
 */
import { viewOf } from '../base/key-probe.js';
import { copyBytes } from '../util/copy-bytes.js';

/** Shortest match the format encodes (a token's match nibble 0 means 4 bytes). */
const MIN_MATCH = 4;
/** Largest back-reference distance (a 2-byte offset). */
const MAX_OFFSET = 65535;
const HASH_LOG = 12;
/**
 * Hash of 4-byte sequences → their last position in the input, stored as `position - srcStart +
 * tableBase`. Each call takes a fresh range of stored values (tableBase moves past it when the call
 * ends), so entries below the current tableBase are stale ones from earlier calls: the table is
 * cleared only when the Int32 range is used up (every ~2 GiB of input), not for every block
 * (16 KiB of clearing for each 2 KiB block).
 */
const hashTable = new Int32Array(1 << HASH_LOG);
let tableBase = 1;
/** Largest value hashTable stores (Int32). */
const TABLE_VALUE_MAX = 0x7fffffff;
/** After 2^SKIP_TRIGGER positions without a match the encoder starts skipping ahead. */
const SKIP_TRIGGER = 6;
/** Matches up to this long are copied by a loop; longer ones by copyWithin (a native memmove). */
const LOOP_MATCH_BYTES_MAX = 64;
/** Literal runs up to this long are copied by a loop (4 bytes per step where it may); longer ones by Buffer#copy. */
const LOOP_LITERAL_BYTES_MAX = 64;

/**
 * DataViews over the last buffers seen, so that copies can move 4 bytes per step. The table reader
 * passes the same read buffer and output buffer every time, so creating views is rare. Each view
 * spans exactly its Buffer, so even a wrong index could not reach memory outside it (DataView
 * accesses are bounds-checked). Large buffers are not kept alive by the cache.
 */
const VIEW_CACHE_BYTES_MAX = 256 * 1024;
/** The DataView of the last (small) buffer it was asked about. */
class LastView {
  private buffer: Buffer | null = null;
  private view: DataView = new DataView(new ArrayBuffer(0));

  of(buf: Buffer): DataView {
    if (buf === this.buffer) return this.view;
    const view = viewOf(buf);
    if (buf.byteLength <= VIEW_CACHE_BYTES_MAX) {
      this.buffer = buf;
      this.view = view;
    }
    return view;
  }
}

const sourceViews = new LastView();
const destinationViews = new LastView();
/** The encoder's own: a worker decodes merge inputs and encodes outputs in turn. */
const encoderDestinationViews = new LastView();

/**
 * Largest uncompressed length a block may have. Bounds what a reader allocates for a block whose
 * header is damaged; DB blocks are far smaller (block size + one entry <= ~80 MiB).
 */
export const LZ_UNCOMPRESSED_BYTES_MAX = 128 * 1024 * 1024;
/** Each input byte produces at most 255 output bytes (a match extension byte). */
const MAX_EXPANSION = 255;

/** Decoder error codes (negative; a successful decode returns the length, >= 0). */
export const LZ_ERR_HEADER = -1;
export const LZ_ERR_TRUNCATED = -2;
export const LZ_ERR_OFFSET = -3;
export const LZ_ERR_OVERRUN = -4;
export const LZ_ERR_LENGTH = -5;
export const LZ_ERR_TRAILING = -6;

/** A human-readable reason for a negative decoder result. */
export function lzErrorMessage(code: number): string {
  switch (code) {
    case LZ_ERR_HEADER:
      return 'compressed block: bad uncompressed-length header';
    case LZ_ERR_TRUNCATED:
      return 'compressed block: truncated sequence';
    case LZ_ERR_OFFSET:
      return 'compressed block: match offset out of range';
    case LZ_ERR_OVERRUN:
      return 'compressed block: output longer than its header says';
    case LZ_ERR_LENGTH:
      return 'compressed block: output shorter than its header says';
    case LZ_ERR_TRAILING:
      return 'compressed block: last sequence has a match length';
    default:
      return `compressed block: error ${code}`;
  }
}

/** Largest compressed size accepted for `n` input bytes: at least 12.5% smaller. */
export function lzCompressedBytesLimit(n: number): number {
  return n - Math.ceil(n / 8);
}

/**
 * Compresses `src[srcStart, srcEnd)` into `dst` at `dstStart`. Returns the number of bytes
 * written, or -1 if the result would not be at least 12.5% smaller than the input (or would not
 * fit in dst): then what was written is garbage and the caller stores the input raw. Writes only
 * inside dst[dstStart, dstStart + lzCompressedBytesLimit(n)). `src` and `dst` must not overlap.
 */
export function compressBlock(src: Buffer, srcStart: number, srcEnd: number, dst: Buffer, dstStart: number): number {
  const n = srcEnd - srcStart;
  if (!(Number.isInteger(srcStart) && Number.isInteger(srcEnd) && Number.isInteger(dstStart))) {
    throw new RangeError('compressBlock: positions must be integers');
  }
  if (!(srcStart >= 0 && n >= 0 && srcEnd <= src.length && dstStart >= 0)) {
    throw new RangeError('compressBlock: range outside its buffer');
  }
  // Positions live in an Int32Array.
  if (n > LZ_UNCOMPRESSED_BYTES_MAX || srcEnd > 0x7fffffff) return -1;
  const limit = Math.min(dst.length, dstStart + lzCompressedBytesLimit(n));
  let op = dstStart;
  // Header: varint n (at most 4 bytes below 2^28).
  if (op + 4 > limit) return -1;
  let v = n;
  while (v >= 0x80) {
    dst[op++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  dst[op++] = v;

  // Not cached: the source is a different block every time, and the decoder's cache stays warm.
  const sv = viewOf(src);
  // The destination is the same staging buffer call after call: its view is cached.
  const dv = encoderDestinationViews.of(dst);
  const table = hashTable;
  if (n + 1 > TABLE_VALUE_MAX - tableBase) {
    table.fill(0);
    tableBase = 1;
  }
  const base = tableBase;
  tableBase += n + 1;
  // stored = position - delta; stored values below `base` are stale (from earlier calls).
  const delta = srcStart - base;
  let anchor = srcStart;
  let ip = srcStart;
  const lastSearch = srcEnd - MIN_MATCH; // a 4-byte read at ip must fit
  let misses = 1 << SKIP_TRIGGER;
  while (ip <= lastSearch) {
    const seq = sv.getInt32(ip, true);
    const h = Math.imul(seq, -1640531535) >>> (32 - HASH_LOG);
    const stored = table[h] as number;
    table[h] = ip - delta;
    const ref = stored + delta;
    if (stored < base || ref >= ip || ip - ref > MAX_OFFSET || sv.getInt32(ref, true) !== seq) {
      ip += misses++ >>> SKIP_TRIGGER;
      continue;
    }
    misses = 1 << SKIP_TRIGGER;
    // Extend backwards over pending literals, then forwards (4 bytes at a time while they fit).
    let start = ip;
    let r = ref;
    while (start > anchor && r > srcStart && src[start - 1] === src[r - 1]) {
      start--;
      r--;
    }
    let end = ip + MIN_MATCH;
    let re = ref + MIN_MATCH;
    while (end <= lastSearch && sv.getInt32(end, true) === sv.getInt32(re, true)) {
      end += 4;
      re += 4;
    }
    while (end < srcEnd && src[end] === src[re]) {
      end++;
      re++;
    }
    const litLen = start - anchor;
    const matchLen = end - start - MIN_MATCH;
    // Worst case: token, literal extension, literals, offset, match extension.
    const need = 3 + extensionBytes(litLen) + litLen + extensionBytes(matchLen);
    if (op + need > limit) return -1;
    const tokenAt = op++;
    op = putLength(dst, op, litLen);
    op = copyLiterals(src, sv, anchor, start, dst, dv, op, srcEnd, limit);
    const offset = start - r;
    dst[op++] = offset & 0xff;
    dst[op++] = offset >>> 8;
    op = putLength(dst, op, matchLen);
    dst[tokenAt] = ((litLen < 15 ? litLen : 15) << 4) | (matchLen < 15 ? matchLen : 15);
    anchor = ip = end;
    // Index a position inside the match so that the next repeat can find it.
    const p = end - 2;
    if (p <= lastSearch) table[Math.imul(sv.getInt32(p, true), -1640531535) >>> (32 - HASH_LOG)] = p - delta;
  }
  // The last sequence: the remaining literals, no match.
  const litLen = srcEnd - anchor;
  if (op + 1 + extensionBytes(litLen) + litLen > limit) return -1;
  dst[op++] = (litLen < 15 ? litLen : 15) << 4;
  op = putLength(dst, op, litLen);
  op = copyLiterals(src, sv, anchor, srcEnd, dst, dv, op, srcEnd, limit);
  return op - dstStart;
}

/** Test hook: moves the encoder's table base (to exercise the wrap-around without 2 GiB of input). */
export function setLzTableBaseForTests(value: number): void {
  if (!(Number.isInteger(value) && value >= 1 && value <= TABLE_VALUE_MAX)) throw new RangeError('bad table base');
  hashTable.fill(0); // every stored value must stay below tableBase
  tableBase = value;
}

/** Extension bytes after a nibble for a length (literal length, or match length - 4). */
function extensionBytes(len: number): number {
  return len < 15 ? 0 : Math.floor((len - 15) / 255) + 1;
}

/** Writes the extension bytes of a length whose nibble is 15 (nothing if it is below 15). */
function putLength(dst: Buffer, op: number, len: number): number {
  if (len < 15) return op;
  len -= 15;
  while (len >= 255) {
    dst[op++] = 255;
    len -= 255;
  }
  dst[op++] = len;
  return op;
}

/** Copies non-overlapping src[start, end) to dst at op; returns the new op. */
function copyLiterals(src: Buffer, sv: DataView, start: number, end: number, dst: Buffer, dv: DataView, op: number, srcEnd: number, limit: number): number {
  const n = end - start;
  if (n > LOOP_LITERAL_BYTES_MAX) return op + src.copy(dst, op, start, end);
  let i = 0;
  // Whole words while both sides have room for one (a word may run up to 3 bytes past the literals:
  // still inside the output's limit, and overwritten by what follows or never read).
  if (start + n + 3 < srcEnd && op + n + 3 < limit) for (; i < n; i += 4) dv.setInt32(op + i, sv.getInt32(start + i, true), true);
  else for (; i < n; i++) dst[op + i] = src[start + i] as number;
  return op + n;
}

/**
 * The uncompressed length stored at the front of the compressed block `src[start, end)`, or
 * LZ_ERR_HEADER if the header is malformed, above LZ_UNCOMPRESSED_BYTES_MAX, or larger than the
 * rest of the block could possibly expand to (so a damaged header cannot make a reader allocate
 * more than 255 times what it read).
 */
export function lzUncompressedLength(src: Buffer, start: number, end: number): number {
  if (!(start >= 0 && start <= end && end <= src.length)) {
    throw new RangeError('lzUncompressedLength: range outside its buffer');
  }
  const ip = parseHeader(src, start, end);
  if (ip < 0) return LZ_ERR_HEADER;
  const n = parsedHeader;
  if (n > LZ_UNCOMPRESSED_BYTES_MAX || n > (end - ip) * MAX_EXPANSION) return LZ_ERR_HEADER;
  lengthHeaderEnd = ip;
  return n;
}

/** Where the header lzUncompressedLength accepted last ends (the first sequence's offset). */
let lengthHeaderEnd = 0;

/** The value of the header parseHeader read last. */
let parsedHeader = 0;

/**
 * Reads the varint header (at most 4 bytes) at src[start, end) into `parsedHeader`; returns the
 * offset after it, or -1 if it is truncated or longer.
 */
function parseHeader(src: Buffer, start: number, end: number): number {
  let ip = start;
  let n = 0;
  for (let shift = 0; ; shift += 7) {
    if (ip >= end || shift > 21) return -1;
    const b = src[ip++] as number;
    n |= (b & 0x7f) << shift; // shift <= 21: below 2^28, exact in int32 (`**` would call pow)
    if (b < 0x80) break;
  }
  parsedHeader = n;
  return ip;
}

/**
 * Decompresses the block `src[start, end)` (header included) into dst at `dstStart`. The header
 * must say `expectedLength` (the caller read it with lzUncompressedLength to size dst) and the
 * sequences must produce exactly that many bytes. Returns expectedLength, or a negative LZ_ERR_*
 * code for any malformed input; never reads outside src[start, end) or writes outside
 * dst[dstStart, dstStart + expectedLength). `src` and `dst` must not overlap. Fastest when the
 * same src and dst Buffer objects are passed every time (their DataViews are cached).
 */
export function decompressBlock(
  src: Buffer,
  start: number,
  end: number,
  dst: Buffer,
  dstStart: number,
  expectedLength: number,
): number {
  if (!(Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(dstStart) && Number.isInteger(expectedLength))) {
    throw new RangeError('decompressBlock: positions must be integers');
  }
  if (!(start >= 0 && start <= end && end <= src.length && dstStart >= 0 && expectedLength >= 0 && dstStart + expectedLength <= dst.length)) {
    throw new RangeError('decompressBlock: range outside its buffer');
  }
  const sv = sourceViews.of(src);
  const dv = destinationViews.of(dst);
  const ip = parseHeader(src, start, end);
  if (ip < 0 || parsedHeader !== expectedLength) return LZ_ERR_HEADER;
  const oend = dstStart + expectedLength;
  // With no stop point it returns only at the end of the input, having checked the output length.
  const op = decodeSequences(src, sv, ip, end, dst, dv, dstStart, dstStart, oend, Infinity);
  return op < 0 ? op : expectedLength;
}

/** Input offset where decodeSequences stopped (the decoder never re-enters). */
let stoppedAt = 0;

/**
 * The sequence loop of decompressBlock, resumable: decodes sequences from src[ip, end) to dst at
 * `op` (output range [dstStart, oend)) until the input ends or, between two sequences, at least
 * `stopAt` is reached. Returns the new output position (its input position in `stoppedAt`) or a
 * negative LZ_ERR_* code. The last sequence must end the output exactly at oend. Bytes past the
 * returned position may hold up to 3 bytes of scratch from word copies; later sequences overwrite
 * them.
 */
function decodeSequences(
  src: Buffer,
  sv: DataView,
  ip: number,
  end: number,
  dst: Buffer,
  dv: DataView,
  dstStart: number,
  op: number,
  oend: number,
  stopAt: number,
): number {
  let len: number;
  for (;;) {
    // Stop between sequences once enough is out; a complete output still has its end checked.
    if (op >= stopAt && op < oend && ip < end) break;
    if (ip >= end) return LZ_ERR_TRUNCATED;
    const token = src[ip++] as number;
    // Literals.
    len = token >>> 4;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) return LZ_ERR_TRUNCATED;
        b = src[ip++] as number;
        len += b;
      } while (b === 255);
    }
    if (len > 0) {
      if (len > end - ip) return LZ_ERR_TRUNCATED;
      if (len > oend - op) return LZ_ERR_OVERRUN;
      if (len > LOOP_LITERAL_BYTES_MAX) {
        copyBytes(src, ip, ip + len, dst, op);
      } else if (op + len + 3 < oend && ip + len + 3 < end) {
        // Away from both ends, copy whole 4-byte words, up to 3 bytes too many: those land
        // inside the output range, ahead of op, and later sequences overwrite them.
        for (let i = 0; i < len; i += 4) dv.setInt32(op + i, sv.getInt32(ip + i, true), true);
      } else {
        let i = 0;
        for (; i + 4 <= len; i += 4) dv.setInt32(op + i, sv.getInt32(ip + i, true), true);
        for (; i < len; i++) dst[op + i] = src[ip + i] as number;
      }
      ip += len;
      op += len;
    }
    if (ip === end) {
      // The last sequence: literals only.
      if ((token & 15) !== 0) return LZ_ERR_TRAILING;
      if (op !== oend) return LZ_ERR_LENGTH;
      break;
    }
    // Match.
    if (end - ip < 2) return LZ_ERR_TRUNCATED;
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op - dstStart) return LZ_ERR_OFFSET;
    len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) return LZ_ERR_TRUNCATED;
        b = src[ip++] as number;
        len += b;
      } while (b === 255);
    }
    len += MIN_MATCH;
    if (len > oend - op) return LZ_ERR_OVERRUN;
    const ref = op - offset;
    if (len <= LOOP_MATCH_BYTES_MAX) {
      // Forward copies also repeat a pattern correctly when the match overlaps its output: with
      // offset >= 4 every 4-byte read lies in bytes already written. Away from the end, whole
      // words, up to 3 bytes too many (as for literals: overwritten later, inside the range).
      if (offset >= 4 && op + len + 3 < oend) {
        for (let i = 0; i < len; i += 4) dv.setInt32(op + i, dv.getInt32(ref + i, true), true);
      } else {
        let i = 0;
        if (offset >= 4) for (; i + 4 <= len; i += 4) dv.setInt32(op + i, dv.getInt32(ref + i, true), true);
        for (; i < len; i++) dst[op + i] = dst[ref + i] as number;
      }
      op += len;
    } else if (offset >= len) {
      dst.copyWithin(op, ref, ref + len);
      op += len;
    } else {
      // Long overlapping match: copy the pattern in chunks that double as the distance grows
      // (each chunk starts a whole number of periods after `ref`).
      const mend = op + len;
      while (op < mend) {
        const chunk = Math.min(op - ref, mend - op);
        dst.copyWithin(op, ref, ref + chunk);
        op += chunk;
      }
    }
  }
  stoppedAt = ip;
  return op;
}

/**
 * Decodes one compressed block a part at a time, for readers that may need only its beginning (a
 * point lookup stops at the entry it looks for: on average half way). Checks as decompressBlock,
 * except that a block left part way is not checked to its end (its CRC was, before decoding).
 * Keeps references to the buffers of the last begin(); a reader reuses one decoder.
 */
export class LzPrefixDecoder {
  private src: Buffer = EMPTY;
  private sv: DataView = EMPTY_VIEW;
  private dst: Buffer = EMPTY;
  private dv: DataView = EMPTY_VIEW;
  private ip = 0;
  private end = 0;
  private dstStart = 0;
  private op = 0;
  private oend = 0;
  /** The error extend() returned (it keeps returning it), or 0. */
  private error = 0;
  /** Uncompressed length of the block (its header). */
  length = 0;

  /**
   * Starts decoding the block `src[start, end)`: reads its header. Returns the uncompressed length
   * or a negative LZ_ERR_* code. Then give it an output (into) before extending.
   */
  begin(src: Buffer, start: number, end: number): number {
    const n = lzUncompressedLength(src, start, end);
    this.src = src;
    this.sv = sourceViews.of(src);
    this.ip = n < 0 ? end : lengthHeaderEnd;
    this.end = end;
    this.dst = EMPTY;
    this.dv = EMPTY_VIEW;
    this.dstStart = this.op = this.oend = 0;
    this.length = n < 0 ? 0 : n;
    this.error = n < 0 ? n : 0;
    return n;
  }

  /**
   * Decodes into dst at dstStart, which must have room for the whole block (`length`). Once per
   * begin(), before the first extend().
   */
  into(dst: Buffer, dstStart: number): void {
    if (!(Number.isInteger(dstStart) && dstStart >= 0 && dstStart + this.length <= dst.length)) {
      throw new RangeError('LzPrefixDecoder: output range outside its buffer');
    }
    this.dst = dst;
    this.dv = destinationViews.of(dst);
    this.dstStart = this.op = dstStart;
    this.oend = dstStart + this.length;
  }

  /** Bytes at the front of the output that are final (dst[dstStart, dstStart + decoded)). */
  get decoded(): number {
    return this.op - this.dstStart;
  }

  /**
   * Decodes until at least `bytes` (from dstStart) are final, or the whole block. Returns the
   * number of final bytes, or a negative LZ_ERR_* code.
   */
  extend(bytes: number): number {
    if (this.error < 0) return this.error;
    if (this.op - this.dstStart >= bytes || this.ip === this.end) return this.op - this.dstStart;
    const op = decodeSequences(this.src, this.sv, this.ip, this.end, this.dst, this.dv, this.dstStart, this.op, this.oend, this.dstStart + bytes);
    if (op < 0) {
      this.error = op;
      this.op = this.dstStart; // nothing of a bad block counts as decoded
      return op;
    }
    this.op = op;
    this.ip = stoppedAt;
    return op - this.dstStart;
  }

  /** Drops the references to the last block's buffers. */
  clear(): void {
    this.src = this.dst = EMPTY;
    this.sv = this.dv = EMPTY_VIEW;
    this.ip = this.end = this.dstStart = this.op = this.oend = this.length = this.error = 0;
  }
}

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));
