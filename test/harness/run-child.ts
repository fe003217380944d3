/**
 * Runs a test's child script (`node script ...args`) to completion and collects its output. A
 * child still running after HANG_MS is killed and reported as hung: a safety net against a process
 * that never exits (the test fails then), never a timing assertion.
 */
import { spawn } from 'node:child_process';

export const HANG_MS = 60_000;

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  hung: boolean;
}

export function runChild(script: string, args: readonly string[]): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}
