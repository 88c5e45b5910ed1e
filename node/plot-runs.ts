/**
 * `webgpu-tok plot`: training curves of one or more runs (metrics.jsonl files or run folders)
 * overlaid in one SVG, e.g. a baseline against a perturbed tokenizer.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { compareRunsSeries, lineChart, parseMetricsLog, type LineChartOptions } from '../nn/data/plot/index.js';
import { writeFileAtomicSync } from './data/files.js';

export interface RunLog {
  path: string;
  label: string;
}

/**
 * Parses "PATH" or "PATH=LABEL" run arguments: PATH is a metrics.jsonl file or a folder holding
 * one; the label defaults to the run folder's name. Throws naming the argument when nothing is there.
 */
export function parseRunArg(arg: string): RunLog {
  const eq = arg.lastIndexOf('=');
  const raw = eq > 0 ? arg.slice(0, eq) : arg;
  let path = raw;
  if (existsSync(raw) && statSync(raw).isDirectory()) path = join(raw, 'metrics.jsonl');
  if (!existsSync(path)) throw new Error(`plot: no metrics log at '${path}' (give a metrics.jsonl file or a run folder that has one)`);
  const label = eq > 0 ? arg.slice(eq + 1) : basename(path) === 'metrics.jsonl' ? basename(dirname(path)) || path : basename(path).replace(/\.jsonl$/, '');
  return { path, label };
}

/** Reads the runs' logs and writes the overlay chart to svgPath; returns the SVG text. */
export function plotRuns(runs: readonly RunLog[], svgPath: string, terms: readonly string[] | undefined, opts: LineChartOptions): string {
  const logs = runs.map((r) => ({ label: r.label, records: parseMetricsLog(readFileSync(r.path, 'utf8'), r.path) }));
  const svg = lineChart(compareRunsSeries(logs, terms), { xLabel: 'step', ...opts });
  writeFileAtomicSync(svgPath, svg);
  return svg;
}
