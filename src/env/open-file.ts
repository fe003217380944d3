/**
 * Opening files with the failure already translated: a LightningError (IO_ERROR, DISK_FULL, ...)
 * that names the operation and the path, as everywhere else in the engine.
 */
import { fromIoError } from '../base/errors.js';
import type { FileHandle, FileSystem, OpenMode } from './file-system.js';

/** Opens `path` in `mode`; throws a LightningError naming `what` ('create', 'open') and the path. */
export function openFile(fs: FileSystem, path: string, mode: OpenMode, what: string): FileHandle {
  try {
    return fs.open(path, mode);
  } catch (e) {
    throw fromIoError(e, what, path);
  }
}

/** Creates `path`, which must not exist yet, for writing (see openFile). */
export function createNewFile(fs: FileSystem, path: string): FileHandle {
  return openFile(fs, path, 'create-excl', 'create');
}
