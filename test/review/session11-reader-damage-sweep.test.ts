/**
 * Review of cece3c0: random single-damage and torn-tail sweeps over logs with ordinary payloads
 * (random bytes, text, small sizes and some larger than the read window). These guard what the
 * change must keep: single damage followed by intact records is CORRUPTION in strict mode and
 * skipCorrupt recovers exactly the intact records; a torn last write (with or without zeros or
 * noise after it) is a torn tail. Seeded: SEED=<n> replays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MemFs } from '../../src/env/mem-fs.js';
import { RecordReader } from '../../src/wal/record-reader.js';
import { RecordWriter } from '../../src/wal/record-writer.js';
import { testSeed } from '../harness/seed.js';
import { LOG_FORMAT_VERSION } from '../../src/wal/format.js';

const PATH = '/db/000007.log';

function rng(seed: number): (n: number) => number {
  let s = (seed >>> 0) || 1;
  return (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function payload(r: (n: number) => number, i: number): Buffer {
  const kind = r(10);
  const size = kind === 0 ? 200_000 + r(200_000) : r(3000);
  if (kind < 4) return Buffer.from(`key-${i}:` + 'lorem ipsum dolor sit amet '.repeat(Math.ceil(size / 27))).subarray(0, size);
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j++) b[j] = r(256);
  return b;
}

interface Log {
  bytes: Buffer;
  spans: [number, number][]; // data records only
  payloads: Buffer[];
}

/** A log written in groups (addMany = one write each); returns the data records' spans. */
function makeLog(r: (n: number) => number, records: number): Log & { lastWriteAt: number } {
  const fs = new MemFs();
  fs.mkdir('/db');
  const w = RecordWriter.create(fs.open(PATH, 'truncate'), 7, 'wal', LOG_FORMAT_VERSION);
  const spans: [number, number][] = [];
  const payloads: Buffer[] = [];
  let lastWriteAt = 0;
  let i = 0;
  while (i < records) {
    const group: Buffer[] = [];
    const n = Math.min(records - i, 1 + r(3));
    for (let j = 0; j < n; j++) group.push(payload(r, i + j));
    lastWriteAt = w.sizeBytes();
    let at = lastWriteAt;
    for (const p of group) {
      spans.push([at, at + 9 + p.length]);
      payloads.push(p);
      at += 9 + p.length;
    }
    w.addMany(group);
    i += n;
  }
  w.close();
  return { bytes: Buffer.from(fs.readFileRaw(PATH)), spans, payloads, lastWriteAt };
}

function read(bytes: Buffer, skipCorrupt: boolean): { got: Buffer[]; error?: string; torn?: number | undefined; gaveUp: boolean } {
  const fs = new MemFs();
  fs.mkdir('/db');
  fs.writeFileRaw(PATH, bytes);
  const file = fs.open(PATH, 'r');
  const reader = new RecordReader(file, PATH, { skipCorrupt });
  const got: Buffer[] = [];
  try {
    for (let p = reader.next(); p !== undefined; p = reader.next()) got.push(p);
  } catch (e) {
    return { got, error: (e as Error).message, gaveUp: false /* scanGaveUp: removed with the scan budget */ };
  } finally {
    file.close();
  }
  return { got, torn: reader.tornTailOffset, gaveUp: false /* scanGaveUp: removed with the scan budget */ };
}

test('sweep: single damage in the middle → CORRUPTION; skipCorrupt returns exactly the intact records', { timeout: 60_000 }, () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const r = rng(seed);
  for (let iter = 0; iter < 150; iter++) {
    const log = makeLog(r, 4 + r(10));
    const { spans } = log;
    const lastStart = (spans[spans.length - 1] as [number, number])[0];
    const bytes = Buffer.from(log.bytes);
    const kind = ['flip', 'zeros', 'page', 'truncate-append'][iter % 4] as string;
    let damaged: [number, number]; // byte range damaged
    let appended: Buffer[] = [];
    let out = bytes;
    const firstData = (spans[0] as [number, number])[0];
    if (kind === 'flip') {
      const at = firstData + r(lastStart - firstData);
      bytes[at] = (bytes[at] as number) ^ (1 + r(255));
      damaged = [at, at + 1];
    } else if (kind === 'zeros' || kind === 'page') {
      let a: number;
      let len: number;
      if (kind === 'page') {
        len = 4096;
        const pages = Math.floor((lastStart - firstData) / 4096) - 1;
        if (pages < 1) continue;
        a = (Math.ceil(firstData / 4096) + r(pages)) * 4096;
      } else {
        len = 1 + r(300);
        a = firstData + r(Math.max(1, lastStart - firstData - len));
      }
      if (a + len > lastStart) continue;
      // Count it as damage only if it changes bytes.
      if (bytes.subarray(a, a + len).every((x) => x === 0)) continue;
      bytes.fill(0, a, a + len);
      damaged = [a, a + len];
    } else {
      // Cut inside a record (not the last), then append 1-3 fresh records.
      const victim = r(spans.length - 1);
      const [s, e] = spans[victim] as [number, number];
      const cut = s + 1 + r(e - s - 1);
      const fresh = makeLog(r, 1 + r(3));
      appended = fresh.payloads;
      const firstFresh = (fresh.spans[0] as [number, number])[0];
      out = Buffer.concat([bytes.subarray(0, cut), fresh.bytes.subarray(firstFresh)]);
      damaged = [cut, Number.MAX_SAFE_INTEGER]; // everything of the old log from the cut on
    }
    const intact: Buffer[] = [];
    spans.forEach(([s, e], i) => {
      if (e <= damaged[0] || s >= damaged[1]) intact.push(log.payloads[i] as Buffer);
    });
    intact.push(...appended);
    const ctx = `iter ${iter} (${kind}, damage [${damaged[0]}, ${damaged[1]}), ${spans.length} records, seed ${seed})`;
    const strict = read(out, false);
    assert.ok(strict.error !== undefined, `${ctx}: strict read must be CORRUPTION, got ${strict.got.length} records, torn ${strict.torn}, gaveUp ${strict.gaveUp}`);
    assert.match(strict.error, /corrupt|CORRUPTION|offset/i, ctx);
    const lenient = read(out, true);
    assert.equal(lenient.error, undefined, ctx);
    assert.equal(lenient.got.length, intact.length, `${ctx}: skipCorrupt count`);
    lenient.got.forEach((p, i) => assert.ok(p.equals(intact[i] as Buffer), `${ctx}: record ${i}`));
  }
});

test('sweep: a torn last write (prefix kept, optionally zeros or noise after) → torn tail, never CORRUPTION', { timeout: 60_000 }, () => {
  const seed = testSeed();
  console.log(`seed ${seed}`);
  const r = rng(seed ^ 0x5a5a5a5a);
  for (let iter = 0; iter < 150; iter++) {
    const log = makeLog(r, 2 + r(8));
    const start = log.lastWriteAt;
    const keep = r(log.bytes.length - start); // strictly less than the whole last write
    const extraKind = iter % 3;
    const extra = Buffer.alloc(extraKind === 0 ? 0 : 1 + r(8192));
    if (extraKind === 2) for (let i = 0; i < extra.length; i++) extra[i] = r(256);
    const out = Buffer.concat([log.bytes.subarray(0, start + keep), extra]);
    const complete = log.spans.filter(([, e]) => e <= start + keep);
    const validEnd = complete.length > 0 ? (complete[complete.length - 1] as [number, number])[1] : (log.spans[0] as [number, number])[0];
    const ctx = `iter ${iter} (keep ${keep} of last write at ${start}, extra ${extraKind === 0 ? 'none' : extraKind === 1 ? 'zeros' : 'noise'} ${extra.length}, seed ${seed})`;
    const res = read(out, false);
    assert.equal(res.error, undefined, `${ctx}: ${res.error}`);
    assert.equal(res.got.length, complete.length, ctx);
    const endsAtBoundary = validEnd === out.length;
    if (!endsAtBoundary) assert.equal(res.torn, validEnd, `${ctx}: tornTailOffset`);
  }
});
