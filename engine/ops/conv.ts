/**
 * The public convolution API: conv2d, convTranspose2d, unfold and fold. Layers below it:
 *   conv-geometry.ts  the block grid (sizes, padding, stride, dilation) and its checks
 *   conv-plan.ts      planConv: implicit GEMM or columns, chunks, baking, kernel shapes (device tuning)
 *   conv-unfold.ts    the unfold/fold ops (im2col / col2im, each the other's gradient) and batch chunks
 *   conv-implicit.ts  the implicit-GEMM ops (forward, input gradient, weight gradient: each other's gradients)
 * On the columns route
 *   conv2d           = (W [g, Cout/g, K]) @ (unfold(x) [N, g, K, L]) + bias   (one matmulRowBias)
 *   convTranspose2d  = fold(W^T @ x), the adjoint of conv2d, with PyTorch's output size,
 * so their gradients come from unfold, fold and matmul. conv2d with groups = 1 takes the implicit
 * route where the plan says so (by default on software adapters, where it was measured faster).
 */
import { composite } from '../composite.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { checkSameBackend } from '../op.js';
import { add } from './binary.js';
import { blockCount, checkImage, isPointwise, pair, windowGeom, type ConvGeom, type Size2, type WindowOptions } from './conv-geometry.js';
import { implicitForward } from './conv-implicit.js';
import { planConv, type ConvPlan } from './conv-plan.js';
import { foldGeom, inBatchChunks, unfoldGeom } from './conv-unfold.js';
import { matmul, matmulRowBias } from './matmul.js';
import { reshape, transpose } from './movement.js';

export { checkImage, pair, windowGeom, type ConvGeom, type Size2, type WindowOptions } from './conv-geometry.js';
export { implicitConvByDefault, maxColumnElements, planConv, type ConvCall, type ConvPlan, type ConvProblem, type ImplicitKernelPlan, type ImplicitPlanOption } from './conv-plan.js';
export { foldGeom, inBatchChunks, unfoldGeom } from './conv-unfold.js';
export { convForward, convInputGrad, convWeightGrad, convImplicitCounters } from './conv-implicit.js';

/**
 * Extracts sliding blocks (F.unfold): x [N, C, H, W] -> [N, C*kh*kw, L], L = Hb*Wb blocks,
 * rows ordered (c, ki, kj). Zero padding.
 */
export function unfold(x: Tensor, kernelSize: Size2, opts: WindowOptions = {}): Tensor {
  const [, , H, W] = checkImage('unfold', x);
  return unfoldGeom(x, windowGeom('unfold', H, W, kernelSize, opts, x.shape));
}

/**
 * Sums sliding blocks back into an image (F.fold), the adjoint of unfold:
 * cols [N, C*kh*kw, L] -> [N, C, outputSize[0], outputSize[1]].
 */
export function fold(cols: Tensor, outputSize: Size2, kernelSize: Size2, opts: WindowOptions = {}): Tensor {
  cols.storage;
  if (cols.rank !== 3) throw new Error(`fold: expected rank-3 columns [N, C*kh*kw, L], got ${fmtShape(cols.shape)}`);
  const [H, W] = pair(outputSize, 'output size', 'fold', 1);
  const g = windowGeom('fold', H, W, kernelSize, opts, [H, W]);
  const kk = g.kh * g.kw;
  if (cols.shape[1]! % kk !== 0) throw new Error(`fold: columns ${fmtShape(cols.shape)}: dim 1 (${cols.shape[1]}) is not divisible by the kernel size ${g.kh}*${g.kw}`);
  if (cols.shape[2] !== g.Hb * g.Wb) {
    throw new Error(`fold: columns ${fmtShape(cols.shape)} have ${cols.shape[2]} blocks, but output size ${H}x${W} with kernel ${g.kh}x${g.kw} gives ${g.Hb}*${g.Wb} = ${g.Hb * g.Wb}`);
  }
  return foldGeom(cols, cols.shape[1]! / kk, g);
}

export interface Conv2dOptions {
  stride?: Size2;
  /** Zero padding per side, or 'valid' (0) / 'same' (stride 1 only; extra padding goes after, as in PyTorch). */
  padding?: Size2 | 'same' | 'valid';
  dilation?: Size2;
  groups?: number;
  /**
   * Added to the output: conv2d(x, w, b) + residual, for a residual connection (same shape as
   * the output). The same values as adding afterwards; where the plan's last kernel can take it
   * (Winograd, the CPU reference) the add costs no dispatch of its own.
   */
  residual?: Tensor | null;
}

function checkGroups(op: string, groups: number): number {
  if (!Number.isInteger(groups) || groups < 1) throw new RangeError(`${op}: groups must be a positive integer, got ${groups}`);
  return groups;
}

function checkBias(op: string, bias: Tensor | null | undefined, Cout: number, x: Tensor): Tensor | null {
  if (!bias) return null;
  checkSameBackend(op, [x, bias]);
  if (bias.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 bias, got dtype ${bias.dtype}`);
  if (bias.rank !== 1 || bias.shape[0] !== Cout) throw new Error(`${op}: bias must have shape [${Cout}] (output channels), got ${fmtShape(bias.shape)}`);
  return bias;
}

/**
 * 2-D convolution (cross-correlation, as torch.nn.functional.conv2d):
 * x [N, Cin, H, W], w [Cout, Cin/groups, kh, kw], bias [Cout] -> [N, Cout, Ho, Wo] with
 * Ho = floor((H + 2p - d(kh-1) - 1)/s) + 1.
 */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  const [, Cin, H, W] = checkImage(op, x);
  checkImage(op, w, 'weight');
  checkSameBackend(op, [x, w]);
  const [Cout, Cg, kh, kw] = w.shape as [number, number, number, number];
  const groups = checkGroups(op, opts.groups ?? 1);
  if (Cin % groups !== 0) throw new Error(`${op}: input channels ${Cin} (input ${fmtShape(x.shape)}) are not divisible by groups=${groups}`);
  if (Cout % groups !== 0) throw new Error(`${op}: output channels ${Cout} (weight ${fmtShape(w.shape)}) are not divisible by groups=${groups}`);
  if (Cg !== Cin / groups) throw new Error(`${op}: weight ${fmtShape(w.shape)} expects ${Cg * groups} input channels (${Cg} per group x ${groups} groups), but input ${fmtShape(x.shape)} has ${Cin}`);
  if (kh < 1 || kw < 1) throw new Error(`${op}: weight ${fmtShape(w.shape)} has an empty kernel`);
  const b = checkBias(op, bias, Cout, x);
  const [sh, sw] = pair(opts.stride ?? 1, 'stride', op, 1);
  const [dh, dw] = pair(opts.dilation ?? 1, 'dilation', op, 1);
  let padH: [number, number];
  let padW: [number, number];
  if (opts.padding === 'same') {
    if (sh !== 1 || sw !== 1) throw new Error(`${op}: padding='same' needs stride 1, got stride ${sh}x${sw}`);
    const th = dh * (kh - 1);
    const tw = dw * (kw - 1);
    padH = [Math.floor(th / 2), th - Math.floor(th / 2)];
    padW = [Math.floor(tw / 2), tw - Math.floor(tw / 2)];
  } else {
    const [ph, pw] = pair(opts.padding === 'valid' ? 0 : (opts.padding ?? 0), 'padding', op, 0);
    padH = [ph, ph];
    padW = [pw, pw];
  }
  const Hb = blockCount(op, H, kh, sh, padH[0], padH[1], dh, x.shape, 'height');
  const Wb = blockCount(op, W, kw, sw, padW[0], padW[1], dw, x.shape, 'width');
  const g: ConvGeom = { kh, kw, sh, sw, ph: padH[0], pw: padW[0], dh, dw, H, W, Hb, Wb };
  const r = opts.residual ?? null;
  if (r) {
    checkSameBackend(op, [x, r]);
    const shape = [x.shape[0]!, Cout, Hb, Wb];
    if (r.dtype !== 'f32' || r.shape.join() !== shape.join()) throw new Error(`${op}: residual must be an f32 tensor of the output's shape ${fmtShape(shape)}, got ${r.describe()}`);
  }
  const plan = planConv(op, { x, C: Cin, Cout, groups, g });
  if (plan.route === 'implicit') return implicitForward(x, w, b, g, plan, r);
  const y = composite([x, w, b], () => inBatchChunks(x, plan.chunk, (xc) => columnsConv2d(xc, w, b, g, groups, plan)));
  return r ? add(y, r) : y;
}

/**
 * conv2d on the columns route: (W [g, Cout/g, K]) @ (unfold(x) [N, g, K, L]) + bias, the bias
 * added per output channel by the matmul kernel (matmulRowBias: one dispatch). Its gradient sums
 * W's over the images inside one GEMM (matmulSumTo) rather than per-image products then a sum.
 */
function columnsConv2d(x: Tensor, w: Tensor, b: Tensor | null, g: ConvGeom, groups: number, plan: ConvPlan): Tensor {
  const [N, Cin] = x.shape as [number, number];
  const [Cout, Cg] = w.shape as [number, number];
  const K = Cg * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  // A 1x1 stride-1 unpadded kernel needs no unfold: the image is already its column matrix.
  const cols = isPointwise(g) ? reshape(x, [N, Cin, g.H * g.W]) : unfoldGeom(x, g, 0, 'unfold', plan.bakeColumns);
  const w3 = reshape(w, [groups, Cout / groups, K]);
  const c4 = reshape(cols, [N, groups, K, L]);
  const y = b ? matmulRowBias(w3, c4, reshape(b, [groups, Cout / groups])) : matmul(w3, c4); // [N, groups, Cout/groups, L]
  return reshape(y, [N, Cout, g.Hb, g.Wb]);
}

export interface ConvTranspose2dOptions {
  stride?: Size2;
  padding?: Size2;
  /** Extra rows/columns added after the output (must be smaller than stride or dilation). */
  outputPadding?: Size2;
  dilation?: Size2;
  groups?: number;
}

/**
 * Transposed convolution (torch.nn.functional.conv_transpose2d), the adjoint of conv2d:
 * x [N, Cin, H, W], w [Cin, Cout/groups, kh, kw], bias [Cout] -> [N, Cout, Ho, Wo] with
 * Ho = (H - 1)*s - 2p + d(kh - 1) + output_padding + 1. Computed as fold(W^T @ x).
 */
export function convTranspose2d(x: Tensor, w: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  const [, Cin, H, W] = checkImage(op, x);
  checkImage(op, w, 'weight');
  checkSameBackend(op, [x, w]);
  const [Cw, Cog, kh, kw] = w.shape as [number, number, number, number];
  const groups = checkGroups(op, opts.groups ?? 1);
  if (Cin % groups !== 0) throw new Error(`${op}: input channels ${Cin} (input ${fmtShape(x.shape)}) are not divisible by groups=${groups}`);
  if (Cw !== Cin) throw new Error(`${op}: weight ${fmtShape(w.shape)} expects ${Cw} input channels (dim 0), but input ${fmtShape(x.shape)} has ${Cin}`);
  if (kh < 1 || kw < 1) throw new Error(`${op}: weight ${fmtShape(w.shape)} has an empty kernel`);
  const Cout = Cog * groups;
  const b = checkBias(op, bias, Cout, x);
  const [sh, sw] = pair(opts.stride ?? 1, 'stride', op, 1);
  const [ph, pw] = pair(opts.padding ?? 0, 'padding', op, 0);
  const [oph, opw] = pair(opts.outputPadding ?? 0, 'output padding', op, 0);
  const [dh, dw] = pair(opts.dilation ?? 1, 'dilation', op, 1);
  if ((oph >= sh && oph >= dh) || (opw >= sw && opw >= dw)) {
    throw new Error(`${op}: output padding ${oph}x${opw} must be smaller than either stride ${sh}x${sw} or dilation ${dh}x${dw}`);
  }
  const Ho = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1;
  const Wo = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1;
  if (Ho < 1 || Wo < 1) {
    throw new Error(`${op}: output size ${Ho}x${Wo} is not positive (input ${fmtShape(x.shape)}, weight ${fmtShape(w.shape)}, stride ${sh}x${sw}, padding ${ph}x${pw}, dilation ${dh}x${dw})`);
  }
  // The blocks are exactly the input pixels: Hb = H (<= the count the output size allows, which
  // exceeds H only when output padding >= stride; those blocks would be all zero).
  const g: ConvGeom = { kh, kw, sh, sw, ph, pw, dh, dw, H: Ho, W: Wo, Hb: H, Wb: W };
  const K = Cog * kh * kw;
  const plan = planConv(op, { x, C: Cout, Cout: Cin, groups, g });
  return composite([x, w, b], () => {
    const wt = transpose(reshape(w, [groups, Cin / groups, K]), 1, 2); // [groups, K, Cin/groups]
    return inBatchChunks(x, plan.chunk, (xc) => {
      const n = xc.shape[0]!;
      const cols = matmul(wt, reshape(xc, [n, groups, Cin / groups, H * W])); // [n, groups, K, H*W]
      const y = foldGeom(reshape(cols, [n, Cout * kh * kw, H * W]), Cout, g, 'fold', plan.bakeColumns);
      return b ? add(y, reshape(b, [1, Cout, 1, 1])) : y;
    });
  });
}
