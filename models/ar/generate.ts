/**
 * Class-balanced generation with the AR model and what gFID needs from it (browser-safe): sample
 * token sequences for every class in turn, decode them with a tokenizer and accumulate their
 * feature statistics, and pick a per-class grid of decoded samples. Shared by the RobusTok study
 * (examples/robustok/generators.ts) and the CLI's `sample-ar`.
 */
import * as E from '../../engine/index.js';
import { ImageFeatureStats, type ImageFeatureNet, type ImageFeatureOptions } from '../metrics/image-features.js';
import { classBalancedLabels, pickPerClass } from '../metrics/class-balance.js';
import type { ARTransformer } from './model.js';
import { sampleTokens, type ARSampleOptions } from './sample.js';
import type { TokenDataset } from './train-step.js';

/** What is needed from a tokenizer: token ids [B, h, w] -> images [B, C, H, W]. */
export interface TokenDecoder {
  decodeIndices(ids: E.Tensor): E.Tensor;
}

export interface GenerateTokensOptions extends Pick<ARSampleOptions, 'temperature' | 'topK' | 'topP' | 'cfgScale' | 'cfgSchedule' | 'cfgPower'> {
  /** Number of sequences; sample i has class i mod numClasses. */
  numImages: number;
  /** Default: the model's numClasses. */
  numClasses?: number;
  /** Sequences per sampling call (default 100). */
  batchSize?: number;
  generator?: E.Generator;
  /** Called after each batch with the number of sequences done. */
  onBatch?: (done: number, total: number) => void;
}

/** Class-balanced generation: sample i has class i mod numClasses. Returns the sequences and labels. */
export async function generateClassBalanced(ar: ARTransformer, o: GenerateTokensOptions): Promise<TokenDataset> {
  const N = o.numImages;
  const nc = o.numClasses ?? ar.cfg.numClasses;
  const bs = o.batchSize ?? 100;
  if (!(Number.isInteger(N) && N >= 0)) throw new RangeError(`generateClassBalanced: numImages must be an integer >= 0, got ${N}`);
  if (!(Number.isInteger(nc) && nc >= 1 && nc <= ar.cfg.numClasses)) throw new RangeError(`generateClassBalanced: numClasses must be in [1, ${ar.cfg.numClasses}], got ${nc}`);
  if (!(Number.isInteger(bs) && bs >= 1)) throw new RangeError(`generateClassBalanced: batchSize must be an integer >= 1, got ${bs}`);
  const L = ar.seqLen;
  const grid = ar.cfg.grid ?? [Math.round(Math.sqrt(L)), Math.round(Math.sqrt(L))];
  const tokens = new Int32Array(N * L);
  const labels = classBalancedLabels(N, nc);
  const so: ARSampleOptions = {};
  for (const k of ['temperature', 'topK', 'topP', 'cfgScale', 'cfgSchedule', 'cfgPower', 'generator'] as const) if (o[k] !== undefined) (so as Record<string, unknown>)[k] = o[k];
  for (let st = 0; st < N; st += bs) {
    const b = Math.min(bs, N - st);
    using ids = sampleTokens(ar, Array.from(labels.subarray(st, st + b)), so);
    tokens.set((await ids.toArray()) as Int32Array, st * L);
    o.onBatch?.(st + b, N);
  }
  return { tokens, labels, shape: [N, L], grid: [grid[0], grid[1]], vocabSize: ar.cfg.vocabSize };
}

export interface DecodedStatsOptions extends ImageFeatureOptions {
  backend: E.Backend;
  /** Sequences decoded per batch (default 100). */
  batchSize?: number;
  onBatch?: (done: number, total: number) => void;
}

/** Decodes token sequences with `tokenizer` and accumulates the feature statistics of the images. */
export async function decodedFeatureStats(net: ImageFeatureNet, tokenizer: TokenDecoder, ds: TokenDataset, o: DecodedStatsOptions): Promise<ImageFeatureStats> {
  const { backend, batchSize, onBatch, ...statsOpts } = o;
  const stats = new ImageFeatureStats(net, statsOpts);
  const [N, L] = ds.shape;
  const [h, w] = ds.grid;
  const bs = batchSize ?? 100;
  for (let s = 0; s < N; s += bs) {
    const b = Math.min(bs, N - s);
    using img = E.noGrad(() => E.tidy(() => tokenizer.decodeIndices(E.tensor(ds.tokens.subarray(s * L, (s + b) * L), [b, h, w], { backend, dtype: 'i32' }))));
    await stats.add(img);
    onBatch?.(s + b, N);
  }
  return stats;
}

/**
 * Decoded samples, one row per class (classes 0..numClasses-1), clamped to [-1, 1]:
 * [numClasses * n, C, H, W] with n = min(perClass, the samples of the rarest class); show it with
 * n images per row.
 */
export function classGrid(tokenizer: TokenDecoder, ds: TokenDataset, o: { numClasses: number; perClass: number; backend: E.Backend }): { images: E.Tensor; perRow: number } {
  const L = ds.shape[1];
  const { picked, perRow: perClass } = pickPerClass(ds.labels, o.numClasses, o.perClass);
  const [h, w] = ds.grid;
  const ids = new Int32Array(picked.length * L);
  picked.forEach((i, k) => ids.set(ds.tokens.subarray(i * L, (i + 1) * L), k * L));
  const images = E.noGrad(() => E.tidy(() => tokenizer.decodeIndices(E.tensor(ids, [picked.length, h, w], { backend: o.backend, dtype: 'i32' })).maximum(-1).minimum(1)));
  return { images, perRow: perClass };
}
