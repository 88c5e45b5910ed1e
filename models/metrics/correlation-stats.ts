/**
 * Uncertainty of a correlation across a few units (one point per tokenizer): a bootstrap interval
 * of Spearman's or Pearson's coefficient resampling the units (pairs), a permutation p-value, and
 * the paired comparison "does metric a predict y better than metric b": the interval of
 * rho(a, y) - rho(b, y) over the same resamples. Resamples that leave a metric constant have no
 * correlation; they are dropped and counted. Browser-safe, plain float64.
 */
import { bootstrapReplicates, intervalFromReplicates, jackknifeValues, type BootstrapInterval, type BootstrapOptions } from './bootstrap.js';
import { pearson, spearman } from './correlation.js';
import { permutationTest, type PermutationOptions, type PermutationResult } from './permutation.js';

export type CorrelationKind = 'spearman' | 'pearson';

/** The coefficient alone (NaN where undefined). */
export function correlationCoefficient(kind: CorrelationKind, x: ArrayLike<number>, y: ArrayLike<number>): number {
  return (kind === 'spearman' ? spearman : pearson)(x, y).r;
}

interface Row {
  x: number;
  y: number;
}

const coef = (kind: CorrelationKind) => (rows: readonly Row[]) =>
  correlationCoefficient(
    kind,
    rows.map((r) => r.x),
    rows.map((r) => r.y),
  );

function rows(x: ArrayLike<number>, y: ArrayLike<number>): Row[] {
  if (x.length !== y.length) throw new RangeError(`correlation: x and y must have the same length, got ${x.length} and ${y.length}`);
  return Array.from({ length: x.length }, (_, i) => ({ x: x[i]!, y: y[i]! }));
}

export interface CorrelationSummary {
  kind: CorrelationKind;
  n: number;
  /** Bootstrap interval over resampled pairs (estimate = the coefficient). */
  interval: BootstrapInterval;
  /** Permutation test of no association. */
  permutation: PermutationResult;
}

/** Bootstrap interval of the coefficient resampling the pairs. */
export function correlationInterval(kind: CorrelationKind, x: ArrayLike<number>, y: ArrayLike<number>, o: BootstrapOptions = {}): BootstrapInterval {
  const units = rows(x, y);
  const stat = coef(kind);
  const [reps] = bootstrapReplicates(units, [stat], o);
  const method = o.method ?? 'bca';
  return intervalFromReplicates(stat(units), reps!, { level: o.level ?? 0.95, method, ...(method === 'bca' ? { jackknife: jackknifeValues(units, stat) } : {}) });
}

/** Permutation p-value of the coefficient (exact for n <= 8 by default). */
export function correlationPermutation(kind: CorrelationKind, x: ArrayLike<number>, y: ArrayLike<number>, o: PermutationOptions = {}): PermutationResult {
  return permutationTest(x, y, (a, b) => correlationCoefficient(kind, a, b), o);
}

/** Both: the bootstrap interval and the permutation p-value. */
export function correlationSummary(kind: CorrelationKind, x: ArrayLike<number>, y: ArrayLike<number>, o: { bootstrap?: BootstrapOptions; permutation?: PermutationOptions } = {}): CorrelationSummary {
  return { kind, n: x.length, interval: correlationInterval(kind, x, y, o.bootstrap), permutation: correlationPermutation(kind, x, y, o.permutation) };
}

export interface CorrelationComparison {
  kind: CorrelationKind;
  n: number;
  /** rho(a, y), rho(b, y) and their difference on the original units, with intervals over the same resamples. */
  a: BootstrapInterval;
  b: BootstrapInterval;
  difference: BootstrapInterval;
}

/**
 * Paired comparison of two predictors of y measured on the same units: each resample of the units
 * gives rho(a, y), rho(b, y) and their difference, so the difference's interval accounts for the
 * two coefficients moving together. A resample where either is undefined is dropped from the difference.
 */
export function compareCorrelations(kind: CorrelationKind, a: ArrayLike<number>, b: ArrayLike<number>, y: ArrayLike<number>, o: BootstrapOptions = {}): CorrelationComparison {
  if (a.length !== y.length || b.length !== y.length) throw new RangeError(`compareCorrelations: a, b and y must have the same length, got ${a.length}, ${b.length} and ${y.length}`);
  const units = Array.from({ length: y.length }, (_, i) => ({ a: a[i]!, b: b[i]!, y: y[i]! }));
  type U = (typeof units)[number];
  const ys = (s: readonly U[]) => s.map((u) => u.y);
  const ra = (s: readonly U[]) => correlationCoefficient(kind, s.map((u) => u.a), ys(s));
  const rb = (s: readonly U[]) => correlationCoefficient(kind, s.map((u) => u.b), ys(s));
  const rd = (s: readonly U[]) => ra(s) - rb(s);
  const [repA, repB, repD] = bootstrapReplicates(units, [ra, rb, rd], o);
  const method = o.method ?? 'bca';
  const level = o.level ?? 0.95;
  const iv = (stat: (s: readonly U[]) => number, reps: Float64Array) => intervalFromReplicates(stat(units), reps, { level, method, ...(method === 'bca' ? { jackknife: jackknifeValues(units, stat) } : {}) });
  return { kind, n: y.length, a: iv(ra, repA!), b: iv(rb, repB!), difference: iv(rd, repD!) };
}
