/**
 * Cases for the fused row norms (engine/ops/norm.ts). Tolerances: a row's mean and variance are
 * sums over L elements in f32 (tree reductions), ~L * 6e-8 relative error in the statistics, and
 * the normalized values scale errors by rstd: 3e-5 with margin at these sizes.
 *
 * Gradients run the fused row_norm_backward (the backward is not recorded); gradients of gradients
 * run the composite rule. The gradient cases below feed the fused backward directly (x's rows of
 * 1029 > 4 * 256 elements, one row; a group norm whose channels span several positions) and compare
 * it with the float64 one at the gradient tolerance of the cases above.
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
];

/** Gradients of sum(gy * norm(inputs)) with respect to the inputs (fresh leaves). */
function normGrads(norm: (...xs: E.Tensor[]) => E.Tensor, inputs: E.Tensor[], gy: E.Tensor): E.Tensor[] {
  const leaves = inputs.map((t) => E.detach(t).requireGrad());
  return E.gradients(E.sum(E.mul(norm(...leaves), gy)), leaves);
}
