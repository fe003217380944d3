import type { FileHandle } from '../../src/env/file-system.js';

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
    sync: () => file.sync(),
    size: () => file.size(),
    truncate: (n) => file.truncate(n),
    close: () => file.close(),
  };
  return { handle, bytes: () => bytes, calls: () => calls };
}
