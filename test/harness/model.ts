/** A sorted-map model of the database for model-based and crash tests. Keys are hex strings. */
export type ModelState = Map<string, string>;

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export interface ModelRange {
  gte?: Buffer;
  gt?: Buffer;
  lte?: Buffer;
  lt?: Buffer;
  prefix?: Buffer;
  reverse?: boolean;
  limit?: number;
}

/** The entries a range scan must return, in order. */
export function modelScan(state: ModelState, r: ModelRange): [string, string][] {
  const keys = [...state.keys()].map((k) => Buffer.from(k, 'hex'));
  keys.sort(Buffer.compare);
  const out: [string, string][] = [];
  for (const k of keys) {
    if (r.gte !== undefined && Buffer.compare(k, r.gte) < 0) continue;
    if (r.gt !== undefined && Buffer.compare(k, r.gt) <= 0) continue;
    if (r.lte !== undefined && Buffer.compare(k, r.lte) > 0) continue;
    if (r.lt !== undefined && Buffer.compare(k, r.lt) >= 0) continue;
    if (r.prefix !== undefined && !k.subarray(0, r.prefix.length).equals(r.prefix)) continue;
    out.push([k.toString('hex'), state.get(k.toString('hex')) as string]);
  }
  if (r.reverse === true) out.reverse();
  return r.limit === undefined ? out : out.slice(0, r.limit);
}

export function describeState(state: ModelState): string {
  return [...state.entries()].sort().map(([k, v]) => `${k}=${v}`).join(' ');
}
