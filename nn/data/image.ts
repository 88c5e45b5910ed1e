/**
 * 8-bit images as interleaved (HWC) bytes and the few operations a data pipeline needs:
 * channel conversion, antialiased resampling (PIL-style separable filters), center crop,
 * padding and flips. Browser-safe.
 */

/** An 8-bit image, samples interleaved row-major: data[(y * width + x) * channels + c]. */
export interface Image {
  width: number;
  height: number;
  /** 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
  channels: 1 | 2 | 3 | 4;
  data: Uint8Array;
}

export function assertImage(img: Image, what: string): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) throw new Error(`${what}: invalid image size ${width}x${height}`);
  if (![1, 2, 3, 4].includes(channels)) throw new Error(`${what}: channels must be 1..4, got ${channels}`);
  if (data.length !== width * height * channels) throw new Error(`${what}: ${data.length} bytes do not match ${width}x${height}x${channels}`);
}

export interface ToChannelsOptions {
  /** Composite images with alpha over this gray level (0..255) instead of dropping alpha (PIL's convert drops it). */
  background?: number;
}

/**
 * Converts to 1 (gray) or 3 (RGB) channels. RGB -> gray uses ITU-R 601-2 luma
 * (L = R * 299/1000 + G * 587/1000 + B * 114/1000, as PIL's convert('L')); alpha is dropped or
 * composited over `background`.
 */
export function toChannels(img: Image, channels: 1 | 3, opts: ToChannelsOptions = {}): Image {
  assertImage(img, 'toChannels');
  const { width, height, channels: c, data } = img;
  if (c === channels) return img;
  const n = width * height;
  const out = new Uint8Array(n * channels);
  const bg = opts.background;
  const hasAlpha = c === 2 || c === 4;
  for (let i = 0; i < n; i++) {
    let r: number;
    let g: number;
    let b: number;
    if (c <= 2) r = g = b = data[i * c]!;
    else {
      r = data[i * c]!;
      g = data[i * c + 1]!;
      b = data[i * c + 2]!;
    }
    if (hasAlpha && bg !== undefined) {
      const a = data[i * c + c - 1]! / 255;
      r = r * a + bg * (1 - a);
      g = g * a + bg * (1 - a);
      b = b * a + bg * (1 - a);
    }
    if (channels === 1) out[i] = c <= 2 ? Math.round(r) : Math.round((r * 299 + g * 587 + b * 114) / 1000);
    else {
      out[i * 3] = Math.round(r);
      out[i * 3 + 1] = Math.round(g);
      out[i * 3 + 2] = Math.round(b);
    }
  }
  return { width, height, channels, data: out };
}

export type ResizeFilter = 'bilinear' | 'area' | 'nearest';

/** Source box of a resize, in source pixel coordinates (may be fractional). */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  ksize: number;
}

/** Per-output-pixel filter taps along one axis, as PIL computes them (support scaled when downsampling). */
function taps(inSize: number, outSize: number, b0: number, b1: number, filter: ResizeFilter): Taps {
  const scale = (b1 - b0) / outSize;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  if (filter === 'nearest') {
    const weights = new Float64Array(outSize).fill(1);
    for (let x = 0; x < outSize; x++) {
      start[x] = Math.min(inSize - 1, Math.max(0, Math.floor(b0 + (x + 0.5) * scale)));
      count[x] = 1;
    }
    return { start, count, weights, ksize: 1 };
  }
  const fscale = Math.max(scale, 1);
  const support = (filter === 'bilinear' ? 1 : 0.5) * fscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const weights = new Float64Array(outSize * ksize);
  const f = filter === 'bilinear' ? (x: number) => (x < 0 ? (x > -1 ? 1 + x : 0) : x < 1 ? 1 - x : 0) : (x: number) => (x > -0.5 && x <= 0.5 ? 1 : 0);
  for (let x = 0; x < outSize; x++) {
    const center = b0 + (x + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    let n = Math.max(0, Math.min(xmax - xmin, ksize));
    let ww = 0;
    for (let i = 0; i < n; i++) {
      const w = f((i + xmin - center + 0.5) / fscale);
      weights[x * ksize + i] = w;
      ww += w;
    }
    if (ww === 0) {
      // Degenerate box (fully outside the image): take the nearest edge pixel.
      xmin = Math.min(inSize - 1, Math.max(0, Math.floor(center)));
      n = 1;
      weights[x * ksize] = 1;
      ww = 1;
    }
    for (let i = 0; i < n; i++) weights[x * ksize + i]! /= ww;
    start[x] = xmin;
    count[x] = n;
  }
  return { start, count, weights, ksize };
}

/**
 * Resamples `img` (or the `box` region of it) to width x height with a separable filter:
 * 'bilinear' (triangle filter widened when downsampling, i.e. antialiased, like PIL's BILINEAR),
 * 'area' (box filter: exact area averaging when downsampling) or 'nearest'.
 */
export function resize(img: Image, width: number, height: number, filter: ResizeFilter = 'bilinear', box?: Box): Image {
  assertImage(img, 'resize');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`resize: invalid target size ${width}x${height}`);
  if (img.width === 0 || img.height === 0) throw new Error(`resize: cannot resize an empty ${img.width}x${img.height} image`);
  const b = box ?? { x0: 0, y0: 0, x1: img.width, y1: img.height };
  if (!(b.x1 > b.x0 && b.y1 > b.y0)) throw new Error(`resize: empty box ${JSON.stringify(b)}`);
  if (!box && width === img.width && height === img.height) return { ...img, data: img.data.slice() };
  const C = img.channels;
  const src = img.data;
  const tx = taps(img.width, width, b.x0, b.x1, filter);
  const ty = taps(img.height, height, b.y0, b.y1, filter);
  // Horizontal pass over the rows the vertical pass needs, in float.
  let rowLo = img.height;
  let rowHi = 0;
  for (let y = 0; y < height; y++) {
    rowLo = Math.min(rowLo, ty.start[y]!);
    rowHi = Math.max(rowHi, ty.start[y]! + ty.count[y]!);
  }
  const rows = rowHi - rowLo;
  const tmp = new Float64Array(rows * width * C);
  for (let y = 0; y < rows; y++) {
    const sRow = (y + rowLo) * img.width * C;
    const dRow = y * width * C;
    for (let x = 0; x < width; x++) {
      const s0 = tx.start[x]!;
      const n = tx.count[x]!;
      const w0 = x * tx.ksize;
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += tx.weights[w0 + i]! * src[sRow + (s0 + i) * C + c]!;
        tmp[dRow + x * C + c] = acc;
      }
    }
  }
  const out = new Uint8Array(width * height * C);
  const rowLen = width * C;
  for (let y = 0; y < height; y++) {
    const s0 = ty.start[y]! - rowLo;
    const n = ty.count[y]!;
    const w0 = y * ty.ksize;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += ty.weights[w0 + k]! * tmp[(s0 + k) * rowLen + i]!;
      out[y * rowLen + i] = acc <= 0 ? 0 : acc >= 255 ? 255 : Math.round(acc);
    }
  }
  return { width, height, channels: C, data: out };
}

/** The centered width x height region (the image must be at least that large). */
export function centerCrop(img: Image, width: number, height: number): Image {
  assertImage(img, 'centerCrop');
  if (width > img.width || height > img.height) throw new Error(`centerCrop: ${width}x${height} does not fit in a ${img.width}x${img.height} image`);
  const x0 = Math.floor((img.width - width) / 2);
  const y0 = Math.floor((img.height - height) / 2);
  const C = img.channels;
  const out = new Uint8Array(width * height * C);
  for (let y = 0; y < height; y++) out.set(img.data.subarray(((y + y0) * img.width + x0) * C, ((y + y0) * img.width + x0 + width) * C), y * width * C);
  return { width, height, channels: C, data: out };
}

/**
 * Scales so the image covers width x height (the shorter side fits), then takes the center:
 * torchvision's Resize(shorter) + CenterCrop, done as one resample of the centered source box.
 */
export function resizeCenterCrop(img: Image, width: number, height: number, filter: ResizeFilter = 'bilinear'): Image {
  assertImage(img, 'resizeCenterCrop');
  if (img.width === width && img.height === height) return img;
  const scale = Math.max(width / img.width, height / img.height);
  const bw = width / scale;
  const bh = height / scale;
  const x0 = (img.width - bw) / 2;
  const y0 = (img.height - bh) / 2;
  return resize(img, width, height, filter, { x0, y0, x1: x0 + bw, y1: y0 + bh });
}

/** Adds `pad` pixels of `value` on every side. */
export function padImage(img: Image, pad: number, value = 0): Image {
  assertImage(img, 'padImage');
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`padImage: pad must be a non-negative integer, got ${pad}`);
  const C = img.channels;
  const W = img.width + 2 * pad;
  const H = img.height + 2 * pad;
  const out = new Uint8Array(W * H * C).fill(value);
  for (let y = 0; y < img.height; y++) out.set(img.data.subarray(y * img.width * C, (y + 1) * img.width * C), ((y + pad) * W + pad) * C);
  return { width: W, height: H, channels: C, data: out };
}

/** Mirrors left-right. */
export function flipHorizontal(img: Image): Image {
  assertImage(img, 'flipHorizontal');
  const { width, height, channels: C, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * C;
      const d = (y * width + (width - 1 - x)) * C;
      for (let c = 0; c < C; c++) out[d + c] = data[s + c]!;
    }
  return { width, height, channels: C, data: out };
}

/** Interleaved HWC bytes -> planar CHW bytes (written into `out` at `offset` if given). */
export function hwcToChw(img: Image, out?: Uint8Array, offset = 0): Uint8Array {
  const { width, height, channels: C, data } = img;
  const n = width * height;
  const dst = out ?? new Uint8Array(n * C);
  if (C === 1) dst.set(data, offset);
  else for (let i = 0; i < n; i++) for (let c = 0; c < C; c++) dst[offset + c * n + i] = data[i * C + c]!;
  return dst;
}

/** Planar CHW bytes -> an interleaved Image. */
export function chwToImage(data: Uint8Array, channels: 1 | 2 | 3 | 4, height: number, width: number, offset = 0): Image {
  const n = width * height;
  const out = new Uint8Array(n * channels);
  if (channels === 1) out.set(data.subarray(offset, offset + n));
  else for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = data[offset + c * n + i]!;
  return { width, height, channels, data: out };
}
