/**
 * Shared pieces of the SVG charts: escaping, palette, axis ticks and labels, and the chart frame
 * (title, axis labels, grid, legend). Pure string building; browser-safe.
 */

export interface ChartOptions {
  /** Drawn above the plot and used as the SVG's <title> (default: none). */
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixel size of the whole SVG (default 640 x 400). */
  width?: number;
  height?: number;
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

// ---- chart frame (used by line.ts and scatter.ts) ----

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The plot box inside the SVG; `legendWidth` is reserved on the right for the legend. */
export function frameFor(o: ChartOptions, legendWidth: number): Frame {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  return { width, height, left: 70, right: width - 20 - legendWidth, top: o.title ? 36 : 16, bottom: height - 50 };
}

/** A pixel coordinate with at most two decimals. */
export function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** The opening <svg>, background, title and axis labels. */
export function openChart(f: Frame, o: ChartOptions, xLabel: string, yLabel: string): string[] {
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="12">`];
  if (o.title) out.push(`<title>${escapeXml(o.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="white"/>`);
  if (o.title) out.push(`<text x="${num(f.width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(o.title)}</text>`);
  const cy = num((f.top + f.bottom) / 2);
  out.push(
    `<text x="${num((f.left + f.right) / 2)}" y="${num(f.height - 10)}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text x="16" y="${cy}" text-anchor="middle" transform="rotate(-90 16 ${cy})">${escapeXml(yLabel)}</text>`,
  );
  return out;
}

/** The empty plot box with "no data". */
export function noData(f: Frame): string {
  return `<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#999"/><text x="${num((f.left + f.right) / 2)}" y="${num((f.top + f.bottom) / 2)}" text-anchor="middle" fill="#666">no data</text>`;
}

export interface Axis {
  /** Maps a data value to a pixel coordinate. */
  map: (v: number) => number;
  ticks: number[];
  label: (v: number) => string;
}

/** A linear axis from data [min, max] (finite) to pixels [p0, p1], spanning the covering ticks. */
export function linearAxis(min: number, max: number, p0: number, p1: number): Axis {
  const { ticks, step } = linearTicks(min, max);
  const lo = ticks[0]!;
  const hi = ticks[ticks.length - 1]!;
  return { ticks, map: (v) => p0 + ((v - lo) / (hi - lo)) * (p1 - p0), label: (v) => tickLabel(v, step) };
}

/** A log10 axis from data [min, max] (positive) to pixels [p0, p1]. */
export function logAxis(min: number, max: number, p0: number, p1: number): Axis {
  const ticks = logTicks(min, max);
  const lo = Math.log10(ticks[0]!);
  const hi = Math.log10(ticks[ticks.length - 1]!);
  return { ticks, map: (v) => p0 + ((Math.log10(v) - lo) / (hi - lo)) * (p1 - p0), label: (v) => tickLabel(v) };
}

/** Grid lines, the plot box and tick labels (classes xtick / ytick). */
export function drawAxes(f: Frame, xa: Axis, ya: Axis): string[] {
  const out: string[] = [`<g stroke="#ddd" stroke-width="1">`];
  for (const t of xa.ticks) out.push(`<line x1="${num(xa.map(t))}" y1="${f.top}" x2="${num(xa.map(t))}" y2="${f.bottom}"/>`);
  for (const t of ya.ticks) out.push(`<line x1="${f.left}" y1="${num(ya.map(t))}" x2="${f.right}" y2="${num(ya.map(t))}"/>`);
  out.push('</g>', `<rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#333"/>`);
  out.push(`<g fill="#333">`);
  for (const t of xa.ticks) out.push(`<text class="xtick" x="${num(xa.map(t))}" y="${f.bottom + 16}" text-anchor="middle">${escapeXml(xa.label(t))}</text>`);
  for (const t of ya.ticks) out.push(`<text class="ytick" x="${f.left - 6}" y="${num(ya.map(t) + 4)}" text-anchor="end">${escapeXml(ya.label(t))}</text>`);
  out.push('</g>');
  return out;
}

export interface LegendEntry {
  name: string;
  color: string;
  dashed?: boolean;
}

/** The legend to the right of the plot box (text class legend). */
export function drawLegend(f: Frame, entries: readonly LegendEntry[]): string[] {
  if (entries.length === 0) return [];
  const x = f.right + 12;
  const out = ['<g>'];
  entries.forEach((e, i) => {
    const y = f.top + 8 + i * 18;
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${e.color}" stroke-width="2"${e.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    out.push(`<text class="legend" x="${x + 24}" y="${y + 4}">${escapeXml(e.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

/** Width to reserve for a legend with these names (0 for none). */
export function legendWidth(names: readonly string[]): number {
  if (names.length === 0) return 0;
  // Rough width of 12px sans-serif text: ~7px per character, capped.
  return Math.min(220, 36 + 7 * Math.max(...names.map((n) => n.length)));
}
