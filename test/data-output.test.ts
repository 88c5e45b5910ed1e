/**
 * Results people look at: the PNG image-grid writer (decoded back and compared pixel by pixel)
 * and the SVG loss plot (series, log axis ticks, legend, gaps for non-finite values, escaping,
 * smoothing, bucketing) written from a metrics log.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend, tensor } from '../engine/index.js';
import { decodePng, gridPng, lineChart, makeGrid, metricsSeries, parseMetricsLog } from '../nn/data/index.js';
import { plotMetricsFile, readMetricsLog, saveImageGrid, saveLossPlot } from '../node/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'wgtk-out-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('image grid', () => {
  it('tiles [N, C, H, W] in [-1, 1] with padding; the PNG decodes back to the expected pixels', () => {
    const N = 5;
    const C = 3;
    const H = 3;
    const W = 4;
    const data = new Float32Array(N * C * H * W);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) data[(n * C + c) * H * W + i] = -1 + (2 * ((n * 40 + c * 10 + i) % 256)) / 255;
    const png = gridPng(data, [N, C, H, W], { nrow: 3, padding: 1, padValue: 1, range: [-1, 1] });
    const img = decodePng(png);
    // 3 columns x 2 rows: width 3 * (4 + 1) + 1, height 2 * (3 + 1) + 1
    expect([img.width, img.height, img.channels]).toEqual([16, 9, 3]);
    for (let n = 0; n < 6; n++) {
      const gx = 1 + (n % 3) * 5;
      const gy = 1 + Math.floor(n / 3) * 4;
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          for (let c = 0; c < C; c++) {
            const got = img.data[((gy + y) * 16 + gx + x) * 3 + c];
            const want = n < N ? (n * 40 + c * 10 + y * W + x) % 256 : 255; // the empty 6th cell is padding
            expect(got).toBe(want);
          }
    }
    // padding rows and columns are the pad value (white)
    for (let x = 0; x < 16; x++) expect(img.data[x * 3]).toBe(255);
    for (let y = 0; y < 9; y++) expect(img.data[(y * 16 + 5) * 3 + 1]).toBe(255);
  });

  it('auto range, gray output, clamping', () => {
    const g = makeGrid(Float32Array.from([0, 0.5, 1, 2]), [1, 1, 2, 2], { padding: 0, range: [0, 1] });
    expect(Array.from(g.data)).toEqual([0, 128, 255, 255]);
    expect(makeGrid([-1, 1], [1, 1, 1, 2], { padding: 0 }).data).toEqual(Uint8Array.from([0, 255]));
    expect(makeGrid([0, 255], [1, 1, 2], { padding: 0 }).data).toEqual(Uint8Array.from([0, 255]));
    expect(() => makeGrid([0, 1, 2], [1, 2, 1, 1])).toThrow(/C must be 1, 3 or 4/);
    expect(() => makeGrid([0, 1], [1, 1, 1, 1])).toThrow(/do not fill/);
  });

  it('saveImageGrid writes a tensor batch to a PNG file', async () => {
    const backend = new CpuBackend();
    const t = tensor(Float32Array.from({ length: 2 * 1 * 2 * 3 }, (_, i) => i / 11), [2, 1, 2, 3], { backend });
    const path = join(tmp, 'sub', 'grid.png');
    await saveImageGrid(path, t, { padding: 0, nrow: 2, range: [0, 1] });
    const img = decodePng(new Uint8Array(readFileSync(path)));
    expect([img.width, img.height, img.channels]).toEqual([6, 2, 1]);
    expect(Array.from(img.data)).toEqual([0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11].map((i) => Math.round((i / 11) * 255)));
  });
});

describe('loss plot (SVG)', () => {
  const steps = Array.from({ length: 300 }, (_, i) => i * 10);
  const loss = steps.map((s) => 2 * Math.exp(-s / 700) + 0.01);
  const val = steps.map((s, i) => (i % 3 ? NaN : 2.2 * Math.exp(-s / 800) + 0.02));

  it('draws every series with a legend entry, axes and ticks', () => {
    const svg = lineChart(
      [
        { name: 'train loss', x: steps, y: loss },
        { name: 'val <loss> & co', x: steps, y: val },
      ],
      { title: 'run 1', xLabel: 'step' },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    const paths = [...svg.matchAll(/<path class="series" data-name="([^"]*)" d="([^"]*)"/g)];
    expect(paths.map((m) => m[1])).toEqual(['train loss', 'val &lt;loss&gt; &amp; co']);
    expect(paths[0]![2]!.match(/[ML]/g)!.length).toBe(300);
    expect(paths[0]![2]!.startsWith('M')).toBe(true);
    // NaN points break the line: one M per finite run (every third point is finite, so 100 runs)
    expect(paths[1]![2]!.match(/M/g)!.length).toBe(100);
    expect([...svg.matchAll(/class="legend"[^>]*>([^<]*)</g)].map((m) => m[1])).toEqual(['train loss', 'val &lt;loss&gt; &amp; co']);
    expect(svg).toContain('>run 1<');
    expect([...svg.matchAll(/class="xtick"[^>]*>([^<]*)</g)].map((m) => m[1])).toContain('1000');
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
  });

  it('log y axis: decade ticks, non-positive values skipped', () => {
    const y = [10, 1, 0.1, 0.01, 0, -1, 0.001];
    const svg = lineChart([{ name: 'l', y }], { logY: true });
    const ticks = [...svg.matchAll(/class="ytick"[^>]*>([^<]*)</g)].map((m) => m[1]);
    for (const t of ['0.001', '0.01', '0.1', '1', '10']) expect(ticks).toContain(t);
    const d = /class="series" data-name="l" d="([^"]*)"/.exec(svg)![1]!;
    expect(d.match(/[ML]/g)!.length).toBe(5);
    expect(svg).toContain('loss (log)');
    // y pixel of 10 is above (smaller) than that of 1
    const pts = [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(pts[0]!).toBeLessThan(pts[1]!);
  });

  it('smoothing draws the raw curve faintly behind the EMA; long series are bucketed', () => {
    const noisy = Array.from({ length: 5000 }, (_, i) => 1 + Math.sin(i) * 0.5);
    const svg = lineChart([{ name: 'n', y: noisy }], { smoothing: 0.9, maxPoints: 500 });
    const raw = /class="series-raw"[^>]*d="([^"]*)"/.exec(svg)![1]!;
    const sm = /class="series" [^>]*d="([^"]*)"/.exec(svg)![1]!;
    expect(raw.match(/[ML]/g)!.length).toBe(500);
    expect(sm.match(/[ML]/g)!.length).toBe(500);
    expect(lineChart([], {})).toContain('no data');
  });

  it('smoothing is a debiased EMA that leaves gaps at non-finite values', () => {
    const svg = lineChart([{ name: 's', x: [0, 1, 2, 3], y: [4, 2, NaN, 6] }], { smoothing: 0.5 });
    const sm = /class="series" [^>]*d="([^"]*)"/.exec(svg)![1]!;
    const raw = /class="series-raw" [^>]*d="([^"]*)"/.exec(svg)![1]!;
    // EMA with w = 0.5, debiased: acc 2 / norm 0.5 = 4; (1 + 1) / 0.75 = 8/3; NaN skipped; (1 + 3) / 0.875 = 32/7.
    // Both curves break at the NaN; the last smoothed point is isolated, so it is drawn as a dot.
    expect(sm.match(/M/g)!.length).toBe(2);
    expect(raw.match(/M/g)!.length).toBe(2);
    expect(svg.match(/<circle/g)!.length).toBe(1); // the faint raw curve gets no dots
    const ys = (d: string) => [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((m) => Number(m[2]));
    // Pixel y is affine in the value: compare the smoothed step against the raw one.
    const [r0, r1] = ys(raw);
    const [s0, s1] = ys(sm);
    expect(s0).toBeCloseTo(r0!, 1);
    const pixel = (v: number) => r0! + ((v - 4) * (r1! - r0!)) / (2 - 4);
    expect(s1).toBeCloseTo(pixel(8 / 3), 1);
    expect(Number(/<circle [^>]*cy="([\d.]+)"/.exec(svg)![1])).toBeCloseTo(pixel(32 / 7), 1);
    expect(() => lineChart([], { smoothing: 1 })).toThrow(/smoothing/);
    expect(() => lineChart([{ name: 'a', x: [1], y: [1, 2] }])).toThrow(/1 x values and 2 y values/);
  });

  it('plots a JSONL metrics log to a file (resumed steps: the last record wins)', () => {
    const log = join(tmp, 'metrics.jsonl');
    const lines = ['{"step": 1, "loss": 2.0, "val": 3}', '{"step": 2, "loss": 1.5}', '{"step": 3, "loss": 1.0, "val": 2}', '{"step": 2, "loss": 1.25}', ''];
    writeFileSync(log, lines.join('\n'));
    const series = metricsSeries(parseMetricsLog(readFileSync(log, 'utf8')), { terms: ['loss', 'val'] });
    expect(series[0]).toEqual({ name: 'loss', x: [1, 2, 3], y: [2, 1.25, 1] });
    expect(series[1]).toEqual({ name: 'val', x: [1, 3], y: [3, 2] });
    expect(readMetricsLog(log)).toEqual(series);
    const out = join(tmp, 'plots', 'loss.svg');
    const svg = plotMetricsFile(log, out, ['loss', 'val'], { logY: true });
    expect(readFileSync(out, 'utf8')).toBe(svg);
    expect(svg).toContain('data-name="val"');
    saveLossPlot(join(tmp, 'p2.svg'), series);
    expect(readFileSync(join(tmp, 'p2.svg'), 'utf8')).toContain('data-name="loss"');
    // A garbage line in the middle is an error naming the file and line (not silently skipped).
    writeFileSync(log, [lines[0], 'garbage', lines[2]].join('\n'));
    expect(() => plotMetricsFile(log, out, ['loss'])).toThrow(/metrics\.jsonl:2: not valid JSON/);
  });
});
