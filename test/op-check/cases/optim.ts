/**
 * Cases for the in-place optimizer ops (engine/ops/optim.ts): adam_update, sgd_update,
 * ema_update, total_norm and clip_by_norm. They are never recorded for autodiff, so the cases
 * check values only: each builds its tensors fresh from the case's inputs, runs one update through
 * the public function, and returns the updated tensors.
 *
 * Tolerances. One update is a handful of f32 roundings of quantities no larger than the biggest
 * of |p|, |m|, |v| and lr |update|; test/optim.test.ts checks it at 1e-6 (1 + max|x|) absolute +
 * 1e-6 relative. Inputs are in [-2, 2) ([0, 2) for second moments), so every output reaches
 * max|x| >= 1 and 2e-6 absolute + 1e-6 relative is at least as strict.
 * Norms: the f32 sum of n <= 17 squares (all positive) errs by <= n 2^-24 relative with the
 * squares' own roundings, half of that in the norm, and WGSL's sqrt is within ~3 ulp: <= 12 units
 * of 2^-24 = 7e-7; rtol 1.1e-6 (test/optim.test.ts allows 1e-5 for its longer sums). The infinity
 * norm is exact. Clipping multiplies by min(1, max / (norm + 1e-6)) from the device's norm: its
 * error, the add, a division (2.5 ulp in WGSL) and the product: <= 17 units = 1e-6; rtol 1.5e-6
 * (the test: 1e-5).
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const UPDATE = { atol: 2e-6, rtol: 1e-6 };
const WHY = 'one update: a handful of f32 roundings (test/optim.test.ts: 1e-6 (1 + max|x|) + 1e-6 relative)';
const param = (shape: number[]) => ({ shape, noGrad: true });
const moment2 = (shape: number[]) => ({ shape, lo: 0, hi: 2, noGrad: true });
const adam = { lr: 0.03, beta1: 0.85, beta2: 0.99, eps: 1e-7, weightDecay: 0.07 };

export const optimCases: OpCase[] = [
  {
    name: 'adam (L2 weight decay), step 3',
    covers: ['adam_update'],
    inputs: [param([3, 4]), param([3, 4]), param([3, 4]), moment2([3, 4])],
    fn: (p, g, m, v) => {
      E.adamUpdate(p, g, m, v, { ...adam, decoupled: false, step: 3 });
      return [p, m, v];
    },
    tol: { forward: UPDATE, why: WHY },
    grad: false,
  },
  {
    name: 'adamw with AMSGrad, step 1, gradient a transposed view',
    covers: ['adam_update'],
    inputs: [param([3, 4]), param([4, 3]), param([3, 4]), moment2([3, 4]), moment2([3, 4])],
    fn: (p, g, m, v, vmax) => {
      E.adamUpdate(p, E.transpose(g), m, v, { ...adam, decoupled: true, step: 1 }, vmax);
      return [p, m, v, vmax];
    },
    tol: { forward: UPDATE, why: WHY },
    grad: false,
  },
  {
    name: 'sgd: plain with weight decay; momentum with dampening; Nesterov first step',
    covers: ['sgd_update'],
    inputs: [param([7]), param([7]), param([5]), param([5]), param([5]), param([4]), param([4]), param([4])],
    fn: (p0, g0, p1, g1, b1, p2, g2, b2) => {
      E.sgdUpdate(p0, g0, null, { lr: 0.07, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.03, first: false });
      E.sgdUpdate(p1, g1, b1, { lr: 0.07, momentum: 0.9, dampening: 0.2, nesterov: false, weightDecay: 0, first: false });
      E.sgdUpdate(p2, g2, b2, { lr: 0.07, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.03, first: true });
      return [p0, p1, b1, p2, b2];
    },
    tol: { forward: UPDATE, why: WHY },
    grad: false,
  },
  {
    name: 'ema of a strided source',
    covers: ['ema_update'],
    inputs: [param([2, 5]), param([5, 2])],
    fn: (shadow, x) => {
      E.emaUpdate(shadow, E.transpose(x), 0.93);
      return shadow;
    },
    tol: { forward: UPDATE, why: WHY },
    grad: false,
  },
  {
    name: 'total norm (2 and infinity) of two tensors, and of a transposed view',
    covers: ['total_norm'],
    inputs: [param([3, 4]), param([5])],
    fn: (a, b) => [E.totalNorm([a, b]), E.totalNorm([a, b], Infinity), E.totalNorm([E.transpose(a)])],
    tol: { forward: { atol: 0, rtol: 1.1e-6 }, why: 'f32 sum of <= 17 squares and a square root (<= 12 units of 2^-24); the maximum is exact' },
    grad: false,
  },
  {
    name: 'clip by norm: clipped (max 2) and not clipped (max 100)',
    covers: ['clip_by_norm', 'total_norm'],
    inputs: [param([3, 4]), param([5]), param([6])],
    fn: (a, b, c) => {
      const n = E.totalNorm([a, b]);
      E.clipByNorm([a, b], n, 2);
      const nc = E.totalNorm([c]);
      E.clipByNorm([c], nc, 100);
      return [a, b, c, n];
    },
    tol: { forward: { atol: 0, rtol: 1.5e-6 }, why: 'the device norm (<= 17 squares), then one coefficient and a product' },
    grad: false,
  },
];
