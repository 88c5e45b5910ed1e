/**
 * `webgpu-tok plot`: training curves of one or more runs (metrics.jsonl files or run folders)
 * overlaid in one SVG, e.g. a baseline against a perturbed tokenizer.
 */
import { readFileSync } from 'node:fs';
import { compareRunsSeries, parseMetricsLog, type LineChartOptions } from '../nn/data/plot/index.js';
import { saveLossPlot } from './data/files.js';
import { resolveLabeledPath, type LabeledPath } from './labeled-path.js';

/** "PATH" or "PATH=LABEL": a metrics.jsonl file or a run folder that has one; label default: the folder name. */
export function parseRunArg(arg: string): LabeledPath {
  return resolveLabeledPath(arg, 'metrics.jsonl', (path) => `plot: no metrics log at '${path}' (give a metrics.jsonl file or a run folder that has one)`);
}

/** Reads the runs' logs and writes the overlay chart to svgPath; returns the SVG text. */
export function plotRuns(runs: readonly LabeledPath[], svgPath: string, terms: readonly string[] | undefined, opts: LineChartOptions): string {
  const logs = runs.map((r) => ({ label: r.label, records: parseMetricsLog(readFileSync(r.path, 'utf8'), r.path) }));
  return saveLossPlot(svgPath, compareRunsSeries(logs, terms), { xLabel: 'step', ...opts });
}
