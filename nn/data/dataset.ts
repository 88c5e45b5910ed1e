/**
 * In-memory image datasets: uint8 pixels, planar [N, C, H, W], int32 labels, class names.
 * Splitting (seeded, stratified), subsets, padding and resizing. Browser-safe.
 */
import { chwToImage, hwcToChw, resize, resizeCenterCrop, type Image, type ResizeFilter } from './image.js';
import { permutation, STREAM } from './rng.js';

export interface ImageDataset {
  /** Pixels 0..255, planar: images[((n * C + c) * H + y) * W + x]. */
  images: Uint8Array;
  labels: Int32Array;
  /** [N, C, H, W] */
  shape: readonly [number, number, number, number];
  classes: string[];
}

export function checkDataset(ds: ImageDataset, what: string): void {
  const [n, c, h, w] = ds.shape;
  if (ds.images.length !== n * c * h * w) throw new Error(`${what}: ${ds.images.length} pixels do not match shape [${ds.shape.join(', ')}]`);
  if (ds.labels.length !== n) throw new Error(`${what}: ${ds.labels.length} labels for ${n} images`);
}

/** Image i as an interleaved Image (for viewing or writing). */
export function datasetImage(ds: ImageDataset, i: number): Image {
  const [n, c, h, w] = ds.shape;
  if (i < 0 || i >= n) throw new RangeError(`datasetImage: index ${i} out of range [0, ${n})`);
  return chwToImage(ds.images, c as 1 | 3, h, w, i * c * h * w);
}

/** The images at `indices`, in that order. */
export function subset(ds: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  const [n, c, h, w] = ds.shape;
  const per = c * h * w;
  const images = new Uint8Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!(i >= 0 && i < n)) throw new RangeError(`subset: index ${i} out of range [0, ${n})`);
    images.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = ds.labels[i]!;
  }
  return { images, labels, shape: [indices.length, c, h, w], classes: ds.classes };
}

export interface SplitOptions {
  /** Validation set size (takes precedence over valFraction). */
  valSize?: number;
  /** Fraction of the data for validation (default 0.1). */
  valFraction?: number;
  seed?: number;
  /** Keep class proportions equal in both parts (default true). */
  stratified?: boolean;
}

export interface Split {
  train: ImageDataset;
  val: ImageDataset;
  /** Indices into the source dataset. */
  trainIndices: Int32Array;
  valIndices: Int32Array;
}

/**
 * A deterministic train/validation split: a seeded permutation, and (stratified) for each class
 * the first round(count * valSize / N) of its images in permutation order go to validation. Both
 * parts keep the permutation order, so they are class-mixed even when iterated unshuffled.
 */
export function splitDataset(ds: ImageDataset, opts: SplitOptions = {}): Split {
  checkDataset(ds, 'splitDataset');
  const n = ds.shape[0];
  const valSize = opts.valSize ?? Math.round(n * (opts.valFraction ?? 0.1));
  if (!Number.isInteger(valSize) || valSize < 0 || valSize > n) throw new RangeError(`splitDataset: validation size ${valSize} must be an integer in [0, ${n}]`);
  const perm = permutation(n, opts.seed ?? 0, STREAM.split);
  const isVal = new Uint8Array(n);
  if (opts.stratified ?? true) {
    const counts = new Map<number, number>();
    for (const l of ds.labels) counts.set(l, (counts.get(l) ?? 0) + 1);
    // Per-class quotas by largest remainder so they add up to valSize exactly.
    const quota = new Map<number, number>();
    const rema: [number, number][] = [];
    let assigned = 0;
    for (const [l, c] of counts) {
      const exact = (c * valSize) / n;
      quota.set(l, Math.floor(exact));
      assigned += Math.floor(exact);
      rema.push([exact - Math.floor(exact), l]);
    }
    rema.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let k = 0; assigned < valSize; k++, assigned++) quota.set(rema[k]![1], quota.get(rema[k]![1])! + 1);
    for (const i of perm) {
      const l = ds.labels[i]!;
      const q = quota.get(l)!;
      if (q > 0) {
        isVal[i] = 1;
        quota.set(l, q - 1);
      }
    }
  } else for (let k = 0; k < valSize; k++) isVal[perm[k]!] = 1;
  const valIndices = new Int32Array(valSize);
  const trainIndices = new Int32Array(n - valSize);
  let a = 0;
  let b = 0;
  for (const i of perm) {
    if (isVal[i]) valIndices[a++] = i;
    else trainIndices[b++] = i;
  }
  return { train: subset(ds, trainIndices), val: subset(ds, valIndices), trainIndices, valIndices };
}

/** Adds `pad` pixels of `value` around every image (e.g. 28x28 -> 32x32 with pad 2). */
export function padDataset(ds: ImageDataset, pad: number, value = 0): ImageDataset {
  checkDataset(ds, 'padDataset');
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`padDataset: pad must be a non-negative integer, got ${pad}`);
  const [n, c, h, w] = ds.shape;
  const H = h + 2 * pad;
  const W = w + 2 * pad;
  const images = new Uint8Array(n * c * H * W);
  if (value !== 0) images.fill(value);
  const src = ds.images;
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) {
      const s = (p * h + y) * w;
      const d = (p * H + y + pad) * W + pad;
      for (let x = 0; x < w; x++) images[d + x] = src[s + x]!; // plain loop: rows are short
    }
  }
  return { images, labels: ds.labels, shape: [n, c, H, W], classes: ds.classes };
}

/** Resizes every image to height x width ('stretch') or resize-to-cover + center crop ('crop'). */
export function resizeDataset(ds: ImageDataset, height: number, width: number, opts: { filter?: ResizeFilter; fit?: 'crop' | 'stretch' } = {}): ImageDataset {
  checkDataset(ds, 'resizeDataset');
  const [n, c, h, w] = ds.shape;
  if (h === height && w === width) return ds;
  const images = new Uint8Array(n * c * height * width);
  for (let i = 0; i < n; i++) {
    const img = chwToImage(ds.images, c as 1 | 3, h, w, i * c * h * w);
    const r = (opts.fit ?? 'crop') === 'crop' ? resizeCenterCrop(img, width, height, opts.filter) : resize(img, width, height, opts.filter);
    hwcToChw(r, images, i * c * height * width);
  }
  return { images, labels: ds.labels, shape: [n, c, height, width], classes: ds.classes };
}

/**
 * Pixels as float32 mapped linearly from 0..255 to `range` (default [0, 1]), same [N, C, H, W]
 * layout: all images, or `count` images from image `start` (batch by batch without a copy of the
 * whole set).
 */
export function toFloat32(ds: ImageDataset, range: readonly [number, number] = [0, 1], start = 0, count = ds.shape[0] - start): Float32Array {
  const [lo, hi] = range;
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = lo + ((hi - lo) * v) / 255;
  const per = ds.shape[1] * ds.shape[2] * ds.shape[3];
  const out = new Float32Array(count * per);
  const o = start * per;
  for (let i = 0; i < out.length; i++) out[i] = lut[ds.images[o + i]!]!;
  return out;
}
