/**
 * Float64 dense symmetric eigensolver for the metrics (Fréchet distance), in plain TypeScript.
 *
 * Householder tridiagonalization (as LAPACK dsytd2 / EISPACK tred2, working on the upper triangle
 * so every inner loop runs along a contiguous row) followed by the implicit QL algorithm with
 * Wilkinson-style shifts (EISPACK tql2, in the JAMA formulation). Eigenvectors are kept as the ROWS
 * of a row-major matrix (`vectors[i*n + k]` is component k of eigenvector i), so the Givens
 * rotations of QL and the back-application of the Householder reflectors also run along rows.
 *
 * Matrices are row-major Float64Array of n*n values; only the upper triangle of the input is read.
 */

/** Result of symEig: ascending eigenvalues and (optionally) eigenvectors as rows. */
export interface SymEig {
  values: Float64Array;
  /** Row i is the unit eigenvector of values[i]; null when vectors were not requested. */
  vectors: Float64Array | null;
}

function checkSquare(op: string, a: ArrayLike<number>, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${op}: matrix size must be a non-negative integer, got ${n}`);
  if (a.length !== n * n) throw new Error(`${op}: expected ${n}x${n} = ${n * n} values, got ${a.length}`);
}

/**
 * Reduces the symmetric matrix in `a` (upper triangle read, overwritten) to tridiagonal form
 * T = Q^T A Q. d gets the diagonal, e[k] the coupling of k and k+1 (e[n-1] = 0). The reflector
 * H_k = I - tau[k] v v^T (v stored in a[k, k+1..n-1]) acts on indices k+1..n-1; Q = H_0 ... H_{n-3}.
 *
 * One pass over the trailing matrix per step: the rank-2 update of step k is fused with the
 * symmetric matrix-vector product of step k+1 (whose reflector only needs the first updated row),
 * which halves the memory traffic of the textbook two-pass loop.
 */
function tridiagonalize(a: Float64Array, n: number, d: Float64Array, e: Float64Array, tau: Float64Array): void {
  if (n === 0) return;
  const p = new Float64Array(n); // tau * A22 v of the current step, then w
  const pn = new Float64Array(n); // the same for the next step, accumulated during the update
  /** Householder vector for row k (stored in place); sets d[k], e[k], tau[k]. */
  const reflector = (k: number): number => {
    const rk = k * n;
    const s = k + 1;
    d[k] = a[rk + k]!;
    let scale = 0;
    for (let j = s; j < n; j++) scale += Math.abs(a[rk + j]!);
    if (scale === 0) {
      e[k] = 0;
      tau[k] = 0;
      return 0;
    }
    let ss = 0;
    for (let j = s; j < n; j++) {
      const v = a[rk + j]! / scale;
      a[rk + j] = v;
      ss += v * v;
    }
    const x0 = a[rk + s]!;
    const alpha = x0 > 0 ? -Math.sqrt(ss) : Math.sqrt(ss);
    // v = x - alpha e1, tau = 2 / (v^T v) = 1 / (|x|^2 - x0 alpha)
    a[rk + s] = x0 - alpha;
    e[k] = alpha * scale;
    const t = 1 / (ss - x0 * alpha);
    tau[k] = t;
    return t;
  };
  if (n > 2 && reflector(0) !== 0) {
    // p = A22 v for step 0 (later steps get theirs from the fused loop)
    const v0 = 0;
    for (let i = 1; i < n; i++) {
      const ri = i * n;
      const vi = a[v0 + i]!;
      let acc = a[ri + i]! * vi;
      for (let j = i + 1; j < n; j++) {
        const aij = a[ri + j]!;
        acc += aij * a[v0 + j]!;
        p[j] += aij * vi;
      }
      p[i] += acc;
    }
  }
  for (let k = 0; k < n - 2; k++) {
    const rk = k * n;
    const s = k + 1;
    const t = tau[k]!;
    if (t !== 0) {
      // w = t p - (t^2 / 2)(p.v) v, with p = A22 v unscaled so far
      let pv = 0;
      for (let j = s; j < n; j++) {
        p[j] *= t;
        pv += p[j]! * a[rk + j]!;
      }
      const K = 0.5 * t * pv;
      for (let j = s; j < n; j++) p[j] -= K * a[rk + j]!;
      // update row s first: the next reflector comes from it
      const rs = s * n;
      const vs = a[rk + s]!;
      const ws = p[s]!;
      for (let j = s; j < n; j++) a[rs + j] -= vs * p[j]! + ws * a[rk + j]!;
    }
    const hasNext = s < n - 2;
    const tn = hasNext ? reflector(s) : 0;
    const rn = s * n; // next v lives in row s, entries s+1..n-1
    if (tn !== 0) for (let j = s + 1; j < n; j++) pn[j] = 0;
    if (t !== 0 && tn !== 0) {
      // rows in pairs: p, v, u and pn are loaded once for two rows
      let i = s + 1;
      for (; i + 1 < n; i += 2) {
        const ri = i * n;
        const ri1 = ri + n;
        const vi = a[rk + i]!;
        const wi = p[i]!;
        const ui = a[rn + i]!;
        const vi1 = a[rk + i + 1]!;
        const wi1 = p[i + 1]!;
        const ui1 = a[rn + i + 1]!;
        const aii = a[ri + i]! - 2 * vi * wi;
        a[ri + i] = aii;
        const aij = a[ri + i + 1]! - (vi * wi1 + wi * vi1);
        a[ri + i + 1] = aij;
        const ajj = a[ri1 + i + 1]! - 2 * vi1 * wi1;
        a[ri1 + i + 1] = ajj;
        let acc0 = aii * ui + aij * ui1;
        let acc1 = ajj * ui1;
        let pn1 = aij * ui;
        for (let j = i + 2; j < n; j++) {
          const pj = p[j]!;
          const vj = a[rk + j]!;
          const uj = a[rn + j]!;
          const x = a[ri + j]! - (vi * pj + wi * vj);
          const y = a[ri1 + j]! - (vi1 * pj + wi1 * vj);
          a[ri + j] = x;
          a[ri1 + j] = y;
          acc0 += x * uj;
          acc1 += y * uj;
          pn[j] += x * ui + y * ui1;
        }
        pn[i] += acc0;
        pn[i + 1] += acc1 + pn1;
      }
      for (; i < n; i++) {
        const ri = i * n;
        const vi = a[rk + i]!;
        const wi = p[i]!;
        const ui = a[rn + i]!;
        const aii = a[ri + i]! - 2 * vi * wi;
        a[ri + i] = aii;
        let acc = aii * ui;
        for (let j = i + 1; j < n; j++) {
          const aij = a[ri + j]! - (vi * p[j]! + wi * a[rk + j]!);
          a[ri + j] = aij;
          acc += aij * a[rn + j]!;
          pn[j] += aij * ui;
        }
        pn[i] += acc;
      }
    } else if (t !== 0) {
      for (let i = s + 1; i < n; i++) {
        const ri = i * n;
        const vi = a[rk + i]!;
        const wi = p[i]!;
        for (let j = i; j < n; j++) a[ri + j] -= vi * p[j]! + wi * a[rk + j]!;
      }
    } else if (tn !== 0) {
      for (let i = s + 1; i < n; i++) {
        const ri = i * n;
        const ui = a[rn + i]!;
        let acc = a[ri + i]! * ui;
        for (let j = i + 1; j < n; j++) {
          const aij = a[ri + j]!;
          acc += aij * a[rn + j]!;
          pn[j] += aij * ui;
        }
        pn[i] += acc;
      }
    }
    if (tn !== 0) for (let j = s + 1; j < n; j++) p[j] = pn[j]!;
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + n - 2]!;
    e[n - 2] = a[(n - 2) * n + n - 1]!;
    tau[n - 2] = 0;
  }
  d[n - 1] = a[n * n - 1]!;
  e[n - 1] = 0;
}

function hypot(a: number, b: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  const m = x > y ? x : y;
  if (m === 0) return 0;
  const r = (x > y ? y : x) / m;
  return m * Math.sqrt(1 + r * r);
}

/**
 * Implicit QL on the tridiagonal (d, e) (EISPACK tql2 / JAMA). When z (n x n, rows are vectors)
 * is given, the rotations are applied to its rows. Eigenvalues come back in d (unsorted).
 */
function tql(d: Float64Array, e: Float64Array, n: number, z: Float64Array | null): void {
  const eps = 2 ** -52;
  const log = z ? new RotationLog(z, n) : null;
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error(`symEig: QL did not converge for eigenvalue ${l} of ${n} after 100 iterations`);
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = 1;
        let c3 = 1;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          if (log) log.push(i, c, s);
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  log?.flush();
}

/**
 * Givens rotations of QL, applied to the rows of z in batches. Every column of z evolves
 * independently, so a batch of rotations is replayed on one narrow column panel at a time (the
 * panel stays in cache) instead of streaming the whole n x n matrix through memory per QL sweep.
 */
class RotationLog {
  private readonly idx: Int32Array;
  private readonly cs: Float64Array;
  private count = 0;
  private readonly panel: Float64Array;
  static readonly CAP = 1 << 16;
  static readonly W = 32;

  constructor(private readonly z: Float64Array, private readonly n: number) {
    this.idx = new Int32Array(RotationLog.CAP);
    this.cs = new Float64Array(2 * RotationLog.CAP);
    this.panel = new Float64Array(n * RotationLog.W);
  }

  /** rows i, i+1: z[i+1] <- s z[i] + c z[i+1]; z[i] <- c z[i] - s z[i+1]. */
  push(i: number, c: number, s: number): void {
    const m = this.count;
    this.idx[m] = i;
    this.cs[2 * m] = c;
    this.cs[2 * m + 1] = s;
    if (++this.count === RotationLog.CAP) this.flush();
  }

  flush(): void {
    const { z, n, idx, cs, panel, count } = this;
    if (count === 0) return;
    for (let k0 = 0; k0 < n; k0 += RotationLog.W) {
      const w = Math.min(RotationLog.W, n - k0);
      for (let r = 0; r < n; r++) for (let q = 0; q < w; q++) panel[r * w + q] = z[r * n + k0 + q]!;
      for (let m = 0; m < count; m++) {
        const ri = idx[m]! * w;
        const ri1 = ri + w;
        const c = cs[2 * m]!;
        const s = cs[2 * m + 1]!;
        if (m + 1 < count && idx[m + 1] === idx[m]! - 1) {
          // the next rotation (i-1, i) of the same QL sweep: both in one pass over rows i-1..i+1
          const rp = ri - w;
          const c1 = cs[2 * m + 2]!;
          const s1 = cs[2 * m + 3]!;
          for (let q = 0; q < w; q++) {
            const h = panel[ri1 + q]!;
            const x = panel[ri + q]!;
            const y = panel[rp + q]!;
            const nb = c * x - s * h;
            panel[ri1 + q] = s * x + c * h;
            panel[ri + q] = s1 * y + c1 * nb;
            panel[rp + q] = c1 * y - s1 * nb;
          }
          m++;
          continue;
        }
        for (let q = 0; q < w; q++) {
          const h = panel[ri1 + q]!;
          const x = panel[ri + q]!;
          panel[ri1 + q] = s * x + c * h;
          panel[ri + q] = c * x - s * h;
        }
      }
      for (let r = 0; r < n; r++) for (let q = 0; q < w; q++) z[r * n + k0 + q] = panel[r * w + q]!;
    }
    this.count = 0;
  }
}

/**
 * Eigen-decomposition of a real symmetric n x n matrix (row-major; only the upper triangle is
 * read; the input is not modified). Eigenvalues ascending; with `vectors: true` also the
 * orthonormal eigenvectors as rows. Cost ~ (2/3) n^3 multiply-adds for the values, plus ~3 n^3
 * for the vectors.
 */
export function symEig(matrix: ArrayLike<number>, n: number, opts: { vectors?: boolean } = {}): SymEig {
  checkSquare('symEig', matrix, n);
  const a = Float64Array.from(matrix as ArrayLike<number>);
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new Error(`symEig: matrix has a non-finite entry ${a[i]} at (${Math.floor(i / n)}, ${i % n})`);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const tau = new Float64Array(n);
  tridiagonalize(a, n, d, e, tau);
  let z: Float64Array | null = null;
  if (opts.vectors) {
    z = new Float64Array(n * n);
    for (let i = 0; i < n; i++) z[i * n + i] = 1;
  }
  tql(d, e, n, z);
  if (z) applyReflectors(a, tau, n, z);
  // sort ascending (vectors follow)
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i]! - d[j]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  let vectors: Float64Array | null = null;
  if (z) {
    vectors = new Float64Array(n * n);
    order.forEach((src, dst) => vectors!.set(z!.subarray(src * n, src * n + n), dst * n));
  }
  return { values, vectors };
}

/**
 * Eigenvectors of A = Q T Q^T are Q z for the eigenvectors z of T. With vectors as rows,
 * row <- row H_{n-3} ... H_0, where H_k = I - tau_k v_k v_k^T. Four rows at a time share every
 * load of v (and give the dot products four independent accumulators); the four rows stay in
 * cache while all the reflectors stream past once.
 */
function applyReflectors(a: Float64Array, tau: Float64Array, n: number, z: Float64Array): void {
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const q0 = r * n;
    const q1 = q0 + n;
    const q2 = q1 + n;
    const q3 = q2 + n;
    for (let k = n - 3; k >= 0; k--) {
      const t = tau[k]!;
      if (t === 0) continue;
      const rk = k * n;
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      for (let j = k + 1; j < n; j++) {
        const v = a[rk + j]!;
        d0 += z[q0 + j]! * v;
        d1 += z[q1 + j]! * v;
        d2 += z[q2 + j]! * v;
        d3 += z[q3 + j]! * v;
      }
      d0 *= t;
      d1 *= t;
      d2 *= t;
      d3 *= t;
      for (let j = k + 1; j < n; j++) {
        const v = a[rk + j]!;
        z[q0 + j] -= d0 * v;
        z[q1 + j] -= d1 * v;
        z[q2 + j] -= d2 * v;
        z[q3 + j] -= d3 * v;
      }
    }
  }
  for (; r < n; r++) {
    const q = r * n;
    for (let k = n - 3; k >= 0; k--) {
      const t = tau[k]!;
      if (t === 0) continue;
      const rk = k * n;
      let dot = 0;
      for (let j = k + 1; j < n; j++) dot += z[q + j]! * a[rk + j]!;
      const f = t * dot;
      for (let j = k + 1; j < n; j++) z[q + j] -= f * a[rk + j]!;
    }
  }
}

/**
 * out[i*ldo + j] = x_i . y_j for rows x_i = x[i*D .. i*D+D) (i < nx) and y_j likewise (j < ny);
 * with `upper`, only j >= i is computed (for symmetric results); `xTrapezoidal` says x_i is zero
 * before column i (a transposed Cholesky factor), so those terms are skipped. 2 x 4 register blocking: eight
 * independent accumulators, six loads per eight multiply-adds.
 */
export function rowDots(x: Float64Array, nx: number, y: Float64Array, ny: number, D: number, out: Float64Array, upper = false, xTrapezoidal = false): void {
  const ldo = ny;
  for (let i = 0; i < nx; i += 2) {
    const two = i + 1 < nx;
    const x0 = i * D;
    const x1 = two ? x0 + D : x0;
    const k0 = xTrapezoidal ? Math.min(i, D) : 0;
    let j = upper ? i : 0;
    for (; j + 4 <= ny; j += 4) {
      const y0 = j * D;
      const y1 = y0 + D;
      const y2 = y1 + D;
      const y3 = y2 + D;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let k = k0; k < D; k++) {
        const u = x[x0 + k]!;
        const w = x[x1 + k]!;
        const v0 = y[y0 + k]!;
        const v1 = y[y1 + k]!;
        const v2 = y[y2 + k]!;
        const v3 = y[y3 + k]!;
        a0 += u * v0;
        a1 += u * v1;
        a2 += u * v2;
        a3 += u * v3;
        b0 += w * v0;
        b1 += w * v1;
        b2 += w * v2;
        b3 += w * v3;
      }
      const o0 = i * ldo + j;
      out[o0] = a0;
      out[o0 + 1] = a1;
      out[o0 + 2] = a2;
      out[o0 + 3] = a3;
      if (two) {
        const o1 = o0 + ldo;
        out[o1] = b0;
        out[o1 + 1] = b1;
        out[o1 + 2] = b2;
        out[o1 + 3] = b3;
      }
    }
    for (; j < ny; j++) {
      const y0 = j * D;
      let a0 = 0;
      let b0 = 0;
      for (let k = k0; k < D; k++) {
        const v = y[y0 + k]!;
        a0 += x[x0 + k]! * v;
        b0 += x[x1 + k]! * v;
      }
      out[i * ldo + j] = a0;
      if (two) out[(i + 1) * ldo + j] = b0;
    }
  }
}

/** Eigenvalues only (ascending) of a symmetric matrix; ~ (2/3) n^3 multiply-adds. */
export function symEigvals(matrix: ArrayLike<number>, n: number): Float64Array {
  return symEig(matrix, n, { vectors: false }).values;
}

/** Result of pivotedCholesky: P^T A P ~= L L^T with L = lt^T (n x rank), P the permutation. */
export interface PivotedCholesky {
  /** Row j is column j of L (rank x n, row-major), in the pivoted order. */
  lt: Float64Array;
  /** perm[i] = the original index at pivoted position i. */
  perm: Int32Array;
  rank: number;
}

/**
 * Cholesky factorization with complete (diagonal) pivoting of a symmetric positive semi-definite
 * matrix (LAPACK dpstf2): at each step the largest remaining diagonal is eliminated, and the
 * factorization stops when it falls to `tol` (default n * 2^-52 * max diag, LAPACK's default),
 * which gives the numerical rank. Left-looking, one row of L^T at a time (~ n^3 / 6 multiply-adds
 * at full rank). Only the upper triangle of `matrix` is read.
 */
export function pivotedCholesky(matrix: ArrayLike<number>, n: number, tol?: number): PivotedCholesky {
  checkSquare('pivotedCholesky', matrix, n);
  const A = matrix;
  const upper = (i: number, j: number) => (i <= j ? A[i * n + j]! : A[j * n + i]!);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const diag = new Float64Array(n);
  let dmax = 0;
  for (let i = 0; i < n; i++) {
    diag[i] = A[i * n + i]!;
    if (!Number.isFinite(diag[i]!)) throw new Error(`pivotedCholesky: non-finite diagonal entry ${diag[i]} at ${i}`);
    dmax = Math.max(dmax, diag[i]!);
  }
  const stop = tol ?? n * 2 ** -52 * dmax;
  const lt = new Float64Array(n * n);
  let rank = 0;
  for (let j = 0; j < n; j++) {
    let p = j;
    for (let i = j + 1; i < n; i++) if (diag[i]! > diag[p]!) p = i;
    const djj = diag[p]!;
    if (!(djj > stop)) break;
    if (p !== j) {
      [perm[j], perm[p]] = [perm[p]!, perm[j]!];
      [diag[j], diag[p]] = [diag[p]!, diag[j]!];
      for (let k = 0; k < j; k++) {
        const rk = k * n;
        const t = lt[rk + j]!;
        lt[rk + j] = lt[rk + p]!;
        lt[rk + p] = t;
      }
    }
    const rj = j * n;
    const pj = perm[j]!;
    for (let i = j + 1; i < n; i++) lt[rj + i] = upper(pj, perm[i]!);
    let k = 0;
    for (; k + 4 <= j; k += 4) {
      const r0 = k * n;
      const r1 = r0 + n;
      const r2 = r1 + n;
      const r3 = r2 + n;
      const f0 = lt[r0 + j]!;
      const f1 = lt[r1 + j]!;
      const f2 = lt[r2 + j]!;
      const f3 = lt[r3 + j]!;
      for (let i = j + 1; i < n; i++) lt[rj + i] -= f0 * lt[r0 + i]! + f1 * lt[r1 + i]! + f2 * lt[r2 + i]! + f3 * lt[r3 + i]!;
    }
    for (; k < j; k++) {
      const rk = k * n;
      const f = lt[rk + j]!;
      for (let i = j + 1; i < n; i++) lt[rj + i] -= f * lt[rk + i]!;
    }
    const ljj = Math.sqrt(djj);
    lt[rj + j] = ljj;
    const inv = 1 / ljj;
    for (let i = j + 1; i < n; i++) {
      const v = lt[rj + i]! * inv;
      lt[rj + i] = v;
      diag[i] -= v * v;
    }
    rank = j + 1;
  }
  return { lt: lt.slice(0, rank * n), perm, rank };
}
