/**
 * Fréchet distance, feature statistics and the float64 linear algebra under them
 * (models/metrics/{fid,linalg}.ts).
 *
 * Tolerances:
 * - vs SciPy (test/fixtures/make_fid.py: pytorch-fid's calculate_frechet_distance with
 *   scipy.linalg.sqrtm): 1e-4 relative, as the issue asks; both sides are float64 and agree far
 *   better in practice (the fixture's own eigh-based value matches sqrtm to ~1e-12 relative), so
 *   we also check 1e-7 against the fixture's eigh value, which is the same math as ours.
 * - feature statistics vs numpy.mean / numpy.cov: sums of <= 2100 float64 products in a different
 *   order: 1e-10 relative (observed ~1e-14).
 * - closed forms: the eigenvalues of an n x n float64 matrix are accurate to ~n eps ||A||, and a
 *   square root turns an absolute error delta on a tiny eigenvalue into <= sqrt(delta), so
 *   distances are checked to 1e-7 relative of tr(S1) + tr(S2) (plus 1e-9 absolute).
 * - eigen-decomposition: residual ||A v - l v|| <= 1e-11 ||A||_max * n and V orthonormal to 1e-12
 *   (Householder + QL is backward stable: errors ~ n eps ||A||).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FeatureStatsAccumulator,
  featureStats,
  frechetDistance,
  frechetDistanceFromStats,
  pivotedCholesky,
  symEig,
  symEigvals,
  traceSqrtProduct,
} from '../models/metrics/index.js';

interface FeatSpec {
  n: number;
  dim: number;
  seed: number;
  a: number;
  b: number;
  c: number;
  m: number;
}
interface StatsSummary {
  mu_head: number[];
  mu_sum: number;
  sigma_trace: number;
  sigma_sum: number;
  sigma_entries: [number, number, number][];
}
interface FidCase {
  name: string;
  set1: FeatSpec;
  set2: FeatSpec;
  stats1: StatsSummary;
  stats2: StatsSummary;
  fid_scipy_sqrtm: number;
  fid_eigh: number;
  fid_self_scipy_sqrtm: number;
  x1_first_row_head: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/fid.json', import.meta.url), 'utf8')) as { fid: FidCase[] };

/** lowbias32 / unif / features exactly as in make_fid.py (integer hash -> exact float64). */
function hash32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}
function unif(seed: number, idx: number): number {
  const base = Math.imul(seed, 0x9e3779b9) >>> 0;
  return hash32((idx + base) % 4294967296) / 4294967296;
}
function hashFeatures(s: FeatSpec): Float64Array {
  const { n: N, dim: D } = s;
  const x = new Float64Array(N * D);
  for (let n = 0; n < N; n++) {
    for (let d = 0; d < D; d++) {
      const u0 = unif(s.seed, n * D + d);
      const u1 = unif(s.seed, n * D + ((d + 1) % D));
      const u2 = unif(s.seed + 100, n * 8 + (d % 8));
      x[n * D + d] = s.a * u0 + s.b * u1 + s.c * u2 + s.m * ((d % 7) / 7);
    }
  }
  return x;
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

function checkSummary(st: { mu: Float64Array; sigma: Float64Array }, D: number, ref: StatsSummary): void {
  const close = (a: number, b: number, what: string) => expect(Math.abs(a - b), what).toBeLessThanOrEqual(1e-10 * Math.max(1, Math.abs(b)));
  ref.mu_head.forEach((v, i) => close(st.mu[i]!, v, `mu[${i}]`));
  close(st.mu.reduce((s, v) => s + v, 0), ref.mu_sum, 'sum(mu)');
  let tr = 0;
  for (let i = 0; i < D; i++) tr += st.sigma[i * D + i]!;
  close(tr, ref.sigma_trace, 'tr(sigma)');
  close(st.sigma.reduce((s, v) => s + v, 0), ref.sigma_sum, 'sum(sigma)');
  for (const [i, j, v] of ref.sigma_entries) close(st.sigma[i * D + j]!, v, `sigma[${i},${j}]`);
}

describe('Fréchet distance vs SciPy (pytorch-fid formula) on hashed features', () => {
  for (const c of fixture.fid) {
    const D = c.set1.dim;
    it(`${c.name}: features, statistics and FID`, () => {
      const x1 = hashFeatures(c.set1);
      const x2 = hashFeatures(c.set2);
      expect(Array.from(x1.subarray(0, 4))).toEqual(c.x1_first_row_head); // generator is bit-identical
      const t0 = performance.now();
      const s1 = featureStats(x1, D);
      const s2 = featureStats(x2, D);
      const tStats = performance.now() - t0;
      checkSummary(s1, D, c.stats1);
      checkSummary(s2, D, c.stats2);
      // At D = 2048 'eig' costs ~30 s more CPU than 'cholesky' (~8 s); it runs with METRICS_SLOW=1.
      const methods = D <= 64 || process.env.METRICS_SLOW === '1' ? (['cholesky', 'eig'] as const) : (['cholesky'] as const);
      for (const method of methods) {
        const t1 = performance.now();
        const fid = frechetDistanceFromStats(s1, s2, { method });
        const tFid = performance.now() - t1;
        if (D > 64) console.log(`FID D=${D} (${method}): stats ${tStats.toFixed(0)} ms, distance ${tFid.toFixed(0)} ms; ${fid} vs scipy ${c.fid_scipy_sqrtm}`);
        expect(rel(fid, c.fid_scipy_sqrtm), `${method} vs scipy sqrtm`).toBeLessThan(1e-4);
        expect(rel(fid, c.fid_eigh), `${method} vs numpy eigh`).toBeLessThan(1e-7);
      }
      if (D <= 64) {
        // a set against itself: 0 (scipy's sqrtm leaves ~1e-14 here)
        const trS = c.stats1.sigma_trace;
        for (const method of ['cholesky', 'eig'] as const) {
          expect(Math.abs(frechetDistanceFromStats(s1, s1, { method }))).toBeLessThan(1e-7 * trS);
        }
      }
    }, 300_000);
  }
});

/** Deterministic pseudo-random numbers in [-0.5, 0.5). */
function rng(seed: number): () => number {
  let i = 0;
  return () => unif(seed, i++) - 0.5;
}

/** A random orthogonal matrix (rows), from the eigenvectors of a random symmetric matrix. */
function randomOrthogonal(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = r();
  return symEig(a, n, { vectors: true }).vectors!;
}

/** Q^T diag(l) Q with Q's rows q_k: sum_k l_k q_k q_k^T. */
function fromSpectrum(q: Float64Array, l: ArrayLike<number>, n: number): Float64Array {
  const s = new Float64Array(n * n);
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] += l[k]! * q[k * n + i]! * q[k * n + j]!;
  return s;
}

describe('Fréchet distance closed forms', () => {
  const methods = ['cholesky', 'eig'] as const;

  it('commuting covariances: ||m1 - m2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2, incl. rank-deficient', () => {
    for (const [n, seed, zeros] of [[1, 1, 0], [2, 2, 0], [7, 3, 2], [33, 4, 0], [64, 5, 20]] as const) {
      const r = rng(seed + 10);
      const a = Float64Array.from({ length: n }, (_, i) => (i < zeros ? 0 : (r() + 0.6) * 3));
      const b = Float64Array.from({ length: n }, (_, i) => (i % 3 === 0 && i < zeros ? 0 : (r() + 0.6) * 2));
      const m1 = Float64Array.from({ length: n }, () => r() * 4);
      const m2 = Float64Array.from({ length: n }, () => r() * 4);
      const q = randomOrthogonal(n, seed);
      const s1 = fromSpectrum(q, a, n);
      const s2 = fromSpectrum(q, b, n);
      let expected = 0;
      for (let i = 0; i < n; i++) expected += (m1[i]! - m2[i]!) ** 2 + (Math.sqrt(a[i]!) - Math.sqrt(b[i]!)) ** 2;
      const scale = a.reduce((s, v) => s + v, 0) + b.reduce((s, v) => s + v, 0);
      for (const method of methods) {
        const got = frechetDistance(m1, s1, m2, s2, { method });
        expect(Math.abs(got - expected), `n=${n} ${method}: ${got} vs ${expected}`).toBeLessThanOrEqual(1e-7 * scale + 1e-9);
      }
    }
  });

  it('diagonal covariances and shifted means (exact arithmetic case)', () => {
    const mu1 = [0, 1, 2];
    const mu2 = [1, 1, 0];
    const s1 = [4, 0, 0, 0, 9, 0, 0, 0, 1];
    const s2 = [1, 0, 0, 0, 4, 0, 0, 0, 0];
    // ||d||^2 = 1 + 0 + 4 = 5; (2-1)^2 + (3-2)^2 + (1-0)^2 = 3
    for (const method of methods) expect(frechetDistance(mu1, s1, mu2, s2, { method })).toBeCloseTo(8, 12);
  });

  it('a set against itself is ~0 and the distance is symmetric (random PSD, random ranks)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 1, max: 1e6 }), (n, rk, seed) => {
        const rank = Math.min(n, rk);
        const r = rng(seed);
        const x = Float64Array.from({ length: n * rank }, r);
        const s = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < rank; k++) s[i * n + j] += x[i * rank + k]! * x[j * rank + k]!;
        const y = Float64Array.from({ length: n * n }, r);
        const s2 = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) s2[i * n + j] += y[i * n + k]! * y[j * n + k]!;
        const mu = Float64Array.from({ length: n }, r);
        const mu2 = Float64Array.from({ length: n }, r);
        let tr = 0;
        let tr2 = 0;
        for (let i = 0; i < n; i++) {
          tr += s[i * n + i]!;
          tr2 += s2[i * n + i]!;
        }
        for (const method of methods) {
          expect(Math.abs(frechetDistance(mu, s, mu, s, { method }))).toBeLessThanOrEqual(1e-7 * tr + 1e-12);
          const ab = frechetDistance(mu, s, mu2, s2, { method });
          const ba = frechetDistance(mu2, s2, mu, s, { method });
          expect(Math.abs(ab - ba)).toBeLessThanOrEqual(1e-7 * (tr + tr2) + 1e-12);
          expect(ab).toBeGreaterThanOrEqual(-1e-9 * (tr + tr2));
        }
        // the two factorizations agree
        expect(Math.abs(traceSqrtProduct(s, s2, n, { method: 'eig' }) - traceSqrtProduct(s, s2, n, { method: 'cholesky' }))).toBeLessThanOrEqual(1e-7 * (tr + tr2) + 1e-12);
      }),
      { numRuns: 40 },
    );
  });

  it('zero covariances: only the mean term remains', () => {
    for (const method of methods) expect(frechetDistance([1, 2], [0, 0, 0, 0], [0, 0], [1, 0, 0, 1], { method })).toBeCloseTo(5 + 2, 12);
  });

  it('rejects mismatched sizes with the sizes in the message', () => {
    expect(() => frechetDistance([1, 2], [1, 0, 0, 1], [1], [1])).toThrow(/lengths 2 and 1/);
    expect(() => frechetDistance([1, 2], [1, 0, 0], [1, 2], [1, 0, 0, 1])).toThrow(/sigma1 has 3 values, expected 2x2/);
    expect(() => frechetDistance([1], [1], [1], [1], { method: 'lu' as never })).toThrow(/method/);
    expect(() => frechetDistance([1, 2], [1, 0, 0, 1], [1, 2], [1, NaN, 0, 1])).toThrow(/sigma2 has a non-finite entry NaN at index 1/);
  });
});

describe('feature statistics', () => {
  it('matches a direct two-pass float64 computation, and batched accumulation matches one pass (large offset)', () => {
    const N = 37;
    const D = 5;
    const r = rng(99);
    const x = Float64Array.from({ length: N * D }, (_, i) => 1e4 + 10 * (i % D) + r());
    const st = featureStats(x, D);
    const mu = new Float64Array(D);
    for (let n = 0; n < N; n++) for (let j = 0; j < D; j++) mu[j] += x[n * D + j]! / N;
    for (let j = 0; j < D; j++) expect(st.mu[j]).toBeCloseTo(mu[j]!, 9);
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        let c = 0;
        for (let n = 0; n < N; n++) c += (x[n * D + i]! - mu[i]!) * (x[n * D + j]! - mu[j]!);
        c /= N - 1;
        expect(Math.abs(st.sigma[i * D + j]! - c)).toBeLessThan(1e-12);
      }
    }
    const acc = new FeatureStatsAccumulator(D);
    for (const [a, b] of [[0, 3], [3, 4], [4, 30], [30, 37]] as const) acc.add(new Float32Array(0)).add(x.subarray(a * D, b * D));
    const st2 = acc.stats();
    expect(st2.count).toBe(N);
    for (let i = 0; i < D * D; i++) expect(Math.abs(st2.sigma[i]! - st.sigma[i]!)).toBeLessThan(1e-9);
    for (let j = 0; j < D; j++) expect(st2.mu[j]).toBeCloseTo(st.mu[j]!, 9);
    expect(st.sigma[1 * D + 3]).toBe(st.sigma[3 * D + 1]); // exactly symmetric
  });

  it('validates its input', () => {
    expect(() => featureStats([1, 2, 3], 2)).toThrow(/whole number of rows of dimension 2/);
    expect(() => featureStats([1, 2], 2)).toThrow(/at least 2 feature rows/);
    expect(() => featureStats([1, NaN, 3, 4], 2)).toThrow(/non-finite/);
    expect(() => new FeatureStatsAccumulator(0)).toThrow(/positive integer/);
  });
});

describe('symmetric eigensolver and pivoted Cholesky', () => {
  function randSym(n: number, seed: number): Float64Array {
    const r = rng(seed);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = r() * (j === i + 3 ? 10 : 1);
    return a;
  }

  it('A v = l v with orthonormal V, ascending values, for random symmetric matrices (sizes 0..70)', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 17, 70]) {
      const a = randSym(n, n + 7);
      const { values, vectors } = symEig(a, n, { vectors: true });
      const v = vectors!;
      const amax = a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      for (let i = 1; i < n; i++) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]!);
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < n; r++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += a[r * n + k]! * v[i * n + k]!;
          expect(Math.abs(s - values[i]! * v[i * n + r]!)).toBeLessThanOrEqual(1e-11 * amax * n);
        }
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += v[i * n + k]! * v[j * n + k]!;
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
      const vals = symEigvals(a, n);
      for (let i = 0; i < n; i++) expect(Math.abs(vals[i]! - values[i]!)).toBeLessThanOrEqual(1e-12 * amax * n);
    }
  });

  it('known spectra: repeated eigenvalues, diagonal, zero, and only the upper triangle is read', () => {
    const n = 12;
    const q = randomOrthogonal(n, 3);
    const l = [3, 3, 3, -1, -1, 0, 0, 0, 2, 5, 5, 7];
    const a = fromSpectrum(q, l, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = 1e300; // lower triangle ignored
    const sorted = [...l].sort((x, y) => x - y);
    symEigvals(a, n).forEach((v, i) => expect(Math.abs(v - sorted[i]!)).toBeLessThan(1e-12));
    expect(Array.from(symEigvals([2, 0, 0, 0, -1, 0, 0, 0, 5], 3))).toEqual([-1, 2, 5]);
    expect(Array.from(symEigvals(new Float64Array(16), 4))).toEqual([0, 0, 0, 0]);
    expect(() => symEig([1, 2, 3], 2)).toThrow(/2x2 = 4 values, got 3/);
    expect(() => symEig([1, NaN, 0, 1], 2)).toThrow(/non-finite/);
  });

  it('pivoted Cholesky reconstructs P^T A P = L L^T and finds the numerical rank', () => {
    for (const [n, rank] of [[1, 1], [6, 6], [10, 4], [40, 13], [5, 0]] as const) {
      const r = rng(n * 31 + rank);
      const x = Float64Array.from({ length: n * rank }, r);
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < rank; k++) a[i * n + j] += x[i * rank + k]! * x[j * rank + k]!;
      const ch = pivotedCholesky(a, n);
      expect(ch.rank).toBe(rank);
      expect([...ch.perm].sort((p, q2) => p - q2)).toEqual(Array.from({ length: n }, (_, i) => i));
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < ch.rank; k++) s += ch.lt[k * n + i]! * ch.lt[k * n + j]!;
          expect(Math.abs(s - a[ch.perm[i]! * n + ch.perm[j]!]!)).toBeLessThan(1e-12 * Math.max(1, rank));
        }
      }
    }
  });
});
