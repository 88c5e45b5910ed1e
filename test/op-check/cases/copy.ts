/**
 * Cases for the generic `elementwise` op (engine/ops/elementwise.ts), which runs the expressions
 * no table declares: the copy of a view that cannot be reshaped in place, fills (`full`), and
 * `assign` (a tensor or a scalar written into a strided view). Copies and fills are exact; the
 * gradient of reshape routes the objective's weights (rounded to f32 on the device: 2^-24
 * relative) back unchanged. `assign` is not recorded on the tape (it is for optimizer updates and
 * buffers), so its case checks values only.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const COPY = { atol: 0, rtol: 0 };
const ROUTED = { atol: 0, rtol: 1e-7 };

export const copyCases: OpCase[] = [
  {
    name: 'elementwise: copy of a transposed view (reshape), fills of f32 and i32',
    covers: ['elementwise'],
    inputs: [{ shape: [3, 4] }],
    fn: (x) => [E.reshape(E.transpose(x), [2, 6]), E.full([2, 3], -1.25, { backend: x.backend }), E.full([4], 7, { backend: x.backend, dtype: 'i32' })],
    tol: { forward: COPY, grad: ROUTED, why: 'copies and fills; gradient: the f32-rounded weights routed back' },
    gradOfGrad: true,
  },
  {
    name: 'elementwise: assign a tensor and a scalar into strided views',
    covers: ['elementwise'],
    inputs: [{ shape: [3, 3] }, { shape: [2, 3], int: true, lo: -50, hi: 50 }],
    fn: (x, i) => {
      const b = x.backend;
      const t = E.zeros([4, 6], { backend: b });
      E.assign(E.slice(t, [[1, 4], [0, 6, 2]]), x); // rows 1..3, every other column
      E.assign(E.slice(t, [[0, 1], null]), 0.5); // row 0
      const ti = E.full([3, 2], -1, { backend: b, dtype: 'i32' });
      E.assign(E.transpose(ti), i); // through a transposed view
      return [t, ti];
    },
    tol: { forward: COPY, why: 'copies into views (not recorded for gradients)' },
    grad: false,
  },
];
