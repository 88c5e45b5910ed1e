/**
 * Report building blocks: Pearson/Spearman with p-values (vs SciPy, test/fixtures/make_correlation.py),
 * SVG charts from nn/data/plot (well-formed, ticks, escaping, non-finite points), the HTML builder
 * (escaping, tables, atomic write) and the metrics.jsonl reader.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { averageRanks, pearson, regularizedIncompleteBeta, spearman } from '../models/metrics/index.js';
import {
  formatCell,
  lineChart,
  linearTicks,
  logTicks,
  compareRunsSeries,
  metricsSeries,
  parseMetricsLog,
  readMetricsLog,
  Report,
  scatterChart,
  tableHtml,
  tickLabel,
} from '../node/report/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'wgtk-report-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface CorrCase {
  name: string;
  x: number[];
  y: number[];
  pearson: { r: number; p: number };
  spearman: { r: number; p: number };
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/correlation.json', import.meta.url), 'utf8')) as {
  cases: CorrCase[];
  betainc: { a: number; b: number; x: number; value: number }[];
};

/** |got - want| <= rel * |want| (exact when want is 0). */
function expectRel(got: number, want: number, rel: number, what: string): void {
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(rel * Math.abs(want));
}

describe('correlation vs SciPy', () => {
  // r: both sides are float64 sums over <= 200 terms, so they agree to ~1e-14; 1e-12 leaves margin.
  // p: the brief's 1e-6 relative; our incomplete beta is accurate to ~1e-13 relative even at
  // p ~ 1e-114, where the sensitivity of p to r (d ln p / dr ~ 3e3) amplifies the r difference.
  for (const c of fixture.cases) {
    it(c.name, () => {
      const pr = pearson(c.x, c.y);
      const sr = spearman(c.x, c.y);
      expect(pr.reason).toBeUndefined();
      expect(sr.n).toBe(c.x.length);
      expect(Math.abs(pr.r - c.pearson.r)).toBeLessThan(1e-12);
      expect(Math.abs(sr.r - c.spearman.r)).toBeLessThan(1e-12);
      expectRel(pr.p, c.pearson.p, 1e-6, 'pearson p');
      expectRel(sr.p, c.spearman.p, 1e-6, 'spearman p');
    });
  }

  it('the fixture exercises ties, tiny p-values and a perfect rank correlation', () => {
    expect(fixture.cases.some((c) => new Set(c.x).size < c.x.length && new Set(c.y).size < c.y.length)).toBe(true);
    expect(Math.min(...fixture.cases.map((c) => c.pearson.p))).toBeLessThan(1e-100);
    expect(fixture.cases.some((c) => c.spearman.r === 1)).toBe(true);
  });

  it('regularized incomplete beta matches scipy.special.betainc', () => {
    for (const b of fixture.betainc) expectRel(regularizedIncompleteBeta(b.a, b.b, b.x), b.value, 1e-10, `I_${b.x}(${b.a}, ${b.b})`);
  });
});

describe('correlation properties', () => {
  it('average ranks for ties', () => {
    expect([...averageRanks([10, 20, 20, 5, 20])]).toEqual([2, 4, 4, 1, 4]);
    expect([...averageRanks([3, 3])]).toEqual([1.5, 1.5]);
  });

  it('a perfect monotone relation gives spearman ±1 with p = 0', () => {
    const x = [0.5, 1, 2, 3, 7, 11];
    expect(spearman(x, x.map((v) => Math.exp(v)))).toEqual({ r: 1, p: 0, n: 6 });
    expect(spearman(x, x.map((v) => -(v ** 3)))).toEqual({ r: -1, p: 0, n: 6 });
    expect(pearson(x, x.map((v) => 3 * v - 1)).r).toBeCloseTo(1, 14);
  });

  it('degenerate input gives NaN with a reason instead of throwing', () => {
    for (const f of [pearson, spearman]) {
      const short = f([1, 2], [3, 4]);
      expect(short.r).toBeNaN();
      expect(short.p).toBeNaN();
      expect(short.reason).toMatch(/at least 3/);
      expect(f([], []).reason).toMatch(/at least 3/);
      const constant = f([1, 2, 3, 4], [5, 5, 5, 5]);
      expect(constant.r).toBeNaN();
      expect(constant.reason).toMatch(/constant/);
      expect(f([1, NaN, 3], [1, 2, 3]).reason).toMatch(/non-finite value at index 1/);
      expect(f([1, 2, 3], [1, 2, Infinity]).reason).toMatch(/non-finite/);
      expect(() => f([1, 2, 3], [1, 2])).toThrow(/same length, got 3 and 2/);
    }
  });

  const pairs = (value: fc.Arbitrary<number>) =>
    fc.array(fc.tuple(value, value), { minLength: 3, maxLength: 40 }).map((ps) => [ps.map((p) => p[0]), ps.map((p) => p[1])] as const);

  it('spearman is invariant under strictly monotone transforms (negated for decreasing ones)', () => {
    // Integers keep the transforms strictly monotone in float64 (v^3 + 2v is exact below 2^53).
    fc.assert(
      fc.property(pairs(fc.integer({ min: -1000, max: 1000 })), ([x, y]) => {
        const base = spearman(x, y);
        const up = spearman(x.map((v) => v ** 3 + 2 * v), y.map((v) => Math.exp(v / 100)));
        const down = spearman(x.map((v) => -v * 7), y);
        if (Number.isNaN(base.r)) return Number.isNaN(up.r) && Number.isNaN(down.r);
        return Math.abs(up.r - base.r) < 1e-12 && Math.abs(down.r + base.r) < 1e-12 && Math.abs(up.p - base.p) <= 1e-9 * base.p + 1e-300;
      }),
      { numRuns: 200 },
    );
  });

  it('|r| <= 1, p in [0, 1], and both are symmetric in x and y', () => {
    fc.assert(
      fc.property(pairs(fc.double({ min: -1e6, max: 1e6, noNaN: true })), ([x, y]) => {
        for (const f of [pearson, spearman]) {
          const a = f(x, y);
          const b = f(y, x);
          if (Number.isNaN(a.r)) {
            if (!Number.isNaN(b.r) || !a.reason) return false;
            continue;
          }
          if (!(Math.abs(a.r) <= 1 && a.p >= 0 && a.p <= 1)) return false;
          if (Math.abs(a.r - b.r) > 1e-12 || Math.abs(a.p - b.p) > 1e-9) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * Minimal well-formedness check for the XML/HTML we emit: every tag is balanced and properly
 * nested, attributes are double-quoted, and text and attribute values contain no raw '<' or '>'
 * and no '&' outside an entity. `voids` are HTML elements without a closing tag.
 */
function checkMarkup(s: string, voids: ReadonlySet<string> = new Set()): void {
  const stack: string[] = [];
  const entity = /&(amp|lt|gt|quot|#\d+);/g;
  const cleanText = (t: string, where: string) => {
    const bare = t.replace(entity, '');
    if (/[<>&]/.test(bare)) throw new Error(`unescaped character in ${where}: ${JSON.stringify(t.slice(0, 80))}`);
  };
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    cleanText(lt < 0 ? s.slice(i) : s.slice(i, lt), 'text');
    if (lt < 0) break;
    if (s.startsWith('<!DOCTYPE', lt) || s.startsWith('<?xml', lt)) {
      i = s.indexOf('>', lt) + 1;
      continue;
    }
    tag.lastIndex = lt;
    const m = tag.exec(s);
    if (!m) throw new Error(`malformed tag at ${lt}: ${JSON.stringify(s.slice(lt, lt + 60))}`);
    const [, close, name, attrs, selfClose] = m as unknown as [string, string, string, string, string];
    for (const a of attrs.matchAll(/="([^"]*)"/g)) cleanText(a[1]!, `attribute of <${name}>`);
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else if (!selfClose && !voids.has(name)) stack.push(name);
    i = lt + m[0].length;
  }
  if (stack.length) throw new Error(`unclosed tags: ${stack.join(' ')}`);
}

describe('markup checker', () => {
  it('rejects unbalanced, mis-nested and unescaped markup (so the checks below can fail)', () => {
    expect(() => checkMarkup('<svg><g></svg>')).toThrow(/closes/);
    expect(() => checkMarkup('<svg><text>a</svg></text>')).toThrow(/closes/);
    expect(() => checkMarkup('<svg>')).toThrow(/unclosed/);
    expect(() => checkMarkup('<svg><text>a < b</text></svg>')).toThrow(/malformed|unescaped/);
    expect(() => checkMarkup('<svg><text>a & b</text></svg>')).toThrow(/unescaped/);
    expect(() => checkMarkup('<svg><text x="<">a</text></svg>')).toThrow();
    expect(() => checkMarkup('<svg><rect x="1"/><text>a &amp; b &lt; c</text></svg>')).not.toThrow();
  });
});

const HTML_VOIDS = new Set(['meta', 'img', 'br', 'hr', 'link', 'input']);

describe('ticks', () => {
  it('linear ticks cover the range with a 1-2-5 step', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e9, max: 1e9, noNaN: true }), fc.double({ min: -1e9, max: 1e9, noNaN: true }), fc.integer({ min: 2, max: 10 }), (a, b, target) => {
        const [min, max] = a <= b ? [a, b] : [b, a];
        const { ticks, step } = linearTicks(min, max, target);
        const mant = step / 10 ** Math.floor(Math.log10(step) + 1e-12);
        if (![1, 2, 5].some((m) => Math.abs(mant - m) < 1e-9)) return false;
        if (ticks[0]! > min || ticks[ticks.length - 1]! < max) return false;
        if (ticks.length < 2 || ticks.length > 1.5 * target + 5) return false;
        for (let i = 1; i < ticks.length; i++) if (Math.abs(ticks[i]! - ticks[i - 1]! - step) > step * 1e-9) return false;
        // Each tick is an integer multiple of the step.
        return ticks.every((t) => Math.abs(t / step - Math.round(t / step)) < 1e-6);
      }),
      { numRuns: 500 },
    );
  });

  it('linear ticks: examples and degenerate ranges', () => {
    expect(linearTicks(0, 1)).toEqual({ ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], step: 0.2 });
    expect(linearTicks(0.3, 9.7).ticks).toEqual([0, 2, 4, 6, 8, 10]);
    expect(linearTicks(-3, 42).ticks).toEqual([-10, 0, 10, 20, 30, 40, 50]);
    expect(linearTicks(5, 5).ticks.length).toBeGreaterThanOrEqual(2);
    expect(linearTicks(0, 0).ticks).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(() => linearTicks(0, Infinity)).toThrow(/finite/);
  });

  it('log ticks cover the range and are 1, 2 or 5 times a power of ten', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-12, max: 1e12, noNaN: true }), fc.double({ min: 1e-12, max: 1e12, noNaN: true }), (a, b) => {
        const [min, max] = a <= b ? [a, b] : [b, a];
        const t = logTicks(min, max);
        if (t.length < 2 || t[0]! > min * (1 + 1e-12) || t[t.length - 1]! < max * (1 - 1e-12)) return false;
        for (let i = 1; i < t.length; i++) if (!(t[i]! > t[i - 1]!)) return false;
        return t.every((v) => {
          const mant = v / 10 ** Math.floor(Math.log10(v) + 1e-12);
          return [1, 2, 5].some((m) => Math.abs(mant - m) < 1e-9);
        });
      }),
      { numRuns: 500 },
    );
    expect(logTicks(0.03, 0.7)).toEqual([0.02, 0.05, 0.1, 0.2, 0.5, 1]);
    expect(logTicks(1e-6, 10)).toEqual([1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10]);
    expect(() => logTicks(0, 1)).toThrow(/positive/);
  });

  it('tick labels', () => {
    expect(tickLabel(0.30000000000000004, 0.1)).toBe('0.3');
    expect(tickLabel(2, 0.5)).toBe('2.0');
    expect(tickLabel(120000)).toBe('1.2e+5');
    expect(tickLabel(0.0001)).toBe('1e-4');
  });
});

/** The numbers in a path's d attribute. */
const pathNumbers = (d: string) => d.split(/[ML\s]+/).filter(Boolean).map(Number);

describe('svg charts', () => {
  const series = [
    { name: 'loss <total> & more', x: [0, 10, 20, 30, 40, 50], y: [1, 0.5, NaN, 0.25, Infinity, 0.2] },
    { name: 'rec', x: [0, 50], y: [0.8, 0.1] },
  ];

  it('line chart: well-formed, escaped, legend, gaps at non-finite points', () => {
    const svg = lineChart(series, { title: 'a < b & "c"', xLabel: 'step', yLabel: 'loss' });
    checkMarkup(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('a &lt; b &amp; &quot;c&quot;');
    expect(svg).toContain('loss &lt;total&gt; &amp; more');
    expect(svg).not.toContain('<total>');
    expect(svg).not.toMatch(/NaN|Infinity/);
    const paths = [...svg.matchAll(/<path class="series" data-name="[^"]*" d="([^"]*)"/g)].map((m) => m[1]!);
    expect(paths.length).toBe(2);
    // first series: 4 finite points in 3 runs (broken at NaN and at Infinity)
    expect(paths[0]!.match(/M/g)!.length).toBe(3);
    expect(pathNumbers(paths[0]!).length).toBe(8);
    expect(pathNumbers(paths[1]!).length).toBe(4);
  });

  it('line chart: log axis skips non-positive values; empty input says no data', () => {
    const svg = lineChart([{ name: 'kl', x: [1, 2, 3, 4], y: [0, 1e-3, -1, 10] }], { title: 't', xLabel: 'x', yLabel: 'y', logY: true });
    checkMarkup(svg);
    const d = svg.match(/<path class="series" data-name="kl" d="([^"]*)"/)![1]!;
    expect(pathNumbers(d).length).toBe(4);
    expect(svg).toContain('>0.001<');
    expect(svg.match(/<circle/g)!.length).toBe(2); // isolated points are marked
    for (const empty of [[], [{ name: 'a', y: [] }], [{ name: 'b', x: [NaN], y: [1] }]]) {
      const e = lineChart(empty, { title: 'empty', xLabel: 'x', yLabel: 'y' });
      checkMarkup(e);
      expect(e).toContain('no data');
    }
  });

  it('scatter chart: labels, escaped tooltips, least-squares line, non-finite points skipped', () => {
    const pts = [
      { x: 1, y: 3, label: 'tok <A>' },
      { x: 2, y: 5, label: 'B&C' },
      { x: 3, y: 7 },
      { x: NaN, y: 1, label: 'bad' },
      { x: 4, y: -Infinity },
    ];
    const svg = scatterChart(pts, { title: 'pFID vs gFID', xLabel: 'pFID', yLabel: 'gFID', fit: 'linear' });
    checkMarkup(svg);
    expect(svg.match(/<circle/g)!.length).toBe(3);
    expect(svg).toContain('tok &lt;A&gt;');
    expect(svg).toContain('B&amp;C');
    expect(svg).not.toContain('bad');
    expect(svg).toContain('fit: y = 2 x + 1');
    expect(svg).toMatch(/<line [^>]*stroke-dasharray/);
    expect(svg).not.toMatch(/NaN|Infinity/);
    const none = scatterChart([{ x: NaN, y: 1 }], { title: 'e', xLabel: 'x', yLabel: 'y', fit: 'linear' });
    checkMarkup(none);
    expect(none).toContain('no data');
    // A single point: no fit line, still a valid chart.
    const one = scatterChart([{ x: 2, y: 2 }], { title: 'one', xLabel: 'x', yLabel: 'y', fit: 'linear' });
    checkMarkup(one);
    expect(one).not.toContain('fit:');
  });
});

describe('html report', () => {
  it('cell formatting', () => {
    expect(formatCell(3.14159265)).toBe('3.142');
    expect(formatCell(12.5)).toBe('12.5');
    expect(formatCell(123456789)).toBe('123456789');
    expect(formatCell(0.000012346)).toBe('1.235e-5');
    expect(formatCell(2.5e7 + 0.5)).toBe('2.5e+7');
    expect(formatCell(2.5e7)).toBe('25000000'); // integers (counts) in full
    expect(formatCell(NaN)).toBe('NaN');
    expect(formatCell(-Infinity)).toBe('−∞');
    expect(formatCell(1 / 3, 2)).toBe('0.33');
  });

  it('tables: column union in first-seen order, formatted and escaped cells', () => {
    const html = tableHtml(
      [
        { tokenizer: 'base <K=512>', rFID: 12.3456, pFID: 20 },
        { tokenizer: 'perturbed', gFID: NaN, rFID: 1 / 3, note: null },
      ],
      { caption: 'R&D' },
    );
    checkMarkup(html);
    expect(html).toContain('<caption>R&amp;D</caption>');
    expect(html).toContain('<thead><tr><th>tokenizer</th><th>rFID</th><th>pFID</th><th>gFID</th><th>note</th></tr></thead>');
    expect(html).toContain('<tr><td>base &lt;K=512&gt;</td><td class="num">12.35</td><td class="num">20</td><td></td><td></td></tr>');
    expect(html).toContain('<tr><td>perturbed</td><td class="num">0.3333</td><td></td><td class="num">NaN</td><td></td></tr>');
    expect(tableHtml([{ a: 1, b: 2 }], { columns: ['b'] })).toContain('<th>b</th></tr>');
  });

  it('builds an escaped, well-formed page with sections, svg, images and commands', () => {
    const r = new Report('Study <small> & "scale"')
      .paragraph('intro: 1 < 2')
      .section('Curves & plots')
      .heading('losses <log>')
      .svg(lineChart([{ name: 'l', y: [1, 2] }], { title: 't', xLabel: 'x', yLabel: 'y' }), 'caption <b>')
      .image('grids/tok a/samples.png', { alt: 'alt "q"', caption: 'samples', width: 256 })
      .section('Commands')
      .pre('npm run demo -- --out "a&b" <x>')
      .table([{ k: 'v' }]);
    const html = r.toHtml();
    checkMarkup(html, HTML_VOIDS);
    expect(html).toContain('<title>Study &lt;small&gt; &amp; &quot;scale&quot;</title>');
    expect(html).toContain('<p>intro: 1 &lt; 2</p>');
    expect(html).toContain('<h2>Curves &amp; plots</h2>');
    expect(html).toContain('<h3>losses &lt;log&gt;</h3>');
    expect(html).toContain('<figcaption>caption &lt;b&gt;</figcaption>');
    expect(html).toContain('<img src="grids/tok%20a/samples.png" alt="alt &quot;q&quot;" width="256">');
    expect(html).toContain('<pre>npm run demo -- --out &quot;a&amp;b&quot; &lt;x&gt;</pre>');
    // Blocks land in the section that was open when they were added.
    expect(html.indexOf('<p>intro')).toBeLessThan(html.indexOf('<section>'));
    expect(html.indexOf('<pre>')).toBeGreaterThan(html.indexOf('<h2>Commands</h2>'));
    expect(html.match(/<section>/g)!.length).toBe(2);
  });

  it('writes report.html atomically into a (new) directory or to an .html path', () => {
    const dir = join(tmp, 'nested', 'run1');
    const r = new Report('r').paragraph('one');
    const file = r.write(dir);
    expect(file).toBe(join(dir, 'report.html'));
    expect(readFileSync(file, 'utf8')).toBe(r.toHtml());
    r.paragraph('two');
    r.write(dir); // overwrite
    expect(readFileSync(file, 'utf8')).toContain('<p>two</p>');
    expect(readdirSync(dir)).toEqual(['report.html']); // no temp files left behind
    const other = r.write(join(tmp, 'custom.HTML'));
    expect(other).toBe(join(tmp, 'custom.HTML'));
    expect(readFileSync(other, 'utf8')).toBe(r.toHtml());
  });

  it('a failed write leaves no temp file and does not touch the target', () => {
    const dir = join(tmp, 'blocked');
    mkdirSync(join(dir, 'report.html', 'inner'), { recursive: true }); // target is a non-empty directory
    expect(() => new Report('x').write(dir)).toThrow();
    expect(readdirSync(dir)).toEqual(['report.html']);
    expect(readdirSync(join(dir, 'report.html'))).toEqual(['inner']);
  });
});

describe('metrics log', () => {
  // What trainLoop writes: JSON.stringify({ step, epoch, time, ...terms }) per logged step.
  const line = (step: number, terms: Record<string, number>, epoch?: number) => JSON.stringify({ step, epoch, time: step / 10, ...terms });
  const text = [
    line(10, { loss: 1, rec: 0.5 }, 0),
    line(20, { loss: 0.8, rec: 0.4 }, 0),
    line(30, { loss: NaN, rec: 0.3 }, 1), // NaN is written as null
    line(40, { loss: 0.7, rec: 0.35 }, 1),
    // resumed from the step-20 checkpoint: steps 30 and 40 are logged again
    line(30, { loss: 0.6, rec: 0.3 }),
    line(40, { loss: 0.5, rec: 0.25, gan: 2 }),
    '{"step": 50, "loss": 0.4', // cut short by a crash
  ].join('\n');

  it('parses records sorted by step; a repeated step keeps the last record; a truncated last line is ignored', () => {
    expect(text).toContain('"loss":null');
    const recs = parseMetricsLog(text);
    expect(recs.map((r) => r.step)).toEqual([10, 20, 30, 40]);
    expect(recs[2]).toEqual({ step: 30, time: 3, loss: 0.6, rec: 0.3 });
    const withNull = parseMetricsLog(line(5, { loss: NaN }));
    expect(withNull[0]!.loss).toBeNaN();
  });

  it('one series per term (bookkeeping keys excluded), term selection', () => {
    const series = metricsSeries(parseMetricsLog(text));
    expect(series.map((s) => s.name)).toEqual(['loss', 'rec', 'gan']);
    expect(series[0]).toEqual({ name: 'loss', x: [10, 20, 30, 40], y: [1, 0.8, 0.6, 0.5] });
    expect(series[2]).toEqual({ name: 'gan', x: [40], y: [2] });
    const picked = metricsSeries(parseMetricsLog(text), { terms: ['rec'] });
    expect(picked).toEqual([{ name: 'rec', x: [10, 20, 30, 40], y: [0.5, 0.4, 0.3, 0.25] }]);
    // A null (non-finite) term is a NaN point, i.e. a gap in the chart.
    const gap = metricsSeries(parseMetricsLog([line(1, { loss: 1 }), line(2, { loss: NaN }), line(3, { loss: 0.5 })].join('\n')));
    expect(gap[0]!.x).toEqual([1, 2, 3]);
    expect(gap[0]!.y[1]).toBeNaN();
    expect(lineChart(gap).match(/<circle/g)!.length).toBe(2);
  });

  it('compareRunsSeries overlays runs: label alone for one term, "label: term" for several; unknown terms throw', () => {
    const a = parseMetricsLog(text);
    const b = parseMetricsLog([line(10, { loss: 2, rec: 1 }), line(20, { loss: 1.5, rec: 0.9 })].join('\n'));
    const one = compareRunsSeries([{ label: 'base', records: a }, { label: 'pert', records: b }], ['rec']);
    expect(one).toEqual([
      { name: 'base', x: [10, 20, 30, 40], y: [0.5, 0.4, 0.3, 0.25] },
      { name: 'pert', x: [10, 20], y: [1, 0.9] },
    ]);
    // Default terms: the first run's; a term only one run logs gives no empty series for the other.
    const all = compareRunsSeries([{ label: 'base', records: a }, { label: 'pert', records: b }]);
    expect(all.map((s) => s.name)).toEqual(['base: loss', 'base: rec', 'base: gan', 'pert: loss', 'pert: rec']);
    expect(() => compareRunsSeries([{ label: 'base', records: a }], ['recon'])).toThrow("no run logs the term 'recon' (logged terms: loss, rec, gan)");
    expect(() => compareRunsSeries([])).toThrow(/no runs/);
  });

  it('reads a file; a malformed line in the middle names the file and line', () => {
    const p = join(tmp, 'metrics.jsonl');
    writeFileSync(p, text + '\n');
    expect(readMetricsLog(p).map((s) => s.name)).toEqual(['loss', 'rec', 'gan']);
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, `${line(1, { loss: 1 })}\nnot json\n${line(2, { loss: 1 })}\n`);
    expect(() => readMetricsLog(bad)).toThrow(/bad\.jsonl:2: not valid JSON/);
    writeFileSync(bad, `${line(1, { loss: 1 })}\n{"loss": 1}\n`);
    expect(() => readMetricsLog(bad)).toThrow(/bad\.jsonl:2: expected an object with a numeric "step"/);
  });
});
