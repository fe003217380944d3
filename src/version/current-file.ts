/**
 * CURRENT names the live MANIFEST. Format (docs/formats/manifest.md), exactly two lines:
 *
 *   MANIFEST-000004\n
 *   crc:1a2b3c4d\n        masked CRC-32 of the first line (including its '\n'), 8 lowercase hex
 *
 * It is replaced atomically: write CURRENT.tmp, fsync it, rename over CURRENT, fsync the directory.
 */
import { corruption, fromIoError, LightningError } from '../base/errors.js';
import { CURRENT_FILE, manifestFileName } from '../base/file-names.js';
import { joinPath, type FileHandle, type FileSystem } from '../env/file-system.js';
import { assert } from '../util/assert.js';
import { crc32Of, maskCrc } from '../util/crc.js';

export const CURRENT_TEMP_FILE = `${CURRENT_FILE}.tmp`;
/** A valid CURRENT is ~30 bytes; anything much larger is not one of ours. */
export const CURRENT_BYTES_MAX = 256;

export function encodeCurrent(manifestNumber: number): Buffer {
  assert(Number.isSafeInteger(manifestNumber) && manifestNumber > 0, 'manifest number');
  const line = Buffer.from(`${manifestFileName(manifestNumber)}\n`, 'latin1');
  const crc = maskCrc(crc32Of(line)).toString(16).padStart(8, '0');
  return Buffer.concat([line, Buffer.from(`crc:${crc}\n`, 'latin1')]);
}

/** The manifest number CURRENT names; CORRUPTION (naming `path`) if the content is malformed. */
export function parseCurrent(content: Buffer, path: string): number {
  const text = content.toString('latin1');
  const m = /^(MANIFEST-(\d{6,15})\n)crc:([0-9a-f]{8})\n$/.exec(text);
  if (m?.[1] === undefined || m[2] === undefined || m[3] === undefined) {
    throw corruption(path, 0, `malformed CURRENT ${JSON.stringify(text.slice(0, 64))}`);
  }
  const expected = maskCrc(crc32Of(Buffer.from(m[1], 'latin1')));
  if (Number.parseInt(m[3], 16) !== expected)
    throw corruption(path, 0, 'CURRENT checksum mismatch');
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n) || n <= 0) throw corruption(path, 0, `bad manifest number ${m[2]}`);
  return n;
}

/** Reads CURRENT. NOT_FOUND if there is none (no database here), CORRUPTION if malformed. */
export function readCurrent(fs: FileSystem, dir: string): number {
  const path = joinPath(dir, CURRENT_FILE);
  let fh: FileHandle;
  try {
    fh = fs.open(path, 'r');
  } catch (e) {
    if ((e as { code?: unknown } | null)?.code === 'ENOENT') {
      throw new LightningError('NOT_FOUND', `${path} does not exist: no database in ${dir}`);
    }
    throw fromIoError(e, 'open', path);
  }
  try {
    const size = fh.size();
    if (size > CURRENT_BYTES_MAX) throw corruption(path, 0, `CURRENT is ${size} bytes`);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = fh.read(buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return parseCurrent(buf.subarray(0, done), path);
  } catch (e) {
    throw fromIoError(e, 'read', path);
  } finally {
    fh.close();
  }
}

/**
 * Points CURRENT at MANIFEST-`manifestNumber` durably: when this resolves, a crash leaves CURRENT
 * naming the new manifest; if it throws or the process dies first, CURRENT names the old or the
 * new manifest, each complete. Requires: the manifest is synced and its directory entry durable.
 */
export async function writeCurrent(
  fs: FileSystem,
  dir: string,
  manifestNumber: number,
): Promise<void> {
  const tmp = joinPath(dir, CURRENT_TEMP_FILE);
  const content = encodeCurrent(manifestNumber);
  let op = 'open';
  try {
    const fh = fs.open(tmp, 'truncate');
    try {
      op = 'write';
      fh.write(content, 0, content.length, 0);
      op = 'sync';
      await fh.sync();
    } finally {
      fh.close();
    }
    op = 'rename';
    fs.rename(tmp, joinPath(dir, CURRENT_FILE));
    op = 'syncDir';
    await fs.syncDir(dir);
  } catch (e) {
    throw fromIoError(e, op, op === 'syncDir' ? dir : tmp);
  }
}
