/**
 * Pearson and Spearman correlation with two-sided p-values, for small samples such as "one point
 * per tokenizer" (pFID vs gFID). Plain float64; browser-safe.
 *
 * p-values (both match scipy.stats.pearsonr / spearmanr with the default two-sided alternative):
 * - Pearson: under H0 (independent normal x, y) t = r sqrt(dof / (1 - r^2)) has a Student t
 *   distribution with dof = n - 2. The two-sided p = P(|T| >= |t|) = I_{1-r^2}(dof/2, 1/2), the
 *   regularized incomplete beta function (this is exactly SciPy's beta-distribution form).
 * - Spearman: the same t approximation applied to the rank correlation (what SciPy does). It is
 *   an approximation; for very small n (say n < 10) an exact permutation test would differ.
 *
 * Degenerate inputs do not throw: fewer than 3 finite pairs, a constant input or non-finite values
 * give r = p = NaN with a `reason`. Inputs of different lengths are a programming error and throw.
 */

export interface Correlation {
  /** Correlation coefficient in [-1, 1], or NaN. */
  r: number;
  /** Two-sided p-value for H0: no correlation, or NaN. */
  p: number;
  /** Number of pairs. */
  n: number;
  /** Why r is NaN (absent otherwise). */
  reason?: string;
}

function checkInputs(name: string, x: ArrayLike<number>, y: ArrayLike<number>): string | undefined {
  if (x.length !== y.length) throw new RangeError(`${name}: x and y must have the same length, got ${x.length} and ${y.length}`);
  if (x.length < 3) return `need at least 3 pairs, got ${x.length}`;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) return `non-finite value at index ${i} (x=${x[i]}, y=${y[i]})`;
  }
  return undefined;
}

function nanResult(n: number, reason: string): Correlation {
  return { r: NaN, p: NaN, n, reason };
}

/** Sample Pearson coefficient of finite inputs, or NaN when either input is constant. */
function pearsonR(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  // Deviations divided by their largest magnitude, so squares of tiny (or huge) values neither
  // underflow to 0 nor overflow (SciPy normalizes the same way).
  const dx = new Float64Array(n);
  const dy = new Float64Array(n);
  let ax = 0;
  let ay = 0;
  for (let i = 0; i < n; i++) {
    dx[i] = x[i]! - mx;
    dy[i] = y[i]! - my;
    ax = Math.max(ax, Math.abs(dx[i]!));
    ay = Math.max(ay, Math.abs(dy[i]!));
  }
  if (ax === 0 || ay === 0) return NaN;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const u = dx[i]! / ax;
    const v = dy[i]! / ay;
    sxy += u * v;
    sxx += u * u;
    syy += v * v;
  }
  if (sxx === 0 || syy === 0) return NaN;
  // sqrt(s * s) is exactly s in IEEE arithmetic, so a perfect relation gives exactly +-1.
  const r = sxy / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/** Two-sided p-value of a correlation coefficient r over n pairs (t test, dof = n - 2). */
export function correlationPValue(r: number, n: number): number {
  if (!Number.isFinite(r) || n < 3) return NaN;
  const a = Math.abs(r);
  if (a >= 1) return 0;
  const dof = n - 2;
  // P(|T| >= |t|) = I_x(dof/2, 1/2) with x = dof / (dof + t^2) = 1 - r^2; 1 - x = r^2.
  return regularizedIncompleteBeta(dof / 2, 0.5, (1 - a) * (1 + a), a * a);
}

/** Pearson's linear correlation with its two-sided p-value. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): Correlation {
  const bad = checkInputs('pearson', x, y);
  if (bad) return nanResult(x.length, bad);
  const r = pearsonR(x, y);
  if (Number.isNaN(r)) return nanResult(x.length, 'constant input: the correlation is undefined');
  return { r, p: correlationPValue(r, x.length), n: x.length };
}

/** Spearman's rank correlation (average ranks for ties) with the t-approximation p-value. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): Correlation {
  const bad = checkInputs('spearman', x, y);
  if (bad) return nanResult(x.length, bad);
  const r = pearsonR(averageRanks(x), averageRanks(y));
  if (Number.isNaN(r)) return nanResult(x.length, 'constant input: the correlation is undefined');
  return { r, p: correlationPValue(r, x.length), n: x.length };
}

/** 1-based ranks; tied values get the average of the ranks they span (SciPy's 'average'). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i]! - x[j]!);
  const out = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && x[order[j]!] === x[order[i]!]) j++;
    const avg = (i + 1 + j) / 2; // mean of ranks i+1 .. j
    for (let k = i; k < j; k++) out[order[k]!] = avg;
    i = j;
  }
  return out;
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(z) for z > 0 (Lanczos, g = 7; relative error ~1e-15). */
export function logGamma(z: number): number {
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - logGamma(1 - z);
  z -= 1;
  let s = LANCZOS[0]!;
  for (let i = 1; i < 9; i++) s += LANCZOS[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/**
 * Regularized incomplete beta I_x(a, b) for a, b > 0, x in [0, 1]. `y` = 1 - x may be passed
 * when it is known more accurately than 1 - x. Continued fraction (modified Lentz), using the
 * symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
 */
export function regularizedIncompleteBeta(a: number, b: number, x: number, y = 1 - x): number {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1)) return NaN;
  if (x === 0) return 0;
  if (y === 0) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(y);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, y)) / b;
}

function betaContinuedFraction(a: number, b: number, x: number): number {
  const TINY = 1e-300;
  const EPS = 1e-15;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + num / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + num / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return h;
  }
  return h;
}
