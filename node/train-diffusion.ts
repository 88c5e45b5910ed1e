/**
 * Node-only: trains the class-conditional diffusion generator (models/diffusion: a DiT over the
 * normalized latent grid, flow matching) on a continuous (KL) tokenizer's latents.
 *
 * Latents: the training images are encoded once with the tokenizer (normalized posterior means,
 * batched, no gradient) and cached as a safetensors file (`latents` f32 [N, C, h, w], `labels`
 * i32 [N]; the metadata records the tokenizer checkpoint's path and SHA-256 and the data). A cache
 * whose tokenizer hash or source does not match is rebuilt. Training never runs the tokenizer.
 *
 * Training goes through node/train.ts's trainLoop (progress with ETA, JSONL metrics, atomic
 * resumable checkpoints with the model, AdamW moments, schedule, EMA of the weights, the noise and
 * class-dropout generator and the loader position). Samples use the EMA weights (`ema.*` in the
 * checkpoint; loadDiffusionCheckpoint loads them by default).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as E from '../engine/index.js';
import { getJson, getJsonOr, safetensorsChunks, setJson, type SafetensorsMetadata } from '../nn/checkpoint/index.js';
import { EMA } from '../nn/optim/index.js';
import { saveImageGrid } from './data/index.js';
import { cachedEncodingFor, type EncodingCacheOptions } from './encoding-cache.js';
import { loadCheckpoint, readSafetensorsFile, writeFileAtomic } from './checkpoint.js';
import { trainLoop, trainerStep, type LoadedModel, type TrainLoopResult, loopControls, type TrainLoopControls } from './train.js';
import { loadTokenizerCheckpoint } from './train-tokenizer.js';
import type { VQTokenizer } from '../models/tokenizer/model.js';
import { DiffusionTransformer, type DiffusionConfig, type DiffusionConfigInput } from '../models/diffusion/model.js';
import { fieldError, validateConfig } from '../models/config-schema.js';
import { resumable, setBaseLr } from './resume.js';
import { DIFFUSION_CONFIG_SCHEMA } from '../models/config-schemas.js';
import { createDiffusionOptimizer, diffusionTrainStep } from '../models/diffusion/train-step.js';
import { checkLatentDataset, encodeLatentDataset, LatentLoader, type LatentDataset } from '../models/diffusion/latent-data.js';
import { generateLatentsClassBalanced, latentClassGrid } from '../models/diffusion/generate.js';

const LATENT_CACHE_FORMAT = 'webgpu-tok-latents-v1';

export interface LatentCacheMeta {
  format: string;
  tokenizer: { path: string | null; sha256: string | null };
  source: Record<string, unknown>;
  shape: [number, number, number, number];
}

/** Writes latents and labels (and what produced them) to a safetensors file, atomically. */
export async function saveLatentCache(path: string, ds: LatentDataset, meta: { tokenizer?: { path: string | null; sha256: string | null }; source?: Record<string, unknown> } = {}): Promise<void> {
  checkLatentDataset(ds, `saveLatentCache(${path})`);
  const m: LatentCacheMeta = { format: LATENT_CACHE_FORMAT, tokenizer: meta.tokenizer ?? { path: null, sha256: null }, source: meta.source ?? {}, shape: [...ds.shape] };
  const metadata: SafetensorsMetadata = {};
  setJson(metadata, 'latents', m);
  const { chunks } = safetensorsChunks(
    {
      latents: { dtype: 'F32', shape: [...ds.shape], data: ds.latents },
      labels: { dtype: 'I32', shape: [ds.shape[0]], data: ds.labels },
    },
    metadata,
  );
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, chunks);
}

/** Reads a latent cache written by saveLatentCache (validated). */
export async function loadLatentCache(path: string): Promise<{ latents: LatentDataset; meta: LatentCacheMeta }> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  let meta: LatentCacheMeta;
  try {
    meta = getJson<LatentCacheMeta>(metadata, 'latents');
  } catch {
    throw new Error(`${path}: not a latent cache (no 'latents' metadata)`);
  }
  if (meta.format !== LATENT_CACHE_FORMAT) throw new Error(`${path}: latent cache format ${meta.format}, expected ${LATENT_CACHE_FORMAT}`);
  const z = tensors.latents;
  const l = tensors.labels;
  if (!z || !l || !(z.data instanceof Float32Array) || !(l.data instanceof Int32Array) || z.shape.length !== 4) throw new Error(`${path}: latent cache needs f32 'latents' [N, C, h, w] and i32 'labels' [N]`);
  const latents: LatentDataset = { latents: z.data, labels: l.data, shape: [z.shape[0]!, z.shape[1]!, z.shape[2]!, z.shape[3]!] };
  checkLatentDataset(latents, path);
  return { latents, meta };
}

/** Loads a tokenizer checkpoint and checks that it is continuous with measured latent statistics. */
export async function loadContinuousTokenizer(path: string, backend: E.Backend, what = 'tokenizer'): Promise<VQTokenizer> {
  const { model } = await loadTokenizerCheckpoint(path, backend);
  // A refused model is not returned: free it.
  if (!model.continuous) {
    model.dispose();
    throw new Error(`${what} ${path} is a VQ tokenizer (quantizer 'vq'): the diffusion generator needs a continuous one (train-tokenizer --quantizer kl)`);
  }
  if (!(await model.latentStats.measured())) {
    model.dispose();
    throw new Error(`${what} ${path} has no measured latent statistics (its training did not finish: run train-tokenizer again with the same --out to complete it)`);
  }
  return model;
}

export type BuildLatentCacheOptions = EncodingCacheOptions;

/** The dataset's normalized latents under the tokenizer, from the cache when it matches, else by encoding. */
export async function buildLatentCache(o: BuildLatentCacheOptions): Promise<{ latents: LatentDataset; cachePath: string; fromCache: boolean; tokenizer: VQTokenizer | null }> {
  const r = await cachedEncodingFor(o, 'latents', {
      what: 'latent',
      load: async (path) => {
        const c = await loadLatentCache(path);
        return { data: c.latents, meta: c.meta };
      },
      save: (path, data, meta) => saveLatentCache(path, data, meta),
      encode: async (images, onProgress) => {
        const model = await loadContinuousTokenizer(o.tokenizerPath, o.backend);
        return { data: await encodeLatentDataset(model, images, { backend: o.backend, batchSize: o.batchSize ?? 256, onProgress }), model };
      },
      describe: (z) => `${z.shape.join(' x ')} latents`,
  });
  return { latents: r.data, cachePath: r.cachePath, fromCache: r.fromCache, tokenizer: r.model };
}

export interface TrainDiffusionOptions extends TrainLoopControls {
  backend: E.Backend;
  /** Latents to train on; or tokenizerPath (and dataset) to encode / load the cache. */
  latents?: LatentDataset;
  tokenizerPath?: string;
  dataset?: 'fashion-mnist' | 'mnist';
  trainSubset?: number;
  latentCachePath?: string;
  numClasses?: number;
  config?: Partial<DiffusionConfig>;
  batchSize?: number;
  steps?: number;
  epochs?: number;
  /** AdamW learning rate (default 1e-4, DiT's). */
  /** Learning rate; on resume it replaces the checkpoint's (undefined keeps the checkpoint's). */
  lr?: number;
  warmupSteps?: number;
  clipNorm?: number;
  /** EMA decay of the weights used for sampling (default 0.999, with TF's warmup of the decay). */
  emaDecay?: number;
  seed?: number;
  outDir?: string;
  logEvery?: number;
  checkpointEvery?: number;
  /** Per-class sample grid every n steps (EMA weights; needs tokenizerPath). */
  sampleEvery?: number;
  samplesPerClass?: number;
  sampleOptions?: { steps?: number; sampler?: 'euler' | 'heun'; cfgScale?: number };
  resume?: boolean;
  log?: (line: string) => void;
  extra?: Record<string, unknown>;
}

export interface TrainDiffusionResult extends TrainLoopResult {
  model: DiffusionTransformer;
  ema: EMA;
  totalSteps: number;
  latents: LatentDataset;
  tokenizer: VQTokenizer | null;
}

/** A second model holding the EMA weights (for sampling during training); dispose it after use. */
export function emaCopy(model: DiffusionTransformer, ema: EMA): DiffusionTransformer {
  const copy = new DiffusionTransformer(model.cfg, { backend: model.backend, generator: new E.Generator(0) });
  ema.copyTo(copy.parameters());
  copy.eval();
  return copy;
}

export async function trainDiffusion(o: TrainDiffusionOptions): Promise<TrainDiffusionResult> {
  const { backend } = o;
  const log = o.log ?? ((l: string) => console.log(l));
  const seed = o.seed ?? 0;
  let latents = o.latents;
  let tokenizer: VQTokenizer | null = null;
  if (!latents) {
    if (!o.tokenizerPath) throw new Error('trainDiffusion: give latents or tokenizerPath');
    const c = await buildLatentCache({
      backend,
      tokenizerPath: o.tokenizerPath,
      ...(o.dataset ? { dataset: o.dataset } : {}),
      ...(o.trainSubset ? { subset: o.trainSubset } : {}),
      ...(o.latentCachePath ? { cachePath: o.latentCachePath } : o.outDir ? { cachePath: join(o.outDir, 'latents.safetensors') } : {}),
      log,
    });
    latents = c.latents;
    tokenizer = c.tokenizer;
  }
  checkLatentDataset(latents, 'trainDiffusion');
  if (o.sampleEvery && o.outDir && o.tokenizerPath && !tokenizer) tokenizer = await loadContinuousTokenizer(o.tokenizerPath, backend);
  let maxLabel = 0;
  for (const l of latents.labels) maxLabel = Math.max(maxLabel, l);
  const numClasses = o.numClasses ?? maxLabel + 1;
  const [, C, h, w] = latents.shape;
  const cfg: DiffusionConfigInput = { patchSize: 1, dim: 128, depth: 4, heads: 4, ...o.config, latentChannels: C, grid: [h, w], numClasses, dropSeed: seed + 1 };
  // Bounded before building: an oversized config must fail with a message, not exhaust the device.
  validateConfig('train-diffusion config', DIFFUSION_CONFIG_SCHEMA, cfg);
  const model = new DiffusionTransformer(cfg, { backend, generator: new E.Generator(seed) });
  const ema = new EMA(model.namedParameters(), { decay: o.emaDecay ?? 0.999, warmup: true });
  const B = o.batchSize ?? 64;
  if (B > latents.shape[0]) throw fieldError('trainDiffusion', 'batchSize', `${B} is more than the ${latents.shape[0]} training latents: no full batch (lower the batch size or use more images)`);
  const loader = new LatentLoader(latents, { batchSize: B, seed });
  const totalSteps = o.steps ?? Math.max(1, (o.epochs ?? 1) * loader.batchesPerEpoch);
  const { optimizer, scheduler } = createDiffusionOptimizer(model, { ...(o.lr !== undefined ? { lr: o.lr } : {}), warmupSteps: o.warmupSteps ?? Math.min(500, Math.round(0.05 * totalSteps)) });
  log(`${model.summary()}; ${latents.shape[0]} latents ${C}x${h}x${w} (${numClasses} classes), ${totalSteps} steps of ${B}, EMA ${ema.decay}`);
  const perClass = o.samplesPerClass ?? 8;
  const sampleGen = new E.Generator(seed + 2);
  const checkpointPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
  let first = true;
  const compute = trainerStep(o, (latentsB: E.Tensor, classes: E.Tensor) => diffusionTrainStep(model, optimizer, latentsB, classes, { scheduler, ...(o.clipNorm !== undefined ? { clipNorm: o.clipNorm } : {}) }), log);
  try {
    const r = await resumable(checkpointPath, o.resume ?? true, (started) => trainLoop({
      totalSteps,
      state: { model, optimizer, scheduler, ema, generators: { diffusion: model.generator, sample: sampleGen }, loader },
      backend,
      itemsPerStep: B,
      logEvery: o.logEvery ?? 50,
      ...(o.outDir ? { metricsPath: join(o.outDir, 'metrics.jsonl'), checkpointPath: checkpointPath!, checkpointEvery: o.checkpointEvery ?? 500 } : {}),
      resume: o.resume ?? true,
      ...loopControls(o),
      ...(o.outDir && o.sampleEvery && tokenizer
        ? {
            sampleEvery: o.sampleEvery,
            onSample: async (step: number) => {
              const nc = Math.min(numClasses, 10);
              using shadow = emaCopy(model, ema);
              const gen = await generateLatentsClassBalanced(shadow, { numImages: nc * perClass, numClasses: nc, batchSize: nc * perClass, generator: sampleGen, ...o.sampleOptions });
              using grid = E.disposable(latentClassGrid(tokenizer!, gen, { numClasses: nc, perClass, backend }));
              await saveImageGrid(join(o.outDir!, `samples_${String(step).padStart(7, '0')}.png`), grid.images, { nrow: grid.perRow, range: [-1, 1] });
            },
          }
        : {}),
      extra: { ...o.extra, config: model.cfg, batchSize: B, totalSteps, tokenizerPath: o.tokenizerPath ?? null, dataset: o.dataset ?? null },
      log,
      step: () => {
        if (first) {
          // After a resume's restore: the learning rate given for this call replaces the restored one.
          first = false;
          started();
          if (o.lr !== undefined) setBaseLr(scheduler, o.lr);
        }
        const b = loader.nextOnDevice(backend);
        const terms = compute.run(b.latents, b.classes);
        ema.update();
        return { terms, epoch: b.epoch };
      },
    }));
    return { ...r, model, ema, totalSteps, latents, tokenizer };
  } finally {
    compute.done();
    // The run's device batches and optimizer state; the model and its EMA are returned.
    loader.dispose();
    optimizer.dispose();
  }
}

export type LoadedDiffusion = LoadedModel<DiffusionTransformer> & { weights: 'ema' | 'raw' };

/**
 * Rebuilds the diffusion model from a trainDiffusion checkpoint (config in the `extra` metadata),
 * in eval mode, with the EMA weights when the checkpoint has them (default) or the raw ones.
 */
export async function loadDiffusionCheckpoint(path: string, backend: E.Backend, o: { ema?: boolean } = {}): Promise<LoadedDiffusion> {
  const { tensors: loaded, metadata } = await loadCheckpoint(path, backend);
  using tensors = E.disposable(loaded);
  const extra = getJsonOr<Record<string, unknown>>(metadata, 'extra', {});
  const config = extra.config as DiffusionConfigInput | undefined;
  if (!config || typeof config !== 'object' || !('latentChannels' in config)) throw new Error(`${path}: not a train-diffusion checkpoint (no diffusion config in its metadata)`);
  // A crafted config must not build a model the device cannot hold: checked before building.
  validateConfig(`checkpoint metadata of ${path}`, DIFFUSION_CONFIG_SCHEMA, config);
  const model = new DiffusionTransformer(config, { backend, generator: new E.Generator(0) });
  const useEma = (o.ema ?? true) && Object.keys(tensors).some((k) => k.startsWith('ema.'));
  const prefix = useEma ? 'ema.' : 'model.';
  const state: Record<string, E.Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith(prefix)) state[k.slice(prefix.length)] = t;
  model.loadStateDict(state);
  model.eval();
  return { model, step: getJson<number>(metadata, 'step'), extra, weights: useEma ? 'ema' : 'raw' };
}
