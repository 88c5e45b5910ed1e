/**
 * Command-line arguments naming a result file with an optional label, as `plot` and `eval-table`
 * take them: "PATH" or "PATH=LABEL", where PATH is the file itself or a run folder holding
 * `defaultFile`. The label defaults to the run folder's name (or the file name without extension).
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

export interface LabeledPath {
  path: string;
  label: string;
}

/** Resolves one argument; throws `missing(path)` when no file is there. */
export function resolveLabeledPath(arg: string, defaultFile: string, missing: (path: string) => string): LabeledPath {
  const eq = arg.lastIndexOf('=');
  const raw = eq > 0 ? arg.slice(0, eq) : arg;
  const path = existsSync(raw) && statSync(raw).isDirectory() ? join(raw, defaultFile) : raw;
  if (!existsSync(path)) throw new Error(missing(path));
  const label = eq > 0 ? arg.slice(eq + 1) : basename(path) === defaultFile ? basename(dirname(path)) || path : basename(path, extname(path));
  return { path, label };
}
