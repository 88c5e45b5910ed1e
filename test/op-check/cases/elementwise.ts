/**
 * Cases for the elementwise ops, generated from the op tables (engine/ops/unary.ts, binary.ts):
 * each entry's domain is where its tests sample.
 * Tolerances: f32 kernels round ~1e-7 relative per op; transcendental builtins on GPUs are allowed
 * a few ulp and erf uses a 1.2e-7 approximation, so 2e-5 relative + 2e-6 absolute covers each op
 * with margin. Gradients chain 2-5 such ops: the same bound holds.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const EW = { atol: 2e-6, rtol: 2e-5 };
const WHY = 'f32 rounding of a few ops, GPU transcendentals within a few ulp; FD in float64 with eps 1e-6';

export const elementwiseCases: OpCase[] = [
  ...Object.entries(E.UNARY).map(([name, def]): OpCase => ({
    covers: [name],
    inputs: [{ shape: [3, 5], lo: def.domain[0], hi: def.domain[1] }],
    fn: (x) => E.unary(name as E.UnaryName, x),
    tol: { forward: EW, why: WHY },
    grad: def.grad !== null,
    gradOfGrad: def.grad !== null,
  })),
  // The fused derivatives (g * f'(x) in one kernel) and their own gradients (f'' for x, f' for g).
  ...Object.entries(E.UNARY)
    .filter(([, def]) => def.derivative)
    .map(([name, def]): OpCase => ({
      covers: [`${name}_backward`],
      inputs: [
        { shape: [3, 5], lo: def.domain[0], hi: def.domain[1] },
        { shape: [3, 5], lo: -2, hi: 2 },
      ],
      fn: (x, g) => E.unaryBackward(name as E.UnaryName, x, g),
      tol: { forward: EW, why: WHY },
      gradOfGrad: true,
    })),
  ...Object.entries(E.BINARY).map(([name, def]): OpCase => ({
    covers: [name],
    // Broadcast [3, 4] with [4]: the gradient of b is unbroadcast by a sum.
    inputs: [
      { shape: [3, 4], lo: def.domain[0], hi: def.domain[1] },
      { shape: [4], lo: def.domain[0], hi: def.domain[1] },
    ],
    fn: (a, b) => E.binary(name as E.BinaryName, a, b),
    tol: { forward: EW, why: WHY },
    grad: def.grad !== null,
    gradOfGrad: def.grad !== null && name !== 'maximum' && name !== 'minimum',
  })),
  {
    covers: ['pow_scalar'],
    inputs: [{ shape: [2, 5], lo: 0.1, hi: 3 }],
    fn: (x) => E.pow(x, 2.5),
    tol: { forward: EW, why: WHY },
    gradOfGrad: true,
  },
  {
    covers: ['where'],
    inputs: [{ shape: [2, 3], data: [1, 0, 0, 1, 1, 0], noGrad: true }, { shape: [2, 3] }, { shape: [3] }],
    fn: (c, a, b) => E.where(c, a, b),
    tol: { forward: { atol: 0, rtol: 0 }, grad: EW, why: 'a selection: exact forward' },
    gradOfGrad: true,
  },
];
