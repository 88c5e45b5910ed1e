/**
 * Minimal standalone SVG charts for the experiment report: line charts (loss curves) and scatter
 * plots (pFID vs gFID). Pure string builders with no dependencies; the output is a complete
 * <svg> element that can be inlined in HTML or saved as a .svg file.
 *
 * Non-finite points (NaN, ±Infinity) are skipped (a line is broken there); on a log axis,
 * points with y <= 0 are skipped too. Empty input gives a chart frame with "no data".
 */

export type Point = [number, number];

export interface LineSeries {
  name: string;
  points: readonly Point[];
}

export interface ScatterPoint {
  x: number;
  y: number;
  label?: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Pixel size of the whole SVG (default 640 x 400). */
  width?: number;
  height?: number;
}

export interface LineChartOptions extends ChartOptions {
  /** Logarithmic y axis (base 10). */
  logY?: boolean;
}

export interface ScatterChartOptions extends ChartOptions {
  /** Draw a least-squares line y = a x + b over the finite points. */
  fit?: 'linear';
}

/** Colours for series (Tableau 10). */
export const CHART_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** Escapes text for XML/HTML element content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface Ticks {
  ticks: number[];
  /** Distance between consecutive ticks: 1, 2 or 5 times a power of ten. */
  step: number;
}

/**
 * "Nice" linear ticks: a 1-2-5 step giving about `target` intervals, with the first tick <= min
 * and the last >= max (so the ticks cover the data range). min == max is widened around the value.
 * Inputs must be finite.
 */
export function linearTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) throw new RangeError(`linearTicks: range must be finite, got [${min}, ${max}]`);
  if (min > max) [min, max] = [max, min];
  if (!Number.isFinite(max - min)) throw new RangeError(`linearTicks: range [${min}, ${max}] is too wide`);
  if (max - min <= Math.max(Math.abs(min), Math.abs(max), 1e-290) * 1e-9) {
    // A single value (or a range below float resolution): widen around it.
    const mid = (min + max) / 2;
    const pad = Math.abs(mid) < 1e-280 ? 1 : Math.abs(mid) * 0.1;
    min = mid - pad;
    max = mid + pad;
  }
  const raw = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const lo = Math.floor(min / step);
  const hi = Math.ceil(max / step);
  if (!(hi - lo <= 100 * Math.max(1, target))) throw new Error(`linearTicks: internal error for range [${min}, ${max}] (step ${step})`);
  const ticks: number[] = [];
  // Integer multiples of the step, rounded to 12 significant digits to remove float noise.
  const at = (k: number) => Number((k * step).toPrecision(12));
  for (let k = lo; k <= hi; k++) ticks.push(at(k));
  // Rounding may move an end tick just inside the range: extend by one step then.
  if (ticks[0]! > min) ticks.unshift(at(lo - 1));
  if (ticks[ticks.length - 1]! < max) ticks.push(at(hi + 1));
  return { ticks, step: Number(step.toPrecision(12)) };
}

/**
 * Ticks for a log10 axis over positive [min, max]: whole decades covering the range, plus 2 and 5
 * times each decade when the range spans fewer than 3 decades; every k-th decade when it spans many.
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) throw new RangeError(`logTicks: range must be positive and finite, got [${min}, ${max}]`);
  if (min > max) [min, max] = [max, min];
  let lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi === lo) hi = lo + 1;
  const decades = hi - lo;
  if (decades < 3) {
    const c: number[] = [];
    for (let e = lo; e <= hi; e++) for (const m of [1, 2, 5]) c.push(Number((m * 10 ** e).toPrecision(12)));
    // From the last candidate <= min to the first >= max (at least two ticks).
    let i0 = 0;
    while (i0 + 1 < c.length && c[i0 + 1]! <= min) i0++;
    let i1 = i0;
    while (i1 < c.length - 1 && c[i1]! < max) i1++;
    if (i1 === i0) i1++;
    return c.slice(i0, i1 + 1);
  }
  const every = Math.ceil(decades / 8);
  lo = Math.floor(lo / every) * every;
  hi = Math.ceil(hi / every) * every;
  const out: number[] = [];
  for (let e = lo; e <= hi; e += every) out.push(Number((10 ** e).toPrecision(12)));
  return out;
}

/** Short tick label: plain decimals where readable, exponent form for very large/small values. */
export function tickLabel(v: number, step?: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const s = v.toExponential(2);
    return s.replace(/\.?0+e/, 'e');
  }
  if (step !== undefined && step > 0) {
    const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
    return v.toFixed(decimals);
  }
  return String(Number(v.toPrecision(4)));
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frameFor(o: ChartOptions, legendWidth: number): Frame {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  return { width, height, left: 70, right: width - 20 - legendWidth, top: 36, bottom: height - 50 };
}

function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Frame, title, axis labels and "no data" for empty charts. */
function open(f: Frame, o: ChartOptions): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(o.title)}</title>`,
    `<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="white"/>`,
    `<text x="${num(f.width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(o.title)}</text>`,
    `<text x="${num((f.left + f.right) / 2)}" y="${num(f.height - 10)}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text x="16" y="${num((f.top + f.bottom) / 2)}" text-anchor="middle" transform="rotate(-90 16 ${num((f.top + f.bottom) / 2)})">${escapeXml(o.yLabel)}</text>`,
  ];
}

function noData(f: Frame): string {
  return `<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#999"/><text x="${num((f.left + f.right) / 2)}" y="${num((f.top + f.bottom) / 2)}" text-anchor="middle" fill="#666">no data</text>`;
}

interface Axis {
  /** Maps a data value to a pixel coordinate. */
  map: (v: number) => number;
  ticks: number[];
  label: (v: number) => string;
}

function linearAxis(min: number, max: number, p0: number, p1: number): Axis {
  const { ticks, step } = linearTicks(min, max);
  const lo = ticks[0]!;
  const hi = ticks[ticks.length - 1]!;
  return { ticks, map: (v) => p0 + ((v - lo) / (hi - lo)) * (p1 - p0), label: (v) => tickLabel(v, step) };
}

function logAxis(min: number, max: number, p0: number, p1: number): Axis {
  const ticks = logTicks(min, max);
  const lo = Math.log10(ticks[0]!);
  const hi = Math.log10(ticks[ticks.length - 1]!);
  return { ticks, map: (v) => p0 + ((Math.log10(v) - lo) / (hi - lo)) * (p1 - p0), label: (v) => tickLabel(v) };
}

function axes(f: Frame, xa: Axis, ya: Axis): string[] {
  const out: string[] = [`<g stroke="#ddd" stroke-width="1">`];
  for (const t of xa.ticks) out.push(`<line x1="${num(xa.map(t))}" y1="${f.top}" x2="${num(xa.map(t))}" y2="${f.bottom}"/>`);
  for (const t of ya.ticks) out.push(`<line x1="${f.left}" y1="${num(ya.map(t))}" x2="${f.right}" y2="${num(ya.map(t))}"/>`);
  out.push('</g>', `<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#333"/>`);
  out.push(`<g fill="#333">`);
  for (const t of xa.ticks) out.push(`<text x="${num(xa.map(t))}" y="${f.bottom + 16}" text-anchor="middle">${escapeXml(xa.label(t))}</text>`);
  for (const t of ya.ticks) out.push(`<text x="${f.left - 6}" y="${num(ya.map(t) + 4)}" text-anchor="end">${escapeXml(ya.label(t))}</text>`);
  out.push('</g>');
  return out;
}

function legend(f: Frame, entries: { name: string; color: string; dashed?: boolean }[]): string[] {
  if (entries.length === 0) return [];
  const x = f.right + 12;
  const out = ['<g>'];
  entries.forEach((e, i) => {
    const y = f.top + 8 + i * 18;
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${e.color}" stroke-width="2"${e.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    out.push(`<text x="${x + 24}" y="${y + 4}">${escapeXml(e.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

function legendWidth(names: string[]): number {
  if (names.length === 0) return 0;
  // Rough width of 12px sans-serif text: ~7px per character, capped.
  return Math.min(220, 36 + 7 * Math.max(...names.map((n) => n.length)));
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Line chart of one or more series (e.g. loss terms over steps), with a legend. */
export function lineChart(series: readonly LineSeries[], o: LineChartOptions): string {
  const usable = (p: Point) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!o.logY || p[1] > 0);
  const f = frameFor(o, legendWidth(series.map((s) => s.name)));
  const out = open(f, o);
  const pts = series.flatMap((s) => s.points.filter(usable));
  if (pts.length === 0) {
    out.push(noData(f), ...legend(f, series.map((s, i) => ({ name: s.name, color: CHART_COLORS[i % CHART_COLORS.length]! }))), '</svg>');
    return out.join('\n');
  }
  const [x0, x1] = extent(pts.map((p) => p[0]));
  const [y0, y1] = extent(pts.map((p) => p[1]));
  const xa = linearAxis(x0, x1, f.left, f.right);
  const ya = o.logY ? logAxis(y0, y1, f.bottom, f.top) : linearAxis(y0, y1, f.bottom, f.top);
  out.push(...axes(f, xa, ya));
  series.forEach((s, i) => {
    const color = CHART_COLORS[i % CHART_COLORS.length]!;
    // Runs of consecutive usable points; the path is broken between runs so gaps stay visible.
    const runs: Point[][] = [[]];
    for (const p of s.points) {
      if (usable(p)) runs[runs.length - 1]!.push(p);
      else if (runs[runs.length - 1]!.length) runs.push([]);
    }
    const d = runs.flatMap((run) => run.map((p, k) => `${k ? 'L' : 'M'}${num(xa.map(p[0]))} ${num(ya.map(p[1]))}`)).join(' ');
    if (!d) return;
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"><title>${escapeXml(s.name)}</title></path>`);
    // A run of one point draws no visible line: mark it.
    for (const run of runs) if (run.length === 1) out.push(`<circle cx="${num(xa.map(run[0]![0]))}" cy="${num(ya.map(run[0]![1]))}" r="2.5" fill="${color}"/>`);
  });
  out.push(...legend(f, series.map((s, i) => ({ name: s.name, color: CHART_COLORS[i % CHART_COLORS.length]! }))), '</svg>');
  return out.join('\n');
}

/** Least-squares line through (x, y); null with fewer than 2 distinct x. */
export function linearFit(points: readonly { x: number; y: number }[]): { slope: number; intercept: number } | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

/** Scatter plot with optional point labels and an optional least-squares line. */
export function scatterChart(points: readonly ScatterPoint[], o: ScatterChartOptions): string {
  const pts = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const fit = o.fit === 'linear' ? linearFit(pts) : null;
  const fitName = fit ? `fit: y = ${tickLabel(fit.slope)} x ${fit.intercept < 0 ? '-' : '+'} ${tickLabel(Math.abs(fit.intercept))}` : '';
  const f = frameFor(o, fit ? legendWidth([fitName]) : 0);
  const out = open(f, o);
  if (pts.length === 0) {
    out.push(noData(f), '</svg>');
    return out.join('\n');
  }
  const [x0, x1] = extent(pts.map((p) => p.x));
  const [y0, y1] = extent(pts.map((p) => p.y));
  const xa = linearAxis(x0, x1, f.left, f.right);
  const ya = linearAxis(y0, y1, f.bottom, f.top);
  out.push(...axes(f, xa, ya));
  if (fit) {
    const lo = xa.ticks[0]!;
    const hi = xa.ticks[xa.ticks.length - 1]!;
    const yLo = ya.ticks[0]!;
    const yHi = ya.ticks[ya.ticks.length - 1]!;
    // Clip the line to the plot box: sample the x range and keep the part inside the y range.
    const xs = clipLine(fit.slope, fit.intercept, lo, hi, yLo, yHi);
    if (xs) {
      const [a, b] = xs;
      out.push(`<line x1="${num(xa.map(a))}" y1="${num(ya.map(fit.slope * a + fit.intercept))}" x2="${num(xa.map(b))}" y2="${num(ya.map(fit.slope * b + fit.intercept))}" stroke="${CHART_COLORS[2]}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    }
  }
  out.push(`<g fill="${CHART_COLORS[0]}">`);
  for (const p of pts) {
    const cx = num(xa.map(p.x));
    const cy = num(ya.map(p.y));
    const tip = `${p.label ? `${p.label}: ` : ''}(${tickLabel(p.x)}, ${tickLabel(p.y)})`;
    out.push(`<circle cx="${cx}" cy="${cy}" r="4"><title>${escapeXml(tip)}</title></circle>`);
    if (p.label) out.push(`<text x="${num(xa.map(p.x) + 6)}" y="${num(ya.map(p.y) - 6)}" fill="#333" font-size="11">${escapeXml(p.label)}</text>`);
  }
  out.push('</g>');
  if (fit) out.push(...legend(f, [{ name: fitName, color: CHART_COLORS[2]!, dashed: true }]));
  out.push('</svg>');
  return out.join('\n');
}

/** The x interval of [x0, x1] where y = a x + b lies within [y0, y1], or null. */
function clipLine(a: number, b: number, x0: number, x1: number, y0: number, y1: number): [number, number] | null {
  let lo = x0;
  let hi = x1;
  if (a !== 0) {
    const xa = (y0 - b) / a;
    const xb = (y1 - b) / a;
    lo = Math.max(lo, Math.min(xa, xb));
    hi = Math.min(hi, Math.max(xa, xb));
  } else if (b < y0 || b > y1) return null;
  return lo < hi ? [lo, hi] : null;
}
