/**
 * Pooling and upsampling, composed from unfold (engine/ops/conv-unfold.ts), reductions and views,
 * so their gradients come from those ops: avg pooling's from sum, max pooling's from max (ties
 * share the gradient evenly, as in reduce.ts) and fold, upsampling's from expand (a sum).
 */
import { composite } from '../composite.js';
import { checkOptions } from '../options.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { checkImage, pair, windowGeom, type ConvGeom, type Size2 } from './conv-geometry.js';
import { unfoldGeom } from './conv-unfold.js';
import { max, sum } from './reduce.js';
import { mul } from './binary.js';
import { expand, reshape } from './movement.js';

/** Window geometry of a pooling op, with PyTorch's rule that padding is at most half the kernel. */
function poolGeom(op: string, x: Tensor, kernel: Size2, stride: Size2 | undefined, padding: Size2, dilation: Size2 = 1): ConvGeom {
  const [, , H, W] = checkImage(op, x);
  const g = windowGeom(op, H, W, kernel, { padding, dilation }, x.shape, stride ?? kernel);
  if (g.ph > g.kh / 2 || g.pw > g.kw / 2) {
    throw new Error(`${op}: padding ${g.ph}x${g.pw} must be at most half the kernel size ${g.kh}x${g.kw} (input ${fmtShape(x.shape)})`);
  }
  return g;
}

/** Non-overlapping windows that tile the image exactly: pool with a reshape view, no unfold copy. */
function tiles(g: ConvGeom): boolean {
  return g.sh === g.kh && g.sw === g.kw && g.ph === 0 && g.pw === 0 && g.dh === 1 && g.dw === 1 && g.H === g.Hb * g.kh && g.W === g.Wb * g.kw;
}

/** mean (sum times 1/n) or max over `axes`. */
function reduceWindow(kind: 'mean' | 'max', t: Tensor, axes: number[], n: number): Tensor {
  return kind === 'max' ? max(t, axes) : mul(sum(t, axes), 1 / n);
}

function pool(op: string, kind: 'mean' | 'max', x: Tensor, g: ConvGeom): Tensor {
  const [N, C] = x.shape as [number, number];
  const kk = g.kh * g.kw;
  return composite([x], () => {
    if (tiles(g)) return reduceWindow(kind, reshape(x, [N, C, g.Hb, g.kh, g.Wb, g.kw]), [3, 5], kk);
    // Max pooling pads with -inf so padding never wins; average pooling counts the zero padding
    // (PyTorch's default count_include_pad=True).
    const cols = unfoldGeom(x, g, kind === 'max' ? -Infinity : 0, op);
    return reshape(reduceWindow(kind, reshape(cols, [N, C, kk, g.Hb * g.Wb]), [2], kk), [N, C, g.Hb, g.Wb]);
  });
}

export interface AvgPool2dOptions {
  /** Defaults to the kernel size. */
  stride?: Size2;
  /** Per side, at most half the kernel (default 0). */
  padding?: Size2;
}

export interface MaxPool2dOptions extends AvgPool2dOptions {
  dilation?: Size2;
}

const AVG_KEYS = ['stride', 'padding'] as const;
const MAX_KEYS = ['stride', 'padding', 'dilation'] as const;

/**
 * Average pooling (F.avg_pool2d with count_include_pad=True, ceil_mode=False):
 * x [N, C, H, W] -> [N, C, Ho, Wo].
 */
export function avgPool2d(x: Tensor, kernel: Size2, opts: AvgPool2dOptions = {}): Tensor {
  const { stride, padding = 0 } = checkOptions('avgPool2d', opts, AVG_KEYS);
  return pool('avgPool2d', 'mean', x, poolGeom('avgPool2d', x, kernel, stride, padding));
}

/**
 * Max pooling (F.max_pool2d, ceil_mode=False): padding acts as -inf. Tied maxima share the
 * gradient evenly (PyTorch sends it all to one of them).
 */
export function maxPool2d(x: Tensor, kernel: Size2, opts: MaxPool2dOptions = {}): Tensor {
  const { stride, padding = 0, dilation = 1 } = checkOptions('maxPool2d', opts, MAX_KEYS);
  return pool('maxPool2d', 'max', x, poolGeom('maxPool2d', x, kernel, stride, padding, dilation));
}

/**
 * Adaptive average pooling to `outputSize` when it divides the input size (then it is plain
 * average pooling with kernel = stride = H/oh); other sizes are refused.
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: Size2): Tensor {
  const op = 'adaptiveAvgPool2d';
  const [, , H, W] = checkImage(op, x);
  const [oh, ow] = pair(outputSize, 'output size', op, 1);
  if (H % oh !== 0 || W % ow !== 0) {
    throw new Error(`${op}: output size ${oh}x${ow} must divide the input size ${H}x${W} (input ${fmtShape(x.shape)}); other sizes are not supported`);
  }
  return avgPool2d(x, [H / oh, W / ow]);
}

/** Mean over the spatial dims: [N, C, H, W] -> [N, C, 1, 1]. */
export function globalAvgPool2d(x: Tensor): Tensor {
  const [, , H, W] = checkImage('globalAvgPool2d', x);
  return composite([x], () => mul(sum(x, [2, 3], true), 1 / (H * W)));
}

/**
 * Nearest-neighbour upsampling by an integer factor (F.interpolate(mode='nearest')):
 * [N, C, H, W] -> [N, C, H*sh, W*sw]. A reshape/expand view and one copy; the gradient sums
 * each sh x sw block (from expand).
 */
export function upsampleNearest2d(x: Tensor, scale: Size2): Tensor {
  const op = 'upsampleNearest2d';
  const [N, C, H, W] = checkImage(op, x);
  const [sh, sw] = pair(scale, 'scale factor', op, 1);
  return composite([x], () => reshape(expand(reshape(x, [N, C, H, 1, W, 1]), [N, C, H, sh, W, sw]), [N, C, H * sh, W * sw]));
}
