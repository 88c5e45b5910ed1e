/**
 * Cases for the fused row norms (engine/ops/norm.ts). Tolerances: a row's mean and variance are
 * sums over L elements in f32 (tree reductions), ~L * 6e-8 relative error in the statistics, and
 * the normalized values scale errors by rstd: 3e-5 with margin at these sizes.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const NORM = { atol: 3e-5, rtol: 3e-5 };
const WHY = 'f32 row statistics (sums over the row) scaled by 1/std';

export const normCases: OpCase[] = [
  {
    name: 'layer_norm (affine)',
    covers: ['row_norm'],
    inputs: [{ shape: [3, 6] }, { shape: [6], lo: 0.5, hi: 1.5 }, { shape: [6] }],
    fn: (x, w, b) => E.layerNorm(x, 6, { weight: w, bias: b }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'group_norm',
    covers: ['row_norm'],
    inputs: [{ shape: [2, 4, 3] }, { shape: [4], lo: 0.5, hi: 1.5 }, { shape: [4] }],
    fn: (x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'rms_norm',
    covers: ['row_norm'],
    inputs: [{ shape: [3, 5] }, { shape: [5], lo: 0.5, hi: 1.5 }],
    fn: (x, w) => E.rmsNorm(x, { weight: w }),
    tol: { forward: NORM, grad: { atol: 1e-4, rtol: 1e-4 }, why: WHY },
    gradOfGrad: true,
  },
];
