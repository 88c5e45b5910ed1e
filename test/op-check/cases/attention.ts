/**
 * Cases for the fused attention ops (engine/ops/attention.ts) and the rotary embedding
 * (engine/ops/rotary.ts).
 *
 * Attention: scaled_dot_product_attention's gradient is scaled_dot_product_attention_backward,
 * which is not differentiable again, so these cases check the backward through the forward's
 * gradient and skip grad of grad. Tolerances are test/attention.test.ts's, derived there: inputs
 * in [-1.5, 1.5], a score's f32 error ~ sqrt(D) 2^-24 |q||k| scale enters the probabilities as a
 * relative error of the same size and the output (a convex combination of v rows) gets at most
 * ~2 |v| times that: 1e-5 absolute + 1e-4 relative; gradients chain the recomputed probabilities
 * with dp - delta and short sums: 3e-5 absolute + 1e-4 relative (the objective's weights, up to
 * 2.1, play the output gradient); finite differences in float64: 1e-6 absolute + 1e-5 relative.
 *
 * Rotary: each output is x c + y s with (c, s) from the same f32 table on both sides (|c| + |s|
 * <= sqrt 2): two products and a sum, 3 roundings of at most 2 sqrt 2 (|x|, |y| < 2). The
 * gradient adds the inverse rotation of the weights w0 and the rotation of w1 (|w| < 2.1, rounded
 * to f32): per rotation 3 roundings and the weights' own of at most 2.1 sqrt 2, then the sum of the
 * two (< 4.2 sqrt 2): 2 * 4 * 2.97 + 5.94 = 30 units of 2^-24. Linear in x: the second derivative
 * is zero, and central differences are exact to rounding.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

const U = 2 ** -24;
const FWD = { atol: 1e-5, rtol: 1e-4 };
const GRAD = { atol: 3e-5, rtol: 1e-4 };
const WHY = 'f32 scores and online softmax; convex combinations of v rows (derivation in test/attention.test.ts)';
const qkv = (shape: number[]) => ({ shape, lo: -1.5, hi: 1.5 });
const BACKWARD = ['scaled_dot_product_attention', 'scaled_dot_product_attention_backward'];

/** cos / sin of the angles pos * 10000^(-2i/D) (rounded to f32), positions 0..L-1, D/2 pairs. */
function angles(L: number, half: number, f: (a: number) => number): number[] {
  const out: number[] = [];
  for (let p = 0; p < L; p++) for (let i = 0; i < half; i++) out.push(Math.fround(f(p * 10000 ** (-i / half))));
  return out;
}

export const attentionCases: OpCase[] = [
  {
    name: 'attention: causal, [1, 2, 4, 3] heads',
    covers: BACKWARD,
    inputs: [qkv([1, 2, 4, 3]), qkv([1, 2, 4, 3]), qkv([1, 2, 4, 3])],
    fn: (q, k, v) => E.scaledDotProductAttention(q, k, v, { causal: true }),
    tol: { forward: FWD, grad: GRAD, why: WHY },
    grad: true,
    gradOfGrad: false,
  },
  {
    name: 'attention: KV cache (Lq 2 < Lk 5), causal + additive mask with -inf, scale 0.8, Dv != D',
    covers: BACKWARD,
    inputs: [
      qkv([2, 2, 3]),
      qkv([2, 5, 3]),
      qkv([2, 5, 2]),
      // Broadcast over the batch; row 0 blocks keys 1 and 3.
      { shape: [2, 5], data: [0.3, -Infinity, -0.5, -Infinity, 0.1, -0.2, 0.4, 0, 0.25, -1], noGrad: true },
    ],
    fn: (q, k, v, m) => E.scaledDotProductAttention(q, k, v, { causal: true, mask: m, scale: 0.8 }),
    tol: { forward: FWD, grad: GRAD, why: WHY },
    grad: true,
    gradOfGrad: false,
  },
  {
    name: 'attention: boolean mask with a fully masked row (zero output and gradients)',
    covers: BACKWARD,
    inputs: [
      qkv([1, 3, 3, 2]),
      qkv([1, 3, 4, 2]),
      qkv([1, 3, 4, 2]),
      // [3, 4] broadcast over heads: query 1 sees no key.
      { shape: [3, 4], data: [1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0], dtype: 'i32', noGrad: true },
    ],
    fn: (q, k, v, m) => E.scaledDotProductAttention(q, k, v, { mask: m }),
    tol: { forward: FWD, grad: GRAD, why: WHY },
    grad: true,
    gradOfGrad: false,
  },
  {
    name: 'rotary embedding of a transposed view, and its inverse',
    covers: ['rotary_embedding'],
    // x is stored [3, 2, 4] and rotated as [2, 3, 4]: 2 heads, 3 positions, 2 pairs.
    inputs: [{ shape: [3, 2, 4] }, { shape: [3, 2], data: angles(3, 2, Math.cos), noGrad: true }, { shape: [3, 2], data: angles(3, 2, Math.sin), noGrad: true }],
    fn: (x, cos, sin) => {
      const table = E.rotaryTable(cos, sin);
      const xt = E.transpose(x, 0, 1);
      return [E.rotaryEmbedding(xt, table), E.rotaryEmbedding(xt, table, { inverse: true })];
    },
    tol: { forward: { atol: 3 * 2 * Math.SQRT2 * U, rtol: 0 }, grad: { atol: 30 * U, rtol: 0 }, why: 'two products and a sum per element, same f32 table; gradient: the inverse rotation' },
    gradOfGrad: true,
  },
];
