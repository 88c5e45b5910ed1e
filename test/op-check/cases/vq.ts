/**
 * Cases for nearest_codes (engine/ops/vq.ts): indices (i32) and squared distances of the k
 * nearest codebook rows. Tolerances follow test/vq.test.ts:
 *  - integer-valued data: every distance is a small integer, exact in f32 in any order, so indices
 *    and distances match exactly, ties (smaller index first) included;
 *  - real data in [-1, 1): the f32 sum of d squares errs by <= d 2^-24 relative: 1e-6 absolute +
 *    2e-5 relative, as the test. The indices share the tolerance, which makes them exact (a wrong
 *    index differs by >= 1); these inputs have no near-ties.
 *  - gradient of the distances, 2 (z - e) w summed over the k slots (for z) or over the rows that
 *    picked a code (for the codebook): each term |z - e| < 2 times 2|w| < 4.2 has 3 roundings
 *    (the difference, the product, the weight's own), and sums of <= 6 terms (this codebook is
 *    picked at most 6 times) add 5 more: 8 * 2^-24 * 6 * 8.4 = 2.4e-5 absolute.
 *  - finite differences in float64 (the distances are quadratic: exact up to rounding): 1e-6
 *    absolute + relative, as the test; the gradient of the gradient likewise.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const U = 2 ** -24;
const ints = (shape: number[]) => ({ shape, lo: -4, hi: 5, int: true, dtype: 'f32' as const, noGrad: true });
const reals = (shape: number[]) => ({ shape, lo: -1, hi: 1 });
const FD = { atol: 1e-6, rtol: 1e-6 };

export const vqCases: OpCase[] = [
  {
    name: 'nearest codes, integer data (exact ties), k = 1 and k = 4',
    covers: ['nearest_codes'],
    inputs: [ints([6, 3]), ints([9, 3])],
    fn: (z, cb) => {
      const one = E.nearestCodes(z, cb);
      const four = E.nearestCodes(z, cb, 4);
      return [one.indices, one.distances, four.indices, four.distances];
    },
    tol: { forward: { atol: 0, rtol: 0 }, why: 'integer distances, exact in f32 in any order' },
    grad: false,
  },
  ...[1, 3].map(
    (k): OpCase => ({
      name: `nearest codes, real data with leading dims, k = ${k}`,
      covers: ['nearest_codes'],
      inputs: [reals([2, 3, 4]), reals([7, 4])],
      fn: (z, cb) => {
        const r = E.nearestCodes(z, cb, k);
        return [r.indices, r.distances];
      },
      tol: { forward: { atol: 1e-6, rtol: 2e-5 }, grad: { atol: 8 * U * 6 * 8.4, rtol: 0 }, fd: FD, why: 'f32 sums of d = 4 squares (<= d 2^-24 relative); gradient: sums of <= 6 terms' },
      gradOfGrad: true,
    }),
  ),
];
