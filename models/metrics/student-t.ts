/**
 * Student's t distribution and the intervals built on it, for statistics over a few training
 * seeds (2-5 replicates per variant), where a bootstrap cannot reach its own nominal coverage:
 *  - the one-sample interval of a mean: mean +- t_{n-1} s / sqrt(n);
 *  - Welch's interval of a difference of two means with unequal variances (Welch-Satterthwaite
 *    degrees of freedom), as scipy.stats.ttest_ind(equal_var=False).confidence_interval().
 * The CDF is 1 - I_x(nu/2, 1/2) / 2 with x = nu / (nu + t^2) (t > 0); the quantile inverts it by
 * bisection on a bracket, then Newton steps, to near double precision. Browser-safe float64.
 */
import { logGamma, regularizedIncompleteBeta } from './correlation.js';
import { normalQuantile } from './normal.js';

/** P(T <= t) for Student's t with `df` > 0 degrees of freedom (df may be fractional). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0) || Number.isNaN(t)) return NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const t2 = t * t;
  // I_x(df/2, 1/2) = P(|T| >= |t|); 1 - x = t^2 / (df + t^2) passed exactly.
  const tail = 0.5 * regularizedIncompleteBeta(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
  return t > 0 ? 1 - tail : tail;
}

function studentTDensity(t: number, df: number): number {
  return Math.exp(logGamma((df + 1) / 2) - logGamma(df / 2) - 0.5 * Math.log(df * Math.PI) - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

/** The p-quantile of Student's t with `df` > 0 degrees of freedom. */
export function studentTQuantile(p: number, df: number): number {
  if (!(df > 0) || !(p >= 0 && p <= 1)) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  // Closed forms where they exist (df 1: Cauchy; df 2).
  if (df === 1) return Math.tan(Math.PI * (p - 0.5));
  if (df === 2) return (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
  // Bracket [0, hi] with hi doubling from the normal quantile (t's quantiles lie beyond it).
  let lo = 0;
  let hi = Math.max(1, normalQuantile(p));
  while (studentTCdf(hi, df) < p) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 60 && hi - lo > 1e-12 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  let t = 0.5 * (lo + hi);
  for (let i = 0; i < 3; i++) {
    const step = (studentTCdf(t, df) - p) / studentTDensity(t, df);
    if (!Number.isFinite(step)) break;
    t -= step;
  }
  return t;
}

/** A t-based interval: the estimate, its bounds, its standard error and degrees of freedom. */
export interface TInterval {
  estimate: number;
  low: number;
  high: number;
  level: number;
  standardError: number;
  df: number;
  /** Values behind it (one sample: n; Welch: n_a + n_b). */
  n: number;
}

function meanVar(v: readonly number[]): { mean: number; variance: number } {
  const n = v.length;
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? v.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1) : NaN;
  return { mean, variance };
}

function tInterval(estimate: number, se: number, df: number, level: number, n: number): TInterval {
  const h = se === 0 ? 0 : studentTQuantile(1 - (1 - level) / 2, df) * se;
  return { estimate, low: estimate - h, high: estimate + h, level, standardError: se, df, n };
}

/** Interval of the mean of `values` (n >= 2; fewer gives NaN bounds): mean +- t_{n-1} s / sqrt(n). */
export function meanInterval(values: readonly number[], level = 0.95): TInterval {
  if (!(level > 0 && level < 1)) throw new RangeError(`meanInterval: level must be in (0, 1), got ${level}`);
  const n = values.length;
  if (n === 0) return { estimate: NaN, low: NaN, high: NaN, level, standardError: NaN, df: 0, n };
  const { mean, variance } = meanVar(values);
  return tInterval(mean, Math.sqrt(variance / n), n - 1, level, n);
}

/**
 * Welch's interval of mean(a) - mean(b) (each n >= 2): se^2 = s_a^2 / n_a + s_b^2 / n_b, df by
 * Welch-Satterthwaite. Where both samples have zero variance the interval is the point.
 */
export function welchInterval(a: readonly number[], b: readonly number[], level = 0.95): TInterval {
  if (!(level > 0 && level < 1)) throw new RangeError(`welchInterval: level must be in (0, 1), got ${level}`);
  const n = a.length + b.length;
  if (a.length < 2 || b.length < 2) {
    const d = a.length && b.length ? meanVar(a).mean - meanVar(b).mean : NaN;
    return { estimate: d, low: NaN, high: NaN, level, standardError: NaN, df: 0, n };
  }
  const A = meanVar(a);
  const B = meanVar(b);
  const va = A.variance / a.length;
  const vb = B.variance / b.length;
  const se = Math.sqrt(va + vb);
  const df = va + vb === 0 ? a.length + b.length - 2 : (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return tInterval(A.mean - B.mean, se, df, level, n);
}
