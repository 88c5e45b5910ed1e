/**
 * Charts with uncertainty, for the study report (pure SVG strings built from nn/data/plot's frame
 * and axes): a scatter plot whose points carry error bars (e.g. tokenizer metric vs gFID with
 * gFID's sampling error), and a dot-and-whisker chart of labelled estimates with intervals (e.g.
 * gFID before / after / control, or a difference with a reference line at 0).
 */
import { CHART_COLORS, escapeXml, tickLabel, type ChartOptions } from '../../nn/data/plot/index.js';
import { drawAxes, frameFor, linearAxis, noData, num, openChart } from '../../nn/data/plot/svg.js';

export interface ErrorBarPoint {
  x: number;
  y: number;
  /** Vertical error bar [yLow, yHigh] (omitted or non-finite: none). */
  yLow?: number;
  yHigh?: number;
  /** Horizontal error bar [xLow, xHigh] (omitted or non-finite: none). */
  xLow?: number;
  xHigh?: number;
  label?: string;
}

const finite = (v: number | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Scatter plot with vertical and horizontal error bars; `note` is written in the top-left corner (e.g. "Spearman 0.8 [0.2, 1.0], p = 0.01"). */
export function errorBarScatter(points: readonly ErrorBarPoint[], o: ChartOptions & { note?: string } = {}): string {
  const pts = points.filter((p) => finite(p.x) && finite(p.y));
  const f = frameFor(o, 0);
  const out = openChart(f, o, o.xLabel ?? 'x', o.yLabel ?? 'y');
  if (pts.length === 0) return [...out, noData(f), '</svg>'].join('\n') + '\n';
  const ys = pts.flatMap((p) => [p.y, ...(finite(p.yLow) ? [p.yLow] : []), ...(finite(p.yHigh) ? [p.yHigh] : [])]);
  const xs = pts.flatMap((p) => [p.x, ...(finite(p.xLow) ? [p.xLow] : []), ...(finite(p.xHigh) ? [p.xHigh] : [])]);
  const xa = linearAxis(Math.min(...xs), Math.max(...xs), f.left, f.right);
  const ya = linearAxis(Math.min(...ys), Math.max(...ys), f.bottom, f.top);
  out.push(...drawAxes(f, xa, ya));
  out.push(`<g stroke="${CHART_COLORS[0]}" stroke-width="1.5">`);
  for (const p of pts) {
    if (finite(p.yLow) && finite(p.yHigh)) {
      const x = num(xa.map(p.x));
      out.push(`<line x1="${x}" y1="${num(ya.map(p.yLow))}" x2="${x}" y2="${num(ya.map(p.yHigh))}"/>`);
      for (const v of [p.yLow, p.yHigh]) out.push(`<line x1="${num(xa.map(p.x) - 4)}" y1="${num(ya.map(v))}" x2="${num(xa.map(p.x) + 4)}" y2="${num(ya.map(v))}"/>`);
    }
    if (finite(p.xLow) && finite(p.xHigh)) {
      const y = num(ya.map(p.y));
      out.push(`<line x1="${num(xa.map(p.xLow))}" y1="${y}" x2="${num(xa.map(p.xHigh))}" y2="${y}"/>`);
      for (const v of [p.xLow, p.xHigh]) out.push(`<line x1="${num(xa.map(v))}" y1="${num(ya.map(p.y) - 4)}" x2="${num(xa.map(v))}" y2="${num(ya.map(p.y) + 4)}"/>`);
    }
  }
  out.push('</g>', `<g fill="${CHART_COLORS[0]}">`);
  for (const p of pts) {
    const xbar = finite(p.xLow) && finite(p.xHigh) ? ` x in [${tickLabel(p.xLow)}, ${tickLabel(p.xHigh)}]` : '';
    const bar = (finite(p.yLow) && finite(p.yHigh) ? ` [${tickLabel(p.yLow)}, ${tickLabel(p.yHigh)}]` : '') + xbar;
    out.push(`<circle cx="${num(xa.map(p.x))}" cy="${num(ya.map(p.y))}" r="4"><title>${escapeXml(`${p.label ? `${p.label}: ` : ''}(${tickLabel(p.x)}, ${tickLabel(p.y)})${bar}`)}</title></circle>`);
    if (p.label) out.push(`<text x="${num(xa.map(p.x) + 6)}" y="${num(ya.map(p.y) - 6)}" fill="#333" font-size="11">${escapeXml(p.label)}</text>`);
  }
  out.push('</g>');
  if (o.note) out.push(`<text class="note" x="${f.left + 8}" y="${f.top + 16}" fill="#333" font-size="12">${escapeXml(o.note)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface IntervalRow {
  label: string;
  value: number;
  low: number;
  high: number;
}

/** Horizontal dot-and-whisker chart: one row per estimate, its interval as a bar; `reference` draws a dashed vertical line (e.g. 0). */
export function intervalChart(rows: readonly IntervalRow[], o: ChartOptions & { reference?: number } = {}): string {
  const rs = rows.filter((r) => finite(r.value));
  const labelWidth = Math.min(260, 12 + 7 * Math.max(0, ...rs.map((r) => r.label.length)));
  const height = o.height ?? Math.max(140, 90 + 34 * rs.length);
  const base = frameFor({ ...o, height }, 0);
  const f = { ...base, left: Math.max(base.left, labelWidth) };
  const out = openChart(f, { ...o, height }, o.xLabel ?? 'value', '');
  if (rs.length === 0) return [...out, noData(f), '</svg>'].join('\n') + '\n';
  const vs = rs.flatMap((r) => [r.value, ...(finite(r.low) ? [r.low] : []), ...(finite(r.high) ? [r.high] : [])]);
  if (finite(o.reference)) vs.push(o.reference);
  const xa = linearAxis(Math.min(...vs), Math.max(...vs), f.left, f.right);
  const step = (f.bottom - f.top) / rs.length;
  const yOf = (i: number) => f.top + step * (i + 0.5);
  const ya = { map: (v: number) => v, ticks: [] as number[], label: () => '' };
  out.push(...drawAxes(f, xa, ya));
  if (finite(o.reference)) out.push(`<line x1="${num(xa.map(o.reference))}" y1="${f.top}" x2="${num(xa.map(o.reference))}" y2="${f.bottom}" stroke="#999" stroke-dasharray="4 3"/>`);
  rs.forEach((r, i) => {
    const y = num(yOf(i));
    const color = CHART_COLORS[i % CHART_COLORS.length]!;
    if (finite(r.low) && finite(r.high)) out.push(`<line x1="${num(xa.map(r.low))}" y1="${y}" x2="${num(xa.map(r.high))}" y2="${y}" stroke="${color}" stroke-width="2"/>`);
    const tip = `${r.label}: ${tickLabel(r.value)}${finite(r.low) && finite(r.high) ? ` [${tickLabel(r.low)}, ${tickLabel(r.high)}]` : ''}`;
    out.push(`<circle cx="${num(xa.map(r.value))}" cy="${y}" r="5" fill="${color}"><title>${escapeXml(tip)}</title></circle>`);
    out.push(`<text class="rowlabel" x="${f.left - 8}" y="${num(yOf(i) + 4)}" text-anchor="end" fill="#333">${escapeXml(r.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
