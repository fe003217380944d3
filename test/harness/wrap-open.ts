import type { FileHandle, FileSystem, OpenMode } from '../../src/env/file-system.js';

/**
 * `inner` with every opened handle passed through `wrap` (which may replace its methods, e.g. to
 * hold or count syncs); every other FileSystem call goes straight to `inner`.
 */
export function wrapOpen<T extends FileSystem>(inner: T, wrap: (path: string, handle: FileHandle) => FileHandle): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'open') return Reflect.get(target, prop, receiver) as unknown;
      return (path: string, mode: OpenMode): FileHandle => wrap(path, target.open(path, mode));
    },
  });
}
