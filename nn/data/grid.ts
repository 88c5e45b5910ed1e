/**
 * Image grids: a batch [N, C, H, W] of floats (or bytes) tiled into one image, like
 * torchvision.utils.make_grid, ready for encodePng. Browser-safe.
 */
import type { Image } from './image.js';
import { encodePng } from './png.js';

export interface GridOptions {
  /** Images per row (default ceil(sqrt(N))). */
  nrow?: number;
  /** Pixels between images and around the border (default 2). */
  padding?: number;
  /** Gray level of the padding, 0..1 (default 0: black). */
  padValue?: number;
  /**
   * Value range mapped to 0..255 (clamped): e.g. [-1, 1] or [0, 1]. 'auto' (default) picks
   * [0, 255] if any value exceeds 1.5, else [-1, 1] if any value is below -0.01, else [0, 1].
   */
  range?: readonly [number, number] | 'auto';
}

function gridShape(shape: readonly number[]): [number, number, number, number] {
  if (shape.length === 3) return [shape[0]!, 1, shape[1]!, shape[2]!];
  if (shape.length === 4) return [shape[0]!, shape[1]!, shape[2]!, shape[3]!];
  throw new Error(`makeGrid: expected shape [N, C, H, W] or [N, H, W], got [${shape.join(', ')}]`);
}

export function autoRange(data: ArrayLike<number>): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (max > 1.5) return [0, 255];
  return min < -0.01 ? [-1, 1] : [0, 1];
}

/** Tiles N images into a grid image (gray for C = 1, RGB for C = 3, RGBA for C = 4). */
export function makeGrid(data: ArrayLike<number>, shape: readonly number[], opts: GridOptions = {}): Image {
  const [N, C, H, W] = gridShape(shape);
  if (C !== 1 && C !== 3 && C !== 4) throw new Error(`makeGrid: C must be 1, 3 or 4, got ${C} (shape [${shape.join(', ')}])`);
  if (data.length !== N * C * H * W) throw new Error(`makeGrid: ${data.length} values do not fill shape [${shape.join(', ')}]`);
  if (N < 1 || H < 1 || W < 1) throw new Error(`makeGrid: nothing to draw (shape [${shape.join(', ')}])`);
  const nrow = opts.nrow ?? Math.ceil(Math.sqrt(N));
  if (!Number.isInteger(nrow) || nrow < 1) throw new Error(`makeGrid: nrow must be a positive integer, got ${nrow}`);
  const pad = opts.padding ?? 2;
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`makeGrid: padding must be a non-negative integer, got ${pad}`);
  const [lo, hi] = opts.range === undefined || opts.range === 'auto' ? autoRange(data) : opts.range;
  if (!(hi > lo)) throw new Error(`makeGrid: empty range [${lo}, ${hi}]`);
  const cols = Math.min(nrow, N);
  const rows = Math.ceil(N / cols);
  const GW = cols * (W + pad) + pad;
  const GH = rows * (H + pad) + pad;
  const out = new Uint8Array(GW * GH * C);
  const pv = Math.round(Math.min(1, Math.max(0, opts.padValue ?? 0)) * 255);
  out.fill(pv);
  if (C === 4) for (let i = 3; i < out.length; i += 4) out[i] = 255;
  const scale = 255 / (hi - lo);
  for (let n = 0; n < N; n++) {
    const gx = pad + (n % cols) * (W + pad);
    const gy = pad + Math.floor(n / cols) * (H + pad);
    for (let c = 0; c < C; c++) {
      const plane = (n * C + c) * H * W;
      for (let y = 0; y < H; y++) {
        const o = ((gy + y) * GW + gx) * C + c;
        for (let x = 0; x < W; x++) {
          const v = (data[plane + y * W + x]! - lo) * scale;
          out[o + x * C] = v <= 0 || v !== v ? 0 : v >= 255 ? 255 : Math.round(v);
        }
      }
    }
  }
  return { width: GW, height: GH, channels: C, data: out };
}

/** makeGrid + encodePng. */
export function gridPng(data: ArrayLike<number>, shape: readonly number[], opts: GridOptions = {}): Uint8Array {
  return encodePng(makeGrid(data, shape, opts));
}
