/**
 * Permutation test of association between paired values x, y (scipy.stats.permutation_test with
 * permutation_type 'pairings'): the null distribution of statistic(x, y permuted) over every
 * permutation of y when n! is at most `exactMaxPermutations` (n <= 8 by default: 40,320), else
 * over `resamples` random permutations from a seeded generator. p-values as SciPy computes them:
 *   greater: P(T >= t), less: P(T <= t), two-sided: min(1, 2 min(greater, less)),
 * comparisons with SciPy's relative tolerance 1e-14 (so values equal in theory count as equal);
 * exact: count / n!, the observed ordering among them; Monte Carlo: (count + 1) / (resamples + 1),
 * which counts the observed ordering once and never gives 0 (Phipson & Smyth 2010).
 * So a perfectly ranked set of n has exact p = 1/n! (greater) and 2/n! (two-sided). Browser-safe.
 */
import { SeededRandom } from './seeded-random.js';

export type Alternative = 'two-sided' | 'greater' | 'less';

export interface PermutationOptions {
  alternative?: Alternative;
  /** Random permutations when the test is not exact (default 9999). */
  resamples?: number;
  /** Enumerate every permutation when n! is at most this (default 40320 = 8!). */
  exactMaxPermutations?: number;
  seed?: number;
}

export interface PermutationResult {
  statistic: number;
  p: number;
  /** Every permutation enumerated (true) or Monte Carlo (false). */
  exact: boolean;
  /** Permutations in the null distribution. */
  permutations: number;
  alternative: Alternative;
}

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/** Calls `visit` with every permutation of 0..n-1 (Heap's algorithm; the array is reused). */
export function forEachPermutation(n: number, visit: (perm: Int32Array) => void): void {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  const c = new Int32Array(n);
  visit(a);
  let i = 1;
  while (i < n) {
    if (c[i]! < i) {
      const j = i % 2 === 0 ? 0 : c[i]!;
      const t = a[j]!;
      a[j] = a[i]!;
      a[i] = t;
      visit(a);
      c[i]!++;
      i = 1;
    } else {
      c[i] = 0;
      i++;
    }
  }
}

/** Permutation p-value of statistic(x, y) against pairings of x with permuted y. */
export function permutationTest(x: ArrayLike<number>, y: ArrayLike<number>, statistic: (x: ArrayLike<number>, y: ArrayLike<number>) => number, o: PermutationOptions = {}): PermutationResult {
  if (x.length !== y.length) throw new RangeError(`permutationTest: x and y must have the same length, got ${x.length} and ${y.length}`);
  const alternative = o.alternative ?? 'two-sided';
  if (!['two-sided', 'greater', 'less'].includes(alternative)) throw new Error(`permutationTest: alternative must be 'two-sided', 'greater' or 'less', got '${String(alternative)}'`);
  const n = x.length;
  const observed = statistic(x, y);
  const nFact = factorial(n);
  const exact = nFact <= (o.exactMaxPermutations ?? 40320);
  if (!Number.isFinite(observed)) return { statistic: observed, p: NaN, exact, permutations: 0, alternative };
  const gamma = Math.max(1e-14, Math.abs(1e-14 * observed));
  let ge = 0;
  let le = 0;
  let count = 0;
  const yp = new Float64Array(n);
  const visit = (perm: ArrayLike<number>) => {
    for (let i = 0; i < n; i++) yp[i] = y[perm[i]!]!;
    const t = statistic(x, yp);
    if (t >= observed - gamma) ge++;
    if (t <= observed + gamma) le++;
    count++;
  };
  if (exact) forEachPermutation(n, visit);
  else {
    const B = o.resamples ?? 9999;
    if (!(Number.isInteger(B) && B >= 1)) throw new RangeError(`permutationTest: resamples must be a positive integer, got ${B}`);
    const rng = new SeededRandom(o.seed ?? 0);
    const perm = Int32Array.from({ length: n }, (_, i) => i);
    for (let b = 0; b < B; b++) visit(rng.shuffle(perm));
  }
  const adj = exact ? 0 : 1;
  const pGreater = (ge + adj) / (count + adj);
  const pLess = (le + adj) / (count + adj);
  const p = alternative === 'greater' ? pGreater : alternative === 'less' ? pLess : Math.min(1, 2 * Math.min(pGreater, pLess));
  return { statistic: observed, p, exact, permutations: count, alternative };
}
