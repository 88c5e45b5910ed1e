/**
 * Scatter charts (e.g. pFID vs gFID) as a self-contained SVG, with optional point labels and a
 * least-squares line. Non-finite points are skipped. Browser-safe.
 */
import { CHART_COLORS, drawAxes, drawLegend, escapeXml, frameFor, legendWidth, linearAxis, noData, num, openChart, tickLabel, type ChartOptions } from './svg.js';

export interface ScatterPoint {
  x: number;
  y: number;
  label?: string;
}

export interface ScatterChartOptions extends ChartOptions {
  /** Draw a least-squares line y = a x + b over the finite points. */
  fit?: 'linear';
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

function extent(values: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Scatter plot with optional point labels and an optional least-squares line (x/y labels default to 'x'/'y'). */
export function scatterChart(points: readonly ScatterPoint[], o: ScatterChartOptions = {}): string {
  const pts = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const fit = o.fit === 'linear' ? linearFit(pts) : null;
  const fitName = fit ? `fit: y = ${tickLabel(fit.slope)} x ${fit.intercept < 0 ? '-' : '+'} ${tickLabel(Math.abs(fit.intercept))}` : '';
  const f = frameFor(o, fit ? legendWidth([fitName]) : 0);
  const out = openChart(f, o, o.xLabel ?? 'x', o.yLabel ?? 'y');
  if (pts.length === 0) {
    out.push(noData(f), '</svg>');
    return out.join('\n') + '\n';
  }
  const [x0, x1] = extent(pts.map((p) => p.x));
  const [y0, y1] = extent(pts.map((p) => p.y));
  const xa = linearAxis(x0, x1, f.left, f.right);
  const ya = linearAxis(y0, y1, f.bottom, f.top);
  out.push(...drawAxes(f, xa, ya));
  const fitColor = CHART_COLORS[2]!;
  if (fit) {
    // Clip the line to the plot box: the part of the x range where it stays inside the y range.
    const xs = clipLine(fit.slope, fit.intercept, xa.ticks[0]!, xa.ticks[xa.ticks.length - 1]!, ya.ticks[0]!, ya.ticks[ya.ticks.length - 1]!);
    if (xs) {
      const [a, b] = xs;
      out.push(`<line x1="${num(xa.map(a))}" y1="${num(ya.map(fit.slope * a + fit.intercept))}" x2="${num(xa.map(b))}" y2="${num(ya.map(fit.slope * b + fit.intercept))}" stroke="${fitColor}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    }
  }
  out.push(`<g fill="${CHART_COLORS[0]}">`);
  for (const p of pts) {
    const tip = `${p.label ? `${p.label}: ` : ''}(${tickLabel(p.x)}, ${tickLabel(p.y)})`;
    out.push(`<circle cx="${num(xa.map(p.x))}" cy="${num(ya.map(p.y))}" r="4"><title>${escapeXml(tip)}</title></circle>`);
    if (p.label) out.push(`<text x="${num(xa.map(p.x) + 6)}" y="${num(ya.map(p.y) - 6)}" fill="#333" font-size="11">${escapeXml(p.label)}</text>`);
  }
  out.push('</g>');
  if (fit) out.push(...drawLegend(f, [{ name: fitName, color: fitColor, dashed: true }]));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
