import type { FileHandle, FileSystem } from '../../src/env/file-system.js';
import { RecordReader } from '../../src/wal/record-reader.js';

/** `file` with its reads counted (bytes returned and calls); everything else passes through. */
export function countingReads(file: FileHandle): { handle: FileHandle; bytes(): number; calls(): number } {
  let bytes = 0;
  let calls = 0;
  const handle: FileHandle = {
    path: file.path,
    read: (buf, off, len, pos) => {
      calls++;
      const n = file.read(buf, off, len, pos);
      bytes += n;
      return n;
    },
    write: (buf, off, len, pos) => file.write(buf, off, len, pos),
    sync: (inline) => file.sync(inline),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
  return { handle, bytes: () => bytes, calls: () => calls };
}

/** Reads the whole log at `path` with a RecordReader, counting the bytes it reads from the file. */
export function readLogCounting(fs: FileSystem, path: string): { records: number; torn: number | undefined; readBytes: number } {
  const file = fs.open(path, 'r');
  const counted = countingReads(file);
  try {
    const reader = new RecordReader(counted.handle, path);
    let records = 0;
    while (reader.next() !== undefined) records++;
    return { records, torn: reader.tornTailOffset, readBytes: counted.bytes() };
  } finally {
    file.close();
  }
}
