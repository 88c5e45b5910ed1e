/**
 * Pooling and upsampling, composed from unfold (engine/ops/conv.ts), reductions and views, so
 * their gradients come from those ops: avg pooling's from mean, max pooling's from max (ties share
 * the gradient evenly, as in reduce.ts) and fold, upsampling's from expand (a sum).
 */
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { checkImage, disposeUnlessRecorded, pair, unfoldGeom, windowGeom, type ConvGeom, type Size2 } from './conv.js';
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

/** mean/max over `axes`, disposing the intermediate sum (reduce.ts's mean keeps it until tidy). */
function reduceWindow(kind: 'mean' | 'max', t: Tensor, axes: number[], n: number, temps: Tensor[]): Tensor {
  if (kind === 'max') return max(t, axes);
  const s = sum(t, axes);
  temps.push(s);
  return mul(s, 1 / n);
}

function pool(op: string, kind: 'mean' | 'max', x: Tensor, g: ConvGeom): Tensor {
  const [N, C] = x.shape as [number, number];
  const kk = g.kh * g.kw;
  const temps: Tensor[] = [];
  if (tiles(g)) {
    const v = reshape(x, [N, C, g.Hb, g.kh, g.Wb, g.kw]);
    const y = reduceWindow(kind, v, [3, 5], kk, temps);
    return disposeUnlessRecorded(y, [v, ...temps]);
  }
  // Max pooling pads with -inf so padding never wins; average pooling counts the zero padding
  // (PyTorch's default count_include_pad=True).
  const cols = unfoldGeom(x, g, kind === 'max' ? -Infinity : 0, op);
  const c4 = reshape(cols, [N, C, kk, g.Hb * g.Wb]);
  const r = reduceWindow(kind, c4, [2], kk, temps);
  const y = reshape(r, [N, C, g.Hb, g.Wb]);
  return disposeUnlessRecorded(y, [cols, c4, r, ...temps]);
}

/**
 * Average pooling (F.avg_pool2d with count_include_pad=True, ceil_mode=False):
 * x [N, C, H, W] -> [N, C, Ho, Wo], stride defaults to the kernel size.
 */
export function avgPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0): Tensor {
  return pool('avgPool2d', 'mean', x, poolGeom('avgPool2d', x, kernel, stride, padding));
}

/**
 * Max pooling (F.max_pool2d, ceil_mode=False): padding acts as -inf. Tied maxima share the
 * gradient evenly (PyTorch sends it all to one of them).
 */
export function maxPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0, dilation: Size2 = 1): Tensor {
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
  const s = sum(x, [2, 3], true);
  return disposeUnlessRecorded(mul(s, 1 / (H * W)), [s]);
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
  const v = reshape(x, [N, C, H, 1, W, 1]);
  const e = expand(v, [N, C, H, sh, W, sw]);
  const y = reshape(e, [N, C, H * sh, W * sw]);
  return disposeUnlessRecorded(y, [v, e]);
}
