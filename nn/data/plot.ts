/**
 * Loss curves as a self-contained SVG: several series, linear or log y axis, "nice" ticks,
 * grid, axis labels, legend, optional EMA smoothing (raw curve drawn faint behind). Browser-safe.
 */

export interface PlotSeries {
  name: string;
  y: ArrayLike<number>;
  /** x values (default 0, 1, 2, ...). */
  x?: ArrayLike<number>;
  color?: string;
}

export interface PlotOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  logY?: boolean;
  /** EMA smoothing weight in [0, 1) like TensorBoard's slider (default 0: none). */
  smoothing?: number;
  /** Series longer than this are averaged over buckets before drawing (default 2000). */
  maxPoints?: number;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Tick values: multiples of 1, 2 or 5 x 10^k covering [lo, hi], about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => (hi - lo) / s <= target) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return out;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential(2).split('e');
    return `${Number(m)}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(4)));
}

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

/** Renders the series as an SVG document (a string). */
export function lossPlotSvg(series: readonly PlotSeries[], opts: PlotOptions = {}): string {
  const Wd = opts.width ?? 720;
  const Ht = opts.height ?? 420;
  const logY = opts.logY ?? false;
  const smoothing = opts.smoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`lossPlotSvg: smoothing must be in [0, 1), got ${smoothing}`);
  const maxPoints = opts.maxPoints ?? 2000;
  const prepared = series.map((s, i) => {
    if (s.x && s.x.length !== s.y.length) throw new Error(`lossPlotSvg: series '${s.name}' has ${s.x.length} x values and ${s.y.length} y values`);
    const x = Float64Array.from(s.x ?? Array.from({ length: s.y.length }, (_, k) => k));
    const y = Float64Array.from(s.y, (v) => (logY && !(v > 0) ? NaN : v));
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const raw = bucket(x, y, maxPoints);
    const smooth = smoothing > 0 ? bucket(x, ema(y, smoothing), maxPoints) : null;
    return { name: s.name, color, raw, smooth, full: [x, y] as [Float64Array, Float64Array] };
  });
  // Data bounds over finite points.
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const p of prepared) {
    const [xs, ys] = p.full; // bounds from the data before bucketing
    for (let i = 0; i < xs.length; i++) {
      const v = ys[i]!;
      if (!Number.isFinite(v) || !Number.isFinite(xs[i]!)) continue;
      const t = logY ? Math.log10(v) : v;
      x0 = Math.min(x0, xs[i]!);
      x1 = Math.max(x1, xs[i]!);
      y0 = Math.min(y0, t);
      y1 = Math.max(y1, t);
    }
  }
  const empty = !(x1 >= x0);
  if (empty) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y1 === y0) [y0, y1] = [y0 - (logY ? 0.5 : Math.abs(y0) * 0.1 || 0.5), y1 + (logY ? 0.5 : Math.abs(y1) * 0.1 || 0.5)];
  const ypad = (y1 - y0) * 0.04;
  y0 -= ypad;
  y1 += ypad;

  const left = 70;
  const right = 20;
  const top = opts.title ? 36 : 16;
  const bottom = 48;
  const pw = Wd - left - right;
  const ph = Ht - top - bottom;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (t: number) => top + (1 - (t - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${Wd}" height="${Ht}" viewBox="0 0 ${Wd} ${Ht}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${Wd}" height="${Ht}" fill="white"/>`);
  if (opts.title) parts.push(`<text x="${Wd / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`);

  // y ticks
  let yTicks: { t: number; label: string; minor?: boolean }[];
  if (logY) {
    yTicks = [];
    const decades = Math.floor(y1) - Math.ceil(y0);
    for (let k = Math.floor(y0); k <= Math.ceil(y1); k++) {
      for (const m of decades < 2 ? [1, 2, 5] : [1]) {
        const t = k + Math.log10(m);
        if (t >= y0 && t <= y1) yTicks.push({ t, label: formatTick(m * Math.pow(10, k)), minor: m !== 1 });
      }
    }
    if (yTicks.length < 2) yTicks = niceTicks(Math.pow(10, y0), Math.pow(10, y1), 5).filter((v) => v > 0).map((v) => ({ t: Math.log10(v), label: formatTick(v) }));
  } else yTicks = niceTicks(y0, y1).map((t) => ({ t, label: formatTick(t) }));
  for (const { t, label, minor } of yTicks) {
    const y = f(sy(t));
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${y}" y2="${y}" stroke="${minor ? '#f0f0f0' : '#e0e0e0'}"/>`);
    parts.push(`<text class="ytick" x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(label)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 8)) {
    const x = f(sx(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + ph}" stroke="#eeeeee"/>`);
    parts.push(`<text class="xtick" x="${x}" y="${top + ph + 16}" text-anchor="middle">${esc(formatTick(t))}</text>`);
  }
  parts.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${left + pw / 2}" y="${Ht - 10}" text-anchor="middle">${esc(opts.xLabel ?? 'step')}</text>`);
  parts.push(`<text x="16" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + ph / 2})">${esc((opts.yLabel ?? 'loss') + (logY ? ' (log)' : ''))}</text>`);
  if (empty) parts.push(`<text x="${left + pw / 2}" y="${top + ph / 2}" text-anchor="middle" fill="#888">no data</text>`);

  const pathOf = ([xs, ys]: [Float64Array, Float64Array]): string => {
    let d = '';
    let pen = false;
    for (let i = 0; i < xs.length; i++) {
      const v = ys[i]!;
      if (!Number.isFinite(v) || !Number.isFinite(xs[i]!)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(sx(xs[i]!))} ${f(sy(logY ? Math.log10(v) : v))}`;
      pen = true;
    }
    return d;
  };
  parts.push(`<defs><clipPath id="plot-area"><rect x="${left}" y="${top}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  parts.push(`<g clip-path="url(#plot-area)">`);
  for (const p of prepared) {
    const name = esc(p.name);
    if (p.smooth) parts.push(`<path class="series-raw" data-name="${name}" d="${pathOf(p.raw)}" fill="none" stroke="${p.color}" stroke-opacity="0.25" stroke-width="1"/>`);
    parts.push(`<path class="series" data-name="${name}" d="${pathOf(p.smooth ?? p.raw)}" fill="none" stroke="${p.color}" stroke-width="1.6"><title>${name}</title></path>`);
  }
  parts.push(`</g>`);
  // legend
  if (prepared.length > 0) {
    const lw = Math.max(...prepared.map((p) => p.name.length)) * 7 + 40;
    const lx = left + pw - lw - 8;
    const ly = top + 8;
    parts.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${prepared.length * 18 + 8}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`);
    prepared.forEach((p, i) => {
      const y = ly + 14 + i * 18;
      parts.push(`<line x1="${lx + 8}" x2="${lx + 28}" y1="${y}" y2="${y}" stroke="${p.color}" stroke-width="2.5"/>`);
      parts.push(`<text class="legend" x="${lx + 34}" y="${y}" dominant-baseline="middle">${esc(p.name)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/**
 * Series from a metrics log in JSON Lines (one object per line): one series per key, x from
 * `xKey` (default 'step'; the line number when absent). Lines that are not JSON objects are skipped.
 */
export function seriesFromJsonl(text: string, keys: readonly string[], xKey = 'step'): PlotSeries[] {
  const xs = new Map<string, number[]>(keys.map((k) => [k, []]));
  const ys = new Map<string, number[]>(keys.map((k) => [k, []]));
  let line = 0;
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch {
      continue;
    }
    if (typeof obj !== 'object' || obj === null) continue;
    const o = obj as Record<string, unknown>;
    const x = typeof o[xKey] === 'number' ? (o[xKey] as number) : line;
    line++;
    for (const k of keys) {
      if (typeof o[k] === 'number') {
        xs.get(k)!.push(x);
        ys.get(k)!.push(o[k] as number);
      }
    }
  }
  return keys.map((k) => ({ name: k, x: xs.get(k)!, y: ys.get(k)! }));
}
