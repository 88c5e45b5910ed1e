/**
 * The study's data: Fashion-MNIST (or MNIST) padded to 32x32, optionally area-resized to 16x16,
 * pixels mapped to [-1, 1]; the first `trainImages` / `valImages` of the seeded split.
 */
import * as E from '../../engine/index.js';
import { loadFashionMNIST, loadMNIST, resizeDataset, subset, type ImageDataset } from '../../node/data/index.js';
import type { StudyConfig } from './config.js';

export interface StudyData {
  train: ImageDataset;
  val: ImageDataset;
  classes: string[];
}

const firstN = (ds: ImageDataset, n: number | null): ImageDataset => (n === null || n >= ds.shape[0] ? ds : subset(ds, Int32Array.from({ length: n }, (_, i) => i)));

export function loadStudyData(c: StudyConfig, log?: (line: string) => void): StudyData {
  const split = (c.dataset === 'mnist' ? loadMNIST : loadFashionMNIST)({ pad: 2, ...(log ? { log } : {}) });
  let train = firstN(split.train, c.trainImages);
  let val = firstN(split.val, c.valImages);
  if (val.shape[0] < c.valImages) throw new Error(`study '${c.name}': wants ${c.valImages} validation images, the split has ${val.shape[0]}`);
  if (c.imageSize !== 32) {
    train = resizeDataset(train, c.imageSize, c.imageSize, { filter: 'area', fit: 'stretch' });
    val = resizeDataset(val, c.imageSize, c.imageSize, { filter: 'area', fit: 'stretch' });
  }
  return { train, val, classes: split.classes };
}

/** Images [from, to) of a dataset as a [-1, 1] f32 tensor [n, C, H, W]. */
export function imagesTensor(ds: ImageDataset, from: number, to: number, backend: E.Backend): E.Tensor {
  const [, c, h, w] = ds.shape;
  const per = c * h * w;
  const px = ds.images.subarray(from * per, to * per);
  const data = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) data[i] = (px[i]! / 255) * 2 - 1;
  return E.tensor(data, [to - from, c, h, w], { backend });
}

/**
 * Consecutive batches of a dataset on the device, in order (the last one may be smaller). Each
 * batch tensor is owned by the generator (kept out of the consumer's scopes) and freed when the
 * consumer asks for the next one (or stops iterating).
 */
export function* deviceBatches(ds: ImageDataset, batchSize: number, backend: E.Backend, limit = ds.shape[0]): Generator<{ x: E.Tensor; labels: Int32Array; start: number }> {
  const n = Math.min(limit, ds.shape[0]);
  for (let s = 0; s < n; s += batchSize) {
    const e = Math.min(n, s + batchSize);
    using x = E.keep(imagesTensor(ds, s, e, backend));
    yield { x, labels: ds.labels.subarray(s, e), start: s };
  }
}

/** FeatNet sees 32x32 images: 16x16 study images are nearest-upsampled 2x first. */
export function featureInputFor(imageSize: number): ((x: E.Tensor) => E.Tensor) | undefined {
  if (imageSize === 32) return undefined;
  const f = 32 / imageSize;
  return (x) => E.upsampleNearest2d(x, f);
}
