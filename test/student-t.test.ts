/**
 * Student's t and the t intervals of statistics over a few seeds (models/metrics/student-t.ts)
 * against SciPy (test/fixtures/make_student_t.py) and closed forms. Bounds are compared relative
 * to the interval's width (a bound near 0 has no meaningful relative error of its own).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  meanInterval,
  studentTCdf,
  studentTQuantile,
  welchInterval,
} from '../models/metrics/index.js';

const fx = JSON.parse(readFileSync(new URL('./fixtures/student-t.json', import.meta.url), 'utf8')) as {
  cdf: { t: number; df: number; p: number }[];
  quantile: { p: number; df: number; t: number }[];
  mean: { values: number[]; level: number; estimate: number; low: number; high: number; standardError: number }[];
  welch: { a: number[]; b: number[]; level: number; estimate: number; low: number; high: number; df: number; pvalue: number }[];
};

const rel = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.max(1e-6, Math.abs(b)));
/** A bound's error relative to the interval's width. */
const bound = (a: number, b: number, width: number) => Math.abs(a - b) / width;

describe('Student t distribution', () => {
  it('CDF matches scipy.stats.t.cdf (relative 1e-9, tails included)', () => {
    for (const c of fx.cdf) expect(rel(studentTCdf(c.t, c.df), c.p), `t ${c.t} df ${c.df}`).toBeLessThan(1e-9);
  });
  // SciPy's ppf (cephes stdtrit) is itself good to ~1e-9 only: its own cdf at t.ppf(0.95, 30) is
  // 0.95 + 7.4e-10. Ours inverts the CDF to rounding (next test), so the comparison allows 1e-8.
  it('quantile matches scipy.stats.t.ppf (relative 1e-8)', () => {
    for (const c of fx.quantile) expect(rel(studentTQuantile(c.p, c.df), c.t), `p ${c.p} df ${c.df}`).toBeLessThan(1e-8);
  });
  it('closed forms: df 1 is Cauchy, df 2 is (2p - 1) / sqrt(2p(1 - p)), large df tends to the normal', () => {
    expect(studentTQuantile(0.975, 1)).toBeCloseTo(Math.tan(Math.PI * 0.475), 12);
    expect(studentTCdf(1, 1)).toBeCloseTo(0.75, 14);
    expect(studentTQuantile(0.9, 2)).toBeCloseTo(0.8 / Math.sqrt(0.18), 12);
    expect(studentTQuantile(0.975, 1e7)).toBeCloseTo(1.959963984540054, 5);
  });
  it('quantile inverts the CDF over degrees of freedom and probabilities', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.5, max: 500, noNaN: true }), fc.double({ min: 1e-8, max: 1 - 1e-8, noNaN: true }), (df, p) => {
        const t = studentTQuantile(p, df);
        return Math.abs(studentTCdf(t, df) - p) <= 1e-10 * Math.max(1, Math.min(p, 1 - p) * 1e3);
      }),
      { numRuns: 300 },
    );
  });
  it('bad arguments give NaN', () => {
    expect(studentTCdf(1, 0)).toBeNaN();
    expect(studentTQuantile(1.5, 3)).toBeNaN();
  });
});

describe('t intervals', () => {
  it('interval of a mean matches scipy.stats.t.interval(level, n - 1, mean, sem)', () => {
    for (const c of fx.mean) {
      const iv = meanInterval(c.values, c.level);
      expect(rel(iv.estimate, c.estimate)).toBeLessThan(1e-12);
      expect(bound(iv.low, c.low, c.high - c.low)).toBeLessThan(1e-8);
      expect(bound(iv.high, c.high, c.high - c.low)).toBeLessThan(1e-8);
      expect(rel(iv.standardError, c.standardError)).toBeLessThan(1e-12);
    }
  });
  it("Welch's interval matches SciPy's ttest_ind(equal_var=False): statistic, dof and p-value", () => {
    for (const c of fx.welch) {
      const iv = welchInterval(c.a, c.b, c.level);
      expect(rel(iv.estimate, c.estimate)).toBeLessThan(1e-12);
      expect(rel(iv.df, c.df)).toBeLessThan(1e-12);
      expect(bound(iv.low, c.low, c.high - c.low)).toBeLessThan(1e-8);
      expect(bound(iv.high, c.high, c.high - c.low)).toBeLessThan(1e-8);
      // The p-value SciPy computed from its own statistic and dof, recomputed from ours.
      const p = 2 * (1 - studentTCdf(Math.abs(iv.estimate / iv.standardError), iv.df));
      expect(rel(p, c.pvalue)).toBeLessThan(1e-8);
    }
  });
  it('one value has no interval; equal values give the point', () => {
    const one = meanInterval([3]);
    expect(one.estimate).toBe(3);
    expect(one.low).toBeNaN();
    const same = welchInterval([2, 2], [1, 1, 1]);
    expect([same.estimate, same.low, same.high]).toEqual([1, 1, 1]);
    expect(welchInterval([1], [2, 3]).low).toBeNaN();
  });
});
