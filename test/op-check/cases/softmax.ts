/**
 * Cases for softmax / log_softmax (engine/ops/softmax.ts); the bounds are derived in
 * test/softmax.test.ts: y = exp(v - m) / s with |v - m| < 8 here, a few ulp of GPU exp and a
 * short f32 sum: 2e-5 relative (softmax), 1e-5 absolute + relative (log_softmax). The gradients
 * (y * (g - sum(g y)), g - exp(y) sum(g)) chain the same errors with one more short sum.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const SOFTMAX = { atol: 1e-7, rtol: 2e-5 };
const LOG = { atol: 1e-5, rtol: 1e-5 };
const WHY = 'f32 exp and a short sum per row (derivation in test/softmax.test.ts)';

export const softmaxCases: OpCase[] = [
  {
    covers: ['softmax'],
    inputs: [{ shape: [3, 5], lo: -4, hi: 4 }],
    fn: (x) => E.softmax(x, 1),
    tol: { forward: SOFTMAX, grad: { atol: 1e-6, rtol: 2e-5 }, why: WHY },
    gradOfGrad: true,
  },
  {
    name: 'log_softmax along a strided axis',
    covers: ['log_softmax'],
    inputs: [{ shape: [4, 3], lo: -4, hi: 4 }],
    fn: (x) => E.logSoftmax(E.transpose(x), 1),
    tol: { forward: LOG, grad: LOG, why: WHY },
    gradOfGrad: true,
  },
];
