/**
 * Background workers inherit the process's Node options. `--input-type` (as in
 * `node --input-type=module -e '...'`) is rejected for a worker started from a file: every flush and
 * compaction then failed with IO_ERROR. The worker now starts without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LIB = new URL('../../src/index.js', import.meta.url).href;

/**
 * Each case: Node options, then whether the script is an ES module (-e is CommonJS without
 * --input-type=module). --expose-gc is a V8 flag: inherited it is fine, but Node refuses it in an
 * explicit worker option list (the benchmark runs its children with it).
 */
const CASES: [string[], boolean][] = [
  [['--input-type=module'], true],
  [['--input-type', 'module'], true],
  [['--expose-gc', '--input-type=module'], true],
  [['--expose-gc'], false],
];

for (const [flags, esm] of CASES) test(`a process run with ${flags.join(' ')} -e flushes and compacts on its workers`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ldb-execargv-'));
  try {
    const body = `
      const { open } = await import(${JSON.stringify(LIB)});
      const db = await open(${JSON.stringify(dir)}, { memtableSize: 64 * 1024 });
      for (let i = 0; i < 3000; i++) await db.put('k' + String(i).padStart(5, '0'), 'v'.repeat(100));
      await db.compactRange();
      const s = db.stats();
      const value = (await db.get('k02999'))?.toString().length;
      await db.close();
      console.log(JSON.stringify({ flushes: s.flushes.count, thread: s.flushes.thread, state: s.state, errors: s.backgroundErrors, value }));
    `;
    const script = esm ? body : `(async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [...flags, '-e', script], { timeout: 60_000 }, (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`child failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const r = JSON.parse(out.trim().split('\n').pop() as string) as { flushes: number; thread: string; state: string; errors: unknown; value: number };
    assert.equal(r.state, 'open');
    assert.equal(r.thread, 'worker');
    assert.ok(r.flushes > 0, `flushes: ${r.flushes}`);
    assert.equal(r.value, 100);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
