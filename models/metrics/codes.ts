/**
 * Token statistics (codebook usage, code perplexity) and the Inception-Score analogue from
 * classifier logits. Plain float64 on the CPU: the inputs are small (indices, logits).
 */

/** Counts of each code 0..K-1 over a set of token indices; accumulate batches with `add`. */
export class CodeHistogram {
  readonly counts: Float64Array;
  total = 0;

  constructor(readonly codebookSize: number) {
    if (!Number.isInteger(codebookSize) || codebookSize < 1) throw new RangeError(`CodeHistogram: codebook size must be a positive integer, got ${codebookSize}`);
    this.counts = new Float64Array(codebookSize);
  }

  /** Adds token indices (any shape, flattened); every index must be an integer in [0, K). */
  add(indices: ArrayLike<number>): this {
    const K = this.codebookSize;
    for (let i = 0; i < indices.length; i++) {
      const c = indices[i]!;
      if (!Number.isInteger(c) || c < 0 || c >= K) throw new RangeError(`CodeHistogram.add: index ${c} at position ${i} is not a code in [0, ${K})`);
      this.counts[c] += 1;
    }
    this.total += indices.length;
    return this;
  }

  /** Number of distinct codes seen. */
  get used(): number {
    let u = 0;
    for (let k = 0; k < this.codebookSize; k++) if (this.counts[k]! > 0) u++;
    return u;
  }

  /** Percentage (0..100) of the K codes that occur at least once. */
  usage(): number {
    return (100 * this.used) / this.codebookSize;
  }

  /**
   * exp(H) with H = -sum_k p_k log p_k (natural log) of the empirical code distribution:
   * 1 when one code is used, K when all are used equally. NaN for an empty histogram.
   */
  perplexity(): number {
    if (this.total === 0) return NaN;
    let h = 0;
    for (let k = 0; k < this.codebookSize; k++) {
      const c = this.counts[k]!;
      if (c > 0) {
        const p = c / this.total;
        h -= p * Math.log(p);
      }
    }
    return Math.exp(h);
  }
}

/** Percentage (0..100) of the K codes used at least once in `indices`. */
export function codebookUsage(indices: ArrayLike<number>, codebookSize: number): number {
  return new CodeHistogram(codebookSize).add(indices).usage();
}

/** Perplexity exp(-sum p log p) of the code distribution of `indices` (1..K). */
export function codePerplexity(indices: ArrayLike<number>, codebookSize: number): number {
  return new CodeHistogram(codebookSize).add(indices).perplexity();
}

export interface InceptionScore {
  /** Mean over splits of exp(E_x KL(p(y|x) || p(y))). */
  mean: number;
  /** Population standard deviation over splits (np.std), 0 for one split. */
  std: number;
  /** The score of each split. */
  splits: number[];
}

/**
 * Inception-Score analogue from classifier logits [N, K] (row-major): p(y|x) = softmax(logits)
 * in float64; the rows are cut into `splits` consecutive parts exactly as the IS paper's code
 * (part i = rows [i N / splits, (i+1) N / splits), integer division), each part scored as
 * exp(mean_x KL(p(y|x) || p(y))) with p(y) the part's mean prediction. Ranges from 1 (every
 * prediction equal) to K (confident and evenly spread over the K classes).
 */
export function inceptionScore(logits: ArrayLike<number>, numClasses: number, splits = 10): InceptionScore {
  const K = numClasses;
  if (!Number.isInteger(K) || K < 1) throw new RangeError(`inceptionScore: numClasses must be a positive integer, got ${K}`);
  if (logits.length % K !== 0) throw new Error(`inceptionScore: ${logits.length} logits are not a whole number of rows of ${K} classes`);
  const N = logits.length / K;
  if (!Number.isInteger(splits) || splits < 1 || splits > N) throw new RangeError(`inceptionScore: splits must be an integer in [1, N=${N}], got ${splits}`);
  // log-softmax per row (stable), float64
  const logp = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) {
      const v = logits[n * K + k]!;
      if (!Number.isFinite(v)) throw new Error(`inceptionScore: non-finite logit ${v} at row ${n}, class ${k}`);
      if (v > m) m = v;
    }
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(logits[n * K + k]! - m);
    const lse = m + Math.log(s);
    for (let k = 0; k < K; k++) logp[n * K + k] = logits[n * K + k]! - lse;
  }
  const scores: number[] = [];
  const py = new Float64Array(K);
  for (let i = 0; i < splits; i++) {
    const a = Math.floor((i * N) / splits);
    const b = Math.floor(((i + 1) * N) / splits);
    py.fill(0);
    for (let n = a; n < b; n++) for (let k = 0; k < K; k++) py[k] += Math.exp(logp[n * K + k]!);
    for (let k = 0; k < K; k++) py[k] = Math.log(py[k]! / (b - a));
    let kl = 0;
    for (let n = a; n < b; n++) {
      for (let k = 0; k < K; k++) {
        const lp = logp[n * K + k]!;
        const p = Math.exp(lp);
        if (p > 0) kl += p * (lp - py[k]!);
      }
    }
    scores.push(Math.exp(kl / (b - a)));
  }
  const mean = scores.reduce((s, v) => s + v, 0) / splits;
  const std = Math.sqrt(scores.reduce((s, v) => s + (v - mean) ** 2, 0) / splits);
  return { mean, std, splits: scores };
}
