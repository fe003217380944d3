/**
 * Docs that run: the README's quick start is extracted, pointed at this build, and executed in a
 * child process in a temporary directory. It must run without error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..'); // build/test/docs -> repo root
const builtIndex = path.join(root, 'build/src/index.js');

function codeBlockAfter(markdown: string, heading: string): string {
  const start = markdown.indexOf(heading);
  assert.ok(start >= 0, `README has a "${heading}" section`);
  const m = /```ts\n([\s\S]*?)```/.exec(markdown.slice(start));
  assert.ok(m?.[1] !== undefined, `a ts code block follows "${heading}"`);
  return m[1];
}

test('README quick start runs as written', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const code = codeBlockAfter(readme, '## Quick start').replaceAll(
    "from 'lightning-db'",
    `from '${pathToFileURL(builtIndex).href}'`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldb-readme-'));
  try {
    const file = path.join(dir, 'quick-start.mjs');
    fs.writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `quick start failed:\n${r.stderr}\n${r.stdout}`);
    assert.match(r.stdout, /alice/, 'the quick start printed its scan');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
