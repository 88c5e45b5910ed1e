/**
 * Bootstrap confidence intervals of a statistic over resampled units (images, tokenizers, pairs),
 * with a seeded generator so every interval is reproducible. Plain float64; browser-safe.
 *
 * Two methods, as in scipy.stats.bootstrap (Efron & Tibshirani 1993, ch. 13 and 14.3):
 * - 'percentile': the alpha/2 and 1 - alpha/2 percentiles of the bootstrap distribution (numpy's
 *   linear interpolation between order statistics);
 * - 'bca' (bias-corrected and accelerated): the percentiles are moved by the bias z0 =
 *   Phi^-1(fraction of replicates below the estimate, ties counted half) and the acceleration a
 *   from the jackknife (sum U^3 / (6 (sum U^2)^(3/2)), U_i = (n - 1)(mean - theta_(i))), to
 *   alpha_1,2 = Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = -+Phi^-1(1 - alpha/2).
 * Replicates where the statistic is not finite (e.g. a correlation of a resample whose x values
 * are all equal) are dropped and counted in `dropped`. A statistic whose replicates are all equal
 * gets the zero-width interval [value, value] (SciPy returns NaN for BCa there).
 */
import { normalCdf, normalQuantile } from './normal.js';
import { SeededRandom } from './seeded-random.js';

export type IntervalMethod = 'percentile' | 'bca';

export interface BootstrapOptions {
  /** Number of bootstrap resamples (default 2000). */
  resamples?: number;
  /** Confidence level in (0, 1) (default 0.95). */
  level?: number;
  /** Default 'bca'. */
  method?: IntervalMethod;
  /** Seed of the resampling generator (default 0). */
  seed?: number;
}

export interface BootstrapInterval {
  /** The statistic on the original units. */
  estimate: number;
  low: number;
  high: number;
  level: number;
  method: IntervalMethod;
  /** Standard deviation of the finite replicates (ddof 1), the bootstrap standard error. */
  standardError: number;
  /** Finite replicates used. */
  resamples: number;
  /** Replicates dropped because the statistic was not finite. */
  dropped: number;
}

/** numpy.percentile(sorted, 100 q) with linear interpolation; `sorted` ascending and non-empty. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

function std(values: ArrayLike<number>): number {
  const n = values.length;
  if (n < 2) return NaN;
  let m = 0;
  for (let i = 0; i < n; i++) m += values[i]!;
  m /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (values[i]! - m) ** 2;
  return Math.sqrt(s / (n - 1));
}

/** Jackknife acceleration from the leave-one-out values of the statistic (NaN when they are all equal). */
export function jackknifeAcceleration(jackknife: ArrayLike<number>): number {
  const n = jackknife.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += jackknife[i]!;
  mean /= n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const u = (n - 1) * (mean - jackknife[i]!);
    num += u * u * u;
    den += u * u;
  }
  num /= n ** 3;
  den /= n ** 2;
  return num / (6 * den ** 1.5);
}

/**
 * The interval from an estimate and its bootstrap replicates (non-finite ones are dropped);
 * 'bca' also needs the statistic's jackknife (leave-one-out) values.
 */
export function intervalFromReplicates(estimate: number, replicates: ArrayLike<number>, o: { level?: number; method?: IntervalMethod; jackknife?: ArrayLike<number> } = {}): BootstrapInterval {
  const level = o.level ?? 0.95;
  const method = o.method ?? 'bca';
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrap: level must be in (0, 1), got ${level}`);
  const finite: number[] = [];
  for (let i = 0; i < replicates.length; i++) if (Number.isFinite(replicates[i]!)) finite.push(replicates[i]!);
  const dropped = replicates.length - finite.length;
  const base = { estimate, level, method, resamples: finite.length, dropped };
  if (finite.length === 0 || !Number.isFinite(estimate)) return { ...base, low: NaN, high: NaN, standardError: NaN };
  const sorted = Float64Array.from(finite).sort();
  const standardError = std(sorted);
  if (sorted[0] === sorted[sorted.length - 1]) return { ...base, low: sorted[0]!, high: sorted[0]!, standardError };
  const alpha = (1 - level) / 2;
  let q1 = alpha;
  let q2 = 1 - alpha;
  if (method === 'bca') {
    if (!o.jackknife) throw new Error("bootstrap: method 'bca' needs the jackknife values");
    let below = 0;
    let atOrBelow = 0;
    for (const v of sorted) {
      if (v < estimate) below++;
      if (v <= estimate) atOrBelow++;
    }
    const z0 = normalQuantile((below + atOrBelow) / (2 * sorted.length));
    const a = jackknifeAcceleration(o.jackknife);
    const z = normalQuantile(alpha);
    const shift = (zz: number) => normalCdf(z0 + (z0 + zz) / (1 - a * (z0 + zz)));
    q1 = shift(z);
    q2 = shift(-z);
    if (!Number.isFinite(q1) || !Number.isFinite(q2)) return { ...base, low: NaN, high: NaN, standardError };
  } else if (method !== 'percentile') throw new Error(`bootstrap: method must be 'percentile' or 'bca', got '${String(method)}'`);
  return { ...base, low: percentileSorted(sorted, q1), high: percentileSorted(sorted, q2), standardError };
}

/** Indices of one bootstrap resample of n units (n draws with replacement). */
export function resampleIndices(n: number, rng: SeededRandom, out = new Int32Array(n)): Int32Array {
  for (let i = 0; i < n; i++) out[i] = rng.int(n);
  return out;
}

/** The statistic on each leave-one-out subset of the units. */
export function jackknifeValues<T>(units: readonly T[], statistic: (sample: readonly T[]) => number): Float64Array {
  const n = units.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = statistic(units.filter((_, j) => j !== i));
  return out;
}

/**
 * Bootstrap replicates of several statistics over the SAME resamples of `units` (for paired
 * comparisons): replicates[k][b] is statistic k on resample b.
 */
export function bootstrapReplicates<T>(units: readonly T[], statistics: readonly ((sample: readonly T[]) => number)[], o: { resamples?: number; seed?: number } = {}): Float64Array[] {
  const B = o.resamples ?? 2000;
  if (!(Number.isInteger(B) && B >= 1)) throw new RangeError(`bootstrap: resamples must be a positive integer, got ${B}`);
  if (units.length === 0) throw new RangeError('bootstrap: no units to resample');
  const rng = new SeededRandom(o.seed ?? 0);
  const out = statistics.map(() => new Float64Array(B));
  const idx = new Int32Array(units.length);
  const sample: T[] = new Array(units.length);
  for (let b = 0; b < B; b++) {
    resampleIndices(units.length, rng, idx);
    for (let i = 0; i < idx.length; i++) sample[i] = units[idx[i]!]!;
    statistics.forEach((s, k) => (out[k]![b] = s(sample)));
  }
  return out;
}

/** Bootstrap confidence interval of `statistic` over resamples of `units`. */
export function bootstrapCI<T>(units: readonly T[], statistic: (sample: readonly T[]) => number, o: BootstrapOptions = {}): BootstrapInterval {
  const [reps] = bootstrapReplicates(units, [statistic], o);
  const method = o.method ?? 'bca';
  return intervalFromReplicates(statistic(units), reps!, { level: o.level ?? 0.95, method, ...(method === 'bca' ? { jackknife: jackknifeValues(units, statistic) } : {}) });
}
