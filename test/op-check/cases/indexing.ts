/**
 * Cases for the gathers and scatter-adds (engine/ops/indexing.ts). Gathers copy: exact forward.
 * Scatter-adds sum <= 3 f32 terms |v| < 2 into a base (scheduling-dependent order): <= 3 * 2^-24
 * * 8 = 1.4e-6. Each op's gradient is the other kind (a scatter-add of the f32-rounded weights, or
 * their gather): the same bounds, plus 6e-8 relative for the weights' rounding.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const COPY = { atol: 0, rtol: 0 };
const SUMS = { atol: 2e-6, rtol: 1e-7 };
const WHY_GATHER = 'a copy; gradient: f32 sums of <= 3 rounded weights';
const WHY_SCATTER = 'f32 sums of <= 3 terms in any order; gradient: a gather of rounded weights';
const idx = (shape: number[], data: number[]) => ({ shape, data, dtype: 'i32' as const, noGrad: true });

export const indexingCases: OpCase[] = [
  {
    covers: ['index_select'],
    inputs: [{ shape: [4, 3] }, idx([4], [2, 0, 2, 3])],
    fn: (x, i) => E.indexSelect(x, 0, i),
    tol: { forward: COPY, grad: SUMS, why: WHY_GATHER },
    gradOfGrad: true,
  },
  {
    name: 'embedding (indexSelect of rows)',
    covers: ['index_select'],
    inputs: [{ shape: [5, 3] }, idx([2, 3], [4, 0, 4, 1, 4, 2])],
    fn: (w, i) => E.embedding(w, i),
    tol: { forward: COPY, grad: SUMS, why: WHY_GATHER },
  },
  {
    covers: ['take_along_axis'],
    inputs: [{ shape: [3, 4] }, idx([3, 2], [3, 3, 0, 1, 2, 0])],
    fn: (x, i) => E.takeAlongAxis(x, i, 1),
    tol: { forward: COPY, grad: SUMS, why: WHY_GATHER },
    gradOfGrad: true,
  },
  {
    name: 'indexAdd into a base and into zeros',
    covers: ['index_add'],
    inputs: [{ shape: [4, 3] }, idx([3], [1, 3, 1]), { shape: [3, 3] }],
    fn: (t, i, s) => [E.indexAdd(t, 0, i, s), E.indexAdd([3, 4], 1, i, E.transpose(s))],
    tol: { forward: SUMS, grad: SUMS, why: WHY_SCATTER },
    gradOfGrad: true,
  },
  {
    name: 'scatterAdd into a base, from a larger source',
    covers: ['scatter_add'],
    inputs: [{ shape: [3, 4] }, idx([2, 3], [0, 2, 0, 1, 1, 2]), { shape: [3, 3] }],
    fn: (t, i, s) => E.scatterAdd(t, 0, i, s),
    tol: { forward: SUMS, grad: SUMS, why: WHY_SCATTER },
    gradOfGrad: true,
  },
];
