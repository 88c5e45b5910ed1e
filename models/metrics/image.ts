/**
 * Image reconstruction metrics on batches [N, C, H, W], computed with engine ops so they run on
 * the tensors' backend (GPU for WebGPU tensors); only the per-image scalars are read back.
 *
 * PSNR: 10 log10(R^2 / MSE_i) per image (MSE over C, H, W), R = data range (default 1, images in
 * [0, 1]); `mean` is the mean of the per-image values (as tokenizer papers report it; torchmetrics'
 * default instead pools the MSE over the whole batch first). Identical images give +Infinity.
 *
 * SSIM (Wang et al. 2004), as torchmetrics / pytorch-msssim / skimage (gaussian_weights=True,
 * use_sample_covariance=False) compute it: an 11x11 Gaussian window with sigma 1.5 (normalized,
 * applied separably: 11x1 then 1x11 depthwise conv2d with groups = channels),
 * C1 = (K1 R)^2, C2 = (K2 R)^2 with K1 = 0.01, K2 = 0.03, local statistics per channel,
 *   SSIM = (2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sxx + syy + C2)),
 * with sxx = E[x^2] - mx^2 etc. (biased, Gaussian-weighted), averaged over channels and pixels
 * per image. ssimMap/ssimPerImage/msePerImage are differentiable (usable as losses).
 * Padding: 'valid' (default) keeps only windows that lie inside the image, which is
 * what torchmetrics' default (reflect-pad, then crop the border) and skimage/pytorch-msssim
 * amount to, so the images must be at least 11x11; 'same' zero-pads by 5 on every side
 * (conv2d padding='same'), keeping H x W but biasing the statistics near the border.
 */
import {
  add,
  composite,
  concat,
  conv2d,
  div,
  mean,
  mul,
  readContiguous,
  slice,
  square,
  sub,
  tensor,
  type Tensor,
} from '../../engine/index.js';

function checkPair(op: string, x: Tensor, y: Tensor): [number, number, number, number] {
  x.storage; // clear error if disposed
  y.storage;
  if (x.rank !== 4) throw new Error(`${op}: expected images [N, C, H, W], got ${x.describe()}`);
  if (x.dtype !== 'f32' || y.dtype !== 'f32') throw new TypeError(`${op}: expected f32 images, got dtypes ${x.dtype} and ${y.dtype}`);
  if (x.shape.length !== y.shape.length || x.shape.some((d, i) => d !== y.shape[i])) {
    throw new Error(`${op}: image batches differ in shape: [${x.shape.join(', ')}] vs [${y.shape.join(', ')}]`);
  }
  if (x.backend !== y.backend) throw new Error(`${op}: images are on different backends (${x.backend.name} and ${y.backend.name})`);
  return x.shape as unknown as [number, number, number, number];
}

function checkRange(op: string, dataRange: number): number {
  if (!(dataRange > 0) || !Number.isFinite(dataRange)) throw new RangeError(`${op}: dataRange must be a positive finite number, got ${dataRange}`);
  return dataRange;
}

export interface PerImageMetric {
  /** One value per image, float64. */
  perImage: Float64Array;
  /** Mean of perImage. */
  mean: number;
}

function summarize(values: ArrayLike<number>): PerImageMetric {
  const perImage = Float64Array.from(values);
  const mean = perImage.length ? perImage.reduce((s, v) => s + v, 0) / perImage.length : NaN;
  return { perImage, mean };
}

/** Per-image mean squared error [N] (a tensor on the images' backend). */
export function msePerImage(x: Tensor, y: Tensor): Tensor {
  checkPair('msePerImage', x, y);
  return composite(() => mean(square(sub(x, y)), [1, 2, 3]));
}

/** PSNR in dB from per-image MSE values: 10 log10(R^2 / mse); mse = 0 gives +Infinity. */
export function psnrFromMse(mse: ArrayLike<number>, dataRange = 1): PerImageMetric {
  checkRange('psnr', dataRange);
  return summarize(Array.from(mse, (m) => 10 * Math.log10((dataRange * dataRange) / m)));
}

/** PSNR per image and its mean, for images with values in [0, dataRange]. */
export async function psnr(x: Tensor, y: Tensor, opts: { dataRange?: number } = {}): Promise<PerImageMetric> {
  const R = checkRange('psnr', opts.dataRange ?? 1);
  using m = msePerImage(x, y);
  return psnrFromMse(await readContiguous(m), R);
}

export interface SsimOptions {
  /** Value range of the images (max - min possible value); default 1. */
  dataRange?: number;
  /** 'valid' (default, as torchmetrics/skimage/pytorch-msssim) or 'same' (zero padding). */
  padding?: 'valid' | 'same';
  /** Gaussian window size (odd), default 11. */
  windowSize?: number;
  /** Gaussian sigma, default 1.5. */
  sigma?: number;
  k1?: number;
  k2?: number;
}

/** The normalized 1-D Gaussian window (float64). */
export function gaussianWindow(size = 11, sigma = 1.5): Float64Array {
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) throw new RangeError(`ssim: windowSize must be a positive odd integer, got ${size}`);
  if (!(sigma > 0)) throw new RangeError(`ssim: sigma must be positive, got ${sigma}`);
  const g = Float64Array.from({ length: size }, (_, i) => Math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma * sigma)));
  const s = g.reduce((a, b) => a + b, 0);
  return g.map((v) => v / s);
}

/** The SSIM map [N, C, Ho, Wo] (differentiable, on the images' backend). */
export function ssimMap(x: Tensor, y: Tensor, opts: SsimOptions = {}): Tensor {
  const op = 'ssim';
  const [, C, H, W] = checkPair(op, x, y);
  const R = checkRange(op, opts.dataRange ?? 1);
  const k = opts.windowSize ?? 11;
  const g = gaussianWindow(k, opts.sigma ?? 1.5);
  const padding = opts.padding ?? 'valid';
  if (padding !== 'valid' && padding !== 'same') throw new Error(`${op}: padding must be 'valid' or 'same', got ${String(padding)}`);
  if (padding === 'valid' && (H < k || W < k)) {
    throw new Error(`${op}: images ${H}x${W} are smaller than the ${k}x${k} window; use padding 'same' or a smaller windowSize`);
  }
  const c1 = ((opts.k1 ?? 0.01) * R) ** 2;
  const c2 = ((opts.k2 ?? 0.03) * R) ** 2;
  const p = padding === 'same' ? (k - 1) / 2 : 0;
  return composite(() => {
    const G = 5 * C;
    const wv = new Float64Array(G * k);
    for (let c = 0; c < G; c++) wv.set(g, c * k);
    const wV = tensor(wv, [G, 1, k, 1], { backend: x.backend });
    const wH = tensor(wv, [G, 1, 1, k], { backend: x.backend });
    const stacked = concat([x, y, square(x), square(y), mul(x, y)], 1);
    const f = conv2d(conv2d(stacked, wV, null, { groups: G, padding: [p, 0] }), wH, null, { groups: G, padding: [0, p] });
    const part = (i: number) => slice(f, [null, [i * C, (i + 1) * C]]);
    const mx = part(0);
    const my = part(1);
    const mx2 = square(mx);
    const my2 = square(my);
    const mxy = mul(mx, my);
    const sxx = sub(part(2), mx2);
    const syy = sub(part(3), my2);
    const sxy = sub(part(4), mxy);
    const num = mul(add(mul(mxy, 2), c1), add(mul(sxy, 2), c2));
    const den = mul(add(add(mx2, my2), c1), add(add(sxx, syy), c2));
    return div(num, den);
  });
}

/** Per-image SSIM [N] (a tensor on the images' backend). */
export function ssimPerImage(x: Tensor, y: Tensor, opts: SsimOptions = {}): Tensor {
  return composite(() => mean(ssimMap(x, y, opts), [1, 2, 3]));
}

/** SSIM per image and its mean. */
export async function ssim(x: Tensor, y: Tensor, opts: SsimOptions = {}): Promise<PerImageMetric> {
  using s = ssimPerImage(x, y, opts);
  return summarize(await readContiguous(s));
}
