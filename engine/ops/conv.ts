/**
 * Convolutions from two primitive kernels plus matmul:
 *   unfold (im2col)  x [N, C, H, W] -> cols [N, C*kh*kw, Hb*Wb]
 *   fold   (col2im)  cols -> [N, C, H, W], the adjoint of unfold (overlapping taps are summed).
 * The gradient of unfold is fold and the gradient of fold is unfold, so every convolution
 * gradient (and grad-of-grad) comes from these two kernels and matmul's own gradient.
 *   conv2d           = (W [g, Cout/g, K]) @ (unfold(x) [N, g, K, L]) + bias
 *   convTranspose2d  = fold(W^T @ x), the adjoint of conv2d, with PyTorch's output size.
 * conv2d with groups = 1 can instead go through the implicit-GEMM ops of conv-implicit.ts
 * (forward, input gradient, weight gradient: one kernel each on the GPU, no column tensor; the
 * CPU computes them with the composition above): by default on software adapters, where they
 * were measured faster (`convKernelOptions.implicit` forces either way).
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData } from '../cpu/strided.js';
import { record } from '../grad-mode.js';
import { fmtShape, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { CONV_WG, foldShader, unfoldShader } from '../../shaders/conv.js';
import { checkSameBackend } from './elementwise.js';
import { add } from './binary.js';
import { concat, reshape, slice, transpose } from './movement.js';
import { matmul } from './matmul.js';
import { convForward, implicitConvByDefault } from './conv-implicit.js';

export { convForward, convInputGrad, convWeightGrad, convImplicitCounters, implicitConvByDefault } from './conv-implicit.js';

/** A size given once for both spatial dims, or as [height, width]. */
export type Size2 = number | readonly [number, number];

/**
 * Geometry of the block grid shared by unfold and fold. ph/pw is the padding before the input
 * (top/left); the padding after only determines Hb/Wb, so asymmetric padding ('same' with an even
 * kernel) and the extra rows of output_padding need nothing else.
 */
export interface ConvGeom {
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  /** Spatial size of the image (unfold input / fold output). */
  H: number;
  W: number;
  /** Number of blocks along each dim: cols has Hb*Wb columns. */
  Hb: number;
  Wb: number;
}

/** Normalizes a Size2 argument to two integers >= min, naming the op and the argument. */
export function pair(v: Size2, name: string, op: string, min: number): [number, number] {
  if (!Array.isArray(v) && typeof v !== 'number') throw new TypeError(`${op}: ${name} must be a number or [h, w], got ${String(v)}`);
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if ((Array.isArray(v) && v.length !== 2) || p.some((d) => !Number.isInteger(d) || d < min)) {
    throw new RangeError(`${op}: ${name} must be ${min === 0 ? 'non-negative' : 'positive'} integer(s) (a number or [h, w]), got ${JSON.stringify(v)}`);
  }
  return p;
}

export function checkImage(op: string, x: Tensor, what = 'input'): [number, number, number, number] {
  x.storage; // clear error if disposed
  if (x.rank !== 4) throw new Error(`${op}: expected a rank-4 ${what} [N, C, H, W], got ${x.describe()} of shape ${fmtShape(x.shape)}`);
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 ${what}, got dtype ${x.dtype} (${x.describe()})`);
  return x.shape as unknown as [number, number, number, number];
}

/** Blocks along one dim, or a clear error when the dilated kernel does not fit in the padded input. */
function blockCount(op: string, size: number, k: number, s: number, padBefore: number, padAfter: number, d: number, inShape: readonly number[], dim: string): number {
  const span = d * (k - 1) + 1;
  const padded = size + padBefore + padAfter;
  if (span > padded) {
    throw new Error(
      `${op}: kernel ${dim} ${k} (dilation ${d}, spanning ${span}) is larger than the padded input ${dim} ${padded} ` +
        `(input ${fmtShape(inShape)}, padding ${padBefore}${padAfter === padBefore ? '' : `+${padAfter}`})`,
    );
  }
  return Math.floor((padded - span) / s) + 1;
}

export interface WindowOptions {
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
}

/** Geometry of a window op over an image of spatial size [H, W] (symmetric padding). */
export function windowGeom(op: string, H: number, W: number, kernel: Size2, opts: WindowOptions, inShape: readonly number[], stride?: Size2): ConvGeom {
  const [kh, kw] = pair(kernel, 'kernel size', op, 1);
  const [sh, sw] = pair(stride ?? opts.stride ?? 1, 'stride', op, 1);
  const [ph, pw] = pair(opts.padding ?? 0, 'padding', op, 0);
  const [dh, dw] = pair(opts.dilation ?? 1, 'dilation', op, 1);
  const Hb = blockCount(op, H, kh, sh, ph, ph, dh, inShape, 'height');
  const Wb = blockCount(op, W, kw, sw, pw, pw, dw, inShape, 'width');
  return { kh, kw, sh, sw, ph, pw, dh, dw, H, W, Hb, Wb };
}

function geomParams(p: ParamBuilder, total: number, C: number, g: ConvGeom): ParamBuilder {
  return p.u32(total, C, g.H, g.W, g.kh, g.kw, g.sh, g.sw).i32(g.ph, g.pw).u32(g.dh, g.dw, g.Hb, g.Wb);
}

/**
 * Software adapters (lavapipe) get the geometry baked into the unfold/fold WGSL (constant
 * divisors; see shaders/conv.ts); GPUs keep one pipeline for every geometry.
 */
export const convKernelOptions = {
  bakeGeometry: null as boolean | null,
  /**
   * groups = 1 convolutions through the implicit-GEMM ops of conv-implicit.ts (no column tensor).
   * null = by adapter (implicitConvByDefault: software adapters, where measured faster); true /
   * false force them / the unfold + matmul composition below.
   */
  implicit: null as boolean | null,
  /** The strided input gradient as one implicit kernel (true) or fold(w^T @ gy) (false); null = default. */
  implicitStridedDx: null as boolean | null,
  /**
   * Kernel and block shapes of the implicit ops (null = by adapter; for tests and tuning):
   * 'software' (register-blocked, lavapipe), 'gpu' (workgroup-memory tiles), 'gpu-rows' (the
   * register-blocked kernel with GPU sizes), or fixed sizes: {WG, TM, TN, splits} for the
   * register-blocked kernel, {BM, BN, BK, TM, TN, splits} for the tiled one (splits: how many
   * image ranges the weight gradient is split into).
   */
  implicitPlan: null as ImplicitPlanOption | null,
};

/** A family of implicit-GEMM kernels or fixed block shapes (see convKernelOptions.implicitPlan). */
export type ImplicitPlanOption =
  | 'software'
  | 'gpu'
  | 'gpu-rows'
  | { WG: number; TM: number; TN: number; splits: number }
  | { BM: number; BN: number; BK: number; TM: number; TN: number; splits: number };

function bakedGeom(gpu: WebGPUBackend, C: number, g: ConvGeom): { key: string; baked?: number[] } {
  if (!(convKernelOptions.bakeGeometry ?? gpu.softwareAdapter !== null)) return { key: '' };
  const baked = [C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Hb, g.Wb];
  return { key: `|${baked.join(',')}`, baked };
}

/** The largest finite f32: stands in for -Infinity as a GPU pad value (WGSL may assume no infinities). */
const F32_MAX = 3.4028234663852886e38;

/**
 * unfold with explicit geometry. Out-of-image taps read `padValue` (0 for convolutions,
 * -Infinity for max pooling); the gradient ignores them either way.
 */
export function unfoldGeom(x: Tensor, g: ConvGeom, padValue = 0, op = 'unfold'): Tensor {
  const [N, C, H, W] = checkImage(op, x);
  if (H !== g.H || W !== g.W) throw new Error(`${op}: input ${fmtShape(x.shape)} does not match the geometry's image size ${g.H}x${g.W}`);
  const R = C * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  const shape = [N, R, L];
  const total = N * R * L;
  const out = new Tensor(x.backend.alloc(total, 'f32'), shape, 'f32', op);
  if (total > 0) {
    const [xsN, xsC, xsH, xsW] = x.strides as [number, number, number, number];
    if (x.backend instanceof CpuBackend) {
      const src = cpuData(x);
      const o = (out.storage as CpuStorage).data;
      let i = 0;
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let ki = 0; ki < g.kh; ki++)
            for (let kj = 0; kj < g.kw; kj++)
              for (let oh = 0; oh < g.Hb; oh++) {
                const h = oh * g.sh - g.ph + ki * g.dh;
                const rowOk = h >= 0 && h < H;
                const rowOff = x.offset + n * xsN + c * xsC + h * xsH;
                for (let ow = 0; ow < g.Wb; ow++) {
                  const w = ow * g.sw - g.pw + kj * g.dw;
                  o[i++] = rowOk && w >= 0 && w < W ? src[rowOff + w * xsW]! : padValue;
                }
              }
    } else {
      const gpu = x.backend as WebGPUBackend;
      const pad = Math.max(-F32_MAX, Math.min(F32_MAX, padValue));
      const p = geomParams(new ParamBuilder(), total, C, g).u32(x.offset, xsN, xsC, xsH, xsW).f32(pad);
      const bg = bakedGeom(gpu, C, g);
      gpu.dispatch({
        key: `conv|unfold${bg.key}`,
        code: () => unfoldShader(bg.baked),
        buffers: [
          { storage: x.storage as GpuStorage, access: 'read' },
          { storage: out.storage as GpuStorage, access: 'read_write' },
        ],
        params: p.words,
        workgroups: Math.ceil(total / CONV_WG),
      });
    }
  }
  return record(out, op, [x], (gy) => [foldGeom(gy, C, g)]);
}

/** fold with explicit geometry: cols [N, C*kh*kw, Hb*Wb] -> [N, C, H, W], summing overlapping taps. */
export function foldGeom(cols: Tensor, C: number, g: ConvGeom, op = 'fold'): Tensor {
  checkSameBackend(op, [cols]);
  if (cols.dtype !== 'f32') throw new TypeError(`${op}: expected f32 columns, got dtype ${cols.dtype} (${cols.describe()})`);
  const R = C * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  if (cols.rank !== 3 || cols.shape[1] !== R || cols.shape[2] !== L) {
    throw new Error(`${op}: expected columns of shape [N, ${R}, ${L}] (C=${C}, kernel ${g.kh}x${g.kw}, ${g.Hb}x${g.Wb} blocks), got ${fmtShape(cols.shape)}`);
  }
  const N = cols.shape[0]!;
  const { H, W } = g;
  const shape = [N, C, H, W];
  const total = sizeOf(shape);
  const out = new Tensor(cols.backend.alloc(total, 'f32'), shape, 'f32', op);
  if (total > 0) {
    const [csN, csR, csL] = cols.strides as [number, number, number];
    if (cols.backend instanceof CpuBackend) {
      // Scatter-add (the GPU kernel gathers): an independent formulation for cross-checking.
      const src = cpuData(cols);
      const o = (out.storage as CpuStorage).data;
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let ki = 0; ki < g.kh; ki++)
            for (let kj = 0; kj < g.kw; kj++) {
              const row = (c * g.kh + ki) * g.kw + kj;
              for (let oh = 0; oh < g.Hb; oh++) {
                const h = oh * g.sh - g.ph + ki * g.dh;
                if (h < 0 || h >= H) continue;
                for (let ow = 0; ow < g.Wb; ow++) {
                  const w = ow * g.sw - g.pw + kj * g.dw;
                  if (w < 0 || w >= W) continue;
                  o[((n * C + c) * H + h) * W + w]! += src[cols.offset + n * csN + row * csR + (oh * g.Wb + ow) * csL]!;
                }
              }
            }
    } else {
      const gpu = cols.backend as WebGPUBackend;
      const p = geomParams(new ParamBuilder(), total, C, g).u32(cols.offset, csN, csR, csL);
      const bg = bakedGeom(gpu, C, g);
      gpu.dispatch({
        key: `conv|fold${bg.key}`,
        code: () => foldShader(bg.baked),
        buffers: [
          { storage: cols.storage as GpuStorage, access: 'read' },
          { storage: out.storage as GpuStorage, access: 'read_write' },
        ],
        params: p.words,
        workgroups: Math.ceil(total / CONV_WG),
      });
    }
  }
  return record(out, op, [cols], (gy) => [unfoldGeom(gy, g, 0)]);
}

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

/** Disposes temporaries of a composed op when nothing recorded needs them (no gradient). */
export function disposeUnlessRecorded(result: Tensor, temps: Tensor[]): Tensor {
  if (!result.requiresGrad) for (const t of temps) if (t !== result) t.dispose();
  return result;
}

/**
 * Largest column buffer (elements) one conv may materialize. WebGPU caps a storage binding
 * (128 MiB on lavapipe, 2 GiB on an H100): bigger batches are convolved in batch chunks.
 * Overridable for tests.
 */
export const convLimits = { maxColumnElements: null as number | null };

export function maxColumnElements(x: Tensor): number {
  if (convLimits.maxColumnElements !== null) return convLimits.maxColumnElements;
  return x.backend instanceof WebGPUBackend ? Math.floor(x.backend.device.limits.maxStorageBufferBindingSize / 4) : Infinity;
}

/**
 * Runs `fn` on batch chunks of x when one image needs `perImage` column elements and the whole
 * batch would exceed the limit; null when no split is needed. Chunks join with concat, so
 * gradients flow through slice/concat.
 */
export function inBatchChunks(op: string, x: Tensor, perImage: number, fn: (xc: Tensor) => Tensor): Tensor | null {
  const N = x.shape[0]!;
  const limit = maxColumnElements(x);
  if (N * perImage <= limit) return null;
  if (perImage > limit) {
    throw new Error(`${op}: one image of ${fmtShape(x.shape)} needs ${perImage} column elements (${(perImage * 4 / 2 ** 20).toFixed(0)} MiB), over the device's storage binding limit of ${(limit * 4 / 2 ** 20).toFixed(0)} MiB`);
  }
  const per = Math.floor(limit / perImage);
  const parts: Tensor[] = [];
  const slices: Tensor[] = [];
  for (let n0 = 0; n0 < N; n0 += per) {
    const xc = slice(x, [[n0, Math.min(N, n0 + per)]]);
    slices.push(xc);
    parts.push(fn(xc));
  }
  const out = concat(parts, 0);
  return disposeUnlessRecorded(out, [...slices, ...parts]);
}

export interface Conv2dOptions {
  stride?: Size2;
  /** Zero padding per side, or 'valid' (0) / 'same' (stride 1 only; extra padding goes after, as in PyTorch). */
  padding?: Size2 | 'same' | 'valid';
  dilation?: Size2;
  groups?: number;
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
  const [N, Cin, H, W] = checkImage(op, x);
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
  if (groups === 1 && (convKernelOptions.implicit ?? implicitConvByDefault(x))) return convForward(x, w, b, g);
  const K = Cg * kh * kw;
  const L = Hb * Wb;
  // A 1x1 stride-1 unpadded kernel needs no unfold: the image is already its column matrix.
  const pointwise = kh === 1 && kw === 1 && sh === 1 && sw === 1 && padH[0] + padH[1] + padW[0] + padW[1] === 0;
  if (!pointwise) {
    const chunked = inBatchChunks(op, x, Cin * kh * kw * L, (xc) => conv2d(xc, w, bias, opts));
    if (chunked) return chunked;
  }
  const cols = pointwise ? reshape(x, [N, Cin, H * W]) : unfoldGeom(x, g, 0);
  const cg = reshape(cols, [N, groups, K, L]);
  const wg = reshape(w, [groups, Cout / groups, K]);
  const y = matmul(wg, cg); // [N, groups, Cout/groups, L]
  const y4 = reshape(y, [N, Cout, Hb, Wb]);
  const temps = [cols, cg, wg, y];
  if (!b) return disposeUnlessRecorded(y4, temps);
  const bv = reshape(b, [1, Cout, 1, 1]);
  const out = add(y4, bv);
  return disposeUnlessRecorded(out, [...temps, y4, bv]);
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
  const [N, Cin, H, W] = checkImage(op, x);
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
  const chunked = inBatchChunks(op, x, Cout * kh * kw * H * W, (xc) => convTranspose2d(xc, w, bias, opts));
  if (chunked) return chunked;
  const wg = reshape(w, [groups, Cin / groups, K]);
  const wt = transpose(wg, 1, 2); // [groups, K, Cin/groups]
  const xg = reshape(x, [N, groups, Cin / groups, H * W]);
  const cols = matmul(wt, xg); // [N, groups, K, H*W]
  const c3 = reshape(cols, [N, Cout * kh * kw, H * W]);
  const y = foldGeom(c3, Cout, g, 'fold');
  const temps = [wg, wt, xg, cols, c3];
  if (!b) return disposeUnlessRecorded(y, temps);
  const bv = reshape(b, [1, Cout, 1, 1]);
  const out = add(y, bv);
  return disposeUnlessRecorded(out, [...temps, y, bv]);
}
