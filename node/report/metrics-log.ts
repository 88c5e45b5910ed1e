/**
 * Reads the metrics.jsonl that trainLoop (node/train.ts) appends — one JSON object per logged
 * step: {step, epoch, time, ...terms} — into one chart series per loss term.
 *
 * - A run resumed from a checkpoint re-logs the steps after that checkpoint: for a repeated step
 *   the last record wins, and points are sorted by step.
 * - A non-finite term is written by JSON.stringify as null: it becomes NaN (a gap in the chart).
 * - An unparseable last line (a write cut short by a crash) is ignored; any other bad line throws
 *   with the file and line number.
 */
import { readFileSync } from 'node:fs';
import type { LineSeries, Point } from './svg-plot.js';

/** Keys of a record that are bookkeeping rather than loss terms. */
const META_KEYS = new Set(['step', 'epoch', 'time']);

export interface MetricsLogOptions {
  /** Keep only these terms (default: every numeric key except step/epoch/time, in first-seen order). */
  terms?: string[];
  /** Trailing moving-average window in logged points (default 1: raw values). */
  smooth?: number;
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

/**
 * Trailing moving average over `window` points (NaN values are left out of the mean; a point whose
 * window holds no finite value stays NaN). x values are unchanged.
 */
export function movingAverage(points: readonly Point[], window: number): Point[] {
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`movingAverage: window must be a positive integer, got ${window}`);
  const out: Point[] = [];
  for (let i = 0; i < points.length; i++) {
    let sum = 0;
    let n = 0;
    for (let j = Math.max(0, i - window + 1); j <= i; j++) {
      const v = points[j]![1];
      if (Number.isFinite(v)) {
        sum += v;
        n++;
      }
    }
    out.push([points[i]![0], n ? sum / n : NaN]);
  }
  return out;
}

/** One series (x = step) per loss term of the records. */
export function metricsSeries(records: readonly MetricsRecord[], opts: MetricsLogOptions = {}): LineSeries[] {
  const names = opts.terms ?? [...new Set(records.flatMap((r) => Object.keys(r).filter((k) => !META_KEYS.has(k))))];
  return names.map((name) => {
    const raw: Point[] = records.filter((r) => name in r).map((r) => [r.step, r[name]!]);
    return { name, points: opts.smooth && opts.smooth > 1 ? movingAverage(raw, opts.smooth) : raw };
  });
}

/** Reads a trainLoop metrics.jsonl into one series per term (see the module comment). */
export function readMetricsLog(path: string, opts: MetricsLogOptions = {}): LineSeries[] {
  return metricsSeries(parseMetricsLog(readFileSync(path, 'utf8'), path), opts);
}
