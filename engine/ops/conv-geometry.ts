/**
 * The geometry every window op shares (convolutions, their gradients, unfold/fold, pooling): the
 * grid of blocks a kernel visits over an image, validated once with errors that name the op.
 *
 * A block (oh, ow) is the window whose top-left input pixel is (oh*sh - ph, ow*sw - pw); its tap
 * (ki, kj) reads input pixel (oh*sh - ph + ki*dh, ow*sw - pw + kj*dw).
 */
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

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

export interface WindowOptions {
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
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
export function blockCount(op: string, size: number, k: number, s: number, padBefore: number, padAfter: number, d: number, inShape: readonly number[], dim: string): number {
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

/** A 1x1, stride-1, unpadded kernel: the image is already its own column matrix. */
export function isPointwise(g: ConvGeom): boolean {
  return g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0 && g.Hb === g.H && g.Wb === g.W;
}
