/**
 * The webgpu-tok CLI in a child process that cannot hang a test run: after `timeoutMs` it is
 * killed with SIGKILL (SIGTERM would only ask a training loop to finish its step and save) and
 * the promise rejects with a message naming the command, so a regression that hangs fails in
 * seconds instead of stalling CI. `onStdout` sees each chunk (e.g. to send a signal on a line).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'webgpu-tok.mjs');

export interface ChildResult {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stderr without the lines Dawn prints about its limits and notes about old files: what the CLI itself reported. */
  errLines: string[];
  ms: number;
}

export function runCli(argv: readonly string[], o: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv; onStdout?: (all: string, child: ChildProcess) => void } = {}): Promise<ChildResult> {
  const timeoutMs = o.timeoutMs ?? 20_000;
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...argv], { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString();
    o.onStdout?.(stdout, child);
  });
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`webgpu-tok ${argv.join(' ')} did not exit within ${timeoutMs / 1000} s (killed); stderr: ${stderr.slice(-500)}; stdout: ${stdout.slice(-500)}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const errLines = stderr.split('\n').filter((l) => l.trim() !== '' && !/^Warning: maxDynamic|^note: /.test(l));
      resolve({ code, signal, stdout, stderr, errLines, ms: performance.now() - t0 });
    });
  });
}
