/**
 * Sampling error of FIDs: the bootstrap over feature rows. Each replicate draws the generated rows
 * with replacement (one draw of indices shared by every generated set, so sets whose row i comes
 * from the same generated token sequence or latent, e.g. one sample set decoded by several
 * decoders, stay paired) and, unless disabled, the real rows too (one draw shared by every set),
 * then recomputes every Fréchet distance from the resampled means and covariances. Replicates of
 * a difference of two FIDs are the differences of their replicates: the paired comparison.
 *
 * Cost per replicate and set: a weighted D x D covariance, D^2 N / 2 multiply-adds (the rows are
 * kept centred and transposed so each entry is one contiguous dot product; D = 128 for FeatNet,
 * so ~4e7 at N = 5000, tens of ms), plus one traceSqrtProduct (~D^3). The bootstrap distribution
 * of FID sits above the estimate (duplicated rows add spread to the mean term); its standard
 * deviation is the sampling error, its percentiles a rough interval. Browser-safe, float64.
 */
import { intervalFromReplicates, type BootstrapInterval } from './bootstrap.js';
import { frechetDistanceFromStats, type FeatureArray, type FeatureStats } from './fid.js';
import { rowDots } from './linalg.js';
import { SeededRandom } from './seeded-random.js';

/** Feature rows [N, D] ready for weighted resampling: their mean and centred columns. */
export class ResamplableFeatures {
  readonly count: number;
  readonly mean: Float64Array;
  /** Centred rows, transposed: column j of the features is Xt[j*N .. j*N+N). */
  private readonly xt: Float64Array;
  private readonly weighted: Float64Array;
  private readonly cov: Float64Array;

  constructor(
    rows: FeatureArray,
    readonly dim: number,
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`ResamplableFeatures: dim must be a positive integer, got ${dim}`);
    if (rows.length % dim !== 0) throw new Error(`ResamplableFeatures: ${rows.length} values are not a whole number of rows of dimension ${dim}`);
    const N = rows.length / dim;
    if (N < 2) throw new Error(`ResamplableFeatures: need at least 2 feature rows, got ${N}`);
    this.count = N;
    const mean = new Float64Array(dim);
    for (let n = 0; n < N; n++) for (let j = 0; j < dim; j++) mean[j] += rows[n * dim + j]!;
    for (let j = 0; j < dim; j++) mean[j] /= N;
    this.mean = mean;
    this.xt = new Float64Array(dim * N);
    for (let n = 0; n < N; n++) for (let j = 0; j < dim; j++) this.xt[j * N + n] = rows[n * dim + j]! - mean[j]!;
    this.weighted = new Float64Array(dim * N);
    this.cov = new Float64Array(dim * dim);
  }

  /**
   * Mean and unbiased covariance of the resample that holds row n `counts[n]` times (counts sum
   * to N); all-ones counts give the statistics of the rows themselves.
   */
  stats(counts: ArrayLike<number>): FeatureStats {
    const { dim: D, count: N, xt, weighted, cov } = this;
    if (counts.length !== N) throw new Error(`ResamplableFeatures.stats: ${counts.length} counts for ${N} rows`);
    let total = 0;
    for (let n = 0; n < N; n++) total += counts[n]!;
    const m = new Float64Array(D); // mean of the centred rows in the resample
    for (let j = 0; j < D; j++) {
      let s = 0;
      const o = j * N;
      for (let n = 0; n < N; n++) {
        const v = xt[o + n]! * counts[n]!;
        weighted[o + n] = v;
        s += v;
      }
      m[j] = s / total;
    }
    rowDots(weighted, D, xt, D, N, cov, true);
    const mu = new Float64Array(D);
    const sigma = new Float64Array(D * D);
    for (let i = 0; i < D; i++) {
      mu[i] = this.mean[i]! + m[i]!;
      for (let j = i; j < D; j++) {
        const v = (cov[i * D + j]! - total * m[i]! * m[j]!) / (total - 1);
        sigma[i * D + j] = v;
        sigma[j * D + i] = v;
      }
    }
    return { mu, sigma, dim: D, count: total };
  }
}

/** Counts of each of n rows in one resample of n draws with replacement. */
export function resampleCounts(n: number, rng: SeededRandom, out = new Float64Array(n)): Float64Array {
  out.fill(0);
  for (let i = 0; i < n; i++) out[rng.int(n)]!++;
  return out;
}

export interface FidBootstrapOptions {
  /** Replicates (default 200). */
  resamples?: number;
  seed?: number;
  /** Resample the real rows as well (default true): the error of the FID itself, not only of the generated side. */
  resampleReal?: boolean;
  /**
   * Row i of the real set is the source of row i of every generated set (reconstructions of the
   * real images, decodings of their perturbed tokens): each replicate draws images, so the real
   * rows take the generated rows' draw instead of their own (default false; implies resampleReal).
   */
  pairedReal?: boolean;
}

export interface FidBootstrap {
  /** FID of each generated set against the real rows (no resampling). */
  fids: number[];
  /** replicates[k][b]: FID of set k in replicate b. */
  replicates: Float64Array[];
  resampleReal: boolean;
}

/**
 * Bootstrap replicates of FID(set_k, real) for paired generated sets (same row count; row i of
 * each set drawn together) against one real set.
 */
export function bootstrapFids(sets: readonly ResamplableFeatures[], real: ResamplableFeatures, o: FidBootstrapOptions = {}): FidBootstrap {
  const B = o.resamples ?? 200;
  if (!(Number.isInteger(B) && B >= 1)) throw new RangeError(`bootstrapFids: resamples must be a positive integer, got ${B}`);
  if (sets.length === 0) throw new Error('bootstrapFids: no generated sets');
  const N = sets[0]!.count;
  for (const s of sets) {
    if (s.count !== N) throw new Error(`bootstrapFids: paired sets must have the same number of rows, got ${N} and ${s.count}`);
    if (s.dim !== real.dim) throw new Error(`bootstrapFids: feature dimensions differ (${s.dim} vs ${real.dim})`);
  }
  const pairedReal = o.pairedReal ?? false;
  if (pairedReal && real.count !== N) throw new Error(`bootstrapFids: pairedReal needs as many real rows as generated rows, got ${real.count} and ${N}`);
  const resampleReal = pairedReal || (o.resampleReal ?? true);
  const ones = (n: number) => new Float64Array(n).fill(1);
  const realFull = real.stats(ones(real.count));
  const fids = sets.map((s) => frechetDistanceFromStats(s.stats(ones(N)), realFull));
  const rng = new SeededRandom(o.seed ?? 0);
  const replicates = sets.map(() => new Float64Array(B));
  const genCounts = new Float64Array(N);
  const realCounts = new Float64Array(real.count);
  for (let b = 0; b < B; b++) {
    resampleCounts(N, rng, genCounts);
    const r = pairedReal ? real.stats(genCounts) : resampleReal ? real.stats(resampleCounts(real.count, rng, realCounts)) : realFull;
    sets.forEach((s, k) => (replicates[k]![b] = frechetDistanceFromStats(s.stats(genCounts), r)));
  }
  return { fids, replicates, resampleReal };
}

/** Percentile interval (and standard error) of a FID, or of a difference of two FIDs of one bootstrap run. */
export function fidInterval(b: FidBootstrap, k: number, minus?: number, level = 0.95): BootstrapInterval {
  const est = b.fids[k]! - (minus === undefined ? 0 : b.fids[minus]!);
  const reps = minus === undefined ? b.replicates[k]! : b.replicates[k]!.map((v, i) => v - b.replicates[minus]![i]!);
  return intervalFromReplicates(est, reps, { level, method: 'percentile' });
}
