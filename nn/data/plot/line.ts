/**
 * Line charts (loss curves) as a self-contained SVG: several series, linear or log y axis,
 * 1-2-5 ticks, grid, axis labels, legend, optional EMA smoothing (the raw curve drawn faint
 * behind), and bucket-averaging of long series. Browser-safe.
 *
 * Non-finite points (NaN, ±Infinity) break the line (the gap stays visible); on a log axis,
 * points with y <= 0 are skipped too; a point with no neighbour in its run is drawn as a dot.
 * Empty input gives a chart frame with "no data".
 */
import { CHART_COLORS, drawAxes, drawLegend, escapeXml, frameFor, legendWidth, linearAxis, logAxis, noData, num, openChart, type Axis, type ChartOptions } from './svg.js';

export interface PlotSeries {
  name: string;
  y: ArrayLike<number>;
  /** x values (default 0, 1, 2, ...). */
  x?: ArrayLike<number>;
  /** Line colour (default: CHART_COLORS by position). */
  color?: string;
}

export interface LineChartOptions extends ChartOptions {
  /** Logarithmic y axis (base 10); the y label gets " (log)". */
  logY?: boolean;
  /** EMA smoothing weight in [0, 1) like TensorBoard's slider (default 0: none). */
  smoothing?: number;
  /** Series longer than this are averaged over buckets before drawing (default 2000). */
  maxPoints?: number;
}

/** Debiased exponential moving average; non-finite values are left out (NaN there). */
function ema(y: Float64Array, w: number): Float64Array {
  const out = new Float64Array(y.length);
  let acc = 0;
  let norm = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (!Number.isFinite(v)) {
      out[i] = NaN;
      continue;
    }
    acc = acc * w + (1 - w) * v;
    norm = norm * w + (1 - w);
    out[i] = acc / norm;
  }
  return out;
}

/** Means over consecutive buckets so at most maxPoints remain (a bucket without finite y is NaN). */
function bucket(x: Float64Array, y: Float64Array, maxPoints: number): [Float64Array, Float64Array] {
  if (x.length <= maxPoints) return [x, y];
  const k = Math.ceil(x.length / maxPoints);
  const m = Math.ceil(x.length / k);
  const bx = new Float64Array(m);
  const by = new Float64Array(m);
  for (let b = 0; b < m; b++) {
    let sx = 0;
    let sy = 0;
    let n = 0;
    let nx = 0;
    for (let i = b * k; i < Math.min(x.length, (b + 1) * k); i++) {
      sx += x[i]!;
      nx++;
      if (Number.isFinite(y[i]!)) {
        sy += y[i]!;
        n++;
      }
    }
    bx[b] = sx / nx;
    by[b] = n ? sy / n : NaN;
  }
  return [bx, by];
}

/** Path data through the usable points (a new subpath after each gap) and the isolated points. */
function pathOf([xs, ys]: [Float64Array, Float64Array], xa: Axis, ya: Axis): { d: string; dots: [number, number][] } {
  const parts: string[] = [];
  const dots: [number, number][] = [];
  let run = 0;
  const flush = (i: number) => {
    if (run === 1) dots.push([xs[i - 1]!, ys[i - 1]!]);
    run = 0;
  };
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i]!) || !Number.isFinite(ys[i]!)) {
      flush(i);
      continue;
    }
    parts.push(`${run ? 'L' : 'M'}${num(xa.map(xs[i]!))} ${num(ya.map(ys[i]!))}`);
    run++;
  }
  flush(xs.length);
  return { d: parts.join(' '), dots };
}

/** Renders the series as an SVG document (a string). x label defaults to 'step', y label to 'loss'. */
export function lineChart(series: readonly PlotSeries[], o: LineChartOptions = {}): string {
  const logY = o.logY ?? false;
  const smoothing = o.smoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new RangeError(`lineChart: smoothing must be in [0, 1), got ${smoothing}`);
  const maxPoints = o.maxPoints ?? 2000;
  if (!(Number.isInteger(maxPoints) && maxPoints >= 2)) throw new RangeError(`lineChart: maxPoints must be an integer >= 2, got ${maxPoints}`);
  const prepared = series.map((s, i) => {
    if (s.x && s.x.length !== s.y.length) throw new Error(`lineChart: series '${s.name}' has ${s.x.length} x values and ${s.y.length} y values`);
    const x = Float64Array.from(s.x ?? Array.from({ length: s.y.length }, (_, k) => k));
    const y = Float64Array.from(s.y, (v) => (logY && !(v > 0) ? NaN : v));
    const color = s.color ?? CHART_COLORS[i % CHART_COLORS.length]!;
    return { name: s.name, color, x, y, raw: bucket(x, y, maxPoints), smooth: smoothing > 0 ? bucket(x, ema(y, smoothing), maxPoints) : null };
  });
  // Bounds over the finite points, before bucketing.
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const { x, y } of prepared) {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) continue;
      x0 = Math.min(x0, x[i]!);
      x1 = Math.max(x1, x[i]!);
      y0 = Math.min(y0, y[i]!);
      y1 = Math.max(y1, y[i]!);
    }
  }
  const entries = prepared.map((p) => ({ name: p.name, color: p.color }));
  const f = frameFor(o, legendWidth(entries.map((e) => e.name)));
  const out = openChart(f, o, o.xLabel ?? 'step', (o.yLabel ?? 'loss') + (logY ? ' (log)' : ''));
  if (!(x1 >= x0)) {
    out.push(noData(f), ...drawLegend(f, entries), '</svg>');
    return out.join('\n') + '\n';
  }
  const xa = linearAxis(x0, x1, f.left, f.right);
  const ya = logY ? logAxis(y0, y1, f.bottom, f.top) : linearAxis(y0, y1, f.bottom, f.top);
  out.push(...drawAxes(f, xa, ya));
  for (const p of prepared) {
    const name = escapeXml(p.name);
    const raw = p.smooth ? pathOf(p.raw, xa, ya).d : '';
    if (raw) out.push(`<path class="series-raw" data-name="${name}" d="${raw}" fill="none" stroke="${p.color}" stroke-opacity="0.25" stroke-width="1"/>`);
    const { d, dots } = pathOf(p.smooth ?? p.raw, xa, ya);
    if (!d) continue;
    out.push(`<path class="series" data-name="${name}" d="${d}" fill="none" stroke="${p.color}" stroke-width="1.6"><title>${name}</title></path>`);
    for (const [x, y] of dots) out.push(`<circle cx="${num(xa.map(x))}" cy="${num(ya.map(y))}" r="2.5" fill="${p.color}"/>`);
  }
  out.push(...drawLegend(f, entries), '</svg>');
  return out.join('\n') + '\n';
}
