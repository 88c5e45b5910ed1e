/**
 * Cases for the copying layout ops (engine/ops/movement.ts): copies are exact; their gradients
 * route the objective's weights (rounded to f32 on the device: 6e-8 relative) back unchanged.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const COPY = { atol: 0, rtol: 0 };
const ROUTED = { atol: 0, rtol: 1e-7 };
/** An input used twice gets two rounded weights added: up to 2 x 6e-8 plus the f32 add's rounding. */
const ROUTED_TWICE = { atol: 0, rtol: 2e-7 };
const WHY = 'a copy; gradient: the f32-rounded weights routed back';

export const movementCases: OpCase[] = [
  {
    covers: ['contiguous'],
    inputs: [{ shape: [3, 4] }],
    fn: (x) => E.contiguous(E.transpose(x)),
    tol: { forward: COPY, grad: ROUTED, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'cast f32 -> i32 (truncation) and i32 -> f32',
    covers: ['cast'],
    inputs: [{ shape: [2, 5], lo: -4, hi: 4 }, { shape: [3], int: true, lo: -9, hi: 9 }],
    fn: (x, i) => [E.cast(x, 'i32'), E.cast(i, 'f32')],
    tol: { forward: COPY, why: 'truncation of f32 values and exact small integers' },
    grad: false,
  },
  {
    name: 'concat and stack',
    covers: ['concat'],
    inputs: [{ shape: [2, 3] }, { shape: [2, 2] }, { shape: [2, 3] }],
    fn: (a, b, c) => [E.concat([a, b, c], 1), E.stack([a, c], 0)],
    tol: { forward: COPY, grad: ROUTED_TWICE, why: 'a copy; gradient: two f32-rounded weights per input (concat and stack both use it), added' },
    gradOfGrad: true,
  },
  {
    name: 'slice with a step (its gradient is slice_backward)',
    covers: ['slice_backward'],
    inputs: [{ shape: [4, 5] }],
    fn: (x) => E.slice(x, [[1, 3], [0, 5, 2]]),
    tol: { forward: COPY, grad: ROUTED, why: WHY },
    gradOfGrad: true,
  },
];
