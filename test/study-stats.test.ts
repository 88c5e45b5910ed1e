/**
 * The study's resampling statistics (models/metrics: normal.ts, bootstrap.ts, permutation.ts,
 * correlation-stats.ts, fid-bootstrap.ts, class-consistency.ts's Wilson interval) against SciPy
 * (test/fixtures/make_study_stats.py) and closed forms.
 *
 * Tolerances: values computed from the same inputs (normal CDF and quantile, intervals from the
 * same replicates, exact permutation p, FID of given resample counts) agree to rounding (1e-9
 * relative or tighter). Results with random draws of their own (SciPy's bootstrap, Monte Carlo
 * permutations) agree within Monte Carlo error: a 2.5% quantile of B = 20,000 replicates has a
 * standard error of about 0.02 bootstrap SE, so two independent runs differ by < 0.15 SE at 5 sd;
 * a Monte Carlo p over 9,999 permutations has sd sqrt(p (1 - p) / 9999).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bootstrapCI,
  bootstrapFids,
  compareCorrelations,
  correlationInterval,
  correlationPermutation,
  fidInterval,
  frechetDistanceFromStats,
  intervalFromReplicates,
  jackknifeAcceleration,
  jackknifeValues,
  normalCdf,
  normalQuantile,
  permutationTest,
  ResamplableFeatures,
  SeededRandom,
  spearman,
  wilsonInterval,
} from '../models/metrics/index.js';

interface IntervalCase {
  name: string;
  kind: 'mean' | 'spearman';
  data?: number[];
  x?: number[];
  y?: number[];
  level: number;
  estimate: number;
  replicates: number[];
  acceleration: number;
  bca: [number, number];
  percentile: [number, number];
  standardError: number;
}
interface PermCase {
  name: string;
  x: number[];
  y: number[];
  exact: boolean;
  spearman: Record<'r' | 'two-sided' | 'greater' | 'less', number>;
  pearson: Record<'r' | 'two-sided' | 'greater' | 'less', number>;
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/study-stats.json', import.meta.url), 'utf8')) as {
  normal: { x: number[]; cdf: number[]; p: number[]; quantile: number[] };
  intervals: IntervalCase[];
  bootstrap: { data: number[]; results: Record<'BCa' | 'percentile', { low: number; high: number; standardError: number }> };
  permutation: PermCase[];
  fid: { dim: number; gen: number[]; real: number[]; cases: { genCounts: number[]; realCounts: number[]; fid: number }[] };
  wilson: { k: number; n: number; level: number; low: number; high: number }[];
};

const close = (a: number, b: number, rel: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(b)));
const mean = (s: readonly number[]) => s.reduce((a, b) => a + b, 0) / s.length;

describe('normal distribution (SciPy ndtr / ndtri)', () => {
  // exp(-x^2 / 2) turns the argument's rounding (x^2 eps) into relative error: ~1e-13 at x = -30.
  it('matches the CDF to 1e-12 relative, into the far tails', () => {
    fx.normal.x.forEach((x, i) => {
      const want = fx.normal.cdf[i]!;
      expect(Math.abs(normalCdf(x) - want)).toBeLessThanOrEqual(1e-12 * want);
    });
  });
  it('matches the quantile to 1e-12 and inverts the CDF', () => {
    fx.normal.p.forEach((p, i) => close(normalQuantile(p), fx.normal.quantile[i]!, 1e-12));
    expect([normalQuantile(0), normalQuantile(1), normalQuantile(1.5)]).toEqual([-Infinity, Infinity, NaN]);
  });
});

describe('bootstrap intervals', () => {
  it.each(fx.intervals.map((c) => [c.name, c] as const))('%s: percentile and BCa from the same replicates as SciPy', (_, c) => {
    const units = c.kind === 'mean' ? c.data! : c.x!.map((x, i) => ({ x, y: c.y![i]! }));
    const stat = c.kind === 'mean' ? (s: readonly number[]) => mean(s) : (s: readonly { x: number; y: number }[]) => spearman(s.map((u) => u.x), s.map((u) => u.y)).r;
    const jack = jackknifeValues(units as never[], stat as never);
    close(jackknifeAcceleration(jack), c.acceleration, 1e-10);
    const est = (stat as (s: unknown[]) => number)(units);
    close(est, c.estimate, 1e-12);
    const pct = intervalFromReplicates(est, c.replicates, { level: c.level, method: 'percentile' });
    close(pct.low, c.percentile[0], 1e-12);
    close(pct.high, c.percentile[1], 1e-12);
    close(pct.standardError, c.standardError, 1e-10);
    const bca = intervalFromReplicates(est, c.replicates, { level: c.level, method: 'bca', jackknife: jack });
    close(bca.low, c.bca[0], 1e-9);
    close(bca.high, c.bca[1], 1e-9);
    expect([bca.resamples, bca.dropped]).toEqual([c.replicates.length, 0]);
  });

  it('agrees with scipy.stats.bootstrap end to end within Monte Carlo error', () => {
    const { data, results } = fx.bootstrap;
    for (const [method, want] of [['bca', results.BCa], ['percentile', results.percentile]] as const) {
      const got = bootstrapCI(data, mean, { resamples: 20000, method, seed: 3 });
      expect(Math.abs(got.low - want.low)).toBeLessThan(0.15 * want.standardError);
      expect(Math.abs(got.high - want.high)).toBeLessThan(0.15 * want.standardError);
      expect(Math.abs(got.standardError / want.standardError - 1)).toBeLessThan(0.03);
    }
  });

  it('is reproducible from its seed and changes with it', () => {
    const data = Array.from({ length: 25 }, (_, i) => Math.sin(i) * 3 + i / 10);
    const a = bootstrapCI(data, mean, { seed: 7, resamples: 500 });
    expect(bootstrapCI(data, mean, { seed: 7, resamples: 500 })).toEqual(a);
    expect(bootstrapCI(data, mean, { seed: 8, resamples: 500 }).low).not.toBe(a.low);
  });

  it('gives a constant statistic the zero-width interval and drops undefined replicates', () => {
    for (const method of ['bca', 'percentile'] as const) {
      const r = bootstrapCI([1, 2, 3, 4], () => 2.5, { method, resamples: 100 });
      expect([r.low, r.high, r.standardError]).toEqual([2.5, 2.5, 0]);
    }
    const r = intervalFromReplicates(1, [NaN, 1, 2, Infinity, 3], { method: 'percentile' });
    expect([r.resamples, r.dropped]).toEqual([3, 2]);
  });
});

describe('permutation test of a correlation', () => {
  it.each(fx.permutation.map((c) => [c.name, c] as const))('%s matches scipy.stats.permutation_test (pairings)', (_, c) => {
    for (const kind of ['spearman', 'pearson'] as const) {
      for (const alt of ['two-sided', 'greater', 'less'] as const) {
        const want = c[kind][alt];
        const got = correlationPermutation(kind, c.x, c.y, { alternative: alt, seed: 5 });
        expect(got.exact).toBe(c.exact);
        close(got.statistic, c[kind].r, 1e-12);
        if (c.exact) close(got.p, want, 1e-12);
        else expect(Math.abs(got.p - want)).toBeLessThan(5 * Math.sqrt((want * (1 - want)) / 9999) + 1e-4);
      }
    }
  });

  it('a perfectly ranked set of n has p = 1/n! one-sided and 2/n! two-sided', () => {
    for (const n of [3, 4, 6, 8]) {
      const x = Array.from({ length: n }, (_, i) => i);
      const y = x.map((v) => v ** 3 + 1);
      let f = 1;
      for (let i = 2; i <= n; i++) f *= i;
      expect(correlationPermutation('spearman', x, y, { alternative: 'greater' }).p).toBeCloseTo(1 / f, 15);
      expect(correlationPermutation('spearman', x, y).p).toBeCloseTo(2 / f, 15);
      expect(correlationPermutation('spearman', x, y).permutations).toBe(f);
    }
  });

  it('Monte Carlo p counts the observed ordering: never below 1 / (resamples + 1)', () => {
    const x = Array.from({ length: 10 }, (_, i) => i);
    const r = permutationTest(x, x, (a, b) => spearman(a, b).r, { resamples: 99, alternative: 'greater' });
    expect(r.exact).toBe(false);
    expect(r.p).toBeCloseTo(1 / 100, 15);
  });
});

describe('correlation intervals and the paired comparison', () => {
  const x = [3.1, 5.2, 1.4, 7.7, 6.0, 2.2, 8.9, 4.4, 9.5, 0.7];
  const y = x.map((v, i) => v + [0.5, -1.2, 2.0, 0.3, -0.7, 1.1, -0.4, 0.9, -1.5, 0.2][i]!);
  it('the coefficient lies in its interval; a strong relation has an interval above 0', () => {
    const ci = correlationInterval('spearman', x, y, { resamples: 1000 });
    expect(ci.estimate).toBeCloseTo(spearman(x, y).r, 15);
    expect(ci.low).toBeLessThanOrEqual(ci.estimate);
    expect(ci.high).toBeGreaterThanOrEqual(ci.estimate);
    expect(ci.low).toBeGreaterThan(0);
  });
  it('a predictor compared with itself differs by exactly 0; the true predictor beats noise', () => {
    const same = compareCorrelations('spearman', x, x, y, { resamples: 500 });
    expect([same.difference.estimate, same.difference.low, same.difference.high]).toEqual([0, 0, 0]);
    const noise = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.4, 0.8, 0.6, 0.05];
    const better = compareCorrelations('pearson', y, noise, y, { resamples: 1000, method: 'percentile' });
    expect(better.a.estimate).toBe(1);
    expect(better.difference.low).toBeGreaterThan(0);
    expect(better.difference.estimate).toBeCloseTo(1 - better.b.estimate, 14);
  });
});

describe('FID sampling error (bootstrap over feature rows)', () => {
  const { dim, gen, real, cases } = fx.fid;
  it('the Fréchet distance of a resample (given counts) matches numpy weighted covariances + sqrtm', () => {
    const g = new ResamplableFeatures(gen, dim);
    const r = new ResamplableFeatures(real, dim);
    for (const c of cases) close(frechetDistanceFromStats(g.stats(c.genCounts), r.stats(c.realCounts)), c.fid, 1e-9);
  });

  /** Rows from N(0, diag(1..D)) shifted by `shift` (Box-Muller on a seeded generator). */
  const gaussianRows = (n: number, D: number, rng: SeededRandom, shift = 0) =>
    Float64Array.from({ length: n * D }, (_, i) => Math.sqrt((i % D) + 1) * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()) + shift);

  it('the bootstrap standard error matches the spread of FID over independent sample sets (within 2x)', () => {
    const D = 4;
    const rng = new SeededRandom(11);
    const realSet = new ResamplableFeatures(gaussianRows(2000, D, rng), D);
    const fids: number[] = [];
    for (let k = 0; k < 40; k++) fids.push(bootstrapFids([new ResamplableFeatures(gaussianRows(300, D, rng, 0.3), D)], realSet, { resamples: 1 }).fids[0]!);
    const m = mean(fids);
    const spread = Math.sqrt(fids.reduce((a, v) => a + (v - m) ** 2, 0) / (fids.length - 1));
    const b = bootstrapFids([new ResamplableFeatures(gaussianRows(300, D, rng, 0.3), D)], realSet, { resamples: 200, resampleReal: false });
    const se = fidInterval(b, 0).standardError;
    expect(se / spread).toBeGreaterThan(0.5);
    expect(se / spread).toBeLessThan(2);
  });

  it('paired sets: identical sets differ by exactly 0 in every replicate; intervals are reproducible', () => {
    const g = new ResamplableFeatures(gen, dim);
    const r = new ResamplableFeatures(real, dim);
    const b = bootstrapFids([g, g], r, { resamples: 30, seed: 4 });
    const d = fidInterval(b, 0, 1);
    expect([d.estimate, d.low, d.high]).toEqual([0, 0, 0]);
    const one = fidInterval(b, 0);
    expect(one.low).toBeLessThan(one.high);
    expect(fidInterval(bootstrapFids([g, g], r, { resamples: 30, seed: 4 }), 0)).toEqual(one);
  });

  it('pairedReal resamples images: a set compared with itself stays at FID 0 in every replicate, unpaired it does not', () => {
    const D = 3;
    const rows = gaussianRows(200, D, new SeededRandom(5));
    const a = new ResamplableFeatures(rows, D);
    const b = new ResamplableFeatures(rows, D);
    const paired = bootstrapFids([a], b, { resamples: 25, seed: 1, pairedReal: true });
    expect(paired.resampleReal).toBe(true);
    for (const v of paired.replicates[0]!) expect(Math.abs(v)).toBeLessThan(1e-8);
    const unpaired = bootstrapFids([a], b, { resamples: 25, seed: 1 });
    expect(Math.min(...unpaired.replicates[0]!)).toBeGreaterThan(1e-4);
    // A shifted copy: each paired replicate keeps the mean term exactly (|shift|^2 D), the covariances equal.
    const shifted = new ResamplableFeatures(rows.map((v) => v + 0.5), D);
    for (const v of bootstrapFids([shifted], b, { resamples: 10, pairedReal: true }).replicates[0]!) close(v, 0.25 * D, 1e-8);
    expect(() => bootstrapFids([a], new ResamplableFeatures(rows.subarray(0, 100 * D), D), { pairedReal: true })).toThrow(/pairedReal needs as many real rows as generated rows, got 100 and 200/);
  });
});

describe('Wilson interval (class consistency)', () => {
  it.each(fx.wilson.map((c) => [`${c.k}/${c.n} at ${c.level}`, c] as const))('%s matches scipy binomtest', (_, c) => {
    const [lo, hi] = wilsonInterval(c.k, c.n, c.level);
    close(lo, c.low, 1e-12);
    close(hi, c.high, 1e-12);
  });
});
