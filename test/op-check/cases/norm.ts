/**
 * Cases for the fused row norms (engine/ops/norm.ts). Tolerances: a row's mean and variance are
 * sums over L elements in f32 (tree reductions), ~L * 6e-8 relative error in the statistics, and
 * the normalized values scale errors by rstd: 3e-5 with margin at these sizes.
 *
 * Gradients run the fused row_norm_backward (the backward is not recorded); gradients of gradients
 * run the composite rule. The gradient cases below feed the fused backward directly (x's rows of
 * 1029 > 4 * 256 elements, one row; a group norm whose channels span several positions) and compare
 * it with the float64 one at the gradient tolerance of the cases above.
 *
 * `act: 'silu'` cases: silu(norm(x)) in the same kernels; |silu'| <= 1.1 and |silu''| <= 0.5 keep
 * the norm's errors within the same tolerances (test/norm.test.ts derives them). The last one
 * compares the fused forward and fused backward with the composition silu(norm(x)) on the device.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const NORM = { atol: 3e-5, rtol: 3e-5 };
const WHY = 'f32 row statistics (sums over the row) scaled by 1/std';

export const normCases: OpCase[] = [
  {
    name: 'layer_norm (affine)',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [3, 6] }, { shape: [6], lo: 0.5, hi: 1.5 }, { shape: [6] }],
    fn: (x, w, b) => E.layerNorm(x, 6, { weight: w, bias: b }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'group_norm',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [2, 4, 3] }, { shape: [4], lo: 0.5, hi: 1.5 }, { shape: [4] }],
    fn: (x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'rms_norm',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [3, 5] }, { shape: [5], lo: 0.5, hi: 1.5 }],
    fn: (x, w) => E.rmsNorm(x, { weight: w }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'row_norm_backward: layer_norm over one row of 1029 (affine)',
    covers: ['row_norm_backward'],
    inputs: [{ shape: [1, 1029] }, { shape: [1029], lo: 0.5, hi: 1.5 }, { shape: [1029] }, { shape: [1, 1029] }],
    fn: (x, w, b, gy) => normGrads((x, w, b) => E.layerNorm(x, 1029, { weight: w, bias: b }), [x!, w!, b!], gy!),
    tol: { forward: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    grad: false,
  },
  {
    name: 'row_norm_backward: group_norm [3, 6, 5] in 2 groups (weight), rms_norm [2, 7]',
    covers: ['row_norm_backward'],
    inputs: [{ shape: [3, 6, 5] }, { shape: [6], lo: 0.5, hi: 1.5 }, { shape: [3, 6, 5] }, { shape: [2, 7] }, { shape: [2, 7] }],
    fn: (x, w, gy, r, gr) => [...normGrads((x, w) => E.groupNorm(x, 2, { weight: w }), [x!, w!], gy!), ...normGrads((r) => E.rmsNorm(r), [r!], gr!)],
    tol: { forward: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    grad: false,
  },
  {
    name: 'group_norm + silu (act)',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [2, 4, 3] }, { shape: [4], lo: 0.5, hi: 1.5 }, { shape: [4] }],
    fn: (x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b, act: 'silu' }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'layer_norm + silu (act, affine)',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [3, 6] }, { shape: [6], lo: 0.5, hi: 1.5 }, { shape: [6] }],
    fn: (x, w, b) => E.layerNorm(x, 6, { weight: w, bias: b, act: 'silu' }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'row_norm_backward with silu: group_norm [3, 6, 5] in 2 groups (affine) and its bias-only form',
    covers: ['row_norm_backward'],
    inputs: [{ shape: [3, 6, 5] }, { shape: [6], lo: 0.5, hi: 1.5 }, { shape: [6] }, { shape: [3, 6, 5] }],
    fn: (x, w, b, gy) => [
      ...normGrads((x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b, act: 'silu' }), [x!, w!, b!], gy!),
      ...normGrads((x, b) => E.groupNorm(x, 3, { bias: b, act: 'silu' }), [x!, b!], gy!),
    ],
    tol: { forward: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    grad: false,
  },
  {
    name: 'group_norm act silu vs silu(group_norm) on the device (forward and fused backward)',
    covers: ['row_norm', 'row_norm_backward'],
    inputs: [{ shape: [2, 8, 4, 4] }, { shape: [8], lo: 0.5, hi: 1.5 }, { shape: [8] }, { shape: [2, 8, 4, 4] }],
    fn: (x, w, b, gy) => {
      const fused = [E.groupNorm(x!, 4, { weight: w, bias: b, act: 'silu' }), ...normGrads((x, w, b) => E.groupNorm(x, 4, { weight: w, bias: b, act: 'silu' }), [x!, w!, b!], gy!)];
      const composed = [E.silu(E.groupNorm(x!, 4, { weight: w, bias: b })), ...normGrads((x, w, b) => E.silu(E.groupNorm(x, 4, { weight: w, bias: b })), [x!, w!, b!], gy!)];
      return fused.map((f, i) => E.sub(f, composed[i]!));
    },
    // Both run the same f32 arithmetic (n recomputed as the forward computed it) and sum in the same
    // order; a compiler contracting a*b+c into an fma differently moves each term by ~1 ulp: dw/db
    // sum 32 terms under 4 in magnitude, 32 * 4 * 1.2e-7 ~ 1.5e-5.
    tol: { forward: { atol: 2e-5, rtol: 0 }, why: 'the fused path against the composition, both on the device' },
    grad: false,
  },
];

/** Gradients of sum(gy * norm(inputs)) with respect to the inputs (fresh leaves). */
function normGrads(norm: (...xs: E.Tensor[]) => E.Tensor, inputs: E.Tensor[], gy: E.Tensor): E.Tensor[] {
  const leaves = inputs.map((t) => E.detach(t).requireGrad());
  return E.gradients(E.sum(E.mul(norm(...leaves), gy)), leaves);
}
