/**
 * Names of the files in a database directory. Numbers come from one counter in the manifest, so a
 * number is never reused.
 *
 *   000012.log        write-ahead log
 *   000013.sst        SSTable
 *   MANIFEST-000004   version-edit log
 *   CURRENT           names the live MANIFEST (written via CURRENT.tmp + rename)
 *   LOCK              process lock
 *   *.tmp             half-written temporary files, removed at open
 */
export type FileKind = 'log' | 'sst' | 'manifest' | 'current' | 'lock' | 'temp';

export interface ParsedFileName {
  kind: FileKind;
  /** File number; 0 for CURRENT and LOCK. */
  number: number;
}

function pad(n: number): string {
  return String(n).padStart(6, '0');
}

export function logFileName(n: number): string {
  return `${pad(n)}.log`;
}
export function tableFileName(n: number): string {
  return `${pad(n)}.sst`;
}
export function manifestFileName(n: number): string {
  return `MANIFEST-${pad(n)}`;
}
export const CURRENT_FILE = 'CURRENT';
export const LOCK_FILE = 'LOCK';

export function parseFileName(name: string): ParsedFileName | undefined {
  if (name === CURRENT_FILE) return { kind: 'current', number: 0 };
  if (name === LOCK_FILE) return { kind: 'lock', number: 0 };
  if (name.endsWith('.tmp')) return { kind: 'temp', number: 0 };
  let m = /^MANIFEST-(\d{6,})$/.exec(name);
  if (m?.[1] !== undefined) return { kind: 'manifest', number: Number(m[1]) };
  m = /^(\d{6,})\.(log|sst)$/.exec(name);
  if (m?.[1] !== undefined && m[2] !== undefined) {
    return { kind: m[2] === 'log' ? 'log' : 'sst', number: Number(m[1]) };
  }
  return undefined;
}
