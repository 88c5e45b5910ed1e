/**
 * The diffusion generator's training data (browser-safe): every training image encoded once by a
 * continuous (KL) tokenizer to its normalized posterior mean (VQTokenizer.encodeLatents), kept on
 * the host as one Float32Array [N, C, h, w] with the labels, and batched by a seeded, resumable
 * loader (nn/data/row-loader.ts, the token loader's twin) so training never runs the tokenizer.
 */
import * as E from '../../engine/index.js';
import { toFloat32, type ImageDataset } from '../../nn/data/dataset.js';
import { ShuffledRowLoader } from '../../nn/data/row-loader.js';

export interface LatentDataset {
  /** Normalized latents, row-major [N, C, h, w]. */
  latents: Float32Array;
  labels: Int32Array;
  shape: [number, number, number, number];
}

export function checkLatentDataset(ds: LatentDataset, what = 'LatentDataset'): void {
  const [n, C, h, w] = ds.shape;
  if (!(ds.latents instanceof Float32Array) || !(ds.labels instanceof Int32Array)) throw new TypeError(`${what}: latents must be a Float32Array and labels an Int32Array`);
  if (ds.latents.length !== n * C * h * w) throw new Error(`${what}: ${ds.latents.length} values do not match shape [${ds.shape.join(', ')}]`);
  if (ds.labels.length !== n) throw new Error(`${what}: ${ds.labels.length} labels for ${n} latents`);
  for (let i = 0; i < ds.latents.length; i++) if (!Number.isFinite(ds.latents[i]!)) throw new RangeError(`${what}: non-finite latent value at ${i}`);
}

/** What encodeLatentDataset needs of a tokenizer (a KL VQTokenizer fits). */
export interface LatentImageEncoder {
  encodeLatents(x: E.Tensor): E.Tensor;
  training: boolean;
  train(mode?: boolean): unknown;
}

/**
 * Encodes every image of `ds` (pixels 0..255, in order) to normalized latents with the tokenizer
 * in eval mode and without gradients, `batchSize` images at a time (one readback per batch).
 */
export async function encodeLatentDataset(
  tokenizer: LatentImageEncoder,
  ds: ImageDataset,
  o: { backend: E.Backend; batchSize?: number; range?: readonly [number, number]; onProgress?: (done: number, total: number) => void },
): Promise<LatentDataset> {
  const [N, C, H, W] = ds.shape;
  const bs = o.batchSize ?? 256;
  if (!Number.isInteger(bs) || bs < 1) throw new Error(`encodeLatentDataset: batchSize must be a positive integer, got ${bs}`);
  const was = tokenizer.training;
  tokenizer.train(false);
  let latents: Float32Array | null = null;
  let shape: [number, number, number, number] = [N, 0, 0, 0];
  try {
    for (let s = 0; s < N; s += bs) {
      const b = Math.min(bs, N - s);
      const x = toFloat32(ds, o.range ?? [-1, 1], s, b);
      using z = E.noGrad(() => E.tidy(() => tokenizer.encodeLatents(E.tensor(x, [b, C, H, W], { backend: o.backend })).contiguous()));
      const data = await z.toArray();
      const [, c, h, w] = z.shape as [number, number, number, number];
      if (!latents) {
        shape = [N, c, h, w];
        latents = new Float32Array(N * c * h * w);
      }
      latents.set(data.subarray(0, b * c * h * w), s * c * h * w);
      o.onProgress?.(s + b, N);
    }
  } finally {
    tokenizer.train(was);
  }
  return { latents: latents ?? new Float32Array(0), labels: Int32Array.from(ds.labels), shape };
}

/** Seeded, resumable batches of (classes, latents) from a LatentDataset. */
export class LatentLoader extends ShuffledRowLoader<Float32Array> {
  constructor(readonly dataset: LatentDataset, opts: { batchSize: number; seed?: number }) {
    super(dataset.latents, dataset.labels, dataset.shape.slice(1), { ...opts, name: 'LatentLoader' });
  }

  /** The next batch on `backend`: classes i32 [B], latents f32 [B, C, h, w] (reused device tensors). */
  nextOnDevice(backend: E.Backend): { classes: E.Tensor; latents: E.Tensor; epoch: number } {
    const b = this.nextRowsOnDevice(backend);
    return { classes: b.classes, latents: b.rows, epoch: b.epoch };
  }
}
