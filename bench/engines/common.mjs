// Helpers shared by the engine adapters.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEY_BYTES, VALUE_BYTES } from '../workloads.mjs';

const benchDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** The installed version of a bench dependency (read from bench/node_modules), or null. */
export function installedVersion(pkg) {
  try {
    return JSON.parse(fs.readFileSync(path.join(benchDir, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

/** Tracks a full scan: entry count, bytes, and whether keys came in ascending byte order. */
export class ScanTally {
  constructor() {
    this.count = 0;
    this.bytes = 0;
    this.ordered = true;
    this.prev = null;
  }
  add(key, value) {
    this.count++;
    this.bytes += key.length + value.length;
    if (this.prev !== null && Buffer.compare(this.prev, key) >= 0) this.ordered = false;
    this.prev = key;
  }
  result() {
    return { count: this.count, bytes: this.bytes, ordered: this.ordered };
  }
}

/** Transfer helper for engines with a read-modify-write transaction: returns the writes or null. */
export function planTransfer(fromBal, toBal, amount, fmt) {
  if (fromBal < amount) return null;
  return [fmt(fromBal - amount), fmt(toBal + amount)];
}

export { KEY_BYTES, VALUE_BYTES };
