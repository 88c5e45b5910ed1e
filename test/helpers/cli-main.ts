/**
 * The webgpu-tok CLI's `main` run in the test process, its output lines collected: for commands
 * that finish quickly (argument errors, tiny runs). Anything that could hang goes through
 * runCli (test/helpers/cli-child.ts), which kills the child at a timeout.
 */
import { main } from '../../node/cli.js';

export interface MainResult {
  code: number;
  out: string;
  err: string;
  /** stderr lines as printed, in order. */
  errLines: string[];
}

export async function runMain(argv: string[]): Promise<MainResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n'), errLines: err };
}
