/**
 * Class-balanced generation with the diffusion generator and what gFID needs from it
 * (browser-safe), as models/ar/generate.ts does for the AR generator: sample normalized latents
 * for every class in turn (sample i has class i mod numClasses), decode them with a continuous
 * tokenizer and accumulate their feature statistics, and pick a per-class grid of decoded samples.
 */
import * as E from '../../engine/index.js';
import { ImageFeatureStats, type ImageFeatureNet, type ImageFeatureOptions } from '../metrics/image-features.js';
import { classBalancedLabels, pickPerClass } from '../metrics/class-balance.js';
import type { LatentDataset } from './latent-data.js';
import type { DiffusionTransformer } from './model.js';
import { sampleDiffusion, type DiffusionSampleOptions } from './sample.js';

/** What is needed from a tokenizer: normalized latents [B, C, h, w] -> images [B, ch, H, W]. */
export interface LatentDecoder {
  decodeLatents(z: E.Tensor): E.Tensor;
}

export interface GenerateLatentsOptions extends Pick<DiffusionSampleOptions, 'sampler' | 'steps' | 'cfgScale' | 'guidanceInterval'> {
  /** Number of samples; sample i has class i mod numClasses. */
  numImages: number;
  /** Default: the model's numClasses. */
  numClasses?: number;
  /** Samples per sampling call (default 100). */
  batchSize?: number;
  /** Source of the starting noise (one draw per batch, in order: reproducible for a seed). */
  generator?: E.Generator;
  onBatch?: (done: number, total: number) => void;
}

/** Class-balanced sampling: the normalized latents and labels of numImages samples. */
export async function generateLatentsClassBalanced(model: DiffusionTransformer, o: GenerateLatentsOptions): Promise<LatentDataset> {
  const N = o.numImages;
  const nc = o.numClasses ?? model.cfg.numClasses;
  const bs = o.batchSize ?? 100;
  if (!(Number.isInteger(N) && N >= 0)) throw new RangeError(`generateLatentsClassBalanced: numImages must be an integer >= 0, got ${N}`);
  if (!(Number.isInteger(nc) && nc >= 1 && nc <= model.cfg.numClasses)) throw new RangeError(`generateLatentsClassBalanced: numClasses must be in [1, ${model.cfg.numClasses}], got ${nc}`);
  if (!(Number.isInteger(bs) && bs >= 1)) throw new RangeError(`generateLatentsClassBalanced: batchSize must be an integer >= 1, got ${bs}`);
  const [C, h, w] = model.latentShape as [number, number, number];
  const per = C * h * w;
  const latents = new Float32Array(N * per);
  const labels = classBalancedLabels(N, nc);
  const so: DiffusionSampleOptions = {};
  for (const k of ['sampler', 'steps', 'cfgScale', 'guidanceInterval', 'generator'] as const) if (o[k] !== undefined) (so as Record<string, unknown>)[k] = o[k];
  for (let st = 0; st < N; st += bs) {
    const b = Math.min(bs, N - st);
    using z = sampleDiffusion(model, Array.from(labels.subarray(st, st + b)), so);
    latents.set(await z.toArray(), st * per);
    o.onBatch?.(st + b, N);
  }
  return { latents, labels, shape: [N, C, h, w] };
}

export interface DecodedLatentStatsOptions extends ImageFeatureOptions {
  backend: E.Backend;
  /** Latents decoded per batch (default 100). */
  batchSize?: number;
  onBatch?: (done: number, total: number) => void;
}

/** Decodes latents with `tokenizer` and accumulates the feature statistics of the images. */
export async function decodedLatentFeatureStats(net: ImageFeatureNet, tokenizer: LatentDecoder, ds: LatentDataset, o: DecodedLatentStatsOptions): Promise<ImageFeatureStats> {
  const { backend, batchSize, onBatch, ...statsOpts } = o;
  const stats = new ImageFeatureStats(net, statsOpts);
  const [N, C, h, w] = ds.shape;
  const per = C * h * w;
  const bs = batchSize ?? 100;
  for (let s = 0; s < N; s += bs) {
    const b = Math.min(bs, N - s);
    using img = E.noGrad(() => E.tidy(() => tokenizer.decodeLatents(E.tensor(ds.latents.subarray(s * per, (s + b) * per), [b, C, h, w], { backend }))));
    await stats.add(img);
    onBatch?.(s + b, N);
  }
  return stats;
}

/**
 * Decoded samples, one row per class (classes 0..numClasses-1), clamped to [-1, 1]:
 * [numClasses * n, ch, H, W] with n = min(perClass, the samples of the rarest class); show it with
 * n images per row.
 */
export function latentClassGrid(tokenizer: LatentDecoder, ds: LatentDataset, o: { numClasses: number; perClass: number; backend: E.Backend }): { images: E.Tensor; perRow: number } {
  const { picked, perRow } = pickPerClass(ds.labels, o.numClasses, o.perClass);
  const [, C, h, w] = ds.shape;
  const per = C * h * w;
  const z = new Float32Array(picked.length * per);
  picked.forEach((i, k) => z.set(ds.latents.subarray(i * per, (i + 1) * per), k * per));
  const images = E.noGrad(() => E.tidy(() => tokenizer.decodeLatents(E.tensor(z, [picked.length, C, h, w], { backend: o.backend })).maximum(-1).minimum(1)));
  return { images, perRow };
}
