/**
 * Cases for the convolution ops (engine/ops/conv*.ts): the implicit-GEMM trio (conv_forward,
 * conv_input_grad, conv_weight_grad: each the others' gradient, so grad of grad runs through all
 * three), and the columns route (unfold / fold: each the other's gradient, with matmul) that
 * grouped convolutions, convTranspose2d and the device's strided input gradient take.
 *
 * Routes. Both backends are tuned for the trio cases (`conv.implicit`, and for the strided case
 * `conv.implicitStridedDx`, set in `setup`): the device runs the implicit kernels, and the float64
 * reference runs the same three ops (its kernels: one float64 loop nest), so its gradient and grad
 * of grad exercise the trio's gradient rules. Without the tuning the CPU reference takes the
 * columns route (unfold + matmul), and a software adapter keeps fold for strided input gradients.
 *
 * Tolerances (device vs float64). Inputs are in [-1, 1) as in test/conv.test.ts and the
 * objective's weights are in (0.1, 2.1) (rounded to f32: 2^-24 relative). Every output of the
 * trio and of matmul is an f32 dot product of n terms, within 4 sqrt(n + 1) 2^-24 sum|terms| (the
 * bound of test/matmul.test.ts); per case:
 *   forward:  n = C kh kw (+1 for the bias), |terms| <= 1;
 *   dx:       n = Cout kh kw, |terms| <= 2.1;  dw: n = N Hb Wb, |terms| <= 2.1; db: n = N Hb Wb.
 * That bound exceeds test/conv.test.ts's 5e-5 absolute + 1e-4 relative for the gradients (sums
 * of 50 terms up to 2.1), so the gradients keep that tolerance: the expected error sqrt(n) 2^-24
 * sum|terms| is <= 7e-6 at these sizes, an order below it, while an indexing error moves an
 * output by a whole term (~0.1 or more).
 * unfold copies: exact. fold sums <= kh kw values: (kh kw - 1) 2^-24 sum|values|, and so does
 * unfold's gradient (a fold of the weights). fold's gradient is unfold of the weights: routed.
 * Finite differences: every op here is linear in each argument, so central differences in float64
 * are exact up to rounding: 1e-6 absolute + 1e-5 relative (the default, as the conv tests).
 */
import * as E from '../../../engine/index.js';
import type { OpCase, Tol } from '../kit.js';

const U = 2 ** -24;
/** The dot-product bound for n terms whose magnitudes sum to at most s. */
const dot = (n: number, s: number): Tol => ({ atol: 4 * Math.sqrt(n + 1) * U * s, rtol: 0 });
/** test/conv.test.ts's gradient tolerance (conv vs PyTorch on the device). */
const CONV_GRAD = { atol: 5e-5, rtol: 1e-4 };
const ROUTED = { atol: 0, rtol: 1e-7 };
const img = (shape: number[]) => ({ shape, lo: -1, hi: 1 });

const implicitTuning = (strided: boolean) => (b: E.Backend) => b.tune({ conv: strided ? { implicit: true, implicitStridedDx: true } : { implicit: true } });

export const convCases: OpCase[] = [
  {
    name: 'conv2d implicit GEMM: 3x3, padding 1, bias',
    covers: ['conv_forward', 'conv_input_grad', 'conv_weight_grad'],
    inputs: [img([2, 2, 5, 5]), img([3, 2, 3, 3]), img([3])],
    fn: (x, w, b) => E.conv2d(x, w, b, { padding: 1 }),
    setup: implicitTuning(false),
    // Forward: 18 taps + bias. dx: 27 terms, dw: 50 terms (2 images x 25 pixels).
    tol: { forward: dot(19, 19), grad: CONV_GRAD, why: 'f32 sums of <= 19 (forward) / 50 (gradient) products; implicit kernels on both sides' },
    gradOfGrad: true,
  },
  {
    name: 'conv2d Winograd F(2x2, 3x3) (forced), padding 1, bias: dx, dw and db as one op',
    covers: ['conv_forward', 'conv_backward', 'conv_input_grad', 'conv_weight_grad'],
    inputs: [img([2, 3, 6, 6]), img([4, 3, 3, 3]), img([4])],
    fn: (x, w, b) => E.conv2d(x, w, b, { padding: 1 }),
    setup: (b) => b.tune({ conv: { implicit: true, winograd: true, winogradTile: 2 } }),
    // As the case below: the same sums, the two gradients' transforms and outputs in one dispatch each.
    tol: { forward: CONV_GRAD, grad: CONV_GRAD, why: 'f32 sums of <= 72 terms through transforms with coefficients <= 1; test/conv.test.ts GPU tolerance' },
    gradOfGrad: true,
  },
  {
    name: 'conv2d Winograd F(2x2, 3x3) (forced), padding 1, bias, x not differentiated: weight and bias gradients as one op',
    covers: ['conv_forward', 'conv_input_grad', 'conv_weight_bias_grad'],
    inputs: [{ ...img([2, 3, 6, 6]), noGrad: true }, img([4, 3, 3, 3]), img([4])],
    fn: (x, w, b) => E.conv2d(x, w, b, { padding: 1 }),
    setup: (b) => b.tune({ conv: { implicit: true, winograd: true, winogradTile: 2 } }),
    // The transforms' coefficients are 0, +-1/2, +-1: a few more roundings per output than the
    // direct sums of 28 (forward) / 72 (dw: 2 images x 36 pixels) terms; db sums 72 terms.
    tol: { forward: CONV_GRAD, grad: CONV_GRAD, why: 'f32 sums of <= 72 terms through transforms with coefficients <= 1; test/conv.test.ts GPU tolerance' },
    gradOfGrad: true,
  },
  {
    name: 'conv2d implicit GEMM: 2x3 kernel, stride 2, padding [1, 0], dilation [1, 2]',
    covers: ['conv_forward', 'conv_input_grad', 'conv_weight_grad'],
    inputs: [img([2, 3, 6, 7]), img([2, 3, 2, 3])],
    fn: (x, w) => E.conv2d(x, w, null, { stride: 2, padding: [1, 0], dilation: [1, 2] }),
    setup: implicitTuning(true),
    // Forward: 18 taps. dx: <= 12 terms, dw: 2 images x 4 x 2 blocks = 16 terms.
    tol: { forward: dot(18, 18), grad: dot(16, 2.1 * 16), why: 'f32 sums of <= 18 products: 4 sqrt(n+1) 2^-24 sum|terms|; strided input gradient as one implicit kernel' },
    gradOfGrad: true,
  },
  {
    name: 'conv2d groups 2 (columns route: unfold + matmul), stride 2, padding 1, bias',
    covers: ['unfold', 'fold', 'matmul', 'matmul_row_bias', 'matmul_sum'],
    inputs: [img([2, 4, 5, 5]), img([4, 2, 3, 3]), img([4])],
    fn: (x, w, b) => E.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }),
    // Forward: 18 taps + bias. dx: a fold of <= 4 (kernel taps hitting a pixel at stride 2) sums
    // of 2 channels; dw: 2 images x 9 blocks = 18 terms.
    tol: { forward: dot(19, 19), grad: dot(18, 2.1 * 18), why: 'matmul of unfolded columns: f32 sums of <= 19 products; gradient through matmul and fold' },
    gradOfGrad: true,
  },
  {
    name: 'unfold: 2x3 kernel, stride [1, 2], padding 1, dilation [2, 1]',
    covers: ['unfold', 'fold'],
    inputs: [{ shape: [2, 2, 4, 5] }],
    fn: (x) => E.unfold(x, [2, 3], { stride: [1, 2], padding: 1, dilation: [2, 1] }),
    // The gradient folds <= 6 weights per pixel: 5 roundings of sums <= 12.6, plus the weights' own.
    tol: { forward: { atol: 0, rtol: 0 }, grad: { atol: (5 * 12.6 + 12.6) * U, rtol: 0 }, why: 'a copy; gradient: a fold of <= 6 f32-rounded weights' },
    gradOfGrad: true,
  },
  {
    name: 'fold of a transposed view: 2x2 kernel on 4x5, stride 1',
    covers: ['fold', 'unfold'],
    // Columns [2, 2*2*2, 12] given as a transposed [2, 12, 8].
    inputs: [{ shape: [2, 12, 8] }],
    fn: (c) => E.fold(E.transpose(c, 1, 2), [4, 5], 2),
    // Interior pixels sum 4 values |c| < 2: 3 roundings of sums <= 8.
    tol: { forward: { atol: 3 * 8 * U, rtol: 0 }, grad: ROUTED, why: 'f32 sums of <= 4 values; gradient: unfold of the f32-rounded weights' },
    gradOfGrad: true,
  },
  {
    name: 'convTranspose2d: stride [2, 1], padding 1, output padding [1, 0], groups 2, bias',
    covers: ['fold', 'matmul'],
    inputs: [img([2, 4, 3, 3]), img([4, 1, 3, 3]), img([2])],
    fn: (x, w, b) => E.convTranspose2d(x, w, b, { stride: [2, 1], padding: 1, outputPadding: [1, 0], groups: 2 }),
    // Each output sums <= 2 channels x 2 x 3 taps = 12 products + bias; dx: 9 taps x 1 channel,
    // dw: 2 images x <= 9 pixels = 18 terms.
    tol: { forward: dot(13, 13), grad: dot(18, 2.1 * 18), why: 'fold(W^T x): f32 sums of <= 13 products; gradient through unfold and matmul' },
    gradOfGrad: true,
  },
];
