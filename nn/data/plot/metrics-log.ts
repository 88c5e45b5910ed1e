/**
 * Parses the metrics.jsonl that trainLoop (node/train.ts) appends — one JSON object per logged
 * step: {step, epoch, time, ...terms} — into records and one chart series per loss term.
 * Browser-safe (the text is passed in; node/data/files.ts reads files).
 *
 * - A run resumed from a checkpoint re-logs the steps after that checkpoint: for a repeated step
 *   the last record wins, and records are sorted by step.
 * - A non-finite term is written by JSON.stringify as null: it becomes NaN (a gap in the chart).
 * - An unparseable last line (a write cut short by a crash) is ignored; any other bad line throws
 *   with the source name and line number.
 */
import type { PlotSeries } from './line.js';

/** Keys of a record that are bookkeeping rather than loss terms. */
const META_KEYS = new Set(['step', 'epoch', 'time']);

export interface MetricsLogOptions {
  /** Keep only these terms (default: every numeric key except step/epoch/time, in first-seen order). */
  terms?: readonly string[];
}

export type MetricsRecord = { step: number } & Record<string, number>;

/** Parses metrics.jsonl text into records sorted by step (last record wins for a repeated step). */
export function parseMetricsLog(text: string, source = 'metrics.jsonl'): MetricsRecord[] {
  const lines = text.split('\n');
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  const byStep = new Map<number, MetricsRecord>();
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1) return; // truncated final write
      throw new Error(`${source}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    if (typeof obj !== 'object' || obj === null || typeof (obj as { step?: unknown }).step !== 'number') {
      throw new Error(`${source}:${i + 1}: expected an object with a numeric "step"`);
    }
    const rec: Record<string, number> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'number') rec[k] = v;
      else if (v === null || v === 'NaN') rec[k] = NaN;
      else if (v === 'Infinity' || v === '-Infinity') rec[k] = Number(v);
    }
    byStep.set(rec.step!, rec as MetricsRecord);
  });
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** One series (x = step) per loss term of the records; a record without the term adds no point. */
export function metricsSeries(records: readonly MetricsRecord[], opts: MetricsLogOptions = {}): PlotSeries[] {
  const names = opts.terms ?? [...new Set(records.flatMap((r) => Object.keys(r).filter((k) => !META_KEYS.has(k))))];
  return names.map((name) => {
    const has = records.filter((r) => name in r);
    return { name, x: has.map((r) => r.step), y: has.map((r) => r[name]!) };
  });
}

/**
 * Overlays several runs' logs in one chart: one series per run and term, named by the run's label
 * alone when a single term is plotted, else "label: term". Terms default to those of the first
 * run; a term missing from every run throws (a misspelled --term should not give an empty chart).
 */
export function compareRunsSeries(runs: readonly { label: string; records: readonly MetricsRecord[] }[], terms?: readonly string[]): PlotSeries[] {
  if (runs.length === 0) throw new Error('compareRunsSeries: no runs to plot');
  const names = terms ?? metricsSeries(runs[0]!.records).map((s) => s.name);
  for (const t of names) {
    if (!runs.some((r) => r.records.some((rec) => t in rec))) {
      const known = [...new Set(runs.flatMap((r) => r.records.flatMap((rec) => Object.keys(rec).filter((k) => !META_KEYS.has(k)))))];
      throw new Error(`no run logs the term '${t}' (logged terms: ${known.join(', ') || 'none'})`);
    }
  }
  return runs.flatMap((r) =>
    metricsSeries(r.records, { terms: names })
      .filter((s) => s.y.length > 0)
      .map((s) => ({ ...s, name: names.length === 1 ? r.label : `${r.label}: ${s.name}` })),
  );
}
