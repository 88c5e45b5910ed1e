/**
 * The column ops: unfold (im2col) x [N, C, H, W] -> cols [N, C*kh*kw, Hb*Wb] and its adjoint fold
 * (col2im, overlapping taps summed). The gradient of unfold is fold and the gradient of fold is
 * unfold, so every convolution on the columns route (and its grad-of-grad) needs only these two
 * kernels and matmul's own gradient. Also the batch chunking of ops that materialize columns.
 */
import { cpuData } from '../cpu/strided.js';
import { defineOp } from '../op.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { CONV_WG, GEOMETRY, foldKernel, unfoldKernel } from '../../shaders/conv.js';
import { checkImage, type ConvGeom } from './conv-geometry.js';
import { planConv } from './conv-plan.js';
import { concat, slice } from './movement.js';

interface ColumnsAttrs {
  /** The op that asked (errors and output names: unfold, fold, maxPool2d ...). */
  op: string;
  g: ConvGeom;
  /** fold: image channels. */
  C: number;
  /** unfold: what out-of-image taps read. */
  padValue: number;
  /** The geometry compiled into the WGSL (planConv's bakeColumns). */
  bake: boolean;
}

/** The largest finite f32: stands in for -Infinity as a GPU pad value (WGSL may assume no infinities). */
const F32_MAX = 3.4028234663852886e38;

const geomParams = (total: number, C: number, g: ConvGeom) => ({ total, C, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, ph: g.ph, pw: g.pw, dh: g.dh, dw: g.dw, H: g.H, W: g.W, Hb: g.Hb, Wb: g.Wb });

const unfoldOp = defineOp<ColumnsAttrs>({
  name: 'unfold',
  outputs: ([x], { op, g }) => {
    const [N, C, H, W] = checkImage(op, x!);
    if (H !== g.H || W !== g.W) throw new Error(`${op}: input ${fmtShape(x!.shape)} does not match the geometry's image size ${g.H}x${g.W}`);
    return [{ shape: [N, C * g.kh * g.kw, g.Hb * g.Wb], dtype: 'f32', name: op }];
  },
  kernels: {
    cpu: (_b, { inputs: [x], outputs: [out], attrs: { g, padValue } }) => {
      const [N, C, H, W] = x!.shape as [number, number, number, number];
      const [xsN, xsC, xsH, xsW] = x!.strides as [number, number, number, number];
      const src = cpuData(x!);
      const o = cpuData(out!);
      let i = 0;
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let ki = 0; ki < g.kh; ki++)
            for (let kj = 0; kj < g.kw; kj++)
              for (let oh = 0; oh < g.Hb; oh++) {
                const h = oh * g.sh - g.ph + ki * g.dh;
                const rowOk = h >= 0 && h < H;
                const rowOff = x!.offset + n * xsN + c * xsC + h * xsH;
                for (let ow = 0; ow < g.Wb; ow++) {
                  const w = ow * g.sw - g.pw + kj * g.dw;
                  o[i++] = rowOk && w >= 0 && w < W ? src[rowOff + w * xsW]! : padValue;
                }
              }
    },
    webgpu: (gpu, { inputs: [x], outputs: [cols], attrs: { g, padValue, bake } }) => {
      const total = cols!.size;
      const params = Object.assign({}, geomParams(total, x!.shape[1]!, g), { x_off: x!.offset, x_st: x!.strides, pad_value: Math.max(-F32_MAX, Math.min(F32_MAX, padValue)) });
      gpu.run(unfoldKernel, undefined, { params, bindings: { x: x!, cols: cols! }, workgroups: Math.ceil(total / CONV_WG), bake: bake ? GEOMETRY : undefined });
    },
  },
  grad: (gy, { inputs: [x], attrs: { g, bake } }) => [foldGeom(gy, x!.shape[1]!, g, 'fold', bake)],
});

const foldOp = defineOp<ColumnsAttrs>({
  name: 'fold',
  outputs: ([cols], { op, g, C }) => {
    if (cols!.dtype !== 'f32') throw new TypeError(`${op}: expected f32 columns, got dtype ${cols!.dtype} (${cols!.describe()})`);
    const R = C * g.kh * g.kw;
    const L = g.Hb * g.Wb;
    if (cols!.rank !== 3 || cols!.shape[1] !== R || cols!.shape[2] !== L) {
      throw new Error(`${op}: expected columns of shape [N, ${R}, ${L}] (C=${C}, kernel ${g.kh}x${g.kw}, ${g.Hb}x${g.Wb} blocks), got ${fmtShape(cols!.shape)}`);
    }
    return [{ shape: [cols!.shape[0]!, C, g.H, g.W], dtype: 'f32', name: op }];
  },
  kernels: {
    // Scatter-add (the GPU kernel gathers): an independent formulation for cross-checking.
    cpu: (_b, { inputs: [cols], outputs: [out], attrs: { g, C } }) => {
      const { H, W } = g;
      const N = cols!.shape[0]!;
      const [csN, csR, csL] = cols!.strides as [number, number, number];
      const src = cpuData(cols!);
      const o = cpuData(out!);
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
                  o[((n * C + c) * H + h) * W + w]! += src[cols!.offset + n * csN + row * csR + (oh * g.Wb + ow) * csL]!;
                }
              }
            }
    },
    webgpu: (gpu, { inputs: [cols], outputs: [out], attrs: { g, C, bake } }) => {
      const total = out!.size;
      const params = Object.assign({}, geomParams(total, C, g), { cols_off: cols!.offset, cols_st: cols!.strides });
      gpu.run(foldKernel, undefined, { params, bindings: { cols: cols!, out: out! }, workgroups: Math.ceil(total / CONV_WG), bake: bake ? GEOMETRY : undefined });
    },
  },
  grad: (gy, { attrs: { g, bake } }) => [unfoldGeom(gy, g, 0, 'unfold', bake)],
});

/**
 * unfold with explicit geometry. Out-of-image taps read `padValue` (0 for convolutions,
 * -Infinity for max pooling); the gradient ignores them either way. `bake` comes from the
 * caller's plan (planned here when not given).
 */
export function unfoldGeom(x: Tensor, g: ConvGeom, padValue = 0, op = 'unfold', bake?: boolean): Tensor {
  const b = bake ?? planConv('unfold', { x, C: 0, Cout: 0, groups: 1, g }).bakeColumns;
  return unfoldOp([x], { op, g, C: 0, padValue, bake: b })[0]!;
}

/** fold with explicit geometry: cols [N, C*kh*kw, Hb*Wb] -> [N, C, H, W], summing overlapping taps. */
export function foldGeom(cols: Tensor, C: number, g: ConvGeom, op = 'fold', bake?: boolean): Tensor {
  const b = bake ?? planConv('fold', { x: cols, C, Cout: 0, groups: 1, g }).bakeColumns;
  return foldOp([cols], { op, g, C, padValue: 0, bake: b })[0]!;
}

/**
 * fn(x) in batch chunks of `chunk` images (a plan's chunk), joined with concat so gradients flow
 * through slice/concat; fn(x) itself when one chunk holds the batch. Callers run it inside their
 * composite(), which frees the slices and parts.
 */
export function inBatchChunks(x: Tensor, chunk: number, fn: (xc: Tensor) => Tensor): Tensor {
  const N = x.shape[0]!;
  if (chunk >= N) return fn(x);
  const parts: Tensor[] = [];
  for (let n0 = 0; n0 < N; n0 += chunk) parts.push(fn(slice(x, [[n0, Math.min(N, n0 + chunk)]])));
  return concat(parts, 0);
}
