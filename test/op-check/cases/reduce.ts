/**
 * Cases for the reductions (engine/ops/reduce.ts). max/min/argmax/argmin select an input element:
 * exact forward. A sum of n <= 15 terms with |x| < 2 in f32 errs by at most (n - 1) * 2^-24 *
 * sum|x| = 14 * 6e-8 * 30 = 2.5e-5. Gradients route the objective's weights w (rounded to f32 on
 * the device: 6e-8 relative) back to the inputs, divided by a count of ties (1 here): 1e-7 relative.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const SELECT = { atol: 0, rtol: 0 };
const ROUTED = { atol: 0, rtol: 1e-7 };
const WHY_SELECT = 'selects an input element; gradient: the f32-rounded weight routed to it';

export const reduceCases: OpCase[] = [
  {
    name: 'sum over axes 0 and 2, keepdim',
    covers: ['sum'],
    inputs: [{ shape: [3, 4, 5] }],
    fn: (x) => E.sum(x, [0, 2], true),
    tol: { forward: { atol: 3e-5, rtol: 0 }, grad: ROUTED, why: 'f32 sum of 15 terms |x| < 2: <= 14 * 2^-24 * 30; gradient: weights broadcast back' },
    gradOfGrad: true,
  },
  {
    name: 'sum over a permuted view',
    covers: ['sum'],
    inputs: [{ shape: [3, 4, 5] }],
    fn: (x) => E.sum(E.permute(x, [2, 0, 1]), 1),
    tol: { forward: { atol: 2e-5, rtol: 0 }, grad: ROUTED, why: 'f32 sum of 3 terms |x| < 2: <= 2 * 2^-24 * 6; gradient: weights broadcast back' },
  },
  {
    covers: ['max'],
    inputs: [{ shape: [4, 6] }],
    fn: (x) => E.max(x, 1),
    tol: { forward: SELECT, grad: ROUTED, why: WHY_SELECT },
    gradOfGrad: true,
  },
  {
    covers: ['min'],
    inputs: [{ shape: [4, 6] }],
    fn: (x) => E.min(x, 0, true),
    tol: { forward: SELECT, grad: ROUTED, why: WHY_SELECT },
    gradOfGrad: true,
  },
  {
    name: 'argmax along an axis and over all elements of a transposed view',
    covers: ['argmax'],
    inputs: [{ shape: [4, 6] }],
    fn: (x) => [E.argmax(x, 1), E.argmax(E.transpose(x))],
    tol: { forward: SELECT, why: 'an index' },
    grad: false,
  },
  {
    covers: ['argmin'],
    inputs: [{ shape: [4, 6] }],
    fn: (x) => [E.argmin(x, 0, true), E.argmin(x)],
    tol: { forward: SELECT, why: 'an index' },
    grad: false,
  },
];
