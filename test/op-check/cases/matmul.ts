/**
 * Cases for matmul and linear (engine/ops/matmul.ts). Tolerances follow test/matmul.test.ts: an
 * f32 dot product of n terms errs by at most 4 sqrt(n + 1) 2^-24 sum|terms| (the factor 4 covers
 * any summation order and fused multiply-adds). Here the sums are bounded at these shapes with
 * |inputs| < 2 (|a b| < 4) and the objective's weights |w| < 2.1 (rounded to f32: 2^-24 relative,
 * inside the same bound), giving one absolute bound per case and output kind:
 *   forward:  n = K (plus one term for linear's bias add), sum|terms| <= 4 n (+ 2);
 *   gradient: dA = g B^T and dB = A^T g sum the other operand's rows against the weights (n the
 *             longest such sum, batch dims summed back included), sum|terms| <= 4.2 n.
 * The float64 gradient is bilinear in the operands: central differences are exact up to rounding
 * (~1e-16 / eps): 1e-6 absolute + relative, as test/matmul.test.ts.
 */
import * as E from '../../../engine/index.js';
import type { OpCase, Tol } from '../kit.js';

const U = 2 ** -24;
/** The dot-product bound of test/matmul.test.ts for n terms whose magnitudes sum to at most s. */
const dot = (n: number, s: number): Tol => ({ atol: 4 * Math.sqrt(n + 1) * U * s, rtol: 0 });
const FD = { atol: 1e-6, rtol: 1e-6 };

export const matmulCases: OpCase[] = [
  {
    name: 'matmul: batch [2] with a broadcast B, A a transposed view',
    // dB (B broadcast over the batch) is one GEMM summed over it: matmul_sum.
    covers: ['matmul', 'matmul_sum'],
    // A [2, 3, 5] is the transpose of a stored [2, 5, 3]; B [5, 4] is broadcast over the batch.
    inputs: [{ shape: [2, 5, 3] }, { shape: [5, 4] }],
    fn: (a, b) => E.matmul(E.transpose(a), b),
    // dA sums 4 terms, dB sums 3 rows x 2 batches = 6 terms.
    tol: { forward: dot(5, 20), grad: dot(6, 4.2 * 6), fd: FD, why: 'f32 dot products: 4 sqrt(n+1) 2^-24 sum|terms| (K = 5; gradient sums of <= 6 terms)' },
    gradOfGrad: true,
  },
  {
    name: 'matmul: 1-D operands (vector @ batch of matrices, vector @ vector)',
    covers: ['matmul'],
    inputs: [{ shape: [5] }, { shape: [2, 5, 3] }, { shape: [5] }],
    fn: (u, b, v) => [E.matmul(u, b), E.matmul(u, v)],
    // du sums 2 batches x 3 columns (from u @ b) and one more term (u @ v): 7 terms.
    tol: { forward: dot(5, 20), grad: dot(7, 4.2 * 7), fd: FD, why: 'f32 dot products: 4 sqrt(n+1) 2^-24 sum|terms| (K = 5; gradient sums of <= 7 terms)' },
    gradOfGrad: true,
  },
  {
    name: 'matmulRowBias: a bias per row broadcast over a leading batch dim, B a transposed view',
    covers: ['matmul_row_bias', 'matmul_sum'],
    // A [2, 3, 5] @ B [2, 2, 5, 4] (the transpose of a stored [2, 2, 4, 5]) + bias [2, 3] per row.
    inputs: [{ shape: [2, 3, 5] }, { shape: [2, 2, 4, 5] }, { shape: [2, 3] }],
    fn: (a, b, c) => E.matmulRowBias(a, E.transpose(b), c),
    // Forward: 5 products and the bias add. dA sums 2 batches x 4 columns = 8 terms; dB 3 rows;
    // dbias 2 batches x 4 columns = 8 terms.
    tol: { forward: dot(6, 22), grad: dot(8, 4.2 * 8), fd: FD, why: 'f32 dot products: 4 sqrt(n+1) 2^-24 sum|terms| (K = 5 plus the bias; gradient sums of <= 8 terms)' },
    gradOfGrad: true,
  },
  {
    name: 'linear with bias, leading dims',
    covers: ['linear', 'elementwise'],
    inputs: [{ shape: [2, 3, 5] }, { shape: [4, 5] }, { shape: [4] }],
    fn: (x, w, b) => E.linear(x, w, b),
    // Forward: 5 products and the bias add. gx sums 4 terms; gw and gb sum the 6 rows.
    tol: { forward: dot(6, 22), grad: dot(6, 4.2 * 6), fd: FD, why: 'f32 dot products: 4 sqrt(n+1) 2^-24 sum|terms| (K = 5 plus the bias; gradient sums of <= 6 terms)' },
    gradOfGrad: true,
  },
  {
    name: 'linear without bias',
    covers: ['linear'],
    inputs: [{ shape: [3, 5] }, { shape: [2, 5] }],
    fn: (x, w) => E.linear(x, w),
    tol: { forward: dot(5, 20), grad: dot(3, 4.2 * 3), fd: FD, why: 'f32 dot products: 4 sqrt(n+1) 2^-24 sum|terms| (K = 5; gradient sums of <= 3 terms)' },
    gradOfGrad: true,
  },
];
