/**
 * Node-only: trains the class-conditional AR generator on cached tokenizer codes.
 *
 * Tokens: the training images are encoded once with the tokenizer (batched, no gradient) and the
 * result is cached as a safetensors file (`tokens` i32 [N, L], `labels` i32 [N]; the metadata
 * records the tokenizer checkpoint's path and SHA-256, the dataset and the grid). A cache whose
 * tokenizer hash or dataset does not match is rebuilt. Training then never runs the tokenizer.
 *
 * Training goes through node/train.ts's trainLoop: progress line with ETA, JSONL metrics, atomic
 * resumable checkpoints holding the model, AdamW moments, the LR schedule, the class-dropout
 * generator and the token loader position (so a resumed run continues bit-exactly), and an
 * optional per-class sample grid decoded by the tokenizer.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as E from '../engine/index.js';
import { getJson, safetensorsChunks, setJson, type SafetensorsMetadata } from '../nn/checkpoint/index.js';
import { saveImageGrid } from './data/index.js';
import { cachedEncodingFor, type EncodingCacheOptions } from './encoding-cache.js';
import { readSafetensorsFile, writeFileAtomic } from './checkpoint.js';
import { loadModelCheckpoint, trainLoop, trainerStep, type LoadedModel, type TrainLoopResult, loopControls, type TrainLoopControls } from './train.js';
import { loadTokenizerCheckpoint } from './train-tokenizer.js';
import type { VQTokenizer } from '../models/tokenizer/model.js';
import { ARTransformer, type ARConfig, type ARConfigInput } from '../models/ar/model.js';
import { fieldError, validateConfig } from '../models/config-schema.js';
import { resumable, setBaseLr } from './resume.js';
import { AR_CONFIG_SCHEMA } from '../models/config-schemas.js';
import { sampleTokens, type CfgSchedule } from '../models/ar/sample.js';
import { arTrainStep, checkTokenDataset, createAROptimizer, encodeTokenDataset, TokenLoader, type TokenDataset } from '../models/ar/train-step.js';

// ---- token cache files ----

const TOKEN_CACHE_FORMAT = 'webgpu-tok-ar-tokens-v1';

export interface TokenCacheMeta {
  format: string;
  /** Tokenizer checkpoint path and SHA-256 (hex) of its bytes. */
  tokenizer: { path: string | null; sha256: string | null };
  /** Free-form description of the source images (dataset name, split, subset size...). */
  source: Record<string, unknown>;
  grid: [number, number];
  vocabSize: number;
  n: number;
}

export { fileSha256 } from './file-hash.js';

/** Writes tokens and labels (and what produced them) to a safetensors file, atomically. */
export async function saveTokenCache(path: string, ds: TokenDataset, meta: { tokenizer?: { path: string | null; sha256: string | null }; source?: Record<string, unknown> } = {}): Promise<void> {
  checkTokenDataset(ds, `saveTokenCache(${path})`);
  const m: TokenCacheMeta = {
    format: TOKEN_CACHE_FORMAT,
    tokenizer: meta.tokenizer ?? { path: null, sha256: null },
    source: meta.source ?? {},
    grid: [ds.grid[0], ds.grid[1]],
    vocabSize: ds.vocabSize,
    n: ds.shape[0],
  };
  const metadata: SafetensorsMetadata = {};
  setJson(metadata, 'ar_tokens', m);
  const { chunks } = safetensorsChunks(
    {
      tokens: { dtype: 'I32', shape: [ds.shape[0], ds.shape[1]], data: ds.tokens },
      labels: { dtype: 'I32', shape: [ds.shape[0]], data: ds.labels },
    },
    metadata,
  );
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, chunks);
}

/** Reads a token cache written by saveTokenCache (validated). */
export async function loadTokenCache(path: string): Promise<{ tokens: TokenDataset; meta: TokenCacheMeta }> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  let meta: TokenCacheMeta;
  try {
    meta = getJson<TokenCacheMeta>(metadata, 'ar_tokens');
  } catch {
    throw new Error(`${path}: not an AR token cache (no 'ar_tokens' metadata)`);
  }
  if (meta.format !== TOKEN_CACHE_FORMAT) throw new Error(`${path}: token cache format ${meta.format}, expected ${TOKEN_CACHE_FORMAT}`);
  const t = tensors.tokens;
  const l = tensors.labels;
  if (!t || !l || !(t.data instanceof Int32Array) || !(l.data instanceof Int32Array) || t.shape.length !== 2) throw new Error(`${path}: token cache needs i32 'tokens' [N, L] and 'labels' [N]`);
  const tokens: TokenDataset = { tokens: t.data, labels: l.data, shape: [t.shape[0]!, t.shape[1]!], grid: meta.grid, vocabSize: meta.vocabSize };
  checkTokenDataset(tokens, path);
  return { tokens, meta };
}

export type BuildTokenCacheOptions = EncodingCacheOptions;

/**
 * Returns the dataset's tokens under the tokenizer at `tokenizerPath`, from the cache when its
 * tokenizer hash and source match, else by encoding (and writing the cache).
 */
export async function buildTokenCache(o: BuildTokenCacheOptions): Promise<{ tokens: TokenDataset; cachePath: string; fromCache: boolean; tokenizer: VQTokenizer | null }> {
  const r = await cachedEncodingFor(o, 'tokens', {
      what: 'token',
      load: async (path) => {
        const c = await loadTokenCache(path);
        return { data: c.tokens, meta: c.meta };
      },
      save: (path, data, meta) => saveTokenCache(path, data, meta),
      encode: async (images, onProgress) => {
        const { model } = await loadTokenizerCheckpoint(o.tokenizerPath, o.backend);
        return { data: await encodeTokenDataset(model, images, { backend: o.backend, batchSize: o.batchSize ?? 256, onProgress }), model };
      },
      describe: (t) => `${t.shape[0]} x ${t.shape[1]} tokens`,
  });
  return { tokens: r.data, cachePath: r.cachePath, fromCache: r.fromCache, tokenizer: r.model };
}

// ---- training ----

export interface TrainAROptions extends TrainLoopControls {
  backend: E.Backend;
  /** Tokens to train on; or give tokenizerPath (and dataset) to encode / load the cache. */
  tokens?: TokenDataset;
  tokenizerPath?: string;
  dataset?: 'fashion-mnist' | 'mnist';
  trainSubset?: number;
  tokenCachePath?: string;
  /** Number of classes (default: max label + 1 of the tokens). */
  numClasses?: number;
  config?: Partial<ARConfig>;
  batchSize?: number;
  steps?: number;
  epochs?: number;
  /** Peak learning rate; on resume it replaces the checkpoint's (undefined keeps the checkpoint's). */
  lr?: number;
  betas?: [number, number];
  weightDecay?: number;
  /** Default: 5% of the steps. */
  warmupSteps?: number;
  minLrRatio?: number;
  clipNorm?: number;
  seed?: number;
  outDir?: string;
  logEvery?: number;
  checkpointEvery?: number;
  /** Sample grid every n steps (needs the tokenizer: tokenizerPath). */
  sampleEvery?: number;
  samplesPerClass?: number;
  sampleCfg?: { cfgScale?: number; cfgSchedule?: CfgSchedule; temperature?: number; topK?: number; topP?: number };
  resume?: boolean;
  log?: (line: string) => void;
  extra?: Record<string, unknown>;
}

export interface TrainARResult extends TrainLoopResult {
  model: ARTransformer;
  totalSteps: number;
  tokens: TokenDataset;
  tokenizer: VQTokenizer | null;
}

export async function trainAR(o: TrainAROptions): Promise<TrainARResult> {
  const { backend } = o;
  const log = o.log ?? ((l: string) => console.log(l));
  const seed = o.seed ?? 0;
  let tokens = o.tokens;
  let tokenizer: VQTokenizer | null = null;
  if (!tokens) {
    if (!o.tokenizerPath) throw new Error('trainAR: give tokens or tokenizerPath');
    const c = await buildTokenCache({
      backend,
      tokenizerPath: o.tokenizerPath,
      ...(o.dataset ? { dataset: o.dataset } : {}),
      ...(o.trainSubset ? { subset: o.trainSubset } : {}),
      ...(o.tokenCachePath ? { cachePath: o.tokenCachePath } : o.outDir ? { cachePath: join(o.outDir, 'tokens.safetensors') } : {}),
      log,
    });
    tokens = c.tokens;
    tokenizer = c.tokenizer;
  }
  checkTokenDataset(tokens, 'trainAR');
  if (o.sampleEvery && o.outDir && o.tokenizerPath && !tokenizer) tokenizer = (await loadTokenizerCheckpoint(o.tokenizerPath, backend)).model;
  let maxLabel = 0;
  for (const l of tokens.labels) maxLabel = Math.max(maxLabel, l);
  const numClasses = o.numClasses ?? maxLabel + 1;
  const cfg: ARConfigInput = { dim: 128, depth: 4, heads: 4, ...o.config, vocabSize: tokens.vocabSize, numClasses, seqLen: tokens.shape[1], grid: [tokens.grid[0], tokens.grid[1]], dropSeed: seed + 1 };
  // Bounded before building: an oversized config must fail with a message, not exhaust the device.
  validateConfig('train-ar config', AR_CONFIG_SCHEMA, cfg);
  const model = new ARTransformer(cfg, { backend, generator: new E.Generator(seed) });
  const B = o.batchSize ?? 64;
  if (B > tokens.shape[0]) throw fieldError('trainAR', 'batchSize', `${B} is more than the ${tokens.shape[0]} training token sequences: no full batch (lower the batch size or use more images)`);
  const loader = new TokenLoader(tokens, { batchSize: B, seed });
  const totalSteps = o.steps ?? Math.max(1, (o.epochs ?? 1) * loader.batchesPerEpoch);
  const { optimizer, scheduler } = createAROptimizer(model, {
    totalSteps,
    warmupSteps: o.warmupSteps ?? Math.round(0.05 * totalSteps),
    ...(o.lr !== undefined ? { lr: o.lr } : {}),
    ...(o.betas ? { betas: o.betas } : {}),
    ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}),
    ...(o.minLrRatio !== undefined ? { minLrRatio: o.minLrRatio } : {}),
  });
  log(`${model.summary()}; ${tokens.shape[0]} sequences of ${tokens.shape[1]} tokens (V ${tokens.vocabSize}, ${numClasses} classes), ${totalSteps} steps of ${B}`);
  const perClass = o.samplesPerClass ?? 8;
  const sampleGen = new E.Generator(seed + 2);
  const checkpointPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
  let first = true;
  const compute = trainerStep(o, (classes: E.Tensor, toks: E.Tensor) => arTrainStep(model, optimizer, classes, toks, { scheduler, ...(o.clipNorm !== undefined ? { clipNorm: o.clipNorm } : {}) }), log);
  try {
    const r = await resumable(checkpointPath, o.resume ?? true, (started) => trainLoop({
      totalSteps,
      state: { model, optimizer, scheduler, generators: { ar: model.generator, sample: sampleGen }, loader },
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
              const classes = Array.from({ length: nc * perClass }, (_, i) => Math.floor(i / perClass));
              using imgs = E.noGrad(() =>
                E.tidy(() => {
                  const ids = sampleTokens(model, classes, { ...o.sampleCfg, generator: sampleGen });
                  const [h, w] = tokens!.grid;
                  return tokenizer!.decodeIndices(ids.reshape([classes.length, h, w])).maximum(-1).minimum(1);
                }),
              );
              await saveImageGrid(join(o.outDir!, `samples_${String(step).padStart(7, '0')}.png`), imgs, { nrow: perClass, range: [-1, 1] });
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
        const terms = compute.run(b.classes, b.tokens);
        return { terms, epoch: b.epoch };
      },
    }));
    return { ...r, model, totalSteps, tokens, tokenizer };
  } finally {
    compute.done();
    // The run's device batches and optimizer state; the model is returned.
    loader.dispose();
    optimizer.dispose();
  }
}

export type LoadedAR = LoadedModel<ARTransformer>;

/** Rebuilds the AR model from a trainAR checkpoint (config in the `extra` metadata), in eval mode. */
export function loadARCheckpoint(path: string, backend: E.Backend): Promise<LoadedAR> {
  // The weights are overwritten; a fixed generator keeps the default one untouched.
  return loadModelCheckpoint(path, backend, (c: ARConfigInput) => new ARTransformer(c, { backend, generator: new E.Generator(0) }), 'trainAR', AR_CONFIG_SCHEMA);
}
