/**
 * Docs that run: the transaction examples of README.md ("## Transactions") and
 * docs/transactions.md (its first code block) are extracted and executed against an in-memory
 * database, as the body of an async function with `db` in scope.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from '../../src/index.js';
import { openMem, str } from './txn-helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..'); // build/test/txn -> repo root

function codeBlockAfter(markdown: string, heading: string): string {
  const start = markdown.indexOf(heading);
  assert.ok(start >= 0, `"${heading}" exists`);
  const m = /```ts\n([\s\S]*?)```/.exec(markdown.slice(start));
  assert.ok(m?.[1] !== undefined, `a ts code block follows "${heading}"`);
  return m[1];
}

type Body = (db: Database) => Promise<void>;
const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (arg: string, body: string) => Body;

async function runBlock(file: string, heading: string): Promise<Database> {
  const code = codeBlockAfter(fs.readFileSync(path.join(root, file), 'utf8'), heading);
  const { db } = await openMem();
  await db.put('acct/alice', '100');
  await db.put('acct/bob', '5');
  await new AsyncFunction('db', code)(db);
  return db;
}

test('README transactions example runs as written', async () => {
  const db = await runBlock('README.md', '## Transactions');
  assert.equal(str(await db.get('acct/alice')), '90');
  assert.equal(str(await db.get('acct/bob')), '15');
  assert.equal(str(await db.get('k')), 'v');
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
});

test('docs/transactions.md example runs as written', async () => {
  const db = await runBlock('docs/transactions.md', '# Transactions');
  assert.equal(str(await db.get('acct/alice')), '90');
  assert.equal(str(await db.get('k')), 'v');
  assert.equal(db.stats().activeTransactions, 0);
  await db.close();
});
